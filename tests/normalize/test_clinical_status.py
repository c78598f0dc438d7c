"""Clinical status from what the delivery says: an admission diagnosis is provisional; an
outpatient or emergency visit without an end time is finished once its day is past, an
inpatient stay without one is still in progress."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from medgov.normalize.builders import build_condition, build_encounter
from medgov.normalize.fhir_validation import validation_error
from medgov.spec.terminology import Terminology

TERM = Terminology.load()
KEY = b"k" * 32
INGESTED = datetime(2024, 3, 5, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("diag_type,status", [("1", "confirmed"), ("2", "confirmed"), ("3", "provisional"),
                                              ("4", "confirmed"), (None, "confirmed")])
def test_an_admission_diagnosis_is_provisional(diag_type, status):
    row = {"_org_code": "H1", "visit_id": "V1", "seq": "1", "patient_key": "p", "icd_code": "N18.300",
           "diag_name": "慢性肾脏病3期", "diag_type": diag_type, "diag_time": INGESTED - timedelta(days=3)}
    [(resource, _)] = build_condition(row, KEY, TERM)
    assert resource["verificationStatus"]["coding"][0]["code"] == status
    assert validation_error(resource) is None


@pytest.mark.parametrize("visit_type,start,end,status", [
    ("1", INGESTED - timedelta(days=2), None, "finished"),        # outpatient, days ago, no end: over
    ("2", INGESTED - timedelta(days=1), None, "finished"),
    ("4", INGESTED - timedelta(days=9), None, "finished"),
    ("1", INGESTED - timedelta(hours=1), None, "in-progress"),    # the same day: may still be going on
    ("3", INGESTED - timedelta(days=20), None, "in-progress"),    # inpatient without discharge: admitted
    ("3", INGESTED - timedelta(days=20), INGESTED - timedelta(days=2), "finished"),
    ("1", None, None, "unknown"),
])
def test_a_visit_without_an_end_is_finished_once_its_day_is_past(visit_type, start, end, status):
    row = {"_org_code": "H1", "visit_id": "V1", "patient_key": "p", "visit_type": visit_type, "start_time": start,
           "end_time": end, "dept_code": None, "dept_name": None, "_ingested_at": INGESTED}
    [(resource, flat)] = build_encounter(row, KEY, TERM)
    assert resource["status"] == flat["status"] == status
    assert validation_error(resource) is None
