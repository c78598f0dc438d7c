"""Delta commits through delta-rs that survive concurrent writers.

No Spark here: the control tables and the Airflow trigger use these without a session.
"""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar, Union

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError


def sql_in(column: str, values: list[str]) -> str:
    """`column IN ('a','b')` with quotes escaped; FALSE for an empty list."""
    if not values:
        return "FALSE"
    quoted = ",".join("'" + v.replace("'", "''") + "'" for v in sorted(set(values)))
    return f"{column} IN ({quoted})"


def _commit(run_id: str | None) -> CommitProperties | None:
    return CommitProperties(custom_metadata={"medgov.run_id": run_id}) if run_id else None


T = TypeVar("T")
# At least this many tries, and on for at least this long: each round of racing writers has
# one winner, so with eight of them a writer can lose many rounds in a row, and under load each
# round takes longer (eight threads upserting 24 control rows on the object store ran out of
# 12 attempts while the machine also ran a 5 M-row benchmark)
COMMIT_ATTEMPTS = 12
COMMIT_PATIENCE_SECONDS = 120.0

# Row groups of at most 64 Ki rows: a reader decodes a whole row group at once, and a resource
# JSON column compresses ~6x, so the default (1 Mi rows) costs a reader gigabytes of memory.
ROW_GROUP_ROWS = 64 * 1024
# Named, because WriterProperties without a codec writes Parquet uncompressed (delta-rs's
# snappy default holds only without them): 1 M rows' silver Observations took 803 MB so,
# 152 MB with snappy and 65 MB with zstd, which Spark, pyarrow, Polars and DuckDB all read.
COMPRESSION = "ZSTD"


def _writer() -> WriterProperties:
    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression=COMPRESSION)

# a table in memory, or a way to open a fresh stream of its batches (each commit attempt
# reads the data anew: a stream can be read only once)
Data = Union[pa.Table, Callable[[], pa.RecordBatchReader]]


def _fresh(data: Data) -> pa.Table | pa.RecordBatchReader:
    return data() if callable(data) else data


def retry_commit(action: Callable[[], T], attempts: int = COMMIT_ATTEMPTS,
                 patience: float = COMMIT_PATIENCE_SECONDS) -> T:
    """Run a Delta commit again when a concurrent writer committed first.

    Delta's optimistic concurrency refuses a commit whose snapshot went stale (two stages,
    or an Airflow ingest and a publish, writing the control or quality tables together);
    every action passed here re-reads the table, so running it again is correct.
    """
    started, attempt = time.monotonic(), 0
    while True:
        try:
            return action()
        except (CommitFailedError, DeltaError) as exc:
            # a creator that lost the race to create the table sees "already exists": retry too
            lost_race = isinstance(exc, CommitFailedError) or "already exists" in str(exc)
            attempt += 1
            if not lost_race or (attempt >= attempts and time.monotonic() - started >= patience):
                raise
            time.sleep(min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))


def _with_field_metadata(data: pa.Table | pa.RecordBatchReader,
                         metadata: dict[str, dict[str, str]]) -> pa.Table | pa.RecordBatchReader:
    """`data` with per-column metadata on its schema's fields (delta-rs keeps it in the table's
    schema when it creates the table)."""
    schema = pa.schema([f.with_metadata({**(f.metadata or {}), **{k.encode(): v.encode() for k, v in
                                                                  metadata.get(f.name, {}).items()}})
                        for f in data.schema], data.schema.metadata)
    if isinstance(data, pa.Table):
        return data.cast(schema)
    return pa.RecordBatchReader.from_batches(schema, (pa.RecordBatch.from_arrays(b.columns, schema=schema)
                                                      for b in data))


def _created(uri: str, data: Data, partition_by: list[str] | None, description: str | None,
             storage_options: dict[str, str] | None, run_id: str | None,
             field_metadata: dict[str, dict[str, str]] | None = None) -> bool:
    """Create the table with `data` (and `field_metadata` on its columns, in the same commit)
    when it does not exist yet; False when it does."""
    if DeltaTable.is_deltatable(uri, storage_options=storage_options):
        return False
    fresh = _fresh(data)
    if field_metadata:
        fresh = _with_field_metadata(fresh, field_metadata)
    # mode "error": a racing creator fails and retries into the update path, instead of
    # overwriting the table the other one just created
    write_deltalake(uri, fresh, partition_by=partition_by, mode="error", description=description,
                    storage_options=storage_options, commit_properties=_commit(run_id), writer_properties=_writer())
    return True


def write_with_retry(uri: str, data: Data, where: str, partition_by: list[str] | None = None,
                     description: str | None = None, storage_options: dict[str, str] | None = None,
                     run_id: str | None = None) -> None:
    """Replace the rows matching `where` with `data` (creating the table on first use)."""

    def attempt() -> None:
        if _created(uri, data, partition_by, description, storage_options, run_id):
            return
        write_deltalake(uri, _fresh(data), mode="overwrite", predicate=where, storage_options=storage_options,
                        commit_properties=_commit(run_id), writer_properties=_writer())

    retry_commit(attempt)


def append_with_retry(uri: str, data: Data, run_id: str | None = None,
                      storage_options: dict[str, str] | None = None) -> None:
    """Append `data` to an existing table (a column a newer medgov adds joins its schema)."""
    retry_commit(lambda: write_deltalake(uri, _fresh(data), mode="append", schema_mode="merge",
                                         storage_options=storage_options, commit_properties=_commit(run_id),
                                         writer_properties=_writer()))


def merge_with_retry(uri: str, data: Data, keys: list[str], delete_where: str | None = None,
                     partition_by: list[str] | None = None, description: str | None = None,
                     storage_options: dict[str, str] | None = None, run_id: str | None = None,
                     update_when: str | None = None, field_metadata: dict[str, dict[str, str]] | None = None) -> None:
    """Upsert `data` on `keys`; optionally delete target rows matching `delete_where` that the
    source no longer holds (a corrected re-delivery withdrawing rows), and update a matched
    row only when `update_when` holds (a compare-and-set). `field_metadata` describes the
    columns of a table this call creates."""
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)

    def attempt() -> None:
        if _created(uri, data, partition_by, description, storage_options, run_id, field_metadata):
            return
        merger = (DeltaTable(uri, storage_options=storage_options)
                  # merge_schema: a column a newer medgov adds to a table appears in an existing lake
                  .merge(_fresh(data), predicate=on, source_alias="s", target_alias="t", commit_properties=_commit(run_id),
                         writer_properties=_writer(), merge_schema=True)
                  .when_matched_update_all(predicate=update_when).when_not_matched_insert_all())
        if delete_where:
            merger = merger.when_not_matched_by_source_delete(predicate=delete_where)
        merger.execute()

    retry_commit(attempt)
