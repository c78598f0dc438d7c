"""The lake on an S3-compatible object store (moto's server on loopback; racing commits are in
test_control): control tables, the stage locks, the visibility rule, quality results, lineage and the
dashboard. Spark here has no S3A connector, so the stages after ingest stop with a clear
error; on a cluster with hadoop-aws they read the store (infra/README.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from medgov.spec.lifecycle import BatchStage
from medgov.spec.tables import BATCH_COLUMN
from medgov.storage import control, lineage, objects
from medgov.storage.locks import stage_lock
from medgov.storage.visible import read_visible


def _batch(key: str, stage: str, run: str = "r") -> dict:
    org, batch = key.split("/")
    return {"batch_key": key, "org_code": org, "batch_id": batch, "fingerprint": "f", "stage": stage,
            "updated_at": control.now(), "run_id": run}


def test_a_stage_marks_only_the_content_it_read_on_the_store(object_store):
    lake = object_store.lake()
    control.set_batches(lake, [_batch("ORG001/b1", "bronze", "r1")])
    taken = control.taken(lake, BatchStage.BRONZE)
    control.set_batches(lake, [{**_batch("ORG001/b1", "bronze", "r2"), "fingerprint": "new"}])  # re-delivered
    control.advance(lake, taken, BatchStage.SILVER, "r1", only_from=BatchStage.BRONZE)
    assert control.batches(lake)["ORG001/b1"]["stage"] == "bronze"


def test_readers_see_only_batches_complete_in_the_zone(object_store):
    lake = object_store.lake()
    column = BATCH_COLUMN["silver"]
    write_deltalake(lake.silver("condition"), pa.table({column: ["A/1", "A/2", "B/1"], "code": ["N18.3", "E11", "I10"]}))
    control.set_batches(lake, [_batch("A/1", "silver"), _batch("A/2", "receiving"), _batch("B/1", "bronze")])
    assert read_visible(lake, "silver", "condition", columns=["code"]).column("code").to_pylist() == ["N18.3"]
    control.set_batches(lake, [_batch("B/1", "validated")])
    assert sorted(read_visible(lake, "silver", "condition", columns=["code"]).column("code").to_pylist()) == \
        ["I10", "N18.3"]


def test_a_stage_lock_makes_the_second_holder_wait_and_is_renewed(object_store, monkeypatch):
    """The lease is renewed while the holder works, so a holder busy for several leases keeps
    it; the waiter gets it once it is released, and another stage is free meanwhile."""
    monkeypatch.setenv("MEDGOV_LOCK_LEASE", "1.5")
    lake = object_store.lake()
    messages: list[str] = []
    acquired = threading.Event()
    release = threading.Event()
    held = threading.Event()

    def holder() -> None:
        with stage_lock(lake, "publish"):
            held.set()
            release.wait(30)

    def waiter() -> None:
        with stage_lock(lake, "publish", messages.append):
            acquired.set()

    h = threading.Thread(target=holder)
    h.start()
    assert held.wait(30)
    w = threading.Thread(target=waiter)
    w.start()
    time.sleep(5)  # over three leases: only renewals keep the holder's lock
    assert not acquired.is_set()
    assert messages == ["publish: waiting for another run of this stage to finish"]
    with stage_lock(lake, "ingest"):
        pass
    release.set()
    h.join(30)
    w.join(30)
    assert acquired.is_set()
    assert objects.files(f"{lake.root}/_locks") == []  # released: no lease object left


_HOLD = """
import sys, time
from medgov.storage.lake import Lake
from medgov.storage.locks import stage_lock
with stage_lock(Lake.at(sys.argv[1]), "normalize"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_blocks_the_stage_for_one_lease_and_one_waiter_takes_over(object_store, monkeypatch):
    monkeypatch.setenv("MEDGOV_LOCK_LEASE", "2")
    lake = object_store.lake()
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, lake.root], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
    finally:
        proc.kill()  # no release, no more renewals
        proc.wait()
    messages: list[str] = []
    inside, most = [0], [0]
    guard = threading.Lock()

    def waiter() -> None:
        with stage_lock(lake, "normalize", messages.append):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(1)
            with guard:
                inside[0] -= 1

    started = time.monotonic()
    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert most[0] == 1  # the two waiters never held it together
    assert messages.count("normalize: took over a lock whose holder stopped renewing it") == 1
    assert time.monotonic() - started < 30


@pytest.mark.system
def test_ingest_writes_the_store_and_spark_without_a_connector_stops_with_one_line(object_store, tmp_path):
    """`medgov run` into an s3:// lake: ingest's bronze, control and quality tables and its
    lineage land on the store (Spark only reads the local landing zone); normalize, which would
    read bronze through Spark, stops with the one-line reason. The report, the dashboard and
    the lineage reader work on the store, and no identifier reaches the lineage objects."""
    from fastapi.testclient import TestClient

    from medgov.dashboard import site, snapshot
    from medgov.dashboard.app import create_app
    from medgov.sample.generate import generate

    generated = generate(tmp_path / "landing", patients=12, seed=3)
    lake = object_store.lake()
    run = subprocess.run([sys.executable, "-m", "medgov.cli", "run", "--landing", str(tmp_path / "landing"),
                          "--lake", lake.root], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("medgov: error: this Spark session cannot read s3:// files") and "hadoop-aws" in last
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "s3:").exists()  # nothing written to a local folder named after the URI

    accepted = [d for d in control.last_deliveries(lake).values() if d["status"] == "accepted"]
    assert accepted and {b["stage"] for b in control.batches(lake).values()} == {"bronze"}
    assert DeltaTable(lake.bronze("patient")).to_pyarrow_dataset().count_rows() > 0
    assert DeltaTable(lake.quality_results).to_pyarrow_dataset().count_rows() > 0
    assert objects.files(f"{lake.root}/_locks") == []

    events = lineage.events(lake)
    assert [(e["job"]["name"], e["eventType"]) for e in events if e["job"]["name"] in
            ("medgov.ingest", "medgov.normalize")] == [("medgov.ingest", "START"), ("medgov.ingest", "COMPLETE"),
                                                       ("medgov.normalize", "START"), ("medgov.normalize", "FAIL")]
    raw = b"".join(objects.read_bytes(u) or b"" for u in objects.files(f"{lake.root}/lineage")).decode()
    secrets = [i for i in generated.identifiers if len(i) >= 4]
    assert secrets and not [i for i in secrets if i in raw]

    write_deltalake(lake.gold("steward_extract"), pa.table({"person_key": ["p1", "p2"]}))  # any gold table
    report = subprocess.run([sys.executable, "-m", "medgov.cli", "report", "--lake", lake.root],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert report.returncode == 0, report.stderr[-1000:]
    n = len(control.batches(lake))
    assert f"Batches: {n} accepted (bronze {n})" in report.stdout
    assert "gold.steward_extract" in report.stdout and f"{lake.root}/lineage/events-*.json" in report.stdout

    snap = snapshot.read(lake.root)
    assert [d.name for d in snap.datasets] == ["steward_extract"] and snap.datasets[0].rows == 2
    assert len(snap.deliveries) == len(control.last_deliveries(lake)) and snap.results and snap.lineage
    client = TestClient(create_app(lake.root, lang="en"))
    for name in site.PAGES:
        page = client.get(f"/en/{name}.html")
        assert page.status_code == 200, name
        assert not [i for i in secrets if i in page.text], name
