"""Delta table access behind one small interface.

Default: `deltalake` (delta-rs) commits the tables — Spark here cannot fetch the Delta JVM
jars. Spark reads a table's current snapshot straight from its Parquet files (the files of
the Delta log's snapshot; delta-rs writes neither deletion vectors nor column mapping), so
reads stay distributed. Writes go the other way without collecting: Spark's executors write the
rows as Parquet to a staging folder, partition by partition, and delta-rs streams them from
there into the table in one commit, so the driver holds a few record batches at a time, not a
table (an upsert into an existing table: an append of its new keys and a MERGE of the known
ones, see `DeltaRsStore._upsert`). On a cluster whose session is Delta-enabled (`spark.sql.extensions`), `SparkDeltaStore`
does the same through delta-spark.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from medgov.errors import MedgovError
from medgov.storage.commits import Data, append_with_retry, merge_with_retry, retry_commit, write_with_retry
from medgov.storage.lake import Lake
from medgov.storage.memory import return_freed_memory
from medgov.storage.spark import delta_enabled
from medgov.storage.staging import StagedFrames


STAGED_ROW_GROUP_BYTES = 16 * 1024 * 1024
SCAN_BATCH_ROWS = 8 * 1024
# staged beside an upsert's rows: the row's key is already in the table (see DeltaRsStore.merge)
KNOWN = "_medgov_known"
# One delta-rs commit at a time per process: the stages write their tables from a thread each
# (`storage.spark.side_by_side`), and each delta-rs write holds its open row groups, one per
# partition, in the driver. Two at once put the driver at 1.9 GB at 5 M rows. Spark's staging
# of the next table's rows still overlaps the commit.
_COMMITS = threading.Lock()


class TableStore(Protocol):
    """What the pipeline needs from a table format."""

    def exists(self, uri: str) -> bool: ...

    def read(self, uri: str, where: str | None = None) -> DataFrame: ...

    def replace(self, uri: str, df: DataFrame, where: str, partition_by: list[str] | None = None,
                run_id: str | None = None, description: str | None = None) -> None: ...

    def merge(self, uri: str, df: DataFrame, keys: list[str], delete_where: str | None = None,
              partition_by: list[str] | None = None, run_id: str | None = None,
              description: str | None = None, update_when: str | None = None,
              columns: dict[str, dict[str, str]] | None = None) -> None:
        """Upsert `df` on `keys`; `columns` (column -> metadata, as `describe` takes) may be
        written with a table this call creates, saving `describe` a commit per column."""

    def version(self, uri: str) -> int | None: ...

    def describe(self, uri: str, description: str, columns: dict[str, dict[str, str]]) -> None: ...


class DeltaRsStore:
    """Tables written by delta-rs, read by Spark from the snapshot's Parquet files."""

    def __init__(self, spark: SparkSession, storage_options: dict[str, str] | None = None) -> None:
        self.spark = spark
        self.storage_options = storage_options
        # staged Parquet with microsecond UTC timestamps, as delta-rs expects (also for sessions
        # medgov did not build; see storage.spark.get_spark)
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")

    def exists(self, uri: str) -> bool:
        return DeltaTable.is_deltatable(uri, storage_options=self.storage_options)

    def table(self, uri: str) -> DeltaTable:
        return DeltaTable(uri, storage_options=self.storage_options)

    def read(self, uri: str, where: str | None = None) -> DataFrame:
        dt = self.table(uri)
        schema = from_arrow_schema(pa.schema(dt.schema().to_arrow()))
        files = dt.file_uris()
        if not files:
            df = self.spark.createDataFrame([], schema)
        else:
            part_cols = dt.metadata().partition_columns
            reader = self.spark.read.schema(schema)
            if part_cols:
                reader = reader.option("basePath", uri)
            try:
                df = reader.parquet(*files).select(*schema.fieldNames())
            except Exception as exc:
                if "No FileSystem for scheme" not in str(exc):
                    raise
                raise MedgovError(_no_connector(uri)) from None
        return df.where(where) if where else df

    @contextmanager
    def _staged_rows(self, uri: str, df: DataFrame) -> Iterator[pa.Table | pds.Dataset]:
        """The rows of `df` as something delta-rs can read more than once, without the driver
        holding them all: Parquet written by the executors, as a dataset to scan (in memory
        only where the lake has no local staging folder)."""
        root = Lake.at(uri.rsplit("/", 2)[0]).staging  # <lake>/<zone>/<table>
        if root is None:
            yield df.toArrow()
            return
        try:
            with StagedFrames(root, Path(uri).name) as frames:
                # small row groups: delta-rs decodes one row group at a time (see commits.ROW_GROUP_ROWS)
                folder = frames.write(df, **{"parquet.block.size": STAGED_ROW_GROUP_BYTES})
                parts = sorted(str(p) for p in folder.glob("*.parquet"))
                # nothing written: an empty table of the frame's shape
                yield pds.dataset(parts, format="parquet") if parts else df.limit(0).toArrow()
        finally:
            return_freed_memory()  # the write's batches are freed: their pages go back to the OS

    @contextmanager
    def _staged(self, uri: str, df: DataFrame) -> Iterator[Data]:
        """`_staged_rows`, as the commits take it: a table, or a way to stream the batches anew."""
        with self._staged_rows(uri, df) as rows:
            yield rows if isinstance(rows, pa.Table) else _scan(rows)

    def replace(self, uri, df, where, partition_by=None, run_id=None, description=None) -> None:
        with self._staged(uri, df) as data, _COMMITS:
            write_with_retry(uri, data, where, partition_by, description, self.storage_options, run_id)

    def merge(self, uri, df, keys, delete_where=None, partition_by=None, run_id=None, description=None,
              update_when=None, columns=None) -> None:
        if delete_where is None and self.exists(uri):
            self._upsert(uri, df, keys, run_id, update_when)
            return
        with self._staged(uri, df) as data, _COMMITS:
            merge_with_retry(uri, data, keys, delete_where, partition_by, description, self.storage_options,
                             run_id, update_when, columns)

    def _upsert(self, uri: str, df: DataFrame, keys: list[str], run_id: str | None, update_when: str | None) -> None:
        """MERGE only the rows whose key the table holds; append the others. delta-rs's MERGE
        joins the source with every row of the partitions it touches, in memory: a day's
        9,456 new rows into a 5 M-row lake held 9.6 GB in the driver, for rows that match
        nothing. Spark finds the known keys by reading the table's key columns alone. Two
        commits instead of one: a crash between them leaves rows of a batch whose stage has not
        moved on, and the next run's MERGE matches and rewrites them the same."""
        known = (self.read(uri).select(*keys).join(df.select(*keys), keys, "left_semi").distinct()
                 .withColumn(KNOWN, F.lit(True)))
        marked = df.join(known, keys, "left").select(*df.columns, KNOWN)
        with self._staged_rows(uri, marked) as rows, _COMMITS:
            new, old = _split(rows)
            if new is not None:
                append_with_retry(uri, new, run_id, self.storage_options)
            if old is not None:
                merge_with_retry(uri, old, keys, storage_options=self.storage_options, run_id=run_id,
                                 update_when=update_when)

    def version(self, uri: str) -> int | None:
        return self.table(uri).version() if self.exists(uri) else None

    def describe(self, uri: str, description: str, columns: dict[str, dict[str, str]]) -> None:
        """Table description and per-column metadata (`comment` is what Spark shows), committed
        only where they differ from what the table already says."""
        if self.table(uri).metadata().description != description:
            retry_commit(lambda: self.table(uri).alter.set_table_description(description))
        current = {f.name: dict(f.metadata) for f in self.table(uri).schema().fields}
        for name, meta in columns.items():
            if name in current and any(current[name].get(k) != v for k, v in meta.items()):
                retry_commit(lambda: self.table(uri).alter.set_column_metadata(name, meta))


