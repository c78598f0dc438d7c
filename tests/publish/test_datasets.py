"""The four disease datasets of schemas/datasets/, each on hand-made FHIR resources whose
persons sit at the definition's boundaries: a value exactly at a threshold, two readings on
the same day, a unit to convert, a censored result, a result in a unit that cannot be
converted, an exclusion code. The expected persons are worked out by hand in each test."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from medgov.errors import MedgovError
from medgov.publish.cohort import build, view_frames
from medgov.spec.datasets import dataset, datasets

DAY0 = date(2024, 1, 10)
ORG, ORG2 = "H-A", "H-B"


class Feed:
    """FHIR resources as normalize writes them, per person."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self.n = 0

    def _add(self, resource: dict, org: str) -> None:
        self.n += 1
        resource.setdefault("id", f"r{self.n}")
        self.rows.setdefault(resource["resourceType"], []).append((json.dumps(resource), org))

    def person(self, key: str, gender: str = "male", birth: str = "1960-05-01", org: str = ORG) -> str:
        self._add({"resourceType": "Patient", "id": key, "gender": gender, "birthDate": birth}, org)
        return key

    def lab(self, key: str, loinc: str, value: float, unit: str, day: int, comparator: str | None = None,
            org: str = ORG) -> None:
        quantity = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        if comparator:
            quantity["comparator"] = comparator
        when = (DAY0 + timedelta(days=day)).isoformat() + "T08:00:00+08:00"
        self._add({"resourceType": "Observation", "status": "final",
                   "category": [{"coding": [{"code": "laboratory"}]}],
                   "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
                   "subject": {"reference": f"Patient/{key}"}, "effectiveDateTime": when,
                   "valueQuantity": quantity}, org)

    def bp(self, key: str, systolic: float, diastolic: float, day: int, hour: int = 9) -> None:
        when = (DAY0 + timedelta(days=day)).isoformat() + f"T{hour:02d}:00:00+08:00"
        comp = [{"code": {"coding": [{"system": "http://loinc.org", "code": c}]},
                 "valueQuantity": {"value": v, "unit": "mm[Hg]", "code": "mm[Hg]"}}
                for c, v in (("8480-6", systolic), ("8462-4", diastolic))]
        self._add({"resourceType": "Observation", "status": "final",
                   "category": [{"coding": [{"code": "vital-signs"}]}],
                   "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
                   "subject": {"reference": f"Patient/{key}"}, "effectiveDateTime": when, "component": comp}, ORG)

    def dx(self, key: str, icd10: str, day: int = 0, local: str | None = None, org: str = ORG) -> None:
        when = (DAY0 + timedelta(days=day)).isoformat() + "T08:00:00+08:00"
        coding = [{"system": "http://hl7.org/fhir/sid/icd-10", "code": icd10},
                  {"system": "urn:medgov:icd10-cn", "code": local or icd10}]
        self._add({"resourceType": "Condition", "code": {"coding": coding},
                   "verificationStatus": {"coding": [{"code": "confirmed"}]},
                   "subject": {"reference": f"Patient/{key}"}, "recordedDate": when}, org)

    def drug(self, key: str, atc: str, day: int = 0) -> None:
        when = (DAY0 + timedelta(days=day)).isoformat() + "T08:00:00+08:00"
        self._add({"resourceType": "MedicationRequest", "status": "completed", "intent": "order",
                   "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": atc}]},
                   "subject": {"reference": f"Patient/{key}"}, "authoredOn": when}, ORG)

    def frames(self, spark) -> dict:
        types = ("Patient", "Observation", "Condition", "MedicationRequest")
        return {t: spark.createDataFrame(self.rows.get(t, []), "resource_json string, org_code string") for t in types}


class Scoped:
    """A scenario's persons inside the shared feed: keys prefixed with the scenario's name."""

    def __init__(self, feed: Feed, prefix: str) -> None:
        self.feed, self.prefix = feed, prefix

    def __getattr__(self, name: str):
        method = getattr(self.feed, name)
        return lambda key, *args, **kw: method(f"{self.prefix}:{key}", *args, **kw)


SCENARIOS: dict = {}


def scenario(fill):
    SCENARIOS[fill.__name__] = fill
    return fill


