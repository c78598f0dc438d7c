"""The package's shape: folder and import name agree, every subpackage says what it may
import and no import runs upward, and importing the package (or asking the CLI for help)
starts nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "transforms" / "medgov"

# Lower imports nothing higher; units of one rank never import each other (the stages).
RANK = {"errors": 0, "spec": 1, "domain": 2, "storage": 3, "quality": 4, "views": 4, "ingest": 5, "normalize": 5,
        "publish": 5, "pipeline": 6, "orchestration": 7, "dashboard": 7, "serving": 6, "report": 7, "terms": 6, "sample": 7,
        "bench": 8,
        "cli": 9, "airflow_trigger": 9}
HEAVY = ("pyspark", "great_expectations", "airflow")


def _unit(module: str) -> str:
    """`medgov.ingest.stage` -> `ingest`; `medgov.cli` -> `cli`."""
    return module.split(".")[1]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _medgov_imports(path: Path) -> list[str]:
    """Every medgov module a file imports, at module level or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medgov"):
            found += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("medgov")]
    return [m for m in found if m.count(".") >= 1]


def test_every_module_belongs_to_a_ranked_unit():
    units = {_unit(m) for m in _modules() if m != "medgov"}
    assert units <= set(RANK), f"unranked: {units - set(RANK)}"
    assert {"spec", "domain", "storage", "ingest", "normalize", "quality", "publish", "dashboard"} <= units


def test_no_import_runs_upward():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if name == "medgov":
            continue
        here = _unit(name)
        for target in _medgov_imports(path):
            there = _unit(target)
            if there not in RANK:  # `from medgov import x`: x is the unit
                continue
            if there != here and RANK[there] >= RANK[here]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_rule_catches_an_upward_import(tmp_path):
    """The check above can fail: storage importing a stage is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from medgov.ingest.stage import ingest\n", encoding="utf-8")
    assert "medgov.ingest.stage" in _medgov_imports(bad)
    assert RANK[_unit("medgov.ingest.stage")] >= RANK[_unit("medgov.storage.lake")]


def test_each_subpackage_says_what_lives_there_and_what_it_may_import():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc.splitlines()) >= 2 and "import" in doc.lower(), f"{init.parent.name}/__init__.py: {doc!r}"


def test_pyproject_lists_every_subpackage():
    """setuptools installs only the packages listed: a new subpackage must be added there."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= listed, f"missing from pyproject.toml: {sorted(on_disk - listed)}"


def _imported_after(code: str) -> list[str]:
    script = f"import sys\n{code}\nprint('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-1500:]
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY:"), p.stdout[-500:]
    return [m for m in last[len("HEAVY:"):].split(",") if m]


@pytest.mark.parametrize("code", [
    "import medgov",
    "from medgov import cli\nsys.argv = ['medgov', '--help']\ncli.dispatch()",
    "from medgov import cli\nsys.argv = ['medgov', 'checks', '--format', 'json']\ncli.dispatch()",
    "import medgov.dashboard.app, medgov.dashboard.site, medgov.report",
    "import medgov.spec.checks, medgov.spec.lifecycle, medgov.spec.tables, medgov.pipeline.runner",
])
def test_light_entry_points_import_no_spark_gx_or_airflow(code):
    assert _imported_after(code) == []


def test_the_light_import_check_sees_a_heavy_import():
    assert "pyspark" in _imported_after("import medgov.storage.spark")


def test_the_package_is_importable_by_its_file_path():
    """A reader (or an analyser that runs no install hook) finds `medgov.ingest.stage` at
    transforms/medgov/ingest/stage.py: the src root alone is enough."""
    # -S: no site-packages, so no install hook; only the source root on the path
    p = subprocess.run([sys.executable, "-S", "-c", "import medgov.spec.lifecycle as m; print(m.__file__)"],
                       capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT / "transforms")})
    assert p.returncode == 0, p.stderr[-800:]
    assert Path(p.stdout.strip()) == PACKAGE / "spec" / "lifecycle.py"


def test_gitignore_is_anchored_and_the_infra_examples_are_tracked():
    ignored = subprocess.run(["git", "check-ignore", "-q", "transforms/medgov/bench/harness.py"], cwd=ROOT)
    assert ignored.returncode == 1, "the benchmark package must not be ignored"
    tracked = subprocess.run(["git", "ls-files", "infra"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    referenced = {line.split("`")[1] for line in (ROOT / "infra" / "README.md").read_text().splitlines()
                  if line.startswith("|") and line.count("`") >= 2 and "/" in line.split("`")[1]}
    assert referenced and all(f"infra/{r}" in tracked for r in referenced), (referenced, tracked)
