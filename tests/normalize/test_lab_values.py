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


def lab_with(**change) -> tuple[dict, dict]:
    row = {"_org_code": "H33030200001", "report_id": "R1", "item_seq": "1", "visit_id": "V1", "patient_key": "pk",
           "item_code": "CREA", "item_name": "肌酐", "result": "88", "unit": "umol/L", "ref_range": "57-111",
           "abnormal_flag": None, "specimen": "血清", "collected_time": WHEN, "reported_time": WHEN} | change
    [(resource, flat)] = build_lab(row, KEY, TERM)
    return resource, flat


def test_a_unit_that_is_not_ucum_is_not_labelled_ucum():
    resource, _ = lab_with(item_code="X1", item_name="某检验", result="3.2", unit="毫当量每升")
    assert resource["valueQuantity"] == {"value": 3.2, "unit": "毫当量每升"}
    resource, _ = lab_with(item_code="X1", item_name="某检验", result="3.2", unit="10^9/L")
    assert resource["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    assert resource["valueQuantity"]["code"] == "10*9/L"  # the UCUM form of the spelling, not the spelling
    assert validation_error(resource) is None


@pytest.mark.parametrize("text,low,high", [("0.6-1.2", 53.04, 106.08), ("0.6～1.2", 53.04, 106.08),
                                           ("<1.2", None, 106.08), ("≥0.6", 53.04, None)])
def test_a_reference_range_is_converted_with_its_value(text, low, high):
    resource, flat = lab_with(result="1.0", unit="mg/dL", ref_range=text)
    assert flat["unit"] == "umol/L" and flat["value"] == 88.4
    [rng] = resource["referenceRange"]
    assert rng["text"] == text
    assert (rng.get("low", {}).get("value"), rng.get("high", {}).get("value")) == (low, high)
    assert all(rng[k]["unit"] == "umol/L" for k in ("low", "high") if k in rng)
    assert validation_error(resource) is None


def test_a_range_that_is_not_numbers_stays_text():
    resource, _ = lab_with(result="阴性", unit=None, ref_range="阴性")
    assert resource["referenceRange"] == [{"text": "阴性"}]
