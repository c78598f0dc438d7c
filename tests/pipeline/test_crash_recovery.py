"""Crashes: `medgov run` killed with SIGKILL inside each stage, then run again.

After each kill, a reader (through `medgov.storage.visible`) sees every batch either whole or
not at all; after the re-run every table holds exactly what an uninterrupted run wrote (rows
compared sorted, volatile columns such as run ids and timestamps left out). The 11 kill points
form two chains, ingest and normalize, validate and publish: in each, the first run is killed
from a clean start and each later one while recovering from the kill before it, so a kill
mid-ingest, mid-MERGE and before every bookkeeping commit is each recovered by the next run.
The killed processes attach to one Spark Connect server (SPARK_REMOTE), as Airflow tasks do
in a deployment: what a run commits is written by the process itself (delta-rs), so a kill
of the client is the crash that matters, and the chain does not pay a JVM start per run.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from deltalake import DeltaTable

from lakes import medgov, tables, visible_by_batch

pytestmark = pytest.mark.system

# Two chains, each from a clean start (on two test workers they run side by side).
CHAINS = {
    "ingest-normalize": [
        "ingest.after_table.patient",  # between bronze tables
        "ingest.after_table.lab_result",
        "ingest.before_bookkeeping",  # data written, batch not yet marked
        "ingest.before_delivery_log",
        "normalize.before_xref",  # relinked, cross-reference not yet committed
        "normalize.after_table.encounter",  # between silver tables
        "normalize.before_bookkeeping",
    ],
    "validate-publish": [
        "validate.before_bookkeeping",
        "publish.merge@30",  # 30 ms into the MERGE into gold
        "publish.merge@300",
        "publish.before_bookkeeping",
    ],
}


def _has_gold(lake: Path) -> bool:
    return DeltaTable.is_deltatable(str(lake / "gold" / "ckd_registry"))


def _crash(landing: Path, lake: Path, point: str, expected: dict, expected_visible: dict, remote: str) -> None:
    """Run until killed at `point`; then check what a reader sees at that moment."""
    crashed = medgov("run", "--landing", str(landing), "--lake", str(lake),
                     env={"MEDGOV_FAULT": point, "SPARK_REMOTE": remote}, check=False)
    assert crashed.returncode == -signal.SIGKILL, f"the run was not killed at {point}: {crashed.stderr[-500:]}"
    # each batch is visible whole (as in the finished run) or not at all
    for batch, per_table in visible_by_batch(lake).items():
        for table, rows in per_table.items():
            assert rows == expected_visible[batch][table], f"{batch} half-visible in {table} after a crash at {point}"
    if _has_gold(lake):
        gold = DeltaTable(str(lake / "gold" / "ckd_registry")).to_pyarrow_table().num_rows
        assert gold in (0, len(expected["gold/ckd_registry"]))  # a MERGE commits whole or not at all


def _converges(landing: Path, lake: Path, expected: dict, after: str, remote: str) -> None:
    again = medgov("run", "--landing", str(landing), "--lake", str(lake), env={"SPARK_REMOTE": remote})
    assert "Traceback" not in again.stdout + again.stderr
    got = tables(lake)
    assert sorted(got) == sorted(expected), f"tables differ after {after}"
    # the killed runs' staging (bronze-grade rows) is gone: removed when a stage next started
    staging = lake / "_staging"
    left = sorted(p.name for p in staging.iterdir()) if staging.exists() else []
    assert left == [], f"staging left behind after {after}: {left}"
    for name in expected:
        assert got[name] == expected[name], f"{name} differs from the uninterrupted run after {after}"


@pytest.mark.parametrize("chain", list(CHAINS))
def test_killed_at_every_point_in_turn_then_converges(one_org, connect_server, tmp_path, chain):
    """Each run is killed at the next point, so each recovery is itself interrupted: the run
    after a kill at point N is the one killed at point N+1. The last run finishes."""
    lake = tmp_path / "lake"
    for point in CHAINS[chain]:
        _crash(one_org.landing, lake, point, one_org.tables, one_org.visible, connect_server)
    _converges(one_org.landing, lake, one_org.tables, f"kills at {', '.join(CHAINS[chain])}", connect_server)
