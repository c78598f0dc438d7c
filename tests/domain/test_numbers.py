"""Finite numbers in delivered text: the pure rule and its Spark form agree."""

from __future__ import annotations

import pytest

from medgov.domain.numbers import Reading, read_result

TEXTS = {
    "88": Reading(None, 88.0), "<5": Reading("<", 5.0), "≥ 1,234.5": Reading(">=", 1234.5),
    "1.2E+05": Reading(None, 120000.0), "-3e-2": Reading(None, -0.03), "１３２": Reading(None, 132.0),
    "阴性": Reading(), "3+": Reading(), "—": Reading(), "": Reading(), "1e": Reading(), "e5": Reading(),
    "NaN": Reading(absent="not-a-number"), " nan ": Reading(absent="not-a-number"),
    "-NaN": Reading(absent="not-a-number"), "Infinity": Reading(absent="positive-infinity"),
    "+inf": Reading(absent="positive-infinity"), "-inf": Reading(absent="negative-infinity"),
    "-Infinity": Reading(absent="negative-infinity"), "∞": Reading(absent="positive-infinity"),
    "ＩＮＦ": Reading(absent="positive-infinity"), "1e309": Reading(absent="error"),
    "-1.7E+400": Reading(absent="error"), "<1e999": Reading(absent="error"),
    "infinite": Reading(), "nano": Reading(), "1e308": Reading(None, 1e308),
}


@pytest.mark.parametrize("text", list(TEXTS))
def test_a_result_text_reads_as_a_number_text_or_no_number(text):
    assert read_result(text) == TEXTS[text]


def test_the_spark_rule_agrees_with_the_pure_one(spark):
    from pyspark.sql import functions as F

    from medgov.domain.columns import non_finite
    from medgov.domain.identity import to_halfwidth

    rows = [(t, to_halfwidth(t).strip()) for t in TEXTS]
    df = spark.createDataFrame(rows, "text string, clean string")
    got = {r["text"]: r["flag"] for r in df.select(
        "text", non_finite(F.col("clean"), F.col("clean").try_cast("double")).alias("flag")).collect()}
    for text, reading in TEXTS.items():
        # the pure rule reads comparators too; a bare number literal is what the column form sees
        if text.startswith("<"):
            continue
        assert got[text] is (reading.absent is not None), text
