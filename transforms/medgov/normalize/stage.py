"""Stage 2, normalize: bronze batches -> FHIR R4 silver tables (Delta), pseudonymised."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medgov.domain.columns import with_source_key
from medgov.domain.pseudonym import key_fingerprint, load_key
from medgov.normalize import remap, silver
from medgov.quality import results
from medgov.spec.checks import medgov_check
from medgov.spec.contracts import contract
from medgov.spec.lifecycle import BatchStage, stage
from medgov.spec.tables import BATCH_COLUMN, PATIENT_XREF, SILVER_RESOURCES
from medgov.spec.terminology import Terminology
from medgov.storage import control, faults
from medgov.storage.batch_rows import batch_rows
from medgov.storage.commits import sql_in
from medgov.storage.context import Context
from medgov.storage.lineage import DatasetInfo, TerminologyFacet, stage_run
from medgov.storage.spark import side_by_side
from medgov.storage.staging import StagedFrames

STAGE = stage("normalize")


@dataclass
class NormalizeResult:
    batches: list[str] = field(default_factory=list)
    resources: dict[str, int] = field(default_factory=dict)  # silver table -> resources published
    invalid: dict[str, int] = field(default_factory=dict)  # silver table -> rows quarantined
    unmapped_lab_codes: int = 0
    map_methods: Counter = field(default_factory=Counter)  # observations built, by how their code was found
    remapped: list[str] = field(default_factory=list)  # batches sent back because the concept maps changed
    relinked_resources: int = 0  # earlier resources moved to the person key their patient file established
    regated: list[str] = field(default_factory=list)  # blocked batches sent back to the gate by a later delivery


def _schema_of(df: DataFrame) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in df.schema.fields]


def _relink(ctx: Context, changes: DataFrame, keys: list[str]) -> int:
    """Move earlier batches' resources to the person key their patient file now establishes."""
    orgs = [r[0] for r in changes.select("org_code").distinct().collect()]
    scope_old = f"{sql_in('org_code', orgs)} AND NOT ({sql_in('batch_key', keys)})"  # prunes partitions
    moved_total = 0
    for target in (t.name for t in SILVER_RESOURCES if t.name != "patient"):
        uri = ctx.lake.silver(target)
        if ctx.store.exists(uri):
            ctx.progress(f"relink {target}")
            earlier = ctx.store.read(uri, scope_old)
            # usually nothing points at a changed key (new patients): a look at one column says so
            # without reading the resources
            if silver.referencing(earlier, changes).limit(1).count() == 0:
                continue
            moved = silver.relink(earlier, changes).cache()
            n_moved = moved.count()
            if n_moved:
                ctx.store.merge(uri, moved, ["org_code", "id"], run_id=ctx.run_id)
            moved_total += n_moved
            moved.unpersist()
    return moved_total


def _holds_batches(ctx: Context, uri: str, keys: list[str]) -> bool:
    """True when silver table `uri` has a row of one of the batches `keys` (a re-delivery, or
    a batch normalized again)."""
    if not ctx.store.exists(uri):
        return False
    try:
        return batch_rows(uri, keys, [BATCH_COLUMN["silver"]], getattr(ctx.store, "storage_options", None)).num_rows > 0
    except Exception:  # noqa: BLE001 - a table delta-rs cannot read (delta-spark features): assume so
        return True


def _count_build(ctx: Context, spec: silver.Spec, out: DataFrame, checks: list[dict]) -> tuple[int, int, Counter]:
    """One pass over the built rows: per-batch build results for the quality table, the
    totals of invalid rows and unmapped lab codes, and built rows by mapping method."""
    unmapped = F.col("error").isNull() & ~F.coalesce(F.col("mapped"), F.lit(True)) if "mapped" in out.columns \
        else F.lit(False)
    method = F.col("map_method") if "map_method" in out.columns else F.lit(None).cast("string")
    per_batch = out.groupBy("batch_key", F.split("error", ": ").getItem(0).alias("kind"), method.alias("method")).agg(
        F.count(F.lit(1)).alias("n"), F.sum(unmapped.cast("int")).alias("unmapped")).collect()
    at = control.now()
    check = medgov_check(f"normalize.{spec.source}", "rows_build_valid_fhir")
    for key in sorted({r["batch_key"] for r in per_batch}):
        rows = [r for r in per_batch if r["batch_key"] == key]
        kinds: Counter[str] = Counter()
        for r in rows:
            if r["kind"] is not None:
                kinds[r["kind"]] += r["n"]
        checks += results.row_results(check, ctx.run_id, key, sum(r["n"] for r in rows), kinds, at)
    invalid = sum(r["n"] for r in per_batch if r["kind"] is not None)
    methods: Counter[str] = Counter()
    for r in per_batch:
        if r["kind"] is None and r["method"] is not None:
            methods[r["method"]] += r["n"]
    return invalid, int(sum(r["unmapped"] or 0 for r in per_batch)) if spec.source == "lab_result" else 0, methods


