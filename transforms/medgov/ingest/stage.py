"""Stage 1, ingest: verified landing batches -> bronze Delta tables + quarantine."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from medgov.domain.pseudonym import load_key
from medgov.errors import BatchDeferred, BatchRejected, MedgovError
from medgov.ingest import bronze, landing as landing_zone
from medgov.ingest.boundary import MANIFEST, Landed
from medgov.ingest.extract_csv import SHAPE_ERROR, decode, parse
from medgov.ingest.landing import BatchRef
from medgov.ingest.manifest import check_files, parse_manifest
from medgov.quality import results
from medgov.spec.checks import medgov_check
from medgov.spec.contracts import Contract, contract
from medgov.spec.lifecycle import BatchStage, DeliveryStatus, stage
from medgov.spec.tables import BATCH_COLUMN, BRONZE_LINEAGE, BRONZE_TABLES
from medgov.storage import control, faults
from medgov.storage.commits import sql_in
from medgov.storage.context import Context
from medgov.storage.lineage import DatasetInfo, stage_run
from medgov.storage.spark import side_by_side
from medgov.storage.staging import ParsedTables, remove_leftovers

STAGE = stage("ingest")
_ARROW = {"string": pa.string(), "bigint": pa.int64(), "timestamp": pa.timestamp("us", "UTC")}


@dataclass
class IngestResult:
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)  # not read within the time budget: tried again
    unchanged: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> {"bronze": n, "quarantined": n}


def _lineage(batch: BatchRef, file: str, ingested_at: datetime) -> dict[str, object]:
    """The lineage values every row of one delivered file carries (its line numbers come
    with the parse)."""
    return {"_org_code": batch.org_code, "_batch_id": batch.batch_id, "_batch_key": batch.key, "_file": file,
            "_ingested_at": ingested_at}


def read_batch(batch: BatchRef, landed: Landed, ingested_at: datetime, expected_encoding: str | None = None
               ) -> tuple[dict[str, pa.Table], list[str]]:
    """Verify one batch read from the landing zone and parse its files; raises BatchRejected
    with the reason.

    Returns the tables and the notes a steward should see (detected encodings, ignored or
    absent columns, an encoding other than the one the institution registry expects):
    deviations absorbed, never silently.
    """
    manifest = parse_manifest(batch, landed.files[MANIFEST])
    contents = check_files(landed, manifest)
    tables: dict[str, pa.Table] = {}
    notes: list[str] = []
    for f in manifest.files:
        if expected_encoding and f.encoding and f.encoding.replace("-sig", "") != expected_encoding.lower():
            notes.append(f"{f.name} declares {f.encoding}; the institution registry expects {expected_encoding}")
        text, note = decode(contents[f.name], f.encoding, f.name)
        t, file_notes = parse(text, f.name, contract(f.table), f.rows)
        notes += ([note] if note else []) + file_notes
        values = _lineage(batch, f.name, ingested_at)
        for name, kind in BRONZE_LINEAGE:
            if name in values:
                t = t.append_column(name, pa.array([values[name]] * t.num_rows, _ARROW[kind]))
        tables[f.table] = t
    return tables, notes


def ingest(ctx: Context, landing: str | Path) -> IngestResult:
    """Take every ready batch not seen with this content; write bronze and quarantine.

    Accepted batches replace their earlier delivery (same batch key) atomically per table;
    rejected ones publish nothing and are logged with their reason.
    """
    landing = Path(landing)
    if not landing.is_dir():
        raise MedgovError(f"landing folder not found: {landing}")
    result = IngestResult()
    for name in remove_leftovers(ctx.lake.staging, ingest=True):
        ctx.progress(f"removed a crashed run's staging folder {name}")
    seen = control.last_deliveries(ctx.lake)
    current = control.batches(ctx.lake)
    received = control.now()
    deliveries: list[dict] = []
    parsed: dict[str, dict[str, int]] = {}  # batch -> table -> rows parsed
    fingerprints: dict[str, str] = {}
    staged = ParsedTables(ctx.lake.staging, ctx.run_id)
    zone = landing_zone.look(landing)
    for key, reason in zone.refused.items():
        # a refused flag or folder is recorded once, not at every run
        result.rejected[key] = reason
        if key not in seen:
            org, _, batch_id = key.partition("/")
            deliveries.append({"batch_key": key, "org_code": org, "batch_id": batch_id, "fingerprint": "",
                               "received_at": received, "run_id": ctx.run_id, "files": 0, "rows_declared": 0,
                               "status": DeliveryStatus.REJECTED, "reason": reason})
    for ref in zone.batches:
        row = {"batch_key": ref.key, "org_code": ref.org_code, "batch_id": ref.batch_id, "fingerprint": "",
               "received_at": received, "run_id": ctx.run_id, "files": 0, "rows_declared": 0}
        try:
            landed = landing_zone.read(ref, ctx.config.landing)
        except BatchDeferred as exc:  # no fingerprint: the next run reads it again
            ctx.progress(f"deferred {ref.key}")
            result.deferred[ref.key] = str(exc)
            deliveries.append({**row, "status": DeliveryStatus.DEFERRED, "reason": str(exc)})
            continue
        except BatchRejected as exc:
            fp = landing_zone.refusal_fingerprint(ref)
            if not _already_taken(seen.get(ref.key), current.get(ref.key), fp):
                result.rejected[ref.key] = str(exc)
                deliveries.append({**row, "fingerprint": fp, "status": DeliveryStatus.REJECTED, "reason": str(exc)})
            else:
                result.unchanged.append(ref.key)
            continue
        fp = landed.fingerprint
        if _already_taken(seen.get(ref.key), current.get(ref.key), fp):
            result.unchanged.append(ref.key)
            continue
        ctx.progress(f"ingest {ref.key}")
        row["fingerprint"] = fp
        try:
            registered = ctx.config.institutions.get(ref.org_code)
            tables, notes = read_batch(ref, landed, received, registered.encoding if registered else None)
        except BatchRejected as exc:
            result.rejected[ref.key] = str(exc)
            deliveries.append({**row, "status": DeliveryStatus.REJECTED, "reason": str(exc)})
            continue
        del landed  # the parsed tables are what is kept
        staged.add(ref.key, tables)
        parsed[ref.key] = {t: tables[t].num_rows for t in tables}
        fingerprints[ref.key] = fp
        result.accepted.append(ref.key)
        deliveries.append({**row, "status": DeliveryStatus.ACCEPTED, "reason": None, "notes": notes,
                           "files": len(tables), "rows_declared": sum(t.num_rows for t in tables.values())})
    try:
        if not parsed:
            _record_checks(ctx, deliveries, [], received)
            control.record_deliveries(ctx.lake, deliveries)
            return result
        _write_bronze(ctx, landing, parsed, fingerprints, staged, deliveries, received, result)
    finally:
        staged.remove()
    return result


def _write_bronze(ctx: Context, landing: Path, parsed: dict[str, dict[str, int]], fingerprints: dict[str, str],
                  staged: ParsedTables, deliveries: list[dict], received, result: IngestResult) -> None:
    """Bronze and quarantine from the staged batches, then the bookkeeping."""
    keys = sorted(parsed)
    key = load_key()
    # Claim first: a re-delivered batch leaves every reader's view (see `visible`) before any of
    # its bronze tables change, and reappears whole when this commit's twin below marks it `bronze`.
    control.set_batches(ctx.lake, [_batch_row(ctx, k, fingerprints[k], parsed[k], BatchStage.RECEIVING)
                                   for k in keys])
    with stage_run(ctx.lake, STAGE.job, ctx.parent, ctx.config.version) as run:
        # each institution's landing folder is a source: its feed, whatever batches it held
        run.inputs += [DatasetInfo(str((landing / org).resolve())) for org in sorted({k.split("/", 1)[0] for k in keys})]
        # Tables go side by side on two threads: a small delivery's time is many short Spark
        # jobs per table, each mostly waiting on the JVM; the results keep the tables' order.
        done = side_by_side("ingest", lambda table: _bronze_table(ctx, table, keys, parsed, staged, key, received),
                            BRONZE_TABLES)
        quarantine_frames = []
        checks: list[dict] = []
        for table, outcome in zip(BRONZE_TABLES, done):
            if outcome is None:
                continue
            quarantined, table_checks, n_good, n_bad, output = outcome
            quarantine_frames.append(quarantined)
            checks += table_checks
            result.rows[table] = {"bronze": n_good, "quarantined": n_bad}
            run.outputs.append(output)
        q = quarantine_frames[0]
        for other in quarantine_frames[1:]:
            q = q.unionByName(other)
        ctx.store.replace(ctx.lake.quarantine, q, f"layer = 'bronze' AND {sql_in('batch_key', keys)}",
                          partition_by=["layer"], run_id=ctx.run_id, description="rows that failed a contract, with reasons")
        run.outputs.append(DatasetInfo(ctx.lake.quarantine, [(f.name, f.dataType.simpleString()) for f in q.schema.fields],
                                       rows=sum(r["quarantined"] for r in result.rows.values())))
        for frame in quarantine_frames:
            frame.unpersist()
        # bookkeeping commits after the data it describes
        _record_checks(ctx, deliveries, checks, received)
        faults.point("ingest.before_bookkeeping")
        control.set_batches(ctx.lake, [_batch_row(ctx, k, fingerprints[k], parsed[k], BatchStage.BRONZE)
                                       for k in keys])
        faults.point("ingest.before_delivery_log")
        control.record_deliveries(ctx.lake, deliveries)


def _bronze_table(ctx: Context, table: str, keys: list[str], parsed: dict[str, dict[str, int]],
                  staged: ParsedTables, key: bytes, received) -> tuple[DataFrame, list[dict], int, int, DatasetInfo] | None:
    """One bronze table from the staged batches: its good rows replace the batches' rows, its
    bad rows are returned (cached) for the quarantine, with the table's contract checks,
    counts and lineage output; None when neither the batches nor the lake have the table."""
    c = contract(table)
    pieces = [k for k in keys if table in parsed[k]]
    uri = ctx.lake.bronze(table)
    if not pieces and not ctx.store.exists(uri):
        return None
    ctx.progress(f"bronze {table}")
    if pieces:
        raw = staged.frame(ctx.spark, table, pieces)
    else:  # a corrected re-delivery dropped this table: clear its earlier rows
        raw = ctx.spark.createDataFrame([], _raw_schema(c))
    rows = bronze.typed_rows(raw, c).cache()
    typed = bronze.mark_duplicates(rows, c)  # over the cached rows: typing is the costly part
    good = bronze.publishable(typed)
    ctx.store.replace(uri, good, bronze_scope(keys), partition_by=["_org_code"], run_id=ctx.run_id,
                      description=f"bronze {c.title}")
    # kept (small) while the typed rows are cached: built later, they would re-type the whole table
    quarantined = bronze.quarantined(typed, c, ctx.run_id, key).cache()
    n_bad = int(quarantined.count() or 0)
    # typing keeps every parsed row, each either published or quarantined: no job to count
    n_good = int(sum(parsed[k][table] for k in pieces) - n_bad)
    checks = _contract_checks(ctx.run_id, table, quarantined, {k: parsed[k][table] for k in pieces}, received)
    output = DatasetInfo(uri, [(f.name, f.dataType.simpleString()) for f in good.schema.fields], rows=n_good)
    rows.unpersist()
    faults.point(f"ingest.after_table.{table}")
    return quarantined, checks, n_good, n_bad, output


def _already_taken(delivery: dict | None, batch: dict | None, fp: str) -> bool:
    """This content was handled before: rejected, or accepted and through ingest (a crash
    after the claim leaves the batch `receiving`, and it is taken again)."""
    if delivery is None or delivery["fingerprint"] != fp:
        return False
    if delivery["status"] == DeliveryStatus.REJECTED:
        return True
    return batch is not None and batch["fingerprint"] == fp and batch["stage"] != BatchStage.RECEIVING


def _batch_row(ctx: Context, key: str, fingerprint: str, tables: dict[str, int], stage: BatchStage) -> dict:
    org, batch_id = key.split("/", 1)
    return {"batch_key": key, "org_code": org, "batch_id": batch_id, "fingerprint": fingerprint,
            "stage": stage.value, "quality_passed": None, "blocking_failures": None,
            "rows_declared": sum(tables.values()), "updated_at": control.now(), "run_id": ctx.run_id}


def _contract_checks(run_id: str, table: str, quarantined: DataFrame, rows: dict[str, int], at: datetime
                     ) -> list[dict]:
    """Ingest-layer quality results of one table: quarantined rows per batch and reason kind."""
    kinds = (quarantined.select(F.col("batch_key").alias("_batch_key"), F.explode("reasons").alias("reason"))
             .groupBy("_batch_key", F.split("reason", ": ").getItem(0).alias("kind")).count().collect())
    check = medgov_check(f"ingest.{table}", "rows_conform_to_contract")
    out: list[dict] = []
    for key, n in rows.items():
        reasons = Counter({r["kind"]: r["count"] for r in kinds if r["_batch_key"] == key})
        out += results.row_results(check, run_id, key, n, reasons, at)
    return out


def _record_checks(ctx: Context, deliveries: list[dict], checks: list[dict], at: datetime) -> None:
    """Quality results of the delivery attempts (ingest layer), replacing earlier ones. A
    deferred attempt says nothing about the batch yet: its earlier results stay."""
    deliveries = [d for d in deliveries if d["status"] != DeliveryStatus.DEFERRED]
    if deliveries:
        conforms = medgov_check("ingest.delivery", "batch_conforms_to_extract_spec")
        deviations = medgov_check("ingest.delivery", "no_deviation_absorbed")
        rows = checks + [r for d in deliveries for r in results.delivery_results(conforms, deviations, d, at)]
        results.write(ctx.lake, rows, [d["batch_key"] for d in deliveries], layers=("ingest",))


def bronze_scope(keys: list[str]) -> str:
    return sql_in(BATCH_COLUMN["bronze"], keys)


def _raw_schema(c: Contract) -> StructType:
    """The shape of parsed rows before typing: the contract's columns as text, the parse's
    shape error and the lineage columns."""
    text = ", ".join(f"`{n}` string" for n in c.names)
    lineage = ", ".join(f"{n} {t}" for n, t in BRONZE_LINEAGE)
    return StructType.fromDDL(f"{text}, {SHAPE_ERROR} string, {lineage}")
