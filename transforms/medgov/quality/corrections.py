"""Which quarantined rows a later delivery corrected, and by which batch.

A quarantined row carries its keyed record key (`domain.record_keys`); the record is
corrected when silver holds it from a later batch of the same institution (later: a greater
batch id, the rule silver's MERGE follows). Read through delta-rs, so the report and the
dashboard answer it the same way without Spark. Vital-sign rows have no record key and are
never shown as corrected.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from medgov.spec.tables import PATIENT_XREF
from medgov.storage.lake import Lake

# quarantine table (bronze contract or silver table name) -> (silver table, column of the record key)
_FOUND_IN = {"patient": (PATIENT_XREF, "source_key"), "visit": ("encounter", "id"), "encounter": ("encounter", "id"),
             "diagnosis": ("condition", "id"), "condition": ("condition", "id"), "lab_result": ("observation", "id"),
             "observation": ("observation", "id"), "prescription": ("medication_request", "id"),
             "medication_request": ("medication_request", "id")}


def corrected_by(lake: Lake, quarantined: list[dict[str, Any]]) -> list[str | None]:
    """For each quarantine row (with `table`, `record_id`, `batch_key`, `batch_id`), the later
    batch whose delivery of the same record reached silver, or None."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for q in quarantined:
        if q.get("record_id") and q["table"] in _FOUND_IN:
            wanted[_FOUND_IN[q["table"]]].add(q["record_id"])
    found: dict[tuple[str, str], dict[str, str]] = {}
    for (table, column), ids in wanted.items():
        uri = lake.silver(table)
        if not DeltaTable.is_deltatable(uri):
            continue
        t = DeltaTable(uri).to_pyarrow_table(columns=[column, "batch_key"])
        keys = t.column(column).cast(pa.string())
        t = t.filter(pc.is_in(keys, value_set=pa.array(sorted(ids), pa.string())))
        found[(table, column)] = dict(zip(t.column(column).to_pylist(), t.column("batch_key").to_pylist()))
    out: list[str | None] = []
    for q in quarantined:
        where = _FOUND_IN.get(q["table"])
        by = found.get(where, {}).get(q.get("record_id")) if where else None
        later = by is not None and by != q["batch_key"] and by.split("/", 1)[0] == q["batch_key"].split("/", 1)[0] \
            and by.split("/", 1)[1] > q["batch_id"]
        out.append(by if later else None)
    return out
