"""Spark -> delta-rs writes go through staged Parquet, streamed: no table collected to the driver."""

from datetime import date, datetime, timezone

import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame

from medgov.storage.table_store import DeltaRsStore

SCHEMA = ("id string, n long, x double, d date, ts timestamp, tags array<string>, comp map<string,double>, "
          "org string")
ROWS = [("a", 1, 1.5, date(2024, 2, 29), datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc), ["x", "y"],
         {"8480-6": 120.0}, "O1"),
        ("b", None, None, None, None, None, None, "O2"),
        ("c", 3, -2.0, date(1970, 1, 1), datetime(1999, 12, 31, 23, 59, 59, 123456, tzinfo=timezone.utc), [],
         {}, "O1")]


@pytest.fixture
def no_collect(monkeypatch):
    def refuse(self):
        if self.count() > 0:
            raise AssertionError("a non-empty table was collected to the driver")
        return original(self)

    original = DataFrame.toArrow
    monkeypatch.setattr(DataFrame, "toArrow", refuse)


def _rows(uri):
    return sorted(DeltaTable(uri).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])


def test_replace_and_merge_round_trip_every_type_without_collecting(spark, tmp_path, no_collect):
    store = DeltaRsStore(spark)
    uri = str(tmp_path / "lake" / "silver" / "t")
    df = spark.createDataFrame(ROWS, SCHEMA)
    store.replace(uri, df, "TRUE", partition_by=["org"])
    got = _rows(uri)
    assert [r["id"] for r in got] == ["a", "b", "c"]
    assert got[0]["ts"] == datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc) and got[0]["d"] == date(2024, 2, 29)
    assert got[2]["ts"].microsecond == 123456 and got[1]["n"] is None and got[0]["tags"] == ["x", "y"]
    assert dict(got[0]["comp"]) == {"8480-6": 120.0}
    store.merge(uri, spark.createDataFrame([("b", 9, 0.0, None, None, None, None, "O2")], SCHEMA), ["id"])
    assert [r["n"] for r in _rows(uri)] == [1, 9, 3]
    assert not any((tmp_path / "lake" / "_staging").glob("*")), "staging folders are removed"


def test_tables_are_written_compressed(spark, tmp_path):
    """Writer properties without a codec make delta-rs write Parquet uncompressed (a lake five
    times its size): every column of every file a write, an upsert or a MERGE adds is compressed."""
    import pyarrow.parquet as pq

    store = DeltaRsStore(spark)
    uri = str(tmp_path / "lake" / "silver" / "t")
    store.replace(uri, spark.createDataFrame(ROWS, SCHEMA), "TRUE", partition_by=["org"])
    store.merge(uri, spark.createDataFrame([("a", 2, None, None, None, None, None, "O1"),
                                            ("z", 1, None, None, None, None, None, "O1")], SCHEMA), ["org", "id"])
    files = DeltaTable(uri).file_uris()
    codecs = {pq.ParquetFile(f).metadata.row_group(0).column(i).compression
              for f in files for i in range(pq.ParquetFile(f).metadata.num_columns)}
    assert len(files) >= 3 and codecs == {"ZSTD"}


def _operations(uri: str) -> list[str]:
    return [h["operation"] for h in reversed(DeltaTable(uri).history())]


def test_an_upsert_appends_the_new_keys_and_merges_only_the_known_ones(spark, tmp_path, no_collect):
    """delta-rs's MERGE holds the touched partitions in memory (9.6 GB for a day's rows into a 5 M-row
    lake): rows whose key the table lacks are appended, and only known ones go through a MERGE,
    which keeps its compare-and-set."""
    store = DeltaRsStore(spark)
    uri = str(tmp_path / "lake" / "silver" / "t")
    store.merge(uri, spark.createDataFrame(ROWS, SCHEMA), ["org", "id"], partition_by=["org"])
    fresh = [("d", 4, 4.0, None, None, None, None, "O1"), ("e", 5, 5.0, None, None, ["z"], {"k": 1.0}, "O3")]
    store.merge(uri, spark.createDataFrame(fresh, SCHEMA), ["org", "id"], update_when="s.n >= t.n")
    assert _operations(uri)[1:] == ["WRITE"]  # only new keys: appended, no MERGE read the table
    assert [r["id"] for r in _rows(uri)] == ["a", "b", "c", "d", "e"] and _rows(uri)[4]["tags"] == ["z"]
    mixed = [("a", 0, 0.0, None, None, None, None, "O1"),  # known, older: the compare-and-set keeps the table's
             ("c", 30, 3.5, None, None, None, None, "O1"),  # known, newer: updated
             ("c", 31, 0.0, None, None, None, None, "O2"),  # same id, other partition: a new key
             ("f", None, None, None, None, None, None, "O1")]  # new
    store.merge(uri, spark.createDataFrame(mixed, SCHEMA), ["org", "id"], update_when="s.n >= t.n")
    assert sorted(_operations(uri)[2:]) == ["MERGE", "WRITE"]
    got = {(r["org"], r["id"]): r["n"] for r in _rows(uri)}
    assert got == {("O1", "a"): 1, ("O2", "b"): None, ("O1", "c"): 30, ("O2", "c"): 31, ("O1", "d"): 4,
                   ("O3", "e"): 5, ("O1", "f"): None}
    assert not any((tmp_path / "lake" / "_staging").glob("*")), "staging folders are removed"


