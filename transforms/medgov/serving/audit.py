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


COMPACT_EVERY = 200  # commits: the table of one-row appends is compacted now and then


class _Mirror:
    """The audit table held in memory per process, kept current cheaply: each read looks at
    the files added since the last one and reads only those (an append adds one small file),
    and appends go through the same table object (no log replay per request)."""

    def __init__(self) -> None:
        self.tables: dict[str, DeltaTable] = {}
        self.fs: dict[str, Any] = {}
        self.files: dict[str, set[str]] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def _table(self, uri: str) -> DeltaTable:
        dt = self.tables.get(uri)
        if dt is None:
            import pyarrow.fs as pafs
            from deltalake.fs import DeltaStorageHandler

            dt = self.tables[uri] = DeltaTable(uri)
            self.fs[uri] = pafs.PyFileSystem(DeltaStorageHandler(uri))
            self.files[uri], self.rows[uri] = set(), []
        else:
            dt.update_incremental()
        return dt

    def read(self, uri: str) -> list[dict[str, Any]]:
        import pyarrow.parquet as pq

        with self.lock:
            dt = self._table(uri)
            current = set(pa.table(dt.get_add_actions()).column("path").to_pylist())
            if not self.files[uri] <= current:  # compacted: read everything again
                self.files[uri], self.rows[uri] = set(), []
            for path in sorted(current - self.files[uri]):
                # one thread: a pyarrow pool still running when a short CLI process exits aborts it
                # ("terminate called without an active exception")
                self.rows[uri] += pq.read_table(path, filesystem=self.fs[uri], use_threads=False).to_pylist()
                self.files[uri].add(path)
            return list(self.rows[uri])

    def append(self, uri: str, data: pa.Table) -> None:
        with self.lock:
            if DeltaTable.is_deltatable(uri):
                dt = self._table(uri)
                write_deltalake(dt, data, mode="append")
                if dt.version() % COMPACT_EVERY == 0:
                    dt.optimize.compact()
            else:
                write_deltalake(uri, data, mode="append", description="medgov audit of serving requests")


_mirror = _Mirror()


def record(lake: Lake, entry: Entry) -> None:
    """Append one entry (a Delta commit of one row)."""
    _mirror.append(audit_table(lake), pa.Table.from_pylist([asdict(entry)], schema=SCHEMA))


def entries(lake: Lake, client: str | None = None, since: timedelta | None = None) -> list[dict[str, Any]]:
    """Audit entries, oldest first, of one client and within `since` of now when given."""
    uri = audit_table(lake)
    if not DeltaTable.is_deltatable(uri):
        return []
    rows = _mirror.read(uri)
    if client is not None:
        rows = [r for r in rows if r["client"] == client]
    if since is not None:
        start = datetime.now(timezone.utc) - since
        rows = [r for r in rows if r["at"] >= start]
    return sorted(rows, key=lambda r: r["at"])
