"""The audit of every request to the serving layer, answered or refused: an append-only Delta
table `audit/requests` in the lake. It holds who asked (client and role), what (endpoint, the
structured query and its hash, datasets), what left (rows, cells released, cells suppressed),
the outcome and its reason, and the time; never an identifier of a person (queries are
structured criteria, checked before they are recorded)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from medgov.storage.lake import Lake

SCHEMA = pa.schema([
    ("at", pa.timestamp("us", tz="UTC")), ("client", pa.string()), ("role", pa.string()),
    ("endpoint", pa.string()), ("status", pa.int32()), ("reason", pa.string()),
    ("query_hash", pa.string()), ("query", pa.string()), ("datasets", pa.list_(pa.string())),
    ("rows_released", pa.int64()), ("cells_released", pa.int64()), ("cells_suppressed", pa.int64()),
    ("duration_ms", pa.int64()),
])
_lock = threading.Lock()  # one writer per process: appends from one server never race each other


def audit_table(lake: Lake) -> str:
    return lake.table("audit", "requests")


@dataclass
class Entry:
    client: str
    role: str
    endpoint: str
    status: int
    reason: str = ""
    query_hash: str = ""
    query: str = ""
    datasets: list[str] = field(default_factory=list)
    rows_released: int = 0
    cells_released: int = 0
    cells_suppressed: int = 0
    duration_ms: int = 0
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def record(lake: Lake, entry: Entry) -> None:
    """Append one entry (a Delta commit of one row)."""
    data = pa.Table.from_pylist([asdict(entry)], schema=SCHEMA)
    with _lock:
        write_deltalake(audit_table(lake), data, mode="append", description="medgov audit of serving requests")


def entries(lake: Lake, client: str | None = None, since: timedelta | None = None) -> list[dict[str, Any]]:
    """Audit entries, oldest first, of one client and within `since` of now when given."""
    uri = audit_table(lake)
    if not DeltaTable.is_deltatable(uri):
        return []
    # one thread: pyarrow's pool could still be running when a short CLI process exits ("terminate
    # called without an active exception")
    rows = DeltaTable(uri).to_pyarrow_dataset().to_table(use_threads=False).to_pylist()
    if client is not None:
        rows = [r for r in rows if r["client"] == client]
    if since is not None:
        start = datetime.now(timezone.utc) - since
        rows = [r for r in rows if r["at"] >= start]
    return sorted(rows, key=lambda r: r["at"])
