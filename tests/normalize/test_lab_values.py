"""Lab results become Observation values: numbers with units, qualitative text, or, for a
number that is not finite, no value and a data-absent reason (never a silent valueString)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from medgov.normalize.builders import build_lab
from medgov.normalize.fhir_validation import FastValidator, validation_error
from medgov.spec.terminology import Terminology

TERM = Terminology.load()
KEY = b"k" * 32
WHEN = datetime(2024, 3, 1, 10, tzinfo=timezone.utc)


def lab(result: str) -> tuple[dict, dict]:
    row = {"_org_code": "H33030200001", "report_id": "R1", "item_seq": "1", "visit_id": "V1", "patient_key": "pk",
           "item_code": "CREA", "item_name": "肌酐", "result": result, "unit": "umol/L", "ref_range": "57-111",
           "abnormal_flag": None, "specimen": "血清", "collected_time": WHEN, "reported_time": WHEN}
    [(resource, flat)] = build_lab(row, KEY, TERM)
    return resource, flat


@pytest.mark.parametrize("text,code", [("NaN", "not-a-number"), ("Infinity", "positive-infinity"),
                                       ("-inf", "negative-infinity"), ("1e309", "error")])
def test_a_non_finite_result_has_no_value_and_says_why(text, code):
    resource, flat = lab(text)
    assert "valueQuantity" not in resource and "valueString" not in resource
    assert resource["dataAbsentReason"]["coding"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": code}]
    assert flat["value"] is None and flat["value_string"] is None
    assert validation_error(resource) is None and validation_error(resource, FastValidator()) is None


@pytest.mark.parametrize("text,value,string", [("88", 88.0, None), ("1.2E+02", 120.0, None), ("阴性", None, "阴性")])
def test_numbers_and_text_keep_their_value(text, value, string):
    resource, flat = lab(text)
    assert flat["value"] == value and flat["value_string"] == string
    assert "dataAbsentReason" not in resource
    assert validation_error(resource) is None
