"""Slow or stuck storage costs one batch its time budget, never the run: the other
institutions' batches are ingested, and the stuck one is tried again at the next trigger."""

from __future__ import annotations

import os
import threading

from deltalake import DeltaTable

from batches import lab_csv, lab_row, write_batch
from medgov.ingest import boundary
from medgov.ingest.landing import pending_flags
from medgov.ingest.stage import ingest
from medgov.spec.site import SiteConfig, load_site
from medgov.storage.context import make_context

STUCK, FINE = "H33030200002", "H33030200001"


def test_a_stuck_batch_is_deferred_and_taken_at_the_next_run(spark, tmp_path, monkeypatch):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    for org in (FINE, STUCK):
        write_batch(landing, org, "b1", {"lab_result.csv": ("lab_result", lab_csv([lab_row(1), lab_row(2)]), 2)})
    release = threading.Event()
    real_read = os.read

    def hung_mount(fd, n):  # reads under one institution's folder do not return
        if STUCK in os.readlink(f"/proc/self/fd/{fd}"):
            release.wait(60)
        return real_read(fd, n)

    monkeypatch.setattr(boundary.os, "read", hung_mount)
    site = SiteConfig(None, load_site().landing.model_copy(update={"batch_seconds": 1}))
    ctx = make_context(str(lake), config=site)

    first = ingest(ctx, landing)
    assert first.accepted == [f"{FINE}/b1"] and first.rejected == {}
    assert list(first.deferred) == [f"{STUCK}/b1"]
    assert "budget of 1 s (batch_seconds); it is tried again at the next trigger" in first.deferred[f"{STUCK}/b1"]
    assert pending_flags(landing, lake) == [f"{STUCK}/b1"]  # the Airflow trigger fires for it again

    release.set()
    monkeypatch.undo()
    second = ingest(ctx, landing)
    assert second.accepted == [f"{STUCK}/b1"] and second.unchanged == [f"{FINE}/b1"]
    deliveries = DeltaTable(str(lake / "control" / "deliveries")).to_pyarrow_table().to_pylist()
    assert [d["status"] for d in sorted(deliveries, key=lambda d: d["received_at"])
            if d["batch_key"] == f"{STUCK}/b1"] == ["deferred", "accepted"]
    bronze = DeltaTable(str(lake / "bronze" / "lab_result")).to_pyarrow_table().to_pylist()
    assert sorted(r["_batch_key"] for r in bronze) == [f"{FINE}/b1"] * 2 + [f"{STUCK}/b1"] * 2
    assert pending_flags(landing, lake) == []
