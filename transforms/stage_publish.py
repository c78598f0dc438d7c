"""Stage 4 — publish: curated gold datasets from silver batches that passed the quality gate."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame

from medgov import faults, gold_ckd, state
from medgov import silver as silver_specs
from medgov.context import Context
from medgov.lineage import DatasetInfo, stage_run
from medgov.resources import schema_file
from medgov.commits import sql_in

PUBLISHABLE = ("validated", "published")


@dataclass
class PublishResult:
    batches: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)


def column_metadata(definition: dict) -> dict[str, dict[str, str]]:
    """Delta column metadata from a dataset definition: comment + GB/T 39725 category and level."""
    return {name: {"comment": f"{c['comment']} [GB/T 39725: {c['category']}, level {c['level']}]",
                   "gbt39725.category": c["category"], "gbt39725.level": str(c["level"])}
            for name, c in definition["columns"].items()}


def _silver_or_empty(ctx: Context, target: str, where: str | None) -> DataFrame:
    """A silver table, or an empty frame of its shape when nothing of that kind was delivered yet."""
    uri = ctx.lake.table("silver", target)
    if ctx.store.exists(uri):
        return ctx.store.read(uri, where)
    spec = next(s for s in silver_specs.SPECS if s.target == target)
    return ctx.spark.createDataFrame([], silver_specs.output_schema(spec)).drop("error")


def publish(ctx: Context, keys: list[str] | None = None) -> PublishResult:
    """Rebuild the CKD registry from every publishable batch; MERGE on the patient key.

    Runs when batches reached `validated` (default) — batches that are `blocked` stay out.
    """
    taken = state.taken(ctx.lake, "validated", keys)
    keys = list(taken)
    result = PublishResult(batches=keys)
    if not keys:
        return result
    lake, store = ctx.lake, ctx.store
    allowed = [k for k, b in state.batches(lake).items() if b["stage"] in PUBLISHABLE]
    scope = sql_in("batch_key", allowed)
    definition = schema_file("datasets/ckd_registry.yaml")
    silver = {t: lake.table("silver", t) for t in ("observation", "condition", "patient")}
    uri = lake.table("gold", definition["name"])
    with stage_run(lake, "medgov.publish", ctx.parent) as run:
        ctx.progress("gold ckd_registry")
        obs = _silver_or_empty(ctx, "observation", scope)
        cond = _silver_or_empty(ctx, "condition", scope)
        patients = _silver_or_empty(ctx, "patient", None)
        registry = gold_ckd.ckd_registry(obs, cond, patients, definition, ctx.run_id).cache()
        n = registry.count()  # computed before the merge starts: `publish.merge@<ms>` crashes inside the merge
        faults.point("publish.merge")
        store.merge(uri, registry, ["patient_key"], delete_where="TRUE", run_id=ctx.run_id,
                    description=definition["description"])
        store.describe(uri, f"{definition['title']}. {definition['description']}", column_metadata(definition))
        registry.unpersist()
        result.rows[definition["name"]] = n
        result.versions[definition["name"]] = store.version(uri)
        for t, u in silver.items():
            run.inputs.append(DatasetInfo(u))
        lineage = {out: [(silver[t], c) for t, c in cols] for out, cols in gold_ckd.COLUMN_LINEAGE.items()}
        run.outputs.append(DatasetInfo(uri, [(f.name, f.dataType.simpleString()) for f in registry.schema.fields],
                                       rows=n, column_lineage=lineage))
        faults.point("publish.before_bookkeeping")
        state.advance(lake, taken, "published", ctx.run_id, only_from="validated")
    return result
