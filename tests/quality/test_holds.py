"""Holds: a row whose patient or visit is quarantined or not yet delivered is held with a
reason, publish leaves it out, and a later look records its release."""

from __future__ import annotations

from datetime import datetime, timezone

from medgov.quality.holds import HELD, RELEASED, merge_holds, releasable, with_links

ROWS = "id string, patient_key string, encounter_id string, org_code string"
QUARANTINE = "table string, record_id string, batch_id string, file string, line bigint, reasons array<string>"


def _frames(spark):
    rows = spark.createDataFrame([
        ("o1", "P-ok", "E-ok", "A"),  # everything there
        ("o2", "P-bad", "E-ok", "A"),  # patient quarantined
        ("o3", "P-late", None, "A"),  # patient not yet delivered, no visit named
        ("o4", "P-ok", "E-bad", "A"),  # visit quarantined
        ("o5", "P-ok", "E-late", "A"),  # visit not yet delivered
        ("o6", "P-bad", "E-bad", "A"),  # both: the patient is named first
        ("o7", "P-ok", "E-late", "B"),  # visit not yet delivered, to an institution that sends none
        ("o8", "P-ok", "E-bad", "B"),  # ... but a quarantined one still holds
    ], ROWS)
    patients = spark.createDataFrame([("P-ok",)], "id string")
    encounters = spark.createDataFrame([("E-ok",)], "id string")
    quarantine = spark.createDataFrame([
        ("patient", "P-bad", "01", "patient.csv", 4, ["missing required value in birth_date"]),
        # delivered wrong again later: the latest quarantine row is the one named
        ("patient", "P-bad", "02", "pat_02.csv", 9, ["unparseable date in birth_date: '1980-02-30'"]),
        ("visit", "E-bad", "01", "visit.csv", 3, ["missing required value in start_time"]),
        ("lab_result", "P-late", "01", "lab.csv", 2, ["missing required value in result"]),  # not a parent
    ], QUARANTINE)
    return rows, patients, encounters, quarantine


def test_each_missing_parent_holds_its_rows_with_the_reason(spark):
    rows, patients, encounters, quarantine = _frames(spark)
    got = {r["id"]: r for r in with_links(rows, patients, encounters, quarantine, visits_optional=["B"]).collect()}
    assert got["o1"]["hold_reason"] is None and got["o1"]["patient_link"] == "present"
    # the quarantine reason's kind, not its detail: a quoted value stays in the quarantine table
    assert got["o2"]["hold_reason"] == "held: patient quarantined (pat_02.csv line 9: unparseable date in birth_date)"
    assert got["o2"]["patient_link"] == "quarantined" and got["o2"]["hold_parent"] == "patient"
    assert got["o3"]["hold_reason"] == "held: patient not yet delivered" and got["o3"]["visit_link"] is None
    assert got["o3"]["hold_parent_key"] == "P-late"
    assert got["o4"]["hold_reason"] == "held: visit quarantined (visit.csv line 3: missing required value in start_time)"
    assert got["o4"]["hold_parent"] == "visit" and got["o4"]["hold_parent_key"] == "E-bad"
    assert got["o5"]["hold_reason"] == "held: visit not yet delivered" and got["o5"]["visit_link"] == "not delivered"
    assert got["o6"]["hold_parent"] == "patient"
    assert got["o7"]["hold_reason"] is None and got["o7"]["visit_link"] == "not delivered"  # still counted by the check
    assert got["o8"]["hold_reason"].startswith("held: visit quarantined")


def test_publish_takes_only_what_is_not_held(spark):
    rows, patients, encounters, quarantine = _frames(spark)
    kept = releasable(rows, patients, encounters)
    assert [r["id"] for r in kept.collect()] == ["o1"] and kept.columns == rows.columns
    lenient = releasable(rows, patients, encounters, ["B"], quarantine)
    assert sorted(r["id"] for r in lenient.collect()) == ["o1", "o7"]  # o8's visit is quarantined


def test_nothing_delivered_yet_holds_everything(spark):
    rows, *_ = _frames(spark)
    got = with_links(rows, None, None).collect()
    assert all(r["hold_reason"] == "held: patient not yet delivered" for r in got)


def _hold(record, status=HELD, parent_key="P-late", at=datetime(2024, 1, 1, tzinfo=timezone.utc)):
    return {"org_code": "ORG", "batch_key": "ORG/01", "batch_id": "01", "table": "observation", "file": "lab.csv",
            "line": 2, "record_id": record, "parent": "patient", "parent_key": parent_key,
            "reason": "held: patient not yet delivered", "status": status, "released_by": None, "held_at": at,
            "released_at": None, "run_id": "r0"}


def test_a_hold_whose_parent_arrived_is_released_by_that_batch():
    at = datetime(2024, 2, 1, tzinfo=timezone.utc)
    previous = [_hold("o1"), _hold("o2"), _hold("o3"), _hold("o4", status=RELEASED)]
    now_held = [{k: v for k, v in _hold("o2").items() if k not in ("status", "released_by", "held_at",
                                                                   "released_at", "run_id")}]
    still_there = {("observation", "o1"), ("observation", "o2"), ("observation", "o4")}  # o3 withdrawn
    out = {r["record_id"]: r for r in merge_holds(previous, now_held, still_there,
                                                  {("patient", "P-late"): "ORG/02"}, "r1", at)}
    assert out["o1"]["status"] == RELEASED and out["o1"]["released_by"] == "ORG/02" and out["o1"]["released_at"] == at
    assert out["o2"]["status"] == HELD and out["o2"]["held_at"] == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert "o3" not in out  # a re-delivery withdrew it: nothing to release
    assert out["o4"]["run_id"] == "r0"  # an earlier release stays as recorded