def test_one_delta_rs_commit_at_a_time_per_process(spark, tmp_path, monkeypatch):
    """The stages write tables from a thread each; each delta-rs write holds its open row groups
    in the driver, so two at once doubled the driver's peak. The staging may overlap, the commits
    may not, and every table is still written."""
    import threading
    import time

    from medgov.storage import table_store

    inside, most, guard = [0], [0], threading.Lock()

    def counted(real):
        def commit(*args, **kwargs):
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.3)  # long enough for the other thread to reach its commit
            try:
                return real(*args, **kwargs)
            finally:
                with guard:
                    inside[0] -= 1
        return commit

    for name in ("write_with_retry", "merge_with_retry", "append_with_retry"):
        monkeypatch.setattr(table_store, name, counted(getattr(table_store, name)))
    store = DeltaRsStore(spark)
    uris = [str(tmp_path / "lake" / "silver" / f"t{i}") for i in range(3)]
    df = spark.createDataFrame(ROWS, SCHEMA)
    jobs = [threading.Thread(target=store.replace, args=(uris[0], df, "TRUE")),
            threading.Thread(target=store.merge, args=(uris[1], df, ["id"])),
            threading.Thread(target=store.replace, args=(uris[2], df, "TRUE"))]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert most[0] == 1
    assert all([r["id"] for r in _rows(uri)] == ["a", "b", "c"] for uri in uris)


def test_an_empty_frame_still_writes_its_schema(spark, tmp_path):
    store = DeltaRsStore(spark)
    uri = str(tmp_path / "lake" / "bronze" / "t")
    store.replace(uri, spark.createDataFrame([], SCHEMA), "TRUE")
    assert DeltaTable(uri).schema().to_arrow().names == [f.split(" ")[0] for f in SCHEMA.split(", ")]
    assert _rows(uri) == []


def test_parsed_batches_reach_spark_from_parquet_not_from_the_driver(spark, tmp_path, monkeypatch):
    """Ingest stages each parsed batch as Parquet; Spark reads every row back, none comes
    through createDataFrame; the folder is gone afterwards."""
    import pyarrow as pa

    from medgov.storage.staging import ParsedTables

    def refuse(*args, **kwargs):
        raise AssertionError("rows were sent from the driver")

    staged = ParsedTables(tmp_path / "_staging", "run1")
    first = pa.table({"a": pa.array(["x", None]), "_line": pa.array([2, 3], pa.int64()),
                      "_ingested_at": pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2,
                                               pa.timestamp("us", "UTC"))})
    staged.add("ORG/b1", {"t": first})
    staged.add("ORG/b2", {"t": first.slice(0, 0)})  # a header-only file
    staged.add("ORG/b3", {"t": first.slice(1)})
    monkeypatch.setattr(type(spark), "createDataFrame", refuse)
    rows = staged.frame(spark, "t", ["ORG/b1", "ORG/b2", "ORG/b3"]).collect()
    assert sorted((r["_line"], r["a"]) for r in rows) == [(2, "x"), (3, None), (3, None)]
    assert rows[0]["_ingested_at"].astimezone(timezone.utc) == datetime(2024, 1, 1, tzinfo=timezone.utc)
    staged.remove()
    assert not (tmp_path / "_staging" / "ingest-run1").exists()