@pytest.fixture(scope="module")
def built(spark) -> dict[str, dict[str, dict]]:
    """Every scenario's persons in one feed, every dataset built once over it."""
    feed = Feed()
    for name, fill in SCENARIOS.items():
        fill(Scoped(feed, name))
    resources, upstream, out = feed.frames(spark), {}, {}
    for d in datasets():
        rows = build(spark, d, view_frames(d, resources), upstream, "test-run")
        upstream[d.name] = rows
        out[d.name] = {r["patient_key"]: r.asDict(recursive=True) for r in rows.collect()}
    return out


def _of(built: dict, dataset_name: str, scenario_name: str) -> dict[str, dict]:
    """The rows of one scenario's persons in a dataset, by their key without the prefix."""
    head = scenario_name + ":"
    return {k[len(head):]: v for k, v in built[dataset_name].items() if k.startswith(head)}


CREAT, CREAT_MASS, ACR = "14682-9", "2160-0", "9318-7"


@scenario
def ckd(f) -> None:
    # 300 umol/L, male, 63 y: eGFR ~ 19 (low)
    f.person("apart91"); f.lab("apart91", CREAT, 300, "umol/L", 0); f.lab("apart91", CREAT, 300, "umol/L", 91)
    f.person("apart90"); f.lab("apart90", CREAT, 300, "umol/L", 0); f.lab("apart90", CREAT, 300, "umol/L", 90)
    f.person("normal_between")
    f.lab("normal_between", CREAT, 300, "umol/L", 0); f.lab("normal_between", CREAT, 70, "umol/L", 50)
    f.lab("normal_between", CREAT, 300, "umol/L", 200)
    # a normal result on the day of the first low one is not *between* them
    f.person("normal_same_day")
    f.lab("normal_same_day", CREAT, 300, "umol/L", 0); f.lab("normal_same_day", CREAT, 70, "umol/L", 0)
    f.lab("normal_same_day", CREAT, 300, "umol/L", 120)
    # mg/dL (2160-0) converted: 3.4 mg/dL = 300.56 umol/L
    f.person("mass"); f.lab("mass", CREAT_MASS, 3.4, "mg/dL", 0); f.lab("mass", CREAT_MASS, 3.4, "mg/dL", 100)
    # "0.18 mmol/L" left unconverted (a unit normalize could not convert): not read as umol/L
    f.person("mmol"); f.lab("mmol", CREAT, 0.18, "mmol/L", 0); f.lab("mmol", CREAT, 0.18, "mmol/L", 100)
    f.dx("mmol", "N18.3")
    # implausible (5 umol/L) and censored creatinine are left out
    f.person("implausible"); f.lab("implausible", CREAT, 5, "umol/L", 0); f.lab("implausible", CREAT, 5, "umol/L", 100)
    f.person("censored_scr")
    f.lab("censored_scr", CREAT, 300, "umol/L", 0, ">"); f.lab("censored_scr", CREAT, 300, "umol/L", 100, ">")
    # ACR censored: ">300" decides >= 30; "<5" decides < 30 (and breaks persistence)
    f.person("acr_gt"); f.lab("acr_gt", ACR, 300, "mg/g", 0, ">"); f.lab("acr_gt", ACR, 300, "mg/g", 100, ">")
    f.person("acr_lt_between")
    f.lab("acr_lt_between", ACR, 40, "mg/g", 0); f.lab("acr_lt_between", ACR, 5, "mg/g", 50, "<")
    f.lab("acr_lt_between", ACR, 40, "mg/g", 120)
    f.person("acr_at30"); f.lab("acr_at30", ACR, 30, "mg/g", 0); f.lab("acr_at30", ACR, 30, "mg/g", 95)
    # N19 (acute or chronic) alone is not CKD; beside an abnormal result it is
    f.person("n19"); f.dx("n19", "N19")
    f.person("n19_acr"); f.dx("n19_acr", "N19"); f.lab("n19_acr", ACR, 45, "mg/g", 3)
    # a manifestation code of the local (Chinese edition) code counts
    f.person("manifest"); f.dx("manifest", "E11.9", local="E11.900x001+N08.3*")
    f.person("q61"); f.dx("q61", "Q61.2")


