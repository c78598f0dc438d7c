"""The run's size, told before Spark starts, and the Spark profile chosen from it: a small
delivery into a large lake is a large run (publish reads the lake)."""

from __future__ import annotations

import os

import time

import pytest

from medgov.errors import MedgovError
from medgov.pipeline.workload import Workload, run_size
from medgov.spec.lifecycle import BatchStage
from medgov.storage import control
from medgov.storage.lake import Lake
from medgov.storage.spark import SHORT_UP_TO, profile_name, release_arrow_memory_eagerly, side_by_side, stage_threads


def test_pending_deliveries_are_estimated_from_their_files(tmp_path):
    from medgov.sample.generate import generate

    g = generate(tmp_path / "landing", patients=60, seed=3)
    rows = sum(g.rows.values())
    estimate = run_size(str(tmp_path / "lake"), tmp_path / "landing")
    assert estimate.lake == 0 and 0.6 * rows <= estimate.backlog <= 1.6 * rows, (estimate, rows)
    # a stage that does not read the landing zone has nothing to do in a lake that does not exist
    assert run_size(str(tmp_path / "lake"), tmp_path / "landing", ["normalize"]) == (0, 0)
    # a link in the landing zone is not followed into what it points at
    big = tmp_path / "elsewhere.csv"
    big.write_bytes(b"x" * 5_000_000)
    batch = next((tmp_path / "landing").glob("*/*/manifest.json")).parent
    (batch / "extra.csv").symlink_to(big)
    assert run_size(str(tmp_path / "lake"), tmp_path / "landing") == estimate


def _declare(lake: Lake) -> None:
    rows = [{"batch_key": f"ORG000001/b{i}", "org_code": "ORG000001", "batch_id": f"b{i}", "fingerprint": "f",
             "stage": stage.value, "quality_passed": None, "blocking_failures": 0, "rows_declared": n,
             "updated_at": control.now(), "run_id": "r"}
            for i, (stage, n) in enumerate([(BatchStage.BRONZE, 1000), (BatchStage.SILVER, 200),
                                            (BatchStage.PUBLISHED, 99_999)])]
    control.set_batches(lake, rows)


def test_the_stages_after_ingest_count_their_backlog_and_read_the_lake(tmp_path):
    """A stage's backlog is the batches waiting in the stage it takes; the rest of the lake is read."""
    lake = Lake.at(str(tmp_path / "lake"))
    _declare(lake)
    assert run_size(lake.root, None, ["normalize"]) == (1000, 100_199)
    assert run_size(lake.root, None, ["validate"]) == (200, 100_999)
    assert run_size(lake.root, None, ["publish"]) == (0, 101_199)
    assert run_size(lake.root, None, ["ingest"]) == (0, 0)  # ingest reads only the landing zone
    assert run_size(lake.root, None) == (1200, 99_999)
    assert run_size(str(tmp_path / "not-a-lake"), None, ["publish"]) == (0, 0)


def test_an_object_store_lake_is_counted_too(object_store):
    lake = object_store.lake()
    assert run_size(lake.root, None, ["publish"]) == (0, 0)
    _declare(lake)
    assert run_size(lake.root, None, ["validate", "publish"]) == (200, 100_999)


def test_auto_picks_the_profile_from_backlog_and_lake(monkeypatch):
    monkeypatch.delenv("MEDGOV_SPARK_PROFILE", raising=False)
    assert profile_name(Workload(9_453)) == "short"
    assert profile_name(Workload(9_453, SHORT_UP_TO - 9_453)) == "short"
    # a small delivery into a large lake: short's JVM, long's code generation and vectorised reads
    assert profile_name(Workload(9_453, 5_000_000)) == "increment"
    assert profile_name(Workload(0, 5_000_000)) == "increment"
    assert profile_name(Workload(SHORT_UP_TO + 1)) == "long"
    assert profile_name(Workload(SHORT_UP_TO + 1, 5_000_000)) == "long"
    assert profile_name(None) == "long"  # unknown size: the profile that suits many rows
    monkeypatch.setenv("MEDGOV_SPARK_PROFILE", "long")
    assert profile_name(Workload(10)) == "long"
    monkeypatch.setenv("MEDGOV_SPARK_PROFILE", "fast")
    with pytest.raises(MedgovError, match="auto or one of long, short, increment"):
        profile_name(Workload(10))


def test_the_increment_profile_keeps_generated_code_and_takes_the_short_jvm():
    """What makes it fit a small delivery into a large lake: the vectorised Parquet reader
    (it needs whole-stage code generation; publish into a 5 M-row lake took 437 s without) and
    the JIT and GC of a short-lived JVM."""
    from medgov.storage.spark import PROFILES

    increment = PROFILES["increment"]
    assert "spark.sql.codegen.wholeStage" not in increment["conf"] and not increment["conf"]
    assert increment["java"] == PROFILES["short"]["java"] and "TieredStopAtLevel=1" in increment["java"]


def test_stage_threads_come_from_the_environment_with_a_one_line_refusal(monkeypatch):
    monkeypatch.delenv("MEDGOV_INGEST_THREADS", raising=False)
    assert stage_threads("ingest") == 2
    monkeypatch.setenv("MEDGOV_VALIDATE_THREADS", "1")
    assert stage_threads("validate") == 1 and stage_threads("ingest") == 2
    # the later items finish first, on two threads: the results keep the items' order
    assert side_by_side("ingest", lambda n: time.sleep(0.05 * (3 - n)) or n, range(4)) == [0, 1, 2, 3]
    for bad in ("0", "two", "-1", ""):
        monkeypatch.setenv("MEDGOV_INGEST_THREADS", bad)
        with pytest.raises(MedgovError, match="MEDGOV_INGEST_THREADS must be a whole number of threads"):
            stage_threads("ingest")


def test_arrow_memory_goes_back_to_the_system_unless_the_environment_chooses(monkeypatch):
    """The stages' driver allocates Arrow memory with the C allocator (mimalloc held freed
    batches: a larger peak while delta-rs writes silver); ARROW_DEFAULT_MEMORY_POOL still wins."""
    import pyarrow as pa

    before = pa.default_memory_pool()
    try:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        release_arrow_memory_eagerly()
        assert pa.default_memory_pool().backend_name == "mimalloc"
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        release_arrow_memory_eagerly()
        assert pa.default_memory_pool().backend_name == "system"
        assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"  # for the JVM started next, and its workers
    finally:
        pa.set_memory_pool(before)


def test_python_workers_allocate_arrow_memory_with_the_c_allocator(spark):
    """The resource builders' workers free their pages too (they inherit the choice from the
    driver that started the JVM), so an idle worker does not keep its largest batch's memory."""
    from pyspark.sql import functions as F

    pool = F.udf(lambda: __import__("pyarrow").default_memory_pool().backend_name, "string")
    assert {r[0] for r in spark.range(2).select(pool()).collect()} == {"system"}
