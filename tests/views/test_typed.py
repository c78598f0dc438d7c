"""The typed view compiler: the FHIR model it reads types from, which views it takes, and
rows equal to the VARIANT compiler's (and to hand-computed values) on resources shaped
unlike our sample: codings in another order, a coding without a code, arrays with empty
items, absolute references, several reference ranges, extensions, nulls in primitive arrays."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medgov.views import fhir_model

ROOT = Path(__file__).resolve().parents[2]
LOINC, LOCAL = "http://loinc.org", "urn:oid:2.16.156.990.1"
LAB = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}


def _obs(id_: str, **fields) -> dict:
    return {"resourceType": "Observation", "id": id_, "status": "final", **fields}


OBSERVATIONS = [
    # the local code before the LOINC one; two reference ranges, the first without low
    _obs("o1", category=[LAB], code={"coding": [{"system": LOCAL, "code": "GLU-1"}, {"system": LOINC, "code": "2345-7"}],
                                     "text": "血糖"},
         subject={"reference": "Patient/p1"}, effectiveDateTime="2024-03-01",
         valueQuantity={"value": 5.5, "code": "mmol/L"},
         referenceRange=[{"high": {"value": 6.1}}, {"low": {"value": 3.9}, "high": {"value": 7.0}}]),
    # a LOINC coding without a code before one with it; a category without coding first
    _obs("o2", category=[{"text": "lab"}, LAB],
         code={"coding": [{"system": LOINC}, {"system": LOINC, "code": "2160-0"}, {"system": LOCAL, "code": "CR"}]},
         subject={"reference": "http://hospital.example/fhir/Patient/p2"},
         valueQuantity={"value": 88, "comparator": "<", "code": "umol/L"}),
    # no category, an empty coding list, a string value, a Group subject
    _obs("o3", code={"coding": []}, subject={"reference": "Group/g1"}, valueString="阴性",
         effectivePeriod={"start": "2024-01-01"}),
    # blood pressure: components, one with two codings, LOINC second
    _obs("o4", category=[{"coding": [{"code": "vital-signs"}]}],
         code={"coding": [{"system": LOINC, "code": "85354-9"}]}, subject={"reference": "Patient/p1"},
         effectiveDateTime="2024-03-02T08:00:00+08:00",
         component=[{"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": 150}},
                    {"code": {"coding": [{"system": LOCAL, "code": "DBP"}, {"system": LOINC, "code": "8462-4"}]},
                     "valueQuantity": {"value": 95}}]),
    # the laboratory category coding third; three codings, LOINC third; a range with an empty low
    _obs("o5", category=[{"coding": [{"code": "x"}, {"code": "y"}, {"code": "laboratory"}]}],
         code={"coding": [{"system": LOCAL, "code": "A"}, {"system": LOCAL, "code": "B"}, {"system": LOINC, "code": "4548-4"}]},
         subject={"reference": "Patient/p3"}, valueQuantity={"value": 7.2, "code": "%"},
         referenceRange=[{"low": {"unit": "%"}}, {"low": {"value": 4.0}}],
         extension=[{"url": "urn:a", "valueString": "first"}, {"url": "urn:b", "valueString": "second"}]),
    # nothing optional at all
    _obs("o6"),
    {"resourceType": "Patient", "id": "p9"},  # another type in the same input
]
PATIENTS = [
    {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-02-03",
     "name": [{"given": [None, "伟"], "_given": [{"id": "g"}, None], "family": "王"}],
     "extension": [{"url": "urn:ethnicity", "valueCoding": {"code": "01"}}]},
    {"resourceType": "Patient", "id": "p2", "name": [{"family": "Li"}, {"given": ["A", "B"]}], "active": True},
    {"resourceType": "Patient", "id": "p3"},
]
ICD10 = "http://hl7.org/fhir/sid/icd-10"
OTHERS = [
    # the local code first, an unconfirmed verification with two codings
    {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
     "code": {"coding": [{"system": "urn:medgov:icd10-cn", "code": "N18.301"}, {"system": ICD10, "code": "N18.3"}]},
     "verificationStatus": {"coding": [{"code": "unconfirmed"}, {"code": "provisional"}]},
     "recordedDate": "2024-02-01"},
    {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p2"},
     "code": {"text": "高血压 (free text only)"}},
    {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
     "subject": {"reference": "Patient/p1"}, "authoredOn": "2024-02-03",
     "medicationCodeableConcept": {"coding": [{"system": "urn:local", "code": "X1"},
                                              {"system": "http://www.whocc.no/atc", "code": "C09AA05"}]}},
    {"resourceType": "MedicationRequest", "id": "m2", "status": "stopped", "intent": "order",
     "subject": {"reference": "Patient/p3"}, "medicationReference": {"reference": "Medication/med1"}},
]
EXTRA_VIEWS = [
    {"resourceType": "ViewDefinition", "resource": "Patient", "select": [{"column": [
        {"name": "id", "path": "getResourceKey()", "type": "string"},
        {"name": "given", "path": "name.given.first()", "type": "string"},
        {"name": "all_given", "path": "name.given", "type": "string", "collection": True},
        {"name": "n_given", "path": "name.given.count()", "type": "integer"},
        {"name": "given_joined", "path": "name.given.join('|')", "type": "string"},
        {"name": "ethnicity", "path": "extension('urn:ethnicity').value.ofType(Coding).code.first()", "type": "code"},
        {"name": "has_family", "path": "name.family.exists()", "type": "boolean"},
        {"name": "active_or_not", "path": "active.exists() and active", "type": "boolean"}]}]},
    {"resourceType": "ViewDefinition", "resource": "Observation", "select": [
        {"column": [{"name": "id", "path": "id", "type": "id"},
                    {"name": "second_ext", "path": "extension('urn:b').value.ofType(string).first()", "type": "string"},
                    {"name": "first_local", "path": "code.coding.where(system = %local).code.first()", "type": "code"},
                    {"name": "n_codes", "path": "code.coding.code.count()", "type": "integer"},
                    {"name": "doubled", "path": "value.ofType(Quantity).value * 2", "type": "decimal"}]},
        {"forEachOrNull": "component", "column": [
            {"name": "component_code", "path": "code.coding.where(system = 'http://loinc.org').code.first()",
             "type": "code"},
            {"name": "component_value", "path": "value.ofType(Quantity).value", "type": "decimal"}]}],
     "constant": [{"name": "local", "valueString": LOCAL}]},
]


def _schema_views() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "schemas" / "views").glob("*.json"))}


# -- the FHIR model ----------------------------------------------------------------------

def test_the_model_gives_each_element_its_type_and_cardinality():
    assert fhir_model.element("Observation", "code") == fhir_model.Element("code", "CodeableConcept", False)
    assert fhir_model.element("CodeableConcept", "coding") == fhir_model.Element("coding", "Coding", True)
    assert fhir_model.element("Quantity", "value").type == "decimal"
    assert fhir_model.element("Encounter", "class").type == "Coding"  # a Python keyword in the model
    assert fhir_model.element("Observation", "component").type == "ObservationComponent"
    assert fhir_model.element("ObservationComponent", "valueQuantity").type == "Quantity"
    assert fhir_model.element("HumanName", "given") == fhir_model.Element("given", "string", True)
    assert fhir_model.spark_type("decimal") == "double" and fhir_model.spark_type("dateTime") == "string"
    assert fhir_model.spark_type("Coding") is None


def test_choice_elements_and_unknown_ones_have_no_type():
    assert fhir_model.element("Observation", "value") is None and fhir_model.is_choice("Observation", "value")
    assert not fhir_model.is_choice("Observation", "code")
    assert fhir_model.element("Observation", "valueFoo") is None and fhir_model.element("Observation", "contained") is None
    assert fhir_model.is_type("Observation") and not fhir_model.is_type("NotAResource")


# -- which compiler -------------------------------------------------------------------------

def test_every_dataset_view_and_the_benchmark_view_compile_typed_in_two_steps():
    from medgov.bench.views import OBSERVATION_VIEW
    from medgov.views.runner import plan

    for name, view in {**_schema_views(), "bench": OBSERVATION_VIEW}.items():
        how = plan(view)
        assert how.typed and how.two_step, (name, how.reason)


@pytest.mark.parametrize("view, reason", [
    ({"resource": "Observation", "select": [{"column": [{"name": "v", "path": "value", "type": "string"}]}]},
     "choice element"),
    ({"resource": "Observation", "select": [{"column": [{"name": "c", "path": "code"}]}]}, "JSON value"),
    ({"resource": "QuestionnaireResponse", "select": [{"repeat": ["item"], "column": [
        {"name": "l", "path": "linkId", "type": "string"}]}]}, "repeat"),
    ({"resource": "Patient", "select": [{"column": [{"name": "x", "path": "nonsense", "type": "string"}]}]},
     "not an element"),
])
def test_what_the_typed_compiler_does_not_cover_falls_back_with_the_reason(view, reason):
    from medgov.views.runner import plan

    how = plan({"resourceType": "ViewDefinition", **view})
    assert not how.typed and reason in how.reason


# -- rows ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resources(spark):
    rows = [(json.dumps(r, ensure_ascii=False), "org") for r in OBSERVATIONS + PATIENTS + OTHERS]
    return spark.createDataFrame(rows, "resource_json string, org_code string")


def _rows(view, resources, compiler):
    from medgov.views.runner import run_view

    df = run_view(view, resources, "resource_json", keep=("org_code",), compiler=compiler)
    return sorted((r.asDict(recursive=True) for r in df.collect()), key=lambda r: json.dumps(r, sort_keys=True))


@pytest.mark.parametrize("name", [*sorted(_schema_views()), "bench", "patient_extra", "observation_extra"])
def test_the_typed_rows_equal_the_variant_rows(spark, resources, name):
    from medgov.bench.views import OBSERVATION_VIEW

    view = {**_schema_views(), "bench": OBSERVATION_VIEW, "patient_extra": EXTRA_VIEWS[0],
            "observation_extra": EXTRA_VIEWS[1]}[name]
    typed_rows = _rows(view, resources, "typed")
    assert typed_rows == _rows(view, resources, "variant")
    assert typed_rows, name  # every view has rows in this input


def test_hand_computed_values_at_the_awkward_shapes(spark, resources):
    from medgov.bench.views import OBSERVATION_VIEW

    got = {r["id"]: r for r in _rows(OBSERVATION_VIEW, resources, "typed")}
    assert set(got) == {"o1", "o2", "o3", "o4", "o5", "o6"}  # the Patient is not an Observation
    assert got["o1"]["loinc"] == "2345-7" and got["o1"]["local_code"] == "GLU-1"
    # referenceRange.low.value.first(): the first range has no low, so the second range's
    assert got["o1"]["low"] == 3.9 and got["o1"]["high"] == 6.1
    assert got["o2"]["loinc"] == "2160-0"  # the first LOINC coding has no code
    assert got["o2"]["local_code"] == "CR" and got["o2"]["comparator"] == "<" and got["o2"]["value"] == 88.0
    assert got["o2"]["category"] == "laboratory"  # the first category has no coding: the second's
    assert got["o3"]["loinc"] is None and got["o3"]["value"] is None and got["o3"]["effective"] is None
    assert got["o5"]["loinc"] == "4548-4" and got["o5"]["local_code"] == "A" and got["o5"]["category"] == "x"
    assert got["o5"]["low"] == 4.0  # the first range's low has no value
    assert got["o6"]["status"] == "final" and got["o6"]["subject"] is None

    bp = {r["id"]: r for r in _rows(_schema_views()["blood_pressure"], resources, "typed")}
    assert set(bp) == {"o4"} and bp["o4"]["systolic"] == 150.0 and bp["o4"]["patient_key"] == "p1"
    # the diastolic component has two codings: `code.coding.code = '8462-4'` compares a
    # collection of two with one, which is false in FHIRPath
    assert bp["o4"]["diastolic"] is None

    labs = {r["id"]: r for r in _rows(_schema_views()["lab_result"], resources, "typed")}
    assert set(labs) == {"o1", "o2", "o5"}
    assert labs["o2"]["patient_key"] == "p2"  # an absolute reference's last two parts

    patients = {r["id"]: r for r in _rows(EXTRA_VIEWS[0], resources, "typed")}
    assert patients["p1"]["given"] == "伟" and patients["p1"]["all_given"] == ["伟"] and patients["p1"]["n_given"] == 1
    assert patients["p1"]["ethnicity"] == "01" and patients["p1"]["has_family"] is True
    assert patients["p2"]["given"] == "A" and patients["p2"]["given_joined"] == "A|B"
    assert patients["p3"]["all_given"] == [] and patients["p3"]["has_family"] is False
    assert patients["p3"]["active_or_not"] is False and patients["p2"]["active_or_not"] is True

    dx = {r["id"]: r for r in _rows(_schema_views()["diagnosis"], resources, "typed")}
    assert dx["c1"]["icd10"] == "N18.3" and dx["c1"]["local_code"] == "N18.301" and dx["c1"]["verification"] == (
        "unconfirmed")
    assert dx["c2"]["icd10"] is None and dx["c2"]["patient_key"] == "p2"
    meds = {r["id"]: r for r in _rows(_schema_views()["medication"], resources, "typed")}
    assert meds["m1"]["atc"] == "C09AA05" and meds["m2"]["atc"] is None and meds["m2"]["status"] == "stopped"

    extra = [r for r in _rows(EXTRA_VIEWS[1], resources, "typed") if r["id"] == "o4"]
    assert sorted((r["component_code"] or "", r["component_value"]) for r in extra) == [("8462-4", 95.0),
                                                                                     ("8480-6", 150.0)]
    o5 = [r for r in _rows(EXTRA_VIEWS[1], resources, "typed") if r["id"] == "o5"]
    assert o5[0]["second_ext"] == "second" and o5[0]["first_local"] == "A" and o5[0]["n_codes"] == 3
    assert o5[0]["component_code"] is None and abs(o5[0]["doubled"] - 14.4) < 1e-9
