"""Stage 4, publish: the curated datasets declared in `schemas/datasets/` from the silver
batches that passed the gate, MERGEd into gold.

Incremental: a dataset is recomputed only for the persons whose silver rows changed since it
was last published (the rows of the batches being published, and every row added, removed or
changed since the versions it last read) and MERGEd on its key; a person recomputed
who no longer qualifies is deleted. A dataset whose definition changed, or whose last read
versions are gone (vacuumed), is rebuilt over every person.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from medgov.publish.cohort import CARRIED, build, view_frames
from medgov.publish.release import write_releases
from medgov.quality.holds import parents_in_quarantine, releasable
from medgov.spec.datasets import Dataset, column_metadata, datasets
from medgov.spec.lifecycle import PUBLISHABLE, BatchStage, stage
from medgov.spec.tables import BATCH_COLUMN, silver_table
from medgov.storage import control, faults
from medgov.storage.batch_rows import batch_rows
from medgov.storage.changes import changed_keys
from medgov.storage.commits import sql_in
from medgov.storage.context import Context
from medgov.storage.lineage import DatasetInfo, stage_run
from medgov.views.lake import silver_table_of

STAGE = stage("publish")
# silver tables whose rows decide who is in a dataset (encounters: a visit that arrives releases
# held rows, so its person is recomputed too)
PERSON_TABLES = ("patient", "encounter", "observation", "condition", "medication_request")
# an increment's resources per partition (a person has a few dozen resources of about 1 kB)
PERSONS_PER_PARTITION = 5_000


@dataclass
class PublishResult:
    batches: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # dataset -> persons recomputed and written
    versions: dict[str, int | None] = field(default_factory=dict)
    recomputed: dict[str, str] = field(default_factory=dict)  # dataset -> "all" or "<n> persons"


def _silver_or_empty(ctx: Context, table: str, where: str | None) -> DataFrame:
    """A silver table, or an empty frame of its shape when nothing of that kind was delivered yet."""
    uri = ctx.lake.silver(table)
    if ctx.store.exists(uri):
        return ctx.store.read(uri, where)
    return ctx.spark.createDataFrame([], StructType.fromDDL(silver_table(table).ddl)).drop("error")


def _versions(ctx: Context) -> dict[str, int]:
    return {t: v for t in PERSON_TABLES if (v := ctx.store.version(ctx.lake.silver(t))) is not None}


def _changed_persons(ctx: Context, since: dict[str, int]) -> set[str] | None:
    """Persons with a silver row added, removed or changed since the versions `since` (row by
    row: `storage.changes`); None when those versions cannot be read any more (the caller then
    rebuilds everything)."""
    persons: set[str] = set()
    options = getattr(ctx.store, "storage_options", None)
    for t in PERSON_TABLES:
        uri = ctx.lake.silver(t)
        if not ctx.store.exists(uri):
            continue
        key = "id" if t == "patient" else "patient_key"
        keys = changed_keys(uri, since.get(t), key, ["id", "resource_json"], options)
        if keys is None:
            return None
        persons |= keys
    return persons


def _persons_of_batches(ctx: Context, keys: list[str]) -> set[str]:
    """Persons with a silver row from one of the batches `keys`, read through delta-rs (two
    columns of the delivering institutions' partitions; no Spark job)."""
    persons: set[str] = set()
    for t in PERSON_TABLES:
        uri = ctx.lake.silver(t)
        if ctx.store.exists(uri):
            column = "id" if t == "patient" else "patient_key"
            hit = batch_rows(uri, keys, [column], getattr(ctx.store, "storage_options", None)).column(column)
            persons.update(k for k in hit.to_pylist() if k)
    return persons


def _resources(ctx: Context, scope: str, persons: DataFrame | None) -> dict[str, DataFrame]:
    """Per FHIR resource type, the silver rows a dataset may use: resources of publishable
    batches that are not held (patients: every one in silver), for `persons` only when given.
    The persons are kept first, as each table is read: an increment's few persons then never
    take the whole lake through the hold joins."""
    def of(table: str, where: str | None) -> DataFrame:
        rows = _silver_or_empty(ctx, table, where)
        if persons is None:
            return rows
        key = "id" if table == "patient" else "patient_key"
        return rows.join(F.broadcast(persons.withColumnRenamed("patient_key", key)), key, "left_semi")

    patients = of("patient", None)
    # every visit: whether a row's visit is in silver does not depend on whose it says it is
    encounters = _silver_or_empty(ctx, "encounter", None)
    optional = ctx.config.visits_optional()
    quarantine = parents_in_quarantine(ctx) if optional else None  # only to tell which visits hold
    out = {"Patient": patients.select(F.col("id").alias("patient_key"), "resource_json", *CARRIED)}
    for table in ("observation", "condition", "medication_request"):
        rows = releasable(of(table, scope), patients, encounters, optional, quarantine)
        out[silver_table(table).resource_type] = rows.select("patient_key", "resource_json", *CARRIED)
    return {k: v.drop("patient_key") for k, v in out.items()}


def publish(ctx: Context, keys: list[str] | None = None) -> PublishResult:
    """Publish every declared dataset for the batches in `validated` (default): batches that
    are `blocked` stay out, and so do held rows (`quality.holds`) until their patient or visit
    is in silver."""
    taken = control.taken(ctx.lake, STAGE.takes, keys)
    keys = list(taken)
    result = PublishResult(batches=keys)
    if not keys:
        return result
    lake = ctx.lake
    allowed = [k for k, b in control.batches(lake).items() if b["stage"] in PUBLISHABLE]
    scope = sql_in(BATCH_COLUMN["silver"], allowed)
    versions = _versions(ctx)
    last = control.last_published(lake)
    batch_persons = _persons_of_batches(ctx, keys)
    with stage_run(lake, STAGE.job, ctx.parent, ctx.config.version) as run:
        upstream: dict[str, DataFrame] = {}
        scopes: dict[frozenset[str] | None, tuple[dict[str, DataFrame], dict[str, DataFrame]]] = {}
        changed: dict[str, set[str] | None] = {}  # by the silver versions of a last publish: read once
        for d in datasets():
            uri = lake.gold(d.name)
            persons = _scope(ctx, d, uri, last.get(d.name), batch_persons, changed)
            ctx.progress(f"gold {d.name}")
            key = None if persons is None else frozenset(persons)
            if key not in scopes:  # datasets with the same persons share resources and views
                frame = None if persons is None else ctx.spark.createDataFrame(
                    [(p,) for p in sorted(persons)], "patient_key string")
                resources = _resources(ctx, scope, frame)
                if frame is not None:  # a few persons' rows: read the lake once, not once per view
                    # in as few partitions as their number needs: the views and the dataset's
                    # SQL then run a few tasks per job, not one per file split of the lake
                    parts = max(1, -(-len(persons) // PERSONS_PER_PARTITION))
                    resources = {k: v.localCheckpoint(eager=True).coalesce(parts) for k, v in resources.items()}
                scopes[key] = (resources, {})
            resources, views = scopes[key]
            # computed once, before the merge starts (`publish.merge@<ms>` crashes inside the
            # merge): counting, the key list and the write then read the materialised rows
            rows = build(ctx.spark, d, view_frames(d, resources, views), upstream, ctx.run_id).localCheckpoint(eager=True)
            n = rows.count()
            faults.point("publish.merge")
            _merge(ctx, d, uri, rows, persons)
            ctx.store.describe(uri, d.table_description, column_metadata(d))
            # a dataset that depends on this one reads it whole (it may be rebuilt over everyone)
            upstream[d.name] = ctx.store.read(uri)
            result.rows[d.name] = n
            result.versions[d.name] = ctx.store.version(uri)
            result.recomputed[d.name] = "all" if persons is None else f"{len(persons)} persons"
            run.outputs.append(DatasetInfo(uri, [(f.name, f.dataType.simpleString()) for f in rows.schema.fields],
                                           rows=n, column_lineage=_lineage(ctx, d)))
            # the copies the serving layer shares, one per column level (medgov.publish.release)
            for release_uri, cols, released in write_releases(lake, d):
                run.outputs.append(DatasetInfo(release_uri, [(c, str(d.columns[c]["type"])) for c in cols],
                                               rows=released, column_lineage={c: [(uri, c)] for c in cols}))
        run.inputs += [DatasetInfo(lake.silver(t)) for t in PERSON_TABLES if t in versions]
        faults.point("publish.before_bookkeeping")
        control.record_published(lake, {d.name: d.fingerprint for d in datasets()}, versions, ctx.run_id)
        control.advance(lake, taken, BatchStage.PUBLISHED, ctx.run_id, only_from=STAGE.takes)
    return result


def _scope(ctx: Context, d: Dataset, uri: str, last: dict | None, batch_persons: set[str],
           changed: dict[str, set[str] | None]) -> set[str] | None:
    """The persons to recompute for `d`, or None for all of them (`changed` caches
    `_changed_persons` by the versions it starts from: datasets published together share them)."""
    if last is None or last["fingerprint"] != d.fingerprint or not ctx.store.exists(uri):
        return None
    since = json.dumps(last["silver_versions"], sort_keys=True)
    if since not in changed:
        changed[since] = _changed_persons(ctx, last["silver_versions"])
    persons = changed[since]
    return None if persons is None else persons | batch_persons


def _merge(ctx: Context, d: Dataset, uri: str, rows: DataFrame, persons: set[str] | None) -> None:
    """Write the recomputed rows: everything (a rebuild) or the persons recomputed, deleting
    those who no longer qualify, in one MERGE."""
    if persons is None:
        ctx.store.merge(uri, rows, [d.key], delete_where="TRUE", run_id=ctx.run_id,
                        description=d.table_description, columns=column_metadata(d))
        return
    kept = {r[0] for r in rows.select(d.key).collect()}
    gone = sorted(persons - kept)
    ctx.store.merge(uri, rows, [d.key], delete_where=sql_in(f"t.`{d.key}`", gone) if gone else None,
                    run_id=ctx.run_id, description=d.table_description)


def _lineage(ctx: Context, d: Dataset) -> dict[str, list[tuple[str, str]]]:
    """Column lineage: each published column from the silver table and FHIRPath of the view
    columns it is declared `from` (`Observation.value.ofType(Quantity).value`; a carried
    column is the silver column itself)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, col in d.columns.items():
        sources = []
        for ref in col.get("from", []):
            view_name, column = ref.split(".", 1)
            view = d.views[view_name]
            table = ctx.lake.silver(silver_table_of(view["resource"]))
            path = _view_path(view, column)
            sources.append((table, column if path is None else f"{view['resource']}.{path}"))
        if sources:
            out[name] = sources
    return out


def _view_path(view: dict, column: str) -> str | None:
    """The FHIRPath of a view's column (None: a carried silver column)."""
    stack = list(view.get("select", []))
    while stack:
        s = stack.pop()
        for c in s.get("column", []) or []:
            if c["name"] == column:
                return c["path"]
        stack += (s.get("select") or []) + (s.get("unionAll") or [])
    return None


__all__ = ["publish", "PublishResult"]
