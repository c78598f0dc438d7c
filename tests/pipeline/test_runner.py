"""The one runner: stages in the lifecycle's order under their locks, what a DAG asks before it
starts Spark, and the background import of the slow dependencies."""

from __future__ import annotations

import sys

import pytest

from medgov.pipeline.runner import has_work, preload, run_stages
from medgov.sample.generate import generate


def test_has_work_reads_flags_and_the_control_table_without_spark(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate(landing, patients=5, seed=1)
    assert has_work("ingest", str(lake), str(landing))
    assert not has_work("ingest", str(lake), None)
    for name in ("normalize", "validate", "publish"):
        assert not has_work(name, str(lake), str(landing))  # no lake yet
    with pytest.raises(KeyError, match="no stage"):
        has_work("export", str(lake))


def test_stages_run_in_order_and_report_each(spark, tmp_path):
    """Named stages run in the lifecycle's order whatever order they are asked in; a stage with
    no backlog returns its empty result."""
    from medgov.storage.context import make_context

    seen: list[str] = []
    done = run_stages(make_context(str(tmp_path / "lake")), None, ["publish", "normalize"],
                      on_done=lambda name, result, seconds: seen.append(name))
    assert seen == ["normalize", "publish"] and list(done) == seen
    assert done["normalize"].batches == [] and done["publish"].batches == []


def test_preload_imports_great_expectations_in_the_background():
    import subprocess

    code = ("import sys; from medgov.pipeline.runner import preload; t = preload(['validate']); t.join(120); "
            "print('great_expectations' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert p.stdout.strip() == "True", p.stderr[-800:]
    assert preload(["ingest"]).join(5) is None  # nothing slow to load for ingest
