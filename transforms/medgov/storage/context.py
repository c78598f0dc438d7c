"""What every stage needs: the lake, the Spark session, the table store, the site's
configuration and the run identity."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from pyspark.sql import SparkSession

from medgov.spec.site import SiteConfig, load_site
from medgov.storage.lake import Lake
from medgov.storage.lineage import ParentRun
from medgov.storage.spark import get_spark
from medgov.storage.table_store import TableStore, store_for

if TYPE_CHECKING:
    from medgov.storage.workload import Workload

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
    config: SiteConfig = field(default_factory=load_site)


def make_context(lake: str | Lake, parent: ParentRun | None = None, progress: Progress | None = None,
                 config: SiteConfig | None = None, work: Workload | None = None) -> Context:
    """A context on the process's Spark session; `config` defaults to `load_site()`
    (MEDGOV_CONFIG, else the shipped defaults); `work`, the size of the run about to start
    (`medgov.pipeline.workload.run_size`), chooses the Spark profile."""
    config = config or load_site()  # before Spark starts: a bad site file fails fast
    spark = get_spark(work=work)
    ctx = Context(lake if isinstance(lake, Lake) else Lake.at(lake), spark, store_for(spark), parent=parent,
                  config=config)
    if progress:
        ctx.progress = progress
    return ctx
