"""One row per resource id, the latest delivery winning: ranking only the ids that repeat
gives what ranking every row gives."""

from __future__ import annotations

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from medgov.normalize import silver
from medgov.storage import repeats

ORDER = ["batch_key", "source_line"]
ROWS = [("a", "b1", 1, "a-old"), ("a", "b2", 7, "a-new"), ("a", "b2", 3, "a-mid"),  # later batch, then later line
        ("b", "b1", 2, "b-only"), ("c", "b1", 5, "c-only"),
        ("d", None, 9, "d-no-batch"), ("d", "b1", 1, "d-batch"),  # a null batch sorts last
        (None, "b1", 1, "no-id-1"), (None, "b2", 1, "no-id-2")]


def _everything_ranked(df):
    w = Window.partitionBy("id").orderBy(*[F.col(c).desc_nulls_last() for c in ORDER])
    return df.withColumn("_r", F.row_number().over(w)).where("_r = 1").drop("_r")


def _rows(df):
    return sorted((r["id"] or "", r["payload"]) for r in df.collect())


@pytest.mark.parametrize("rows", [ROWS, [r for r in ROWS if r[0] is not None], [r for r in ROWS if r[0] in ("b", "c")]])
@pytest.mark.parametrize("apart", [repeats.REPEATS_APART, 0])
def test_ranking_the_repeated_ids_equals_ranking_all(spark, monkeypatch, rows, apart):
    monkeypatch.setattr(repeats, "REPEATS_APART", apart)
    df = spark.createDataFrame(rows, "id string, batch_key string, source_line long, payload string").cache()
    got = _rows(silver.latest_per_id(df, ORDER))
    assert got == _rows(_everything_ranked(df))
    if len(rows) == len(ROWS):
        assert ("a", "a-new") in got and ("d", "d-batch") in got