def _scan(rows: pds.Dataset, where: pc.Expression | None = None, columns: list[str] | None = None) -> Data:
    """A way to stream `rows` (those matching `where`) batch by batch, anew for each commit attempt."""
    # 8 Ki-row batches: writing 1 M silver Observations through delta-rs peaked 300 MB lower
    # than with 64 Ki rows (1.09 against 1.40 GB), and no slower
    return lambda: rows.scanner(columns=columns, filter=where, batch_size=SCAN_BATCH_ROWS, batch_readahead=1,
                                fragment_readahead=1).to_reader()


def _split(rows: pa.Table | pds.Dataset) -> tuple[Data | None, Data | None]:
    """Staged upsert rows -> (rows to append, rows to MERGE), without the `KNOWN` mark; None
    for a side without rows. Counting reads the mark's column alone."""
    known = pc.field(KNOWN).is_valid()
    if isinstance(rows, pa.Table):
        sides = [rows.filter(w).drop_columns([KNOWN]) for w in (~known, known)]
        return tuple(t if t.num_rows else None for t in sides)  # type: ignore[return-value]
    n_known, n_all = rows.count_rows(filter=known), rows.count_rows()
    columns = [n for n in rows.schema.names if n != KNOWN]
    return (_scan(rows, ~known, columns) if n_all > n_known else None,
            _scan(rows, known, columns) if n_known else None)