def _build(ctx: Context, spec: silver.Spec, scope: str, key: bytes, term: Terminology, keys: list[str],
           result: NormalizeResult, frames: StagedFrames
           ) -> tuple[DataFrame, DataFrame, list[dict], tuple[int, int, Counter], list[DatasetInfo]]:
    """One bronze table's resources, built once (staged in `frames`) and counted: (every built
    row, the valid ones, the build's quality results, (invalid, unmapped lab codes, rows by
    mapping method), lineage outputs). The patients' also commit the cross-reference, relinking first what
    earlier batches filed under a key that changes (counted into `result`)."""
    lake, store = ctx.lake, ctx.store
    xref_uri = lake.silver(PATIENT_XREF)
    ctx.progress(f"silver {spec.target} from {spec.source}")
    rows = store.read(lake.bronze(spec.source), scope)
    if spec.source != "patient":
        xref = store.read(xref_uri) if store.exists(xref_uri) else None
        rows = with_source_key(rows, key)
        rows = silver.resolve_patient(rows, xref) if xref is not None else \
            rows.withColumn("patient_key", F.col("source_key")).drop("patient_id")
    out = frames.stage(silver.build_resources(rows, spec, key, term))
    good = out.where(F.col("error").isNull()).drop("error")
    outputs: list[DatasetInfo] = []
    if spec.source == "patient":
        # the cross-reference first: later tables of this run resolve through it
        xref_new = silver.latest_per_id(silver.xref_rows(good).withColumnRenamed("source_key", "id"),
                                        ["updated_at", "batch_key"]).withColumnRenamed("id", "source_key")
        old_xref = store.read(xref_uri) if store.exists(xref_uri) else None
        changes = silver.link_changes(xref_new, old_xref).cache()
        if changes.count():
            # Relink before the cross-reference commits: a crash in between leaves the old
            # cross-reference, so the next run computes the same changes and finishes the job.
            result.relinked_resources += _relink(ctx, changes, keys)
        changes.unpersist()
        faults.point("normalize.before_xref")
        store.merge(xref_uri, xref_new, ["source_key"], partition_by=None, run_id=ctx.run_id,
                    description="local patient key (keyed hash) -> person pseudonym")
        outputs.append(DatasetInfo(xref_uri, _schema_of(xref_new),
                                   column_lineage={"source_key": [(lake.bronze(spec.source), "patient_id")]}))
        good = good.drop("source_key")
    checks: list[dict] = []
    counts = _count_build(ctx, spec, out, checks)
    return out, good, checks, counts, outputs


def _write_silver(ctx: Context, target: str, parts: list[DataFrame], keys: list[str], term: Terminology,
                  methods: Counter) -> tuple[int, DatasetInfo]:
    """MERGE one silver table's new rows (the latest per resource id) and count the batches'
    rows in it; returns the count and the lineage output."""
    lake, store = ctx.lake, ctx.store
    df = parts[0]
    for p in parts[1:]:
        df = df.unionByName(p)
    order = ["updated_at", "batch_key", "source_line"] if target == "patient" else ["batch_key", "source_line"]
    df = silver.latest_per_id(df, order)
    uri = lake.silver(target)
    # Patients are shared across institutions and batches: never deleted by one batch's re-delivery.
    # Rows a re-delivery withdrew are deleted only where a batch has rows to withdraw: the
    # clause makes the MERGE rewrite every file of the delivering institutions, which would
    # turn a day's increment into a rewrite of their whole history.
    delete = None if target == "patient" or not _holds_batches(ctx, uri, keys) else sql_in("t.batch_key", keys)
    # Other resources' ids are keyed on their institution, so matching on the partition
    # column too is the same match, and lets the MERGE read only the institutions delivering.
    on = ["id"] if target == "patient" else ["org_code", "id"]
    # a batch normalized again (a correction, changed concept maps) never overwrites the
    # version a later batch delivered: later means later batch id (README, Known limits)
    newer = None if target == "patient" else "s.batch_id >= t.batch_id"
    store.merge(uri, df, on, delete_where=delete, partition_by=["org_code"], run_id=ctx.run_id,
                description=f"FHIR R4 {target} resources (JSON + flattened columns), pseudonymised",
                update_when=newer)
    n = store.read(uri, sql_in(BATCH_COLUMN["silver"], keys)).count()
    # which bronze tables each silver table comes from: resource ids are keyed on the source rows' keys
    sources = {(lake.bronze(s.source), k) for s in silver.SPECS if s.target == target
               for k in contract(s.source).key}
    # which concept maps produced the codes, and how each row's code was found
    terms = ({"terminology": TerminologyFacet(version=term.version, methods=dict(methods))}
             if target == "observation" else {})
    faults.point(f"normalize.after_table.{target}")
    return n, DatasetInfo(uri, _schema_of(df), rows=n, column_lineage={"id": sorted(sources)}, custom=terms)


def normalize(ctx: Context, keys: list[str] | None = None) -> NormalizeResult:
    """Build silver for the given batches (default: every batch whose stage is `bronze`,
    including those sent back because the concept maps now code their lab results otherwise)."""
    term = Terminology.load(ctx.config.folder)
    remapped = remap.requeue_remapped(ctx.lake, term, ctx.run_id)
    if remapped:
        ctx.progress(f"concept maps changed: {len(remapped)} batch(es) normalized again")
    taken = control.taken(ctx.lake, STAGE.takes, keys)
    keys = list(taken)
    result = NormalizeResult(batches=keys, remapped=remapped)
    if not keys:
        return result
    key = load_key()
    lake, store = ctx.lake, ctx.store
    scope = sql_in(BATCH_COLUMN["bronze"], keys)
    with stage_run(lake, STAGE.job, ctx.parent, ctx.config.version) as run, \
            StagedFrames(lake.staging, "normalize") as frames:
        quarantine_parts: list[DataFrame] = []
        checks: list[dict] = []
        built: dict[str, list[DataFrame]] = {}
        # the patients first, alone: the cross-reference they build is what the other tables
        # resolve through; then the other tables side by side, as the silver tables after
        # (a small delivery's time is many short Spark jobs). Results keep the tables' order.
        specs = [spec for spec in silver.SPECS if store.exists(lake.bronze(spec.source))]
        first = [spec for spec in specs if spec.source == "patient"]
        rest = [spec for spec in specs if spec.source != "patient"]
        done = [_build(ctx, spec, scope, key, term, keys, result, frames) for spec in first]
        done += side_by_side("normalize", lambda spec: _build(ctx, spec, scope, key, term, keys, result, frames), rest)
        for spec, (out, good, spec_checks, counts, outputs) in zip(first + rest, done):
            n_invalid, n_unmapped, methods = counts
            run.inputs.append(DatasetInfo(lake.bronze(spec.source)))
            run.outputs += outputs
            quarantine_parts.append(silver.silver_quarantine(out, spec.target, ctx.run_id))
            built.setdefault(spec.target, []).append(good)
            checks += spec_checks
            result.invalid[spec.target] = result.invalid.get(spec.target, 0) + n_invalid
            result.unmapped_lab_codes += n_unmapped
            result.map_methods.update(methods)

        written = side_by_side("normalize", lambda item: _write_silver(ctx, *item, keys, term, result.map_methods),
                               built.items())
        for target, (n, output) in zip(built, written):
            result.resources[target] = n
            run.outputs.append(output)
        if quarantine_parts:
            q = quarantine_parts[0]
            for p in quarantine_parts[1:]:
                q = q.unionByName(p)
            store.replace(lake.quarantine, q, f"layer = 'silver' AND {sql_in('batch_key', keys)}",
                          partition_by=["layer"], run_id=ctx.run_id)
        frames.remove()
        results.write(lake, checks, keys, layers=("normalize",))
        faults.point("normalize.before_bookkeeping")
        # A later delivery may bring what a blocked batch's rows were waiting for: its
        # institution's blocked batches go back through the gate (README, Holds and release).
        # Before this run's batches are marked: a crash in between repeats both.
        orgs = {k.split("/", 1)[0] for k in keys}
        blocked = [b["batch_key"] for b in control.in_stage(lake, BatchStage.BLOCKED) if b["org_code"] in orgs]
        result.regated = control.requeue(lake, blocked, BatchStage.SILVER, ctx.run_id)
        control.advance(lake, taken, BatchStage.SILVER, ctx.run_id, only_from=STAGE.takes)
    ctx.progress(f"silver done (pseudonym key version {key_fingerprint(key)})")
    return result
