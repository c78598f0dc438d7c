"""The rows some batches wrote to a silver table, read through delta-rs without Spark: the
delivering institutions' partitions, and only the columns asked for."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from medgov.spec.tables import BATCH_COLUMN


def batch_rows(uri: str, keys: list[str], columns: list[str],
               storage_options: dict[str, str] | None = None) -> pa.Table:
    """`columns` (strings) of the rows of silver table `uri` from the batches `keys`."""
    batch_column = BATCH_COLUMN["silver"]
    dt = DeltaTable(uri, storage_options=storage_options)
    orgs = sorted({k.split("/", 1)[0] for k in keys})
    part = [("org_code", "in", orgs)] if "org_code" in dt.metadata().partition_columns else None
    read = [batch_column, *[c for c in columns if c != batch_column]]
    rows = dt.to_pyarrow_table(columns=read, partitions=part)
    # delta-rs may hand strings back as string_view, which `is_in` does not take
    hit = pc.is_in(rows.column(batch_column).cast(pa.string()), value_set=pa.array(keys, pa.string()))
    return pa.table({c: rows.column(c).cast(pa.string()).filter(hit) for c in columns})
