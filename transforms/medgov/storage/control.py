"""Stage bookkeeping: which delivery was seen, which batch reached which stage.

Small Delta tables under `control/`, committed *after* the data they describe so that a
crash leaves work to redo, never work recorded as done that is not:
- `deliveries`: append-only log of every delivery attempt (accepted, rejected or deferred);
- `batches`: one row per accepted batch with its current stage (`BatchStage`);
- `terminology`: append-only log of the concept-map versions applied to silver, with the
  batches each one sent back to normalize;
- `runs`: append-only log of the stage runs that did work (keyed by their lineage run id),
  with the site configuration each ran under;
- `published`: append-only log of each dataset publish: the definition's fingerprint and the
  silver table versions it read (what the next, incremental publish starts from).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from medgov.spec.lifecycle import BatchStage
from medgov.storage.commits import merge_with_retry, retry_commit
from medgov.storage.lake import Lake

DELIVERY_SCHEMA = pa.schema([
    ("batch_key", pa.string()), ("org_code", pa.string()), ("batch_id", pa.string()),
    ("fingerprint", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("notes", pa.list_(pa.string())), ("files", pa.int32()), ("rows_declared", pa.int64()), ("received_at", pa.timestamp("us", "UTC")),
    ("run_id", pa.string()),
])
BATCH_SCHEMA = pa.schema([
    ("batch_key", pa.string()), ("org_code", pa.string()), ("batch_id", pa.string()),
    ("fingerprint", pa.string()), ("stage", pa.string()), ("quality_passed", pa.bool_()),
    ("blocking_failures", pa.int32()), ("rows_declared", pa.int64()), ("updated_at", pa.timestamp("us", "UTC")),
    ("run_id", pa.string()),
])

TERMINOLOGY_SCHEMA = pa.schema([
    ("version", pa.string()), ("applied_at", pa.timestamp("us", "UTC")), ("run_id", pa.string()),
    ("requeued", pa.list_(pa.string())),
])
RUN_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("stage", pa.string()), ("config_version", pa.string()),
    ("started_at", pa.timestamp("us", "UTC")), ("seconds", pa.float64()),
])
PUBLISHED_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("fingerprint", pa.string()), ("silver_versions", pa.string()),
    ("run_id", pa.string()), ("published_at", pa.timestamp("us", "UTC")),
])
# the stages a batch may be sent back from to be normalized again (not one being ingested)
REQUEUEABLE = (BatchStage.SILVER, BatchStage.VALIDATED, BatchStage.BLOCKED, BatchStage.PUBLISHED)


def now() -> datetime:
    return datetime.now(timezone.utc)


def _read(uri: str) -> list[dict[str, Any]]:
    if not DeltaTable.is_deltatable(uri):
        return []
    # In the calling thread: the control tables are small, and a process that exits right
    # after a threaded delta-rs scan may abort in Arrow's teardown (delta-rs #2184, arrow
    # #34314) - a CLI refusing a batch would exit 134 instead of 1.
    return DeltaTable(uri).to_pyarrow_dataset().to_table(use_threads=False).to_pylist()


def last_deliveries(lake: Lake) -> dict[str, dict[str, Any]]:
    """The latest delivery attempt per batch key."""
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(_read(lake.deliveries), key=lambda r: r["received_at"]):
        latest[row["batch_key"]] = row
    return latest


def record_deliveries(lake: Lake, rows: list[dict[str, Any]]) -> None:
    if rows:
        data = pa.Table.from_pylist(rows, DELIVERY_SCHEMA)
        retry_commit(lambda: write_deltalake(lake.deliveries, data, mode="append"))


def batches(lake: Lake) -> dict[str, dict[str, Any]]:
    """Current state of every accepted batch, by batch key."""
    return {r["batch_key"]: r for r in _read(lake.batches)}


def in_stage(lake: Lake, stage: BatchStage) -> list[dict[str, Any]]:
    return sorted((b for b in batches(lake).values() if b["stage"] == stage), key=lambda b: b["batch_key"])


def set_batches(lake: Lake, rows: list[dict[str, Any]], only_from: BatchStage | None = None) -> None:
    """Upsert batch states (MERGE on batch_key): one atomic commit.

    With `only_from`, a batch moves only if it is still in that stage with the same content
    (fingerprint): a re-delivery claimed by a concurrent ingest is not marked done by a stage
    that worked on the earlier content.
    """
    if not rows:
        return
    when = f"t.stage = '{BatchStage(only_from).value}' AND t.fingerprint = s.fingerprint" if only_from else None
    merge_with_retry(lake.batches, pa.Table.from_pylist(rows, BATCH_SCHEMA), ["batch_key"], update_when=when)


def taken(lake: Lake, stage: BatchStage | None, keys: list[str] | None = None) -> dict[str, str]:
    """The batches a stage takes on (default: those in `stage`), with the fingerprint of the
    content it will read: what `advance` later checks it is still marking."""
    current = batches(lake)
    keys = keys if keys is not None else [k for k, b in current.items() if b["stage"] == stage]
    return {k: current[k]["fingerprint"] for k in sorted(keys)}


def advance(lake: Lake, taken_: dict[str, str], stage: BatchStage, run_id: str, only_from: BatchStage | None = None,
            **fields: Any) -> None:
    """Move the batches taken (key -> fingerprint) to `stage`, with optional per-batch fields
    given as dicts by key; with `only_from`, only those still in that stage with that content."""
    current = batches(lake)
    rows = []
    for k, fingerprint in taken_.items():
        row = dict(current[k])
        row.update(stage=BatchStage(stage).value, updated_at=now(), run_id=run_id, fingerprint=fingerprint)
        for name, per_key in fields.items():
            row[name] = per_key[k]
        rows.append(row)
    set_batches(lake, rows, only_from)


def terminology_applied(lake: Lake) -> str | None:
    """The concept-map version silver was last brought up to (None: never checked)."""
    rows = _read(lake.table("control", "terminology"))
    return max(rows, key=lambda r: r["applied_at"])["version"] if rows else None


def record_terminology(lake: Lake, version: str, run_id: str, requeued: list[str]) -> None:
    data = pa.Table.from_pylist([{"version": version, "applied_at": now(), "run_id": run_id, "requeued": requeued}],
                                TERMINOLOGY_SCHEMA)
    retry_commit(lambda: write_deltalake(lake.table("control", "terminology"), data, mode="append"))


def record_run(lake: Lake, run_id: str, stage: str, config_version: str, started_at: datetime,
               seconds: float) -> None:
    """Log one stage run and the site configuration it ran under."""
    data = pa.Table.from_pylist([{"run_id": run_id, "stage": stage, "config_version": config_version,
                                  "started_at": started_at, "seconds": seconds}], RUN_SCHEMA)
    retry_commit(lambda: write_deltalake(lake.table("control", "runs"), data, mode="append"))


def record_published(lake: Lake, fingerprints: dict[str, str], silver_versions: dict[str, int],
                     run_id: str) -> None:
    """What each dataset (name -> definition fingerprint) was built from: the silver table
    versions read (the next publish recomputes the persons whose silver rows changed since)."""
    versions, at = json.dumps(silver_versions, sort_keys=True), now()
    data = pa.Table.from_pylist([{"dataset": name, "fingerprint": fp, "silver_versions": versions,
                                  "run_id": run_id, "published_at": at} for name, fp in fingerprints.items()],
                                PUBLISHED_SCHEMA)
    retry_commit(lambda: write_deltalake(lake.table("control", "published"), data, mode="append"))


def last_published(lake: Lake) -> dict[str, dict[str, Any]]:
    """Per dataset, its latest publish record (silver_versions decoded)."""
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(_read(lake.table("control", "published")), key=lambda r: r["published_at"]):
        out[r["dataset"]] = {**r, "silver_versions": json.loads(r["silver_versions"])}
    return out


def runs(lake: Lake) -> list[dict[str, Any]]:
    """The stage runs logged, oldest first."""
    return sorted(_read(lake.table("control", "runs")), key=lambda r: r["started_at"])


def requeue(lake: Lake, keys: list[str], stage: BatchStage, run_id: str) -> list[str]:
    """Send batches back to `stage` (one commit); only those past it and not being re-ingested
    move (a concurrent stage's compare-and-set then leaves them alone). Returns those sent."""
    current = batches(lake)
    rows = [dict(current[k], stage=BatchStage(stage).value, updated_at=now(), run_id=run_id) for k in keys
            if k in current and current[k]["stage"] in REQUEUEABLE]
    if rows:
        allowed = ", ".join(f"'{s.value}'" for s in REQUEUEABLE)
        merge_with_retry(lake.batches, pa.Table.from_pylist(rows, BATCH_SCHEMA), ["batch_key"],
                         update_when=f"t.stage IN ({allowed}) AND t.fingerprint = s.fingerprint")
    return [r["batch_key"] for r in rows]
