"""Spark -> delta-rs writes go through staged Parquet, streamed: no table collected to the driver."""

from datetime import date, datetime, timezone

import pytest
from deltalake import DeltaTable
from pyspark.sql import DataFrame

from medgov.tables import DeltaRsStore

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


def test_an_empty_frame_still_writes_its_schema(spark, tmp_path):
    store = DeltaRsStore(spark)
    uri = str(tmp_path / "lake" / "bronze" / "t")
    store.replace(uri, spark.createDataFrame([], SCHEMA), "TRUE")
    assert DeltaTable(uri).schema().to_arrow().names == [f.split(" ")[0] for f in SCHEMA.split(", ")]
    assert _rows(uri) == []