def test_frames_read_more_than_once_are_staged_as_parquet_not_cached(spark, tmp_path):
    """A stage's built frame is computed once and read back from Parquet: every type round
    trips, a column that differs at each computation (a clock) reads the same twice, nothing sits in Spark's
    cache, and the folder (bronze-grade rows) is gone afterwards. Without a staging folder
    (an object-store lake) the frame is cached instead."""
    import time

    from pyspark.sql import functions as F

    from medgov.storage.staging import StagedFrames, remove_leftovers

    clock = F.udf(lambda: time.time_ns(), "long").asNondeterministic()
    df = spark.createDataFrame(ROWS, SCHEMA).withColumn("r", clock())
    with StagedFrames(tmp_path / "_staging", "normalize") as frames:
        staged = frames.stage(df)
        first = sorted(staged.collect(), key=lambda r: r["id"])
        assert [r["r"] for r in first] == [r["r"] for r in sorted(staged.collect(), key=lambda r: r["id"])]
        assert [tuple(r)[:-1] for r in first] == sorted(tuple(r) for r in spark.createDataFrame(ROWS, SCHEMA).collect())
        assert staged.schema.simpleString() == df.schema.simpleString()
        assert not staged.storageLevel.useMemory
        assert frames.stage(df.where("id = 'b'")).count() == 1  # a second frame beside the first
        # a live stage's folder is not a leftover to another stage starting
        assert remove_leftovers(tmp_path / "_staging") == []
        assert len(list((frames.folder).iterdir())) == 2
    assert sorted(p.name for p in (tmp_path / "_staging").iterdir()) == []
    with StagedFrames(None, "normalize") as frames:
        cached = frames.stage(df)
        assert cached.storageLevel.useMemory
    assert not cached.storageLevel.useMemory


def test_crash_leftovers_in_staging_are_removed(tmp_path):
    import os

    from medgov.storage.staging import STALE_SECONDS, remove_leftovers

    staging = tmp_path / "_staging"
    for name in ("ingest-deadrun", "observation-" + "a" * 32, "patient-" + "b" * 32, "keep-me"):
        (staging / name).mkdir(parents=True)
        (staging / name / "part.parquet").write_bytes(b"raw")
    old = (staging / ("observation-" + "a" * 32)).stat().st_mtime - STALE_SECONDS - 60
    os.utime(staging / ("observation-" + "a" * 32), (old, old))
    # without owner markers (an older version's): another stage starting removes only the day-old write
    assert remove_leftovers(staging) == ["observation-" + "a" * 32]
    removed = remove_leftovers(staging, ingest=True)
    # ingest removes an earlier ingest's parse too (it runs under its lock: none is live)
    assert sorted(removed) == ["ingest-deadrun"]
    assert sorted(p.name for p in staging.iterdir()) == ["keep-me", "patient-" + "b" * 32]
    assert remove_leftovers(tmp_path / "absent") == []


def test_a_staging_folder_whose_owner_has_ended_is_removed_at_once(tmp_path):
    import json
    import socket
    import subprocess
    import sys

    from medgov.storage.staging import claim, remove_leftovers

    staging = tmp_path / "_staging"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    names = {"dead": "observation-" + "c" * 32, "alive": "patient-" + "d" * 32, "elsewhere": "condition-" + "e" * 32,
             "ingest": "ingest-live"}
    for name in names.values():
        (staging / name).mkdir(parents=True)
    claim(staging / names["alive"])  # this process: a live writer
    claim(staging / names["ingest"])  # a live ingest's parse, seen by another stage starting
    (staging / (names["dead"] + ".owner")).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead_pid, "started": 0.0}))
    (staging / (names["elsewhere"] + ".owner")).write_text(json.dumps({"host": "another-host", "pid": 1, "started": 0}))
    (staging / ("encounter-" + "f" * 32 + ".owner")).write_text(json.dumps(
        {"host": socket.gethostname(), "pid": dead_pid, "started": 0.0}))  # a marker whose folder never came
    assert remove_leftovers(staging, ingest=True) == [names["dead"]]
    assert sorted(p.name for p in staging.iterdir()) == sorted([
        names["alive"], names["alive"] + ".owner", names["elsewhere"], names["elsewhere"] + ".owner",
        names["ingest"], names["ingest"] + ".owner"])


def test_staged_rows_stream_to_delta_rs_in_small_batches(tmp_path):
    # the driver holds a batch or two while delta-rs writes: 64 Ki-row batches of silver
    # resources cost 300 MB more at 1 M Observations than 8 Ki-row ones
    import pyarrow as pa
    import pyarrow.dataset as pds
    import pyarrow.parquet as pq

    from medgov.storage.table_store import SCAN_BATCH_ROWS, _scan

    n = SCAN_BATCH_ROWS * 3 + 5
    pq.write_table(pa.table({"id": list(range(n))}), tmp_path / "part.parquet", row_group_size=n)
    reader = _scan(pds.dataset(str(tmp_path / "part.parquet")))()
    sizes = [b.num_rows for b in reader]
    assert sum(sizes) == n and max(sizes) <= SCAN_BATCH_ROWS


def test_freed_memory_goes_back_to_the_os_where_libc_allows():
    import platform

    from medgov.storage.memory import return_freed_memory

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert return_freed_memory() is glibc
