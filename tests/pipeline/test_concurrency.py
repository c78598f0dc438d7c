"""Concurrency: two `medgov run` on one landing zone and lake, an ingest beside a publish:
everyone finishes, the tables equal a single run's. (Writers racing on one control table and
the stage locks are tested in tests/storage.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lakes import tables


def test_two_runs_together_equal_one_run(one_org, two_cli_runs):
    for code, out, err in two_cli_runs.outputs:
        assert code == 0, err[-1500:]
        assert "Traceback" not in out + err
    # one run ingested, the other waited for the lock and found the work done
    summaries = sorted(out.split("ingest: ")[1].split("\n")[0] for _, out, _ in two_cli_runs.outputs)
    assert summaries == ["0 batch(es) accepted, 0 rejected, 0 deferred, 2 unchanged", "2 batch(es) accepted, 0 rejected, 0 deferred, 0 unchanged"]
    assert tables(two_cli_runs.lake) == one_org.tables


def _as_second_institution(landing: Path, org: str, out: Path, new_org: str = "SECOND0001") -> None:
    """The same extracts delivered by another institution."""
    (out / new_org).mkdir(parents=True)
    for item in (landing / org).iterdir():
        if item.is_dir():
            shutil.copytree(item, out / new_org / item.name)
            text = (item / "manifest.json").read_text(encoding="utf-8").replace(org, new_org)
            (out / new_org / item.name / "manifest.json").write_text(text, encoding="utf-8")
        else:
            shutil.copy(item, out / new_org / item.name)


@pytest.mark.system
def test_ingest_of_one_institution_beside_publish_of_another(one_org, spark, connect_server, tmp_path):
    """What overlapping Airflow DAG runs do: two stages in separate processes at once, one
    publishing an institution while the other ingests another (the stages before and after
    run in this process). The two processes share a Spark Connect server, as Airflow tasks do."""
    from medgov.pipeline.runner import run_stages
    from medgov.storage import control
    from medgov.storage.context import make_context
    from medgov.storage.lake import Lake

    org = sorted(p.name for p in one_org.landing.iterdir() if p.is_dir())[0]
    second = tmp_path / "second"
    _as_second_institution(one_org.landing, org, second)
    lake = tmp_path / "lake"
    run_stages(make_context(str(lake)), one_org.landing, ["ingest", "normalize", "validate"])
    stage = [sys.executable, "-c", "import sys; from medgov.pipeline.runner import run_stage; "
             "run_stage(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)"]
    env = {**os.environ, "SPARK_REMOTE": connect_server}
    publish = subprocess.Popen([*stage, "publish", str(lake)], stderr=subprocess.PIPE, text=True, env=env)
    ingest = subprocess.Popen([*stage, "ingest", str(lake), str(second)], stderr=subprocess.PIPE, text=True, env=env)
    for p in (publish, ingest):
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-1500:]
    stages = {k: b["stage"] for k, b in control.batches(Lake.at(lake)).items()}
    assert {s for k, s in stages.items() if k.startswith(org)} == {"published"}
    assert {s for k, s in stages.items() if k.startswith("SECOND0001")} == {"bronze"}
    # and the second institution's batches go on from there as if nothing had overlapped
    run_stages(make_context(str(lake)), None, ["normalize", "validate", "publish"])
    assert set(control.batches(Lake.at(lake))[k]["stage"] for k in stages) == {"published"}
