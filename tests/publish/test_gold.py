"""The CKD registry: definition, eGFR recomputed independently, metadata, readable by other engines."""

import json
from datetime import date

import polars as pl
import pytest
from deltalake import DeltaTable

from medgov.domain.clinical import a_stage, egfr_ckd_epi_2021, g_stage


@pytest.fixture(scope="module")
def registry(demo):
    return DeltaTable(str(demo.lake / "gold" / "ckd_registry")).to_pyarrow_table().to_pylist()


@pytest.fixture(scope="module")
def silver(demo):
    def load(name):
        return DeltaTable(str(demo.lake / "silver" / name)).to_pyarrow_table().to_pylist()
    return {t: load(t) for t in ("patient", "observation", "condition")}


def test_one_row_per_patient(registry):
    keys = [r["patient_key"] for r in registry]
    assert keys and len(keys) == len(set(keys))


def test_egfr_and_stages_recomputed_from_silver(registry, silver):
    patients = {p["id"]: p for p in silver["patient"]}
    creat = {}
    for o in silver["observation"]:
        if o["loinc"] == "14682-9" and o["value"] is not None and o["comparator"] is None:
            cur = creat.get(o["patient_key"])
            if cur is None or (o["effective_time"], o["id"]) > (cur["effective_time"], cur["id"]):
                creat[o["patient_key"]] = o
    checked = 0
    for r in registry:
        o = creat.get(r["patient_key"])
        if o is None:
            continue
        p = patients[r["patient_key"]]
        sample: date = r["latest_creatinine_date"]
        birth: date = p["birth_date"]
        age = sample.year - birth.year - ((sample.month, sample.day) < (birth.month, birth.day))
        assert r["age_years"] == age
        expected = egfr_ckd_epi_2021(o["value"] / 88.4, age, p["gender"] == "female")
        assert r["egfr"] == pytest.approx(expected, abs=0.01)
        assert r["g_stage"] == g_stage(expected)
        checked += 1
    assert checked > 5


def test_every_patient_with_a_ckd_code_is_registered(registry, silver):
    codes = {"N18", "I12", "I13", "N19", "Z49"}
    with_code = {c["patient_key"] for c in silver["condition"]
                 if c["icd_category"] in codes or c["icd_stem"] in {"E11.2", "N08.3"}
                 or "N08.3" in (c["icd_manifestations"] or [])}
    assert with_code
    registered = {r["patient_key"] for r in registry}
    assert with_code <= registered
    for r in registry:
        if r["patient_key"] in with_code:
            assert "diagnosis" in r["qualifying_basis"]


def test_egfr_basis_needs_two_low_results_90_days_apart(registry, silver):
    by_patient = {}
    for r in registry:
        if r["qualifying_basis"] == ["egfr"]:
            by_patient[r["patient_key"]] = r
    for key, r in by_patient.items():
        assert r["first_qualifying_date"] is not None and r["n_creatinine_results"] >= 2


def test_a_stage_from_latest_acr(registry):
    with_acr = [r for r in registry if r["latest_acr_mg_g"] is not None]
    assert with_acr
    for r in with_acr:
        assert r["a_stage"] == a_stage(r["latest_acr_mg_g"])


def test_every_dataset_is_published_with_its_comments_in_one_commit(demo):
    """Each declared dataset has rows on the demo (the sample holds CKD, diabetes, hypertension
    and heart-failure patients), and its description and GB/T 39725 column comments arrive
    with the commit that creates the table (the demo publishes once: version 0)."""
    from medgov.spec.datasets import datasets

    for d in datasets():
        dt = DeltaTable(str(demo.lake / "gold" / d.name))
        assert dt.to_pyarrow_table().num_rows > 0, d.name
        assert dt.version() == 0, f"{d.name}: metadata in extra commits"
        assert d.title in dt.metadata().description, d.name
        fields = {f.name: f.metadata for f in dt.schema().fields}
        assert set(fields) == set(d.columns), d.name
        for name, meta in fields.items():
            assert "GB/T 39725" in meta["comment"], (d.name, name)
            assert meta["gbt39725.level"] in {"1", "2", "3", "4", "5"}, (d.name, name)


def test_readable_by_polars_and_spark(demo, spark, registry):
    path = str(demo.lake / "gold" / "ckd_registry")
    assert pl.read_delta(path).height == len(registry)
    from medgov.storage.table_store import DeltaRsStore

    assert DeltaRsStore(spark).read(path).count() == len(registry)


def test_no_raw_dates_of_birth_or_identifiers_in_gold(registry):
    assert "birth_date" not in registry[0] and all(len(r["patient_key"]) == 32 for r in registry)
    json.dumps(registry, default=str)