def test_ckd_boundaries(built):
    got = _of(built, "ckd_registry", "ckd")
    assert set(got) == {"apart91", "normal_same_day", "mass", "mmol", "acr_gt", "acr_at30", "n19_acr",
                        "manifest", "q61"}
    assert got["apart91"]["qualifying_basis"] == ["egfr"]
    assert got["apart91"]["first_qualifying_date"] == DAY0 + timedelta(days=91)
    assert got["mass"]["latest_creatinine_umol_l"] == pytest.approx(300.6, abs=0.05)
    # the mmol/L result is not a creatinine of 0.18 umol/L (eGFR 615, G1): no eGFR at all
    assert got["mmol"]["egfr"] is None and got["mmol"]["qualifying_basis"] == ["diagnosis"]
    assert got["acr_gt"]["qualifying_basis"] == ["acr"] and got["acr_gt"]["latest_acr_mg_g"] is None
    assert got["acr_at30"]["a_stage"] == "A2"
    assert got["n19_acr"]["ckd_diagnosis_codes"] == ["N19"]
    assert "N08.3" in got["manifest"]["ckd_diagnosis_codes"]


GLU_F, GLU, GLU_MASS, HBA1C = "14771-0", "14749-6", "2345-7", "4548-4"


@scenario
def diabetes(f) -> None:
    f.person("fpg_at"); f.lab("fpg_at", GLU_F, 7.0, "mmol/L", 0); f.lab("fpg_at", GLU_F, 7.0, "mmol/L", 30)
    f.person("fpg_below"); f.lab("fpg_below", GLU_F, 6.9, "mmol/L", 0); f.lab("fpg_below", GLU_F, 6.9, "mmol/L", 30)
    f.person("same_day"); f.lab("same_day", HBA1C, 6.5, "%", 0); f.lab("same_day", GLU_F, 7.1, "mmol/L", 0)
    # 200 mg/dL random glucose = 11.10 mmol/L; 199 mg/dL = 11.05 (below 11.1)
    f.person("mass"); f.lab("mass", GLU_MASS, 200, "mg/dL", 0); f.lab("mass", GLU_MASS, 200, "mg/dL", 7)
    f.person("mass_below"); f.lab("mass_below", GLU_MASS, 199, "mg/dL", 0); f.lab("mass_below", GLU_MASS, 199, "mg/dL", 7)
    f.person("censored"); f.lab("censored", GLU, 33.3, "mmol/L", 0, ">"); f.lab("censored", GLU, 33.3, "mmol/L", 9, ">")
    f.person("drug_one"); f.drug("drug_one", "A10BA02", 2); f.lab("drug_one", GLU, 11.1, "mmol/L", 5)
    f.person("drug_none"); f.drug("drug_none", "A10BA02", 2); f.lab("drug_none", GLU, 11.0, "mmol/L", 5)
    f.person("type1"); f.dx("type1", "E11.9"); f.dx("type1", "E10.9")
    f.person("gestational"); f.lab("gestational", GLU_F, 8, "mmol/L", 0); f.lab("gestational", GLU_F, 8, "mmol/L", 9)
    f.dx("gestational", "O24.4")
    f.person("dkd", gender="female"); f.dx("dkd", "E11.2", local="E11.200x001+N08.3*"); f.lab("dkd", HBA1C, 6.9, "%", 4)


def test_diabetes_boundaries(built):
    got = _of(built, "diabetes_registry", "diabetes")
    assert set(got) == {"fpg_at", "mass", "censored", "drug_one", "dkd"}
    assert got["fpg_at"]["first_qualifying_date"] == DAY0 + timedelta(days=30)
    assert got["drug_one"]["qualifying_basis"] == ["medication"] and got["drug_one"]["drug_classes"] == ["biguanide"]
    assert got["dkd"]["diabetic_kidney_disease"] is True and got["fpg_at"]["diabetic_kidney_disease"] is False
    assert got["dkd"]["latest_hba1c_percent"] == 6.9 and got["dkd"]["hba1c_controlled"] is True


