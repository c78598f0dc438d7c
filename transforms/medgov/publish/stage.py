"""Stage 4, publish: curated gold datasets from silver batches that passed the quality gate."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from medgov.publish import ckd_registry
from medgov.quality.holds import parents_in_quarantine, releasable
from medgov.spec.datasets import column_metadata, dataset
from medgov.spec.lifecycle import PUBLISHABLE, BatchStage, stage
from medgov.spec.tables import BATCH_COLUMN, silver_table
from medgov.storage import control, faults
from medgov.storage.commits import sql_in
from medgov.storage.context import Context
from medgov.storage.lineage import DatasetInfo, stage_run

STAGE = stage("publish")


@dataclass
class PublishResult:
    batches: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)


def _silver_or_empty(ctx: Context, table: str, where: str | None) -> DataFrame:
    """A silver table, or an empty frame of its shape when nothing of that kind was delivered yet."""
    uri = ctx.lake.silver(table)
    if ctx.store.exists(uri):
        return ctx.store.read(uri, where)
    return ctx.spark.createDataFrame([], StructType.fromDDL(silver_table(table).ddl)).drop("error")


def publish(ctx: Context, keys: list[str] | None = None) -> PublishResult:
    """Rebuild the CKD registry from every publishable batch; MERGE on the patient key.

    Runs when batches reached `validated` (default) — batches that are `blocked` stay out,
    and so do held rows (`quality.holds`) until their patient or visit is in silver.
    """
    taken = control.taken(ctx.lake, STAGE.takes, keys)
    keys = list(taken)
    result = PublishResult(batches=keys)
    if not keys:
        return result
    lake, store = ctx.lake, ctx.store
    allowed = [k for k, b in control.batches(lake).items() if b["stage"] in PUBLISHABLE]
    scope = sql_in(BATCH_COLUMN["silver"], allowed)
    definition = dataset("ckd_registry")
    silver = {t: lake.silver(t) for t in ("observation", "condition", "patient")}
    uri = lake.gold(definition["name"])
    with stage_run(lake, STAGE.job, ctx.parent, ctx.config.version) as run:
        ctx.progress(f"gold {definition['name']}")
        patients = _silver_or_empty(ctx, "patient", None)
        encounters = _silver_or_empty(ctx, "encounter", None)
        # held rows (patient or visit quarantined or not yet delivered) stay out until released
        optional = ctx.config.visits_optional()
        quarantine = parents_in_quarantine(ctx) if optional else None  # only to tell which visits hold
        obs = releasable(_silver_or_empty(ctx, "observation", scope), patients, encounters, optional, quarantine)
        cond = releasable(_silver_or_empty(ctx, "condition", scope), patients, encounters, optional, quarantine)
        registry = ckd_registry.build(obs, cond, patients, definition, ctx.run_id).cache()
        n = registry.count()  # computed before the merge starts: `publish.merge@<ms>` crashes inside the merge
        faults.point("publish.merge")
        store.merge(uri, registry, ["patient_key"], delete_where="TRUE", run_id=ctx.run_id,
                    description=definition["description"])
        store.describe(uri, f"{definition['title']}. {definition['description']}", column_metadata(definition))
        registry.unpersist()
        result.rows[definition["name"]] = n
        result.versions[definition["name"]] = store.version(uri)
        run.inputs += [DatasetInfo(u) for u in silver.values()]
        lineage = {out: [(silver[t], c) for t, c in cols] for out, cols in ckd_registry.COLUMN_LINEAGE.items()}
        run.outputs.append(DatasetInfo(uri, [(f.name, f.dataType.simpleString()) for f in registry.schema.fields],
                                       rows=n, column_lineage=lineage))
        faults.point("publish.before_bookkeeping")
        control.advance(lake, taken, BatchStage.PUBLISHED, ctx.run_id, only_from=STAGE.takes)
    return result
