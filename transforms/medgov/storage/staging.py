"""Parsed landing tables on their way to bronze.

Ingest parses one batch at a time in the driver; each batch's tables go to Parquet in the
lake's staging folder at once, so the driver never holds more than one batch, and Spark
reads them partition by partition instead of receiving whole tables from the driver. The
folder holds raw delivered values (bronze-grade data): it is removed when ingest ends, and
a crash's leftovers are removed by the next ingest.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from medgov.storage.spark import from_arrow

STALE_SECONDS = 24 * 3600  # a table write's staging older than this belongs to a crashed run
_TABLE_STAGING = re.compile(r"^[a-z_]+-[0-9a-f]{32}$")


class ParsedTables:
    """Parsed tables per batch: Parquet under `<staging>/ingest-<run>/`, or in memory when the
    lake has no staging folder (an object-store lake without `MEDGOV_STAGING_DIR`)."""

    def __init__(self, staging: Path | None, run_id: str) -> None:
        self.folder = staging / f"ingest-{run_id}" if staging is not None else None
        self._memory: dict[str, dict[str, pa.Table]] = {}
        self._files: dict[str, dict[str, str]] = {}

    def add(self, batch_key: str, tables: dict[str, pa.Table]) -> None:
        if self.folder is None:
            self._memory[batch_key] = tables
            return
        n = len(self._files)
        for table, t in tables.items():
            path = self.folder / table / f"{n:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(t, path)
            self._files.setdefault(batch_key, {})[table] = str(path)

    def frame(self, spark: SparkSession, table: str, batch_keys: list[str]) -> DataFrame:
        """The rows of `table` from the given batches."""
        if self.folder is None:
            return from_arrow(spark, pa.concat_tables([self._memory[k][table] for k in batch_keys]))
        return spark.read.parquet(*[self._files[k][table] for k in batch_keys])

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self._memory.clear()


def remove_leftovers(staging: Path | None, now: float | None = None) -> list[str]:
    """Remove what crashed runs left in the staging folder: every earlier ingest's parsed
    tables (ingest runs under its stage lock, so none is live) and table writes' staging older
    than a day. Returns the names removed."""
    if staging is None or not staging.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for p in staging.iterdir():
        stale = p.name.startswith("ingest-") or (_TABLE_STAGING.match(p.name) and now - p.stat().st_mtime > STALE_SECONDS)
        if p.is_dir() and stale:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed
