"""Contract typing: every date shape of extract-spec §2, noise normalised, failures with reasons."""

from datetime import date, datetime, timezone

import pyarrow as pa
import pytest

from medgov.domain.pseudonym import pseudonym
from medgov.ingest import bronze
from medgov.spec.contracts import contract
from medgov.ingest.extract_csv import parse

SHAPES = ["2024-03-01 08:30:00", "2024-03-01T08:30:00", "2024-03-01T08:30:00+08:00", "20240301083000",
          "2024/3/1 8:30", "2024/03/01 08:30"]


def typed(spark, table, rows, header):
    text = ",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    t, _ = parse(text, "f.csv", contract(table), len(rows))
    n = t.num_rows
    for name, value in (("_org_code", "ORG0001"), ("_batch_id", "b1"), ("_batch_key", "ORG0001/b1"), ("_file", "f.csv")):
        t = t.append_column(name, pa.array([value] * n))
    t = t.append_column("_ingested_at", pa.array([datetime.now(timezone.utc)] * n, pa.timestamp("us", "UTC")))
    return bronze.apply_contract(spark.createDataFrame(t), contract(table)).collect()


LAB = ["report_id", "item_seq", "patient_id", "item_code", "result", "reported_time"]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_datetime_shape_is_the_same_instant(spark, shape):
    [row] = typed(spark, "lab_result", [["R1", "1", "P1", "CREA", "88", shape]], LAB)
    assert row["_reasons"] == []
    # local time Asia/Shanghai unless an offset is given: 08:30+08:00 is 00:30 UTC
    assert row["reported_time"].astimezone(timezone.utc) == datetime(2024, 3, 1, 0, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("shape", ["2024-03-01", "2024/03/01", "20240301", "2024/3/1"])
def test_date_shapes(spark, shape):
    header = ["patient_id", "sex_code", "birth_date", "updated_at"]
    [row] = typed(spark, "patient", [["P1", "1", shape, "2024-03-01 08:00:00"]], header)
    assert row["birth_date"] == date(2024, 3, 1) and row["_reasons"] == []


@pytest.mark.parametrize("bad", ["2024-02-30", "00000000", "2024-13-01 10:00:00", "yesterday"])
def test_impossible_dates_are_quarantined_with_reason(spark, bad):
    [row] = typed(spark, "lab_result", [["R1", "1", "P1", "CREA", "88", bad]], LAB)
    assert row["_reasons"] == [f"unparseable datetime in reported_time: '{bad}'"]


# values around each accepted shape: padded and unpadded fields, offsets, near misses
PROBES = SHAPES + ["2024-03-01", "2024/03/01", "20240301", "2024/3/1", "2024-3-1", "2024-03-01T08:30:00Z",
                   "2024-03-01T08:30:00-05:30", "2024-03-01 8:30:00", "2024/3/1 08:30:05", "2024-03-01  08:30:00",
                   "202403010830", "2024.03.01", "24-03-01", "2024-02-30", "00000000", "1 March 2024"]


def test_shape_guard_never_hides_a_value_the_pattern_parses(spark):
    """Each pattern is tried only on values matching its shape: a value the pattern parses
    must always match, or the guard would quarantine a valid date."""
    import re

    from pyspark.sql import functions as F

    from medgov.spec.contracts import interface

    df = spark.createDataFrame([(v,) for v in PROBES], "v string")
    for pattern in interface()["datetime"]:
        parsed = {r["v"] for r in df.where(F.try_to_timestamp("v", F.lit(pattern)).isNotNull()).collect()}
        shape = bronze.pattern_shape(pattern)
        assert parsed, pattern  # every accepted shape has a probe
        assert all(re.fullmatch(shape, v) for v in parsed), (pattern, shape, parsed)


def test_full_width_and_blanks_are_normalised(spark):
    [row] = typed(spark, "lab_result", [["Ｒ１", " 1 ", "P1", "\u3000CREA\u3000", "１３２", "２０２４０３０１"]], LAB)
    assert (row["report_id"], row["item_seq"], row["item_code"], row["result"]) == ("R1", "1", "CREA", "132")
    assert row["_reasons"] == []


def test_missing_required_values_each_get_a_reason(spark):
    [row] = typed(spark, "lab_result", [["R1", "1", "", "CREA", "  ", "20240301"]], LAB)
    assert sorted(row["_reasons"]) == ["missing required value in patient_id", "missing required value in result"]


@pytest.mark.parametrize("value,ok", [("120", True), ("120.5", True), ("—", False), ("阴性", False), ("<5", False)])
def test_decimal_columns(spark, value, ok):
    header = ["patient_id", "measured_time", "sbp"]
    [row] = typed(spark, "vital_sign", [["P1", "20240301", value]], header)
    assert (row["_reasons"] == []) is ok
    if not ok:
        assert row["_reasons"] == [f"non-numeric value in sbp: '{value}'"]


@pytest.mark.parametrize("value", ["NaN", "nan", "Infinity", "-Infinity", "inf", "+INF", "-inf", "1e309", "-1E400",
                                   "∞", "ＮａＮ"])
def test_non_finite_numbers_are_quarantined(spark, value):
    header = ["patient_id", "measured_time", "sbp"]
    [row] = typed(spark, "vital_sign", [["P1", "20240301", value]], header)
    shown = value.replace("ＮａＮ", "NaN")  # full-width is read as half-width
    assert row["_reasons"] == [f"not a finite number in sbp: '{shown}'"] and row["sbp"] is None


@pytest.mark.parametrize("value,number", [("1e2", 100.0), ("1.5E-3", 0.0015), ("-0", 0.0), ("1,234", 1234.0)])
def test_finite_numbers_in_other_notations_are_kept(spark, value, number):
    header = ["patient_id", "measured_time", "sbp"]
    [row] = typed(spark, "vital_sign", [["P1", "20240301", f'"{value}"']], header)
    assert row["_reasons"] == [] and row["sbp"] == number


KEY = b"test-key-0123456789abcdef"


def test_quarantine_rows_mask_direct_identifiers(spark):
    header = ["patient_id", "id_no", "name", "phone", "sex_code", "birth_date", "updated_at"]
    text = ",".join(header) + "\nP1,11010519491231002X,张三,13800000000,1,2024-02-30,20240301\n"
    t, _ = parse(text, "patient.csv", contract("patient"), 1)
    for name, value in (("_org_code", "ORG0001"), ("_batch_id", "b1"), ("_batch_key", "ORG0001/b1"), ("_file", "patient.csv")):
        t = t.append_column(name, pa.array([value]))
    t = t.append_column("_ingested_at", pa.array([datetime.now(timezone.utc)], pa.timestamp("us", "UTC")))
    df = bronze.apply_contract(spark.createDataFrame(t), contract("patient"))
    [q] = bronze.quarantined(df, contract("patient"), "run1", KEY).collect()
    assert q["reasons"] == ["unparseable date in birth_date: '2024-02-30'"]
    for raw in ("11010519491231002X", "张三", "13800000000", "P1"):
        assert raw not in q["record"] and raw not in q["record_id"]
    assert q["line"] == 2 and q["file"] == "patient.csv"
    # the local patient key its visits and results carry until the patient is known
    assert q["record_id"] == pseudonym(KEY, "LOCAL", "ORG0001", "P1")


def test_arrow_tables_with_empty_chunks_keep_every_row(spark):
    """A header-only file between two batches' files once lost every row after it."""
    from medgov.storage.spark import from_arrow

    empty = pa.table({"x": pa.array([], pa.int64())})
    t = pa.concat_tables([pa.table({"x": [1, 2]}), empty, pa.table({"x": [3, 4, 5]}), empty])
    assert sorted(r.x for r in from_arrow(spark, t).collect()) == [1, 2, 3, 4, 5]
    assert from_arrow(spark, pa.concat_tables([empty, empty])).count() == 0


@pytest.mark.parametrize("apart", [None, 0])
def test_duplicate_keys_in_a_batch_the_last_line_wins(spark, monkeypatch, apart):
    """Only repeated keys are ranked (`storage.repeats`); with the limit at 0 every row is,
    and the reasons are the same."""
    from medgov.storage import repeats

    if apart is not None:
        monkeypatch.setattr(repeats, "REPEATS_APART", apart)
    t = "2024-03-01 08:30:00"
    rows = [["R1", "1", "P1", "CR", "80", t], ["R1", "1", "P1", "CR", "80", t],  # exact duplicate
            ["R2", "1", "P1", "CR", "80", t], ["R2", "1", "P1", "CR", "95", t], ["R2", "1", "P1", "CR", "99", t],
            ["R3", "1", "P1", "CR", "80", "not a date"], ["R3", "1", "P1", "CR", "81", t],  # one of two is broken
            ["R4", "1", "P1", "CR", "80", t]]
    got = {(r["report_id"], r["result"], r["_line"]): r["_reasons"] for r in typed(spark, "lab_result", rows, LAB)}
    lines = {k[2] for k in got}
    first = min(lines)  # data lines are numbered from the header's next line
    assert got[("R1", "80", first)] == [f"exact duplicate: superseded by line {first + 1}"]
    assert got[("R1", "80", first + 1)] == []
    assert got[("R2", "80", first + 2)] == [f"duplicate key (report_id, item_seq) in this batch: superseded by line {first + 4}"]
    assert got[("R2", "95", first + 3)][0].endswith(f"superseded by line {first + 4}") and got[("R2", "99", first + 4)] == []
    assert got[("R3", "81", first + 6)] == [] and got[("R3", "80", first + 5)][0].startswith("unparseable datetime")
    assert got[("R4", "80", first + 7)] == []
