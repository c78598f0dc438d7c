"""A blocking failure holds the batch back from gold; a warning is recorded only."""

import json

from deltalake import DeltaTable

from conftest import ORPHANS, RELINK_ORG
from medgov.quality import holds
from medgov.storage import control
from medgov.storage.lake import Lake


def test_orphan_lab_results_block_their_batch(followups):
    """Lab results for patients the institution never delivered: referential integrity fails
    (a blocking check), the batch stays out of gold; batches beside it are published."""
    lake = followups.lake
    blocked = followups.first["validate"].blocked
    assert ORPHANS in blocked and any("patient_link" in f for f in blocked[ORPHANS])
    batch = control.batches(Lake.at(lake))[ORPHANS]
    assert batch["stage"] == "blocked" and batch["quality_passed"] is False
    assert control.batches(Lake.at(lake))["H33030200001/20230101-b2"]["stage"] == "published"
    # silver holds the batch (for the steward to inspect), gold does not use it
    obs = DeltaTable(str(lake / "silver" / "observation")).to_pyarrow_table().to_pylist()
    orphan_keys = {o["patient_key"] for o in obs if o["batch_key"] == ORPHANS}
    assert len(orphan_keys) == 12
    gold = {r["patient_key"] for r in DeltaTable(str(lake / "gold" / "ckd_registry")).to_pyarrow_table().to_pylist()}
    assert not orphan_keys & gold
    res = DeltaTable(str(lake / "quality" / "quality_results")).to_pyarrow_table().to_pylist()
    failed = [r for r in res if r["batch_key"] == ORPHANS and not r["success"]]
    assert any(r["severity"] == "blocking" and r["column"] == "patient_link" for r in failed)
    json.dumps(failed, default=str)  # the results hold nothing that is not plain data
    # the failing check's examples say why: the rows wait for a patient never delivered
    ex = DeltaTable(str(lake / "quality" / "check_examples")).to_pyarrow_table().to_pylist()
    shown = [json.loads(e["values"]) for e in ex if e["batch_key"] == ORPHANS and e["column"] == "patient_link"]
    assert shown and all(v == {"patient_link": "not delivered", "hold_reason": "held: patient not yet delivered"}
                         for v in shown)


def test_a_blocked_batch_is_released_when_its_patient_arrives(followups):
    """Labs first (blocked: their patient is not yet delivered, held with that reason); the
    patient file arrives in the next delivery: the blocked batch goes back through the gate,
    passes, and its held rows are released into gold by the delivering batch."""
    lake = Lake.at(followups.lake)
    early, later = f"{RELINK_ORG}/labs-first", f"{RELINK_ORG}/patients-later"
    assert early in followups.first["validate"].blocked
    assert followups.second["normalize"].regated == [early]
    assert early in followups.second["validate"].passed and followups.second["validate"].released == 1
    assert control.batches(lake)[early]["stage"] == "published"
    [hold] = [h for h in holds.read(lake) if h["batch_key"] == early]
    assert hold["status"] == "released" and hold["released_by"] == later
    assert hold["reason"] == "held: patient not yet delivered" and hold["table"] == "observation"


def test_revalidate_after_a_threshold_change_publishes_the_sound_rows(followups, tmp_path):
    """The orphans batch stays blocked until the site lets that institution's rows wait for
    their patients: `revalidate` then passes it, and its held rows still stay out of gold."""
    import shutil

    from medgov.pipeline.runner import revalidate
    from medgov.spec.site import load_site
    from medgov.storage.context import make_context

    lake_dir = tmp_path / "lake"
    shutil.copytree(followups.lake, lake_dir)
    site = tmp_path / "site"
    site.mkdir()
    (site / "institutions.yaml").write_text(
        "H33030200001:\n  name_zh: 测试医院\n  thresholds:\n    silver.observation:\n      patient_link: 0.0\n",
        encoding="utf-8")
    gold_before = DeltaTable(str(lake_dir / "gold" / "ckd_registry")).to_pyarrow_table().num_rows
    done = revalidate(make_context(str(lake_dir), config=load_site(site)), [ORPHANS])
    assert done["validate"].passed == [ORPHANS] and done["validate"].held >= 12
    lake = Lake.at(lake_dir)
    assert control.batches(lake)[ORPHANS]["stage"] == "published"
    res = DeltaTable(lake.quality_results).to_pyarrow_table().to_pylist()
    [r] = [r for r in res if r["batch_key"] == ORPHANS and r["column"] == "patient_link"]
    assert r["threshold"] == 0.0 and r["success"] and r["unexpected_count"] == 12
    assert DeltaTable(str(lake_dir / "gold" / "ckd_registry")).to_pyarrow_table().num_rows == gold_before
    mine = [h for h in holds.read(lake) if h["batch_key"] == ORPHANS]
    assert len(mine) == 12 and {h["reason"] for h in mine} == {"held: patient not yet delivered"}
