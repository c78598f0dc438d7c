"""The README's Guarantees table names, for each promise, the tests that prove it: those tests
exist (a moved or renamed test would otherwise leave a promise without its proof)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _guarantees() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "tests/" in line]


def _functions(path: Path) -> set[str]:
    return {n.name for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_promise_names_tests_that_exist():
    rows = _guarantees()
    assert len(rows) >= 20
    for row in rows:
        proof = row.rsplit("|", 2)[-2]
        current = None
        for ref in re.findall(r"`([^`]+)`", proof):
            if ref.startswith("tests/"):
                file, _, test = ref.partition("::")
                current = ROOT / file
                assert current.is_file(), f"{ref} (README Guarantees) does not exist"
            elif ref.startswith("::"):
                test = ref[2:]
            else:
                continue
            if test:
                assert current is not None and test in _functions(current), f"{ref} not in {current}"


def test_the_landing_limits_table_gives_the_defaults():
    """The README's table of landing-zone limits states the shipped defaults, every one."""
    from pydantic import TypeAdapter, ByteSize

    from medgov.spec.site import load_site

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The landing zone is a trust boundary", 1)[1].split("\n### ", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section, re.MULTILINE))
    defaults = load_site().landing.model_dump()
    assert set(rows) == set(defaults)
    for key, shown in rows.items():
        value = defaults[key]
        if key.endswith("_bytes"):
            assert TypeAdapter(ByteSize).validate_python(shown) == value, key
        else:
            assert str(value) in (shown, shown + ".0"), key


def test_the_threshold_table_gives_the_referential_defaults():
    """The README's table of hold-related checks states the catalogue's severity and threshold."""
    from medgov.spec.checks import catalogue

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Holds and release", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| (`silver\.[^|]+|the same four) \| `(\w+)` \| (\w+) \| ([\d.]+) \|", section, re.MULTILINE)
    assert {r[1] for r in rows} == {"patient_link", "visit_link", "held"}
    for _, column, severity, share in rows:
        declared = {(c.severity, c.threshold) for c in catalogue() if c.column == column}
        assert declared == {(severity, float(share))}, column


def test_the_disclosure_table_gives_the_serving_defaults():
    """The README's disclosure-control table states the shipped defaults of serving.yaml."""
    from medgov.spec.site import load_site

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## For downstream apps", 1)[1].split("\n## ", 1)[0]
    defaults = load_site().serving_policy().model_dump()
    shown: dict[str, str] = {}
    for names, values in re.findall(r"^\| (`\w+`(?:, `\w+`)*) \| ([^|]+?) \|", section, re.MULTILINE):
        for name, value in zip(re.findall(r"`(\w+)`", names), values.split(", ")):
            shown[name] = value.strip()
    assert set(shown) == set(defaults)
    for key, value in defaults.items():
        assert str(value).lower() == shown[key], key
