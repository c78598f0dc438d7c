"""A blocking failure holds the batch back from gold; a warning is recorded only."""

import json

from deltalake import DeltaTable

from conftest import ORPHANS
from medgov.storage import control
from medgov.storage.lake import Lake


def test_orphan_lab_results_block_their_batch(followups):
    """Lab results for patients the institution never delivered: referential integrity fails
    (a blocking check), the batch stays out of gold; batches beside it are published."""
    lake = followups.lake
    blocked = followups.first["validate"].blocked
    assert ORPHANS in blocked and any("patient_exists" in f for f in blocked[ORPHANS])
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
    assert any(r["severity"] == "blocking" and r["column"] == "patient_exists" for r in failed)
    json.dumps(failed, default=str)  # the results hold nothing that is not plain data
