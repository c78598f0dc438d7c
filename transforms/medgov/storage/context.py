"""What every stage needs: the lake, the Spark session, the table store and the run identity."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import SparkSession

from medgov.storage.lake import Lake
from medgov.storage.lineage import ParentRun
from medgov.storage.spark import get_spark
from medgov.storage.table_store import TableStore, store_for

Progress = Callable[[str], None]


@dataclass
class Context:
    """One stage run's surroundings: the entry point every stage function takes."""

    lake: Lake
    spark: SparkSession
    store: TableStore
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    parent: ParentRun | None = None
    progress: Progress = lambda message: None


def make_context(lake: str | Lake, parent: ParentRun | None = None, progress: Progress | None = None) -> Context:
    """A context on the process's Spark session."""
    spark = get_spark()
    ctx = Context(lake if isinstance(lake, Lake) else Lake.at(lake), spark, store_for(spark), parent=parent)
    if progress:
        ctx.progress = progress
    return ctx
