"""A blocking failure holds the batch back from gold; a warning is recorded only."""

import json

from deltalake import DeltaTable

from batches import lab_csv, lab_row, write_batch
from medgov import state
from medgov.context import make_context
from medgov.lake import Lake
from medgov.pipeline import run_all


def test_orphan_lab_results_block_their_batch(demo, tmp_path):
    import shutil

    lake = tmp_path / "lake"
    shutil.copytree(demo.lake, lake)
    landing = tmp_path / "landing"
    # labs for patients the institution never delivered: referential integrity fails (blocking)
    rows = [lab_row(i, patient=f"GHOST{i}", result="400", reported=f"2024-0{1 + (i % 2) * 5}-01 10:00:00")
            for i in range(12)]
    write_batch(landing, "H33030200001", "orphans", {"lab_result.csv": ("lab_result", lab_csv(rows), 12)})
    result = run_all(make_context(str(lake)), landing)
    assert list(result.validate.blocked) == ["H33030200001/orphans"]
    assert any("patient_exists" in f for f in result.validate.blocked["H33030200001/orphans"])
    batch = state.batches(Lake.at(lake))["H33030200001/orphans"]
    assert batch["stage"] == "blocked" and batch["quality_passed"] is False
    # silver holds the batch (for the steward to inspect), gold does not use it
    obs = DeltaTable(str(lake / "silver" / "observation")).to_pyarrow_table().to_pylist()
    orphan_keys = {o["patient_key"] for o in obs if o["batch_key"] == "H33030200001/orphans"}
    assert len(orphan_keys) == 12
    gold = {r["patient_key"] for r in DeltaTable(str(lake / "gold" / "ckd_registry")).to_pyarrow_table().to_pylist()}
    assert not orphan_keys & gold
    res = DeltaTable(str(lake / "quality" / "quality_results")).to_pyarrow_table().to_pylist()
    failed = [r for r in res if r["batch_key"] == "H33030200001/orphans" and not r["success"]]
    assert any(r["severity"] == "blocking" and r["column"] == "patient_exists" for r in failed)
    json.dumps(failed, default=str)
