"""Concept maps change (a steward accepts a mapping, a site adds a spelling): the lab results
already in silver follow without a re-delivery. When the maps' version differs from the one
silver was last brought up to, each silver lab result's item (from its bronze row) is mapped
again; the batches holding a result whose code would change go back to normalize, and from
there through validate and publish as any batch does.

Reads with delta-rs (no Spark), so the runner can ask whether normalize has work.
"""

from __future__ import annotations

import pyarrow.compute as pc
from deltalake import DeltaTable

from medgov.domain.lab_terms import lab_terms
from medgov.spec.lifecycle import BatchStage
from medgov.spec.terminology import Terminology
from medgov.storage import control
from medgov.storage.lake import Lake
from medgov.storage.visible import read_visible

_ITEM = ["_org_code", "item_code", "item_name", "specimen", "unit"]


def pending(lake: Lake, term: Terminology) -> bool:
    """The maps in force are not the ones silver was last brought up to (or none was recorded)."""
    return control.terminology_applied(lake) != term.version


def remapped_batches(lake: Lake, term: Terminology) -> list[str]:
    """Batches owning a silver lab result whose LOINC code the maps in force would change."""
    if not (DeltaTable.is_deltatable(lake.silver("observation")) and DeltaTable.is_deltatable(lake.bronze("lab_result"))):
        return []
    silver = read_visible(lake, "silver", "observation",
                          columns=["batch_key", "source_file", "source_line", "category", "loinc"])
    silver = silver.filter(pc.equal(silver.column("category"), "laboratory")).drop_columns(["category"])
    bronze = read_visible(lake, "bronze", "lab_result", columns=["_batch_key", "_file", "_line", *_ITEM])
    # a silver row's own bronze line: rows a later batch superseded are that batch's to remap
    rows = silver.join(bronze, keys=["batch_key", "source_file", "source_line"],
                       right_keys=["_batch_key", "_file", "_line"], join_type="inner")
    items = rows.group_by(["batch_key", "loinc", *_ITEM]).aggregate([]).to_pylist()
    labs = lab_terms(term)
    stale = {r["batch_key"] for r in items
             if labs.map(r["_org_code"], r["item_code"], r["item_name"], r["specimen"], r["unit"]).loinc != r["loinc"]}
    return sorted(stale)


def requeue_remapped(lake: Lake, term: Terminology, run_id: str) -> list[str]:
    """Bring silver up to the maps in force: send the batches whose codes change back to
    normalize, and record the version (so an unchanged configuration costs one small read)."""
    if not pending(lake, term):
        return []
    sent = control.requeue(lake, remapped_batches(lake, term), BatchStage.BRONZE, run_id)
    control.record_terminology(lake, term.version, run_id, sent)
    return sent

