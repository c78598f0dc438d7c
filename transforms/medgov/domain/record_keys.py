"""Keyed record keys: the id a delivered row's record has in silver, computed from the
row's institution and contract key alone, so that a quarantined row can be matched with
the rows that depend on it (a visit held because its patient is quarantined) and with the
later delivery that corrects it, without keeping the local numbers.

A patient's record key is its local patient key (the subject key of every row delivered
for it before the patient is known); a visit's is its Encounter id; a diagnosis', lab
result's and prescription's the id of the resource built from it. A vital-sign row has
none: its Observations are keyed on the person, known only once the patient is.
"""

from __future__ import annotations

from typing import Any, Mapping

from medgov.domain.pseudonym import pseudonym

# bronze table -> (pseudonym kind, fixed parts after the institution, contract key columns)
RECORD_KEYS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "patient": ("LOCAL", (), ("patient_id",)),
    "visit": ("Encounter", (), ("visit_id",)),
    "diagnosis": ("Condition", (), ("visit_id", "seq")),
    "lab_result": ("Observation", ("lab",), ("report_id", "item_seq")),
    "prescription": ("MedicationRequest", (), ("rx_id", "item_seq")),
}


def record_key(key: bytes, table: str, org: str, row: Mapping[str, Any]) -> str | None:
    """The keyed record key of `row` of bronze table `table` delivered by `org`; None for a
    table without one, or a row missing a key value (nothing to match it by)."""
    spec = RECORD_KEYS.get(table)
    if spec is None:
        return None
    kind, fixed, columns = spec
    parts = [row.get(c) for c in columns]
    if any(p is None or p == "" for p in parts):
        return None
    return pseudonym(key, kind, org, *fixed, *(str(p) for p in parts))
