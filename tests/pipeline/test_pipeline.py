"""End to end on generated sample data: every stage, the nothing-lost invariant, re-runs."""

import json
import shutil
from collections import Counter

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from medgov.storage import control
from medgov.storage.context import make_context
from medgov.storage.lake import Lake
from medgov.pipeline.runner import run_stages

from conftest import CORRECTED, RELINK_ORG

pytestmark = pytest.mark.system


def table(lake, zone, name):
    return DeltaTable(str(lake / zone / name)).to_pyarrow_table()


def test_rejected_batch_recorded_with_reason_and_nothing_published(demo):
    lake = Lake.at(demo.lake)
    rejected = {k: d for k, d in control.last_deliveries(lake).items() if d["status"] == "rejected"}
    assert list(rejected) == ["91350100M000100Y43/20230101-b9"]
    assert "sha256" in rejected["91350100M000100Y43/20230101-b9"]["reason"]
    for name in ("lab_result",):
        keys = set(table(demo.lake, "bronze", name).column("_batch_key").to_pylist())
        assert "91350100M000100Y43/20230101-b9" not in keys
    assert "91350100M000100Y43/20230101-b9" not in control.batches(lake)


def test_nothing_lost_every_data_row_is_in_bronze_or_quarantine(demo):
    """For every accepted file: data rows = bronze rows + quarantined rows (by file and line)."""
    q = table(demo.lake, "bronze", "quarantine").filter(pc.equal(pc.field("layer"), "bronze")).to_pylist()
    quarantined = Counter((r["batch_key"], r["file"]) for r in q)
    checked = 0
    for batch in demo.landing.glob("*/*"):
        if not batch.is_dir() or batch.name.endswith("b9"):
            continue
        manifest = json.loads((batch / "manifest.json").read_text())
        key = f"{manifest['org_code']}/{manifest['batch_id']}"
        for f in manifest["files"]:
            bronze = table(demo.lake, "bronze", f["table"])
            in_bronze = pc.sum(pc.and_(pc.equal(bronze.column("_batch_key"), key),
                                       pc.equal(bronze.column("_file"), f["name"]))).as_py() or 0
            assert in_bronze + quarantined[(key, f["name"])] == f["rows"], (key, f["name"])
            checked += 1
    assert checked >= 20 and sum(quarantined.values()) > 0


def test_quarantine_reasons_are_specific(demo):
    reasons = {r for row in table(demo.lake, "bronze", "quarantine").column("reasons").to_pylist() for r in row}
    assert "missing required value in result" in reasons
    assert "unparseable datetime in reported_time: '2024-02-30 10:00:00'" in reasons
    assert "non-numeric value in sbp: '—'" in reasons


def test_every_stage_reached(demo):
    stages = {b["stage"] for b in control.batches(Lake.at(demo.lake)).values()}
    assert stages == {"published"}
    for t in ("patient", "encounter", "condition", "observation", "medication_request"):
        assert table(demo.lake, "silver", t).num_rows > 0
    assert table(demo.lake, "gold", "ckd_registry").num_rows > 0


def test_lab_codes_map_to_loinc_with_unit_conversion(demo):
    obs = table(demo.lake, "silver", "observation").to_pylist()
    creat = [o for o in obs if o["loinc"] == "14682-9"]
    assert creat and {o["unit"] for o in creat} == {"umol/L"}
    converted = [o for o in creat if o["unit_status"] == "converted"]
    assert converted, "the mg/dL institution's creatinine should be converted"
    # 11500000MB1670604W reports creatinine in mg/dl: the generated molar value is restored within rounding
    assert all(30 < o["value"] < 600 for o in converted)
    res = json.loads(converted[0]["resource_json"])
    assert res["valueQuantity"]["unit"] == "umol/L" and res["valueQuantity"]["system"] == "http://unitsofmeasure.org"


def test_unmapped_codes_are_kept_under_the_local_system(demo):
    obs = table(demo.lake, "silver", "observation").to_pylist()
    unmapped = [o for o in obs if o["category"] == "laboratory" and not o["mapped"]]
    assert unmapped
    codings = json.loads(unmapped[0]["resource_json"])["code"]["coding"]
    assert [c["system"] for c in codings] == [f"urn:medgov:lis:{unmapped[0]['org_code']}"]
    assert codings[0]["code"] == unmapped[0]["local_code"]


def test_icd_original_kept_and_stem_added(demo):
    cond = table(demo.lake, "silver", "condition").to_pylist()
    c = next(c for c in cond if c["icd_code"] == "N18.300x001")
    codings = json.loads(c["resource_json"])["code"]["coding"]
    assert {"system": "http://hl7.org/fhir/sid/icd-10", "code": "N18.3"} in codings
    assert {"system": "urn:medgov:icd10-cn", "code": "N18.300x001"} in codings


def test_shared_patient_gets_one_pseudonym(demo):
    xref = table(demo.lake, "silver", "patient_xref").to_pylist()
    by_person = Counter(r["patient_key"] for r in xref)
    multi = [k for k, n in by_person.items() if n > 1]
    assert multi, "the sample has people registered at two institutions"
    for k in multi:
        assert len({r["org_code"] for r in xref if r["patient_key"] == k}) > 1
    patients = table(demo.lake, "silver", "patient")
    assert len(set(patients.column("id").to_pylist())) == patients.num_rows


def test_quality_results_recorded_per_batch_with_categories(demo):
    res = table(demo.lake, "quality", "quality_results").to_pylist()
    assert {r["layer"] for r in res} == {"ingest", "normalize", "bronze", "silver"}
    assert {r["category"] for r in res} == {"conformance", "completeness", "plausibility"}
    assert {r["severity"] for r in res} == {"blocking", "warning"}
    gx = [r for r in res if r["layer"] in ("bronze", "silver")]
    assert len({r["batch_key"] for r in gx}) == 6
    # the rejected batch is a result too: the interface check failed, with the reason
    rejected = [r for r in res if r["batch_key"].endswith("-b9")]
    assert [(r["expectation"], r["success"]) for r in rejected] == [("batch_conforms_to_extract_spec", False)]
    assert "sha256" in rejected[0]["observed_value"]
    failed_id = [r for r in res if r["column"] == "id_no_valid" and not r["success"]]
    assert failed_id and failed_id[0]["severity"] == "warning"  # bad check characters are findings, not crashes
    assert (demo.lake / "quality/gx/gx/uncommitted/data_docs/local_site/index.html").exists()


def test_rerun_changes_nothing(demo, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(demo.lake, lake)
    versions = {p: DeltaTable(str(p)).version() for p in lake.glob("*/*") if (p / "_delta_log").is_dir()}
    result = run_stages(make_context(str(lake)), demo.landing)
    assert result["ingest"].accepted == [] and result["ingest"].rejected == {}
    assert len(result["ingest"].unchanged) == 7
    after = {p: DeltaTable(str(p)).version() for p in versions}
    assert after == versions


def test_corrected_redelivery_replaces_the_batch(demo, followups):
    """The corrected batch replaces the earlier delivery: its rows are the new file's, and the
    results it withdraws leave silver too."""
    assert CORRECTED in followups.first["ingest"].accepted
    bronze = table(followups.lake, "bronze", "lab_result")
    n = pc.sum(pc.equal(bronze.column("_batch_key"), CORRECTED)).as_py()
    q = table(followups.lake, "bronze", "quarantine").to_pylist()
    nq = sum(1 for r in q if r["batch_key"] == CORRECTED and r["table"] == "lab_result" and r["layer"] == "bronze")
    delivered = json.loads((followups.landing / CORRECTED / "manifest.json").read_text())
    rows = next(f["rows"] for f in delivered["files"] if f["table"] == "lab_result")
    assert n + nq == rows
    assert control.batches(Lake.at(followups.lake))[CORRECTED]["stage"] == "published"

    def labs_of_batch(lake):
        obs = table(lake, "silver", "observation")
        mine = obs.filter(pc.and_(pc.equal(obs.column("batch_key"), CORRECTED),
                                  pc.equal(obs.column("category"), "laboratory")))
        return mine.num_rows

    assert labs_of_batch(followups.lake) == labs_of_batch(demo.lake) - followups.withdrawn_lines


def test_results_delivered_before_their_patient_are_relinked(followups):
    """Labs arrive first (subject unknown: local key); the patient file arrives later with a
    valid identity number: the earlier labs move to the person pseudonym."""
    from medgov.domain.pseudonym import person_key
    from conftest import TEST_KEY

    assert followups.second["normalize"].relinked_resources == 1
    person = person_key(TEST_KEY.encode(), RELINK_ORG, "P77", "01", "11010519491231002X")
    assert person != followups.early_key
    obs = table(followups.lake, "silver", "observation").to_pylist()
    [o] = [o for o in obs if o["org_code"] == RELINK_ORG]
    assert o["patient_key"] == person and o["batch_key"] == f"{RELINK_ORG}/labs-first"
    assert json.loads(o["resource_json"])["subject"] == {"reference": f"Patient/{person}"}
    assert followups.early_key not in o["resource_json"]
    assert person in set(table(followups.lake, "silver", "patient").column("id").to_pylist())


def test_ingest_counts_what_the_tables_hold(demo):
    """The per-table figures `medgov run` prints: rows published to bronze, and rows quarantined
    (every parsed row is one or the other)."""
    lake = Lake.at(demo.lake)
    counts = demo.result["ingest"].rows
    q = DeltaTable(lake.quarantine).to_pyarrow_table(columns=["layer", "table"])
    q = q.filter(pc.equal(q.column("layer"), "bronze"))
    assert sum(n["quarantined"] for n in counts.values()) > 0
    for table, n in counts.items():
        assert n["bronze"] == DeltaTable(lake.bronze(table)).to_pyarrow_dataset().count_rows(), table
        assert n["quarantined"] == pc.sum(pc.equal(q.column("table"), table)).as_py(), table
