"""What a reader may see: the rows of batches whose stage says that zone is complete for them.

Delta makes each table commit atomic, but a batch spans several tables (six bronze tables,
five silver ones), written one commit at a time. A reader who filters bronze and silver
through the control table never sees a batch half-written: a batch's rows appear in a zone
when the control table marks the zone done for it, after every table of the zone is written,
and a re-delivered batch leaves the view (stage `receiving`) before any of its tables change.
Gold datasets are rebuilt in one commit each and need no filter.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from medgov.errors import MedgovError
from medgov.spec.lifecycle import COMPLETE_FROM
from medgov.spec.tables import BATCH_COLUMN
from medgov.storage import control
from medgov.storage.lake import Lake


def visible_batches(lake: Lake, zone: str) -> list[str]:
    """Batches whose rows in `zone` are complete."""
    return _done(control.batches(lake), zone)


def _done(batches: dict[str, dict], zone: str) -> list[str]:
    return sorted(k for k, b in batches.items() if b["stage"] in COMPLETE_FROM[zone])


def read_visible(lake: Lake, zone: str, table: str, attempts: int = 10, columns: list[str] | None = None) -> pa.Table:
    """A bronze or silver table restricted to complete batches; a gold table as it is.

    The control table is read before and after the data: when a stage moved a batch in
    between, the read is repeated, so the rows and the batch list always belong together.
    """
    uri = lake.table(zone, table)
    if not DeltaTable.is_deltatable(uri):
        raise MedgovError(f"no table {zone}/{table} in {lake.root}")
    if zone == "gold":
        return DeltaTable(uri).to_pyarrow_table(columns=columns)
    wanted = None if columns is None else list(dict.fromkeys([*columns, BATCH_COLUMN[zone]]))
    for _ in range(attempts):
        before = control.batches(lake)
        data = DeltaTable(uri).to_pyarrow_table(columns=wanted)
        if control.batches(lake) == before:
            keys = pa.array(_done(before, zone), pa.string())
            data = data.filter(pc.is_in(data.column(BATCH_COLUMN[zone]), keys))
            return data if columns is None else data.select(columns)
    raise MedgovError(f"{zone}/{table} kept changing while it was read; try again")