def _no_connector(uri: str) -> str:
    scheme = uri.split("://", 1)[0]
    return (f"this Spark session cannot read {scheme}:// files, so stages after ingest cannot read "
            f"{uri}: give it the Hadoop S3A connector (hadoop-aws) and "
            f"spark.hadoop.fs.{scheme}.impl=org.apache.hadoop.fs.s3a.S3AFileSystem (infra/README.md, "
            "object-store lake)")


class SparkDeltaStore:
    """Tables through delta-spark, for sessions that already have the Delta extension."""

    def __init__(self, spark: SparkSession) -> None:
        from delta.tables import DeltaTable as SparkDeltaTable  # needs the Delta jars at run time

        self.spark = spark
        self._dt = SparkDeltaTable

    def exists(self, uri: str) -> bool:
        return self._dt.isDeltaTable(self.spark, uri)

    def read(self, uri, where=None) -> DataFrame:
        df = self.spark.read.format("delta").load(uri)
        return df.where(where.replace("t.", "")) if where else df

    def replace(self, uri, df, where, partition_by=None, run_id=None, description=None) -> None:
        writer = df.write.format("delta")
        if run_id:
            writer = writer.option("userMetadata", run_id)
        if not self.exists(uri):
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            writer.mode("overwrite").save(uri)
            return
        writer.mode("overwrite").option("replaceWhere", where).save(uri)

    def merge(self, uri, df, keys, delete_where=None, partition_by=None, run_id=None, description=None,
              update_when=None, columns=None) -> None:  # columns: `describe` writes them
        if not self.exists(uri):
            self.replace(uri, df, "TRUE", partition_by, run_id, description)
            return
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        m = self._dt.forPath(self.spark, uri).alias("t").merge(df.alias("s"), on)
        m = m.whenMatchedUpdateAll(condition=update_when).whenNotMatchedInsertAll()
        if delete_where:
            m = m.whenNotMatchedBySourceDelete(condition=delete_where)
        m.execute()

    def version(self, uri: str) -> int | None:
        if not self.exists(uri):
            return None
        return self._dt.forPath(self.spark, uri).history(1).collect()[0]["version"]

    def describe(self, uri: str, description: str, columns: dict[str, dict[str, str]]) -> None:
        esc = lambda s: s.replace("'", "\\'")  # noqa: E731
        self.spark.sql(f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ('comment' = '{esc(description)}')")
        for name, meta in columns.items():
            self.spark.sql(f"ALTER TABLE delta.`{uri}` ALTER COLUMN `{name}` COMMENT '{esc(meta['comment'])}'")


def store_for(spark: SparkSession) -> TableStore:
    """delta-spark when the session is Delta-enabled (or MEDGOV_TABLE_ENGINE=spark), else delta-rs."""
    engine = os.environ.get("MEDGOV_TABLE_ENGINE", "auto")
    if engine == "spark" or (engine == "auto" and delta_enabled(spark)):
        return SparkDeltaStore(spark)
    return DeltaRsStore(spark)
