"""What every stage needs: the lake, the Spark session, the table store and the run identity."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import SparkSession

from medgov.lake import Lake
from medgov.lineage import ParentRun
from medgov.spark import get_spark
from medgov.tables import TableStore, store_for

Progress = Callable[[str], None]


@dataclass
class Context:
    lake: Lake
    spark: SparkSession
    store: TableStore
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    parent: ParentRun | None = None
    progress: Progress = lambda message: None


def make_context(lake: str, parent: ParentRun | None = None, progress: Progress | None = None) -> Context:
    """A context on the process's Spark session."""
    spark = get_spark()
    ctx = Context(Lake.at(lake), spark, store_for(spark), parent=parent)
    if progress:
        ctx.progress = progress
    return ctx
