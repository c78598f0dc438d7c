"""Parsed landing tables on their way to bronze.

Ingest parses one batch at a time in the driver; each batch's tables go to Parquet in the
lake's staging folder at once, so the driver never holds more than one batch, and Spark
reads them partition by partition instead of receiving whole tables from the driver. The
folder holds raw delivered values (bronze-grade data): it is removed when ingest ends, and
a crash's leftovers are removed when the next stage starts.

Each staging folder has a sibling `<folder>.owner` naming the process that writes it (host,
pid, the process's start time). A folder whose owner on this host is gone is a crash's
leftover, removed at once; one owned on another host (a shared staging folder) only after a
day; one without an owner (written by an older version) as before.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:  # the stage runner imports this module to clean up: it stays free of Spark
    from pyspark.sql import DataFrame, SparkSession

STALE_SECONDS = 24 * 3600  # a table write's staging older than this belongs to a crashed run
_TABLE_STAGING = re.compile(r"^[a-z_]+-[0-9a-f]{32}$")


def claim(folder: Path) -> Path:
    """Write `folder`'s owner marker (this process); returns the marker's path."""
    import psutil

    marker = folder.with_name(folder.name + ".owner")
    marker.parent.mkdir(parents=True, exist_ok=True)
    me = psutil.Process()
    marker.write_text(json.dumps({"host": socket.gethostname(), "pid": me.pid, "started": me.create_time()}))
    return marker


def _owner_gone(marker: Path) -> bool | None:
    """Whether the process named by `marker` has ended: True or False on this host, None when
    it cannot be told (another host, or an unreadable marker)."""
    import psutil

    try:
        owner = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if owner.get("host") != socket.gethostname():
        return None
    try:
        return abs(psutil.Process(int(owner["pid"])).create_time() - float(owner["started"])) > 1  # pid reused
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True
    except (psutil.Error, KeyError, ValueError, TypeError):
        return None


class ParsedTables:
    """Parsed tables per batch: Parquet under `<staging>/ingest-<run>/`, or in memory when the
    lake has no staging folder (an object-store lake without `MEDGOV_STAGING_DIR`)."""

    def __init__(self, staging: Path | None, run_id: str) -> None:
        self.folder = staging / f"ingest-{run_id}" if staging is not None else None
        self._marker = claim(self.folder) if self.folder is not None else None
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
        from medgov.storage.spark import from_arrow

        if self.folder is None:
            return from_arrow(spark, pa.concat_tables([self._memory[k][table] for k in batch_keys]))
        return spark.read.parquet(*[self._files[k][table] for k in batch_keys])

    def remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._marker is not None:
            self._marker.unlink(missing_ok=True)
        self._memory.clear()


class StagedFrames:
    """Spark frames written once as Parquet under `<staging>/<name>-<uuid>/`, owned by this
    process (a crash's leftover is removed by the next stage start) and removed with it: a
    stage's frames it reads several times, read back instead of cached in the JVM's heap, and
    a table write's rows on their way to delta-rs.

    Spark's cache builds columnar batches on the heap before it can spill them: normalize's
    built resources (resource JSON) ran a 1280 MB heap out of memory at 5 M rows, so the JVM
    needed 2 g. Parquet on local disk costs the heap nothing. Where the lake has no staging
    folder the frames are cached as before."""

    def __init__(self, staging: Path | None, name: str) -> None:
        self.folder = staging / f"{name}-{uuid.uuid4().hex}" if staging is not None else None
        self._marker = claim(self.folder) if self.folder is not None else None
        self._cached: list[DataFrame] = []
        self._count = 0
        self._lock = threading.Lock()  # the stages build tables on two threads

    def write(self, df: DataFrame, **options: str | int) -> Path:
        """Write `df`'s rows (Spark's executors, Parquet `options`) into a folder of their own
        under this one; returns that folder. Needs a staging folder."""
        if self.folder is None:
            raise ValueError("no staging folder to write to")
        with self._lock:
            path = self.folder / f"{self._count:03d}"
            self._count += 1
        writer = df.write.mode("error")
        for k, v in options.items():
            writer = writer.option(k, v)
        writer.parquet(str(path))
        return path

    def stage(self, df: DataFrame) -> DataFrame:
        """`df` computed once: its rows as written, read back from Parquet (or cached)."""
        if self.folder is None:
            cached = df.cache()
            self._cached.append(cached)
            return cached
        return df.sparkSession.read.schema(df.schema).parquet(str(self.write(df)))

    def __enter__(self) -> StagedFrames:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Drop every staged frame (after the last read of any of them); again is harmless."""
        for df in self._cached:
            df.unpersist()
        self._cached.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self._marker is not None:
            self._marker.unlink(missing_ok=True)


def remove_leftovers(staging: Path | None, now: float | None = None, ingest: bool = False) -> list[str]:
    """Remove what crashed runs left in the staging folder (called at every stage start).

    - A folder whose owner marker names a process of this host that has ended goes at once.
    - One owned on another host goes after a day.
    - One without a marker (an older version's): an earlier ingest's parse goes when `ingest`
      (ingest runs under its stage lock, so none is live), a table write's after a day.

    Returns the names removed."""
    if staging is None or not staging.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for p in sorted(staging.iterdir()):
        if p.name.endswith(".owner"):
            if not p.with_name(p.name[:-len(".owner")]).exists() and _owner_gone(p):
                p.unlink(missing_ok=True)  # a marker whose folder was never written or already removed
            continue
        if not p.is_dir() or not (p.name.startswith("ingest-") or _TABLE_STAGING.match(p.name)):
            continue
        marker = p.with_name(p.name + ".owner")
        old = now - p.stat().st_mtime > STALE_SECONDS
        if marker.exists():
            gone = _owner_gone(marker)
            stale = gone is True or (gone is None and old)
        else:
            stale = (p.name.startswith("ingest-") and ingest) or (bool(_TABLE_STAGING.match(p.name)) and old)
        if stale:
            shutil.rmtree(p, ignore_errors=True)
            marker.unlink(missing_ok=True)
            removed.append(p.name)
    return removed
