"""The steward's terminology loop on a real run: an item the maps cannot decide is on the
worklist with its candidates; `medgov terms accept` records the decision in the site
configuration; the next run recodes the results already in silver and they reach gold, with
no re-delivery and no change to a packaged file."""

from __future__ import annotations

import yaml
from deltalake import DeltaTable

from conftest import TERMS_BATCH, TERMS_CODE, TERMS_ORG
from lakes import medgov


def _rows(lake, zone, table):
    return DeltaTable(str(lake / zone / table)).to_pyarrow_table().to_pylist()


def test_the_undecided_item_was_on_the_worklist_with_ranked_candidates(followups):
    [item] = [w for w in followups.worklist_before if w.org == TERMS_ORG]
    assert (item.code, item.name, item.specimen, item.unit, item.rows) == (TERMS_CODE, "肌酐", None, "umol/L", 2)
    assert [c["loinc"] for c in item.candidates][:2] == ["14682-9", "14683-7"]  # serum first, then urine
    assert "2 concepts fit" in item.note


def test_the_decision_is_recorded_in_the_site_configuration(followups):
    doc = yaml.safe_load((followups.site / "concept_maps" / "lab_items.yaml").read_text(encoding="utf-8"))
    [entry] = doc["entries"]
    assert (entry["org"], entry["local"], entry["loinc"], entry["by"]) == (TERMS_ORG, TERMS_CODE, "14682-9",
                                                                            "test steward")


def test_the_next_run_recodes_silver_and_the_patient_reaches_gold(followups):
    assert followups.first["normalize"].remapped == []
    assert followups.second["normalize"].remapped == [TERMS_BATCH]  # only the batch the decision recodes
    labs = [o for o in _rows(followups.lake, "silver", "observation") if o["batch_key"] == TERMS_BATCH]
    assert [(o["loinc"], o["map_method"], o["map_confidence"]) for o in labs] == [("14682-9", "site-map", 1.0)] * 2
    [batch] = [b for b in _rows(followups.lake, "control", "batches") if b["batch_key"] == TERMS_BATCH]
    assert batch["stage"] == "published"
    gold = [r for r in _rows(followups.lake, "gold", "ckd_registry") if TERMS_ORG in r["source_institutions"]]
    assert len(gold) == 1 and "egfr" in gold[0]["qualifying_basis"] and gold[0]["n_creatinine_results"] == 2
    versions = _rows(followups.lake, "control", "terminology")
    assert [v["requeued"] for v in sorted(versions, key=lambda v: v["applied_at"])][-1] == [TERMS_BATCH]


def test_the_worklist_no_longer_lists_it_and_the_cli_shows_the_rest(followups):
    out = medgov("terms", "--lake", str(followups.lake), "--config", str(followups.site), "--format", "csv")
    assert TERMS_CODE not in out.stdout and out.stdout.startswith("org,code,name,specimen,unit,rows,suggested")
    assert "WBC" in out.stdout  # the sample's own uncoded items are still there


def test_a_bad_decision_is_one_line_and_changes_nothing(followups, tmp_path):
    before = (followups.site / "concept_maps" / "lab_items.yaml").read_text(encoding="utf-8")
    for args, message in ((["H1", "X", "14682-9"], "is not an org code"),
                          ([TERMS_ORG, "X", "8480-6"], "8480-6 is not a laboratory concept"),
                          ([TERMS_ORG, "X"], "give ORG CODE LOINC")):
        out = medgov("terms", "accept", *args, "--config", str(followups.site), check=False)
        assert out.returncode != 0 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    no_site = medgov("terms", "accept", TERMS_ORG, "X", "14682-9", env={"MEDGOV_CONFIG": ""}, check=False)
    assert no_site.returncode != 0 and "MEDGOV_CONFIG" in no_site.stderr
    assert (followups.site / "concept_maps" / "lab_items.yaml").read_text(encoding="utf-8") == before