@scenario
def hypertension(f) -> None:
    f.person("at"); f.bp("at", 140, 85, 0); f.bp("at", 130, 90, 20)
    f.person("below"); f.bp("below", 139, 89, 0); f.bp("below", 139, 89, 20)
    f.person("same_day"); f.bp("same_day", 150, 95, 0, 9); f.bp("same_day", 152, 96, 0, 15)
    f.person("drug"); f.drug("drug", "C09CA04"); f.bp("drug", 141, 80, 3)
    f.person("implausible"); f.bp("implausible", 400, 95, 0); f.bp("implausible", 400, 95, 10)
    f.person("pregnancy", gender="female"); f.dx("pregnancy", "I10"); f.dx("pregnancy", "O13")
    f.person("dx_ckd_dm"); f.dx("dx_ckd_dm", "I12.0"); f.dx("dx_ckd_dm", "E11.9"); f.bp("dx_ckd_dm", 182, 100, 1)


def test_hypertension_boundaries(built):
    got = _of(built, "hypertension_registry", "hypertension")
    assert set(got) == {"at", "drug", "dx_ckd_dm"}
    assert got["at"]["latest_bp_grade"] == "1" and got["at"]["bp_controlled"] is False
    assert got["drug"]["qualifying_basis"] == ["medication"] and got["drug"]["n_drug_classes"] == 1
    r = got["dx_ckd_dm"]
    assert r["has_ckd"] and r["has_diabetes"] and r["latest_bp_grade"] == "3"


@scenario
def heart_failure(f) -> None:
    f.person("bnp_at"); f.dx("bnp_at", "I50.9", 2); f.lab("bnp_at", "33762-6", 125, "pg/mL", 0)
    f.person("bnp_below"); f.dx("bnp_below", "I50.9"); f.lab("bnp_below", "33762-6", 124, "pg/mL", 0)
    f.person("loop"); f.dx("loop", "I11.0"); f.drug("loop", "C03CA01", 5)
    f.person("no_dx"); f.lab("no_dx", "33762-6", 5000, "pg/mL", 0); f.drug("no_dx", "C03DA01")
    f.person("i13_1"); f.dx("i13_1", "I13.1"); f.lab("i13_1", "33762-6", 900, "pg/mL", 0)


def test_heart_failure_boundaries(built):
    got = _of(built, "heart_failure_registry", "heart_failure")
    assert set(got) == {"bnp_at", "loop"}
    assert got["bnp_at"]["first_qualifying_date"] == DAY0 + timedelta(days=2)
    assert got["bnp_at"]["latest_ntprobnp_pg_ml"] == 125 and got["loop"]["drug_classes"] == ["loop diuretic"]


@scenario
def two_institutions(f) -> None:
    f.person("p", org=ORG); f.person("p", org=ORG2)
    f.lab("p", CREAT, 300, "umol/L", 0, org=ORG); f.lab("p", CREAT, 300, "umol/L", 120, org=ORG2)


def test_a_person_is_counted_once_across_institutions(built):
    got = _of(built, "ckd_registry", "two_institutions")
    assert list(got) == ["p"] and got["p"]["source_institutions"] == [ORG, ORG2]
    assert got["p"]["qualifying_basis"] == ["egfr"]  # persistence across the two institutions


def test_each_dataset_declares_its_sources_codes_and_columns():
    names = [d.name for d in datasets()]
    assert set(names) == {"ckd_registry", "diabetes_registry", "hypertension_registry", "heart_failure_registry"}
    assert names.index("ckd_registry") < names.index("diabetes_registry") < names.index("hypertension_registry")
    for d in datasets():
        assert d.sources and all(isinstance(s, str) and len(s) > 20 for s in d.sources)
        assert all(reason for codes in d.code_lists.values() for reason in codes.values())
        for name, col in d.columns.items():
            assert col["level"] in (1, 2, 3, 4, 5) and col["category"], (d.name, name)
    ckd = dataset("ckd_registry")
    assert {"N03", "N11", "N25.0", "Q61.2", "Q61.3"} <= set(ckd.code_lists["diagnosis"])
    assert "N19" in ckd.code_lists["diagnosis_needs_results"]


def test_a_wrong_definition_is_refused_with_its_reason(spark):
    from dataclasses import replace

    d = dataset("heart_failure_registry")
    with pytest.raises(MedgovError, match="cohort.sql gives columns"):
        build(spark, replace(d, sql="SELECT 'x' AS patient_key"), {}, {}, "r")
    with pytest.raises(MedgovError, match="heart_failure_registry/cohort.sql: "):
        build(spark, replace(d, sql="SELECT nope FROM nowhere"), {}, {}, "r")
