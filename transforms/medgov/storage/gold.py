"""The lake's curated (gold) Delta tables, on a local disk or an object store."""

from __future__ import annotations

from deltalake import DeltaTable

from medgov.storage.lake import Lake
from medgov.storage.objects import folders


def gold_tables(lake: Lake) -> list[tuple[str, str, DeltaTable]]:
    """(name, URI, table) of every Delta table in the gold zone, by name; other folders are
    left out."""
    return [(uri.rsplit("/", 1)[1], uri, DeltaTable(uri)) for uri in folders(f"{lake.root}/gold")
            if DeltaTable.is_deltatable(uri)]
