"""Holds: rows kept out of the curated datasets because what they depend on is not there.

A visit, diagnosis, result or prescription whose patient (or visit) is quarantined, or not
yet delivered, is *held*: it stays in silver, its batch's other rows publish, and it says why
("held: patient quarantined (patient.csv line 7: missing required value in birth_date)";
the quarantine reason's kind, not its detail, which may quote a value).
When a later delivery brings or corrects the parent, the row is *released*: the next publish
takes it, and `quality/holds` records by which batch.

`with_links` is the one rule (pure DataFrame -> DataFrame); validate checks and records it,
publish filters by it. `record` keeps `quality/holds` up to date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pyarrow as pa
from deltalake import DeltaTable
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medgov.spec.tables import PATIENT_XREF, SILVER_RESOURCES
from medgov.storage import control
from medgov.storage.commits import sql_in, write_with_retry
from medgov.storage.context import Context
from medgov.storage.lake import Lake

PRESENT, QUARANTINED, NOT_DELIVERED = "present", "quarantined", "not delivered"
HELD, RELEASED = "held", "released"
# quarantine tables (bronze contract and silver table names) holding each kind of parent
_PARENT_TABLES = {"patient": ("patient",), "visit": ("visit", "encounter")}

HOLDS_SCHEMA = pa.schema([
    ("org_code", pa.string()), ("batch_key", pa.string()), ("batch_id", pa.string()), ("table", pa.string()),
    ("file", pa.string()), ("line", pa.int64()), ("record_id", pa.string()), ("parent", pa.string()),
    ("parent_key", pa.string()), ("reason", pa.string()), ("status", pa.string()), ("released_by", pa.string()),
    ("held_at", pa.timestamp("us", "UTC")), ("released_at", pa.timestamp("us", "UTC")), ("run_id", pa.string()),
])


def quarantined_parents(quarantine: DataFrame | None, parent: str) -> DataFrame | None:
    """The latest quarantine row of each quarantined patient (or visit): its record key, file,
    line and first reason."""
    if quarantine is None:
        return None
    rows = quarantine.where(F.col("table").isin(list(_PARENT_TABLES[parent])) & F.col("record_id").isNotNull())
    latest = Window.partitionBy("record_id").orderBy(F.col("batch_id").desc(), F.col("line").desc())
    return (rows.withColumn("_r", F.row_number().over(latest)).where("_r = 1")
            .select(F.col("record_id").alias(f"_q_{parent}"), F.col("file").alias(f"_qf_{parent}"),
                    F.col("line").alias(f"_ql_{parent}"), # the reason's kind only: its detail may quote a value, which stays in the quarantine table
                    F.split(F.col("reasons").getItem(0), ": ").getItem(0).alias(f"_qr_{parent}")))


def _link(df: DataFrame, parent: str, ref: str, present: DataFrame | None, quarantined: DataFrame | None,
          optional: Sequence[str] = ()) -> DataFrame:
    """Add `<parent>_link` (present | quarantined | not delivered; null without a reference)
    and `_<parent>_reason` (the hold's reason, null unless held; never for a parent not
    delivered to an institution in `optional`)."""
    if present is not None:
        ids = present.select(F.col("id").alias(f"_p_{parent}")).distinct()
        df = df.join(ids, df[ref] == ids[f"_p_{parent}"], "left")
    else:
        df = df.withColumn(f"_p_{parent}", F.lit(None).cast("string"))
    if quarantined is not None:
        df = df.join(quarantined, df[ref] == quarantined[f"_q_{parent}"], "left")
    else:
        df = df.select("*", *[F.lit(None).cast(t).alias(f"_{c}_{parent}")
                              for c, t in (("q", "string"), ("qf", "string"), ("ql", "bigint"), ("qr", "string"))])
    link = (F.when(F.col(ref).isNull(), F.lit(None)).when(F.col(f"_p_{parent}").isNotNull(), PRESENT)
            .when(F.col(f"_q_{parent}").isNotNull(), QUARANTINED).otherwise(NOT_DELIVERED))
    reason = (F.when(link == QUARANTINED, F.concat(F.lit(f"held: {parent} quarantined ("), F.col(f"_qf_{parent}"),
                                                    F.lit(" line "), F.col(f"_ql_{parent}").cast("string"),
                                                    F.lit(": "), F.coalesce(F.col(f"_qr_{parent}"), F.lit("?")),
                                                    F.lit(")")))
              .when((link == NOT_DELIVERED) & ~F.col("org_code").isin(list(optional)),
                    F.lit(f"held: {parent} not yet delivered")))
    return (df.withColumn(f"{parent}_link", link).withColumn(f"_{parent}_reason", reason)
            .drop(f"_p_{parent}", f"_q_{parent}", f"_qf_{parent}", f"_ql_{parent}", f"_qr_{parent}"))


def with_links(df: DataFrame, patients: DataFrame | None, encounters: DataFrame | None,
               quarantine: DataFrame | None = None, visits_optional: Sequence[str] = ()) -> DataFrame:
    """Silver rows (not patients) with `patient_link`, `visit_link` (rows that name a visit),
    `hold_reason` (null when the row may publish), `hold_parent` and `hold_parent_key` (what
    it waits for). `quarantine` (the quarantine table) tells a quarantined parent from one
    not yet delivered; without it every missing parent reads as not yet delivered. Rows of
    the institutions in `visits_optional` are not held for a visit never delivered."""
    df = _link(df, "patient", "patient_key", patients, quarantined_parents(quarantine, "patient"))
    visit = "encounter_id" in df.columns
    if visit:
        df = _link(df, "visit", "encounter_id", encounters, quarantined_parents(quarantine, "visit"),
                   visits_optional)
    else:
        df = df.withColumn("visit_link", F.lit(None).cast("string")).withColumn("_visit_reason", F.lit(None).cast("string"))
    patient_held = F.col("_patient_reason").isNotNull()
    return (df.withColumn("hold_reason", F.coalesce("_patient_reason", "_visit_reason"))
            .withColumn("hold_parent", F.when(patient_held, "patient").when(F.col("_visit_reason").isNotNull(), "visit"))
            .withColumn("hold_parent_key", F.when(patient_held, F.col("patient_key"))
                        .when(F.col("_visit_reason").isNotNull(), F.col("encounter_id") if visit else F.lit(None)))
            .drop("_patient_reason", "_visit_reason"))


def parents_in_quarantine(ctx: Context) -> DataFrame | None:
    """The quarantine rows of patients and visits (cached): what explains a held row."""
    if not ctx.store.exists(ctx.lake.quarantine):
        return None
    return ctx.store.read(ctx.lake.quarantine, "`table` IN ('patient', 'visit', 'encounter')").select(
        "table", "record_id", "batch_id", "file", "line", "reasons").cache()


def releasable(df: DataFrame, patients: DataFrame | None, encounters: DataFrame | None,
               visits_optional: Sequence[str] = (), quarantine: DataFrame | None = None) -> DataFrame:
    """The rows of `df` that are not held: their patient, and their visit if they name one,
    are in silver (for the institutions in `visits_optional`, a visit never delivered does
    not hold a row; one in `quarantine` does)."""
    linked = with_links(df, patients, encounters, quarantine, visits_optional)
    return linked.where(F.col("hold_reason").isNull()).drop("patient_link", "visit_link", "hold_reason",
                                                           "hold_parent", "hold_parent_key")


def read(lake: Lake, orgs: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of `quality/holds` (of the given institutions)."""
    if not DeltaTable.is_deltatable(lake.holds):
        return []
    t = DeltaTable(lake.holds).to_pyarrow_table()
    rows = t.to_pylist()
    return rows if orgs is None else [r for r in rows if r["org_code"] in orgs]


def merge_holds(previous: list[dict[str, Any]], now_held: list[dict[str, Any]], still_there: set[tuple[str, str]],
                parent_batch: dict[tuple[str, str], str], run_id: str, at: Any) -> list[dict[str, Any]]:
    """The holds of some batches after a look at them: rows held now (keeping when they were
    first held), rows held before and no longer (released, by the batch that brought their
    parent) while they are still in silver, and releases recorded before. Keys: (table, record_id)."""
    before = {(r["table"], r["record_id"]): r for r in previous}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in now_held:
        k = (r["table"], r["record_id"])
        first = before.get(k)
        out[k] = {**r, "status": HELD, "released_by": None, "released_at": None, "run_id": run_id,
                  "held_at": first["held_at"] if first and first["status"] == HELD else at}
    for k, r in before.items():
        if k in out or k not in still_there:
            continue  # held again (above), or no longer delivered (a re-delivery withdrew it)
        if r["status"] == HELD:
            out[k] = {**r, "status": RELEASED, "released_at": at, "run_id": run_id,
                      "released_by": parent_batch.get((r["parent"], r["parent_key"]))}
        else:
            out[k] = r
    return sorted(out.values(), key=lambda r: (r["batch_key"], r["table"], r["file"] or "", r["line"] or 0))


def write(lake: Lake, rows: list[dict[str, Any]], keys: list[str], run_id: str) -> None:
    """Replace the holds of these batches in one commit."""
    data = pa.Table.from_pylist(rows, HOLDS_SCHEMA)
    write_with_retry(lake.holds, data, sql_in("batch_key", keys), run_id=run_id,
                     description="rows held out of the curated datasets until their patient or visit "
                                 "is delivered or corrected, and their release")


@dataclass
class HoldCount:
    held: int = 0  # rows held now, in the batches looked at
    released: int = 0  # rows released by this look


def _scope_rows(ctx: Context, scope: list[str]) -> DataFrame | None:
    """The key columns of every non-patient silver row of the batches `scope`, one frame with
    the table's name (`encounter_id` null where a table names no visit)."""
    parts = []
    for table in (t.name for t in SILVER_RESOURCES if t.name != "patient"):
        uri = ctx.lake.silver(table)
        if not ctx.store.exists(uri):
            continue
        rows = ctx.store.read(uri, sql_in("batch_key", scope))
        visit = F.col("encounter_id") if "encounter_id" in rows.columns else F.lit(None).cast("string")
        parts.append(rows.select(F.lit(table).alias("table"), "id", "patient_key", "org_code", "batch_key", "batch_id",
                                 "source_file", "source_line", visit.alias("encounter_id")))
    if not parts:
        return None
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def _parent_batches(ctx: Context, wanted: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """(parent kind, parent key) -> the batch that delivered it, for the parents now in silver."""
    out: dict[tuple[str, str], str] = {}
    where = {"patient": (ctx.lake.silver(PATIENT_XREF), "source_key"), "visit": (ctx.lake.silver("encounter"), "id")}
    for parent, keys in wanted.items():
        uri, col = where[parent]
        if keys and ctx.store.exists(uri):
            for r in ctx.store.read(uri).where(F.col(col).isin(sorted(keys))).select(col, "batch_key").collect():
                out[(parent, r[col])] = r["batch_key"]
    return out


def update(ctx: Context, keys: list[str], patients: DataFrame | None, encounters: DataFrame | None,
           quarantine: DataFrame | None) -> HoldCount:
    """Record the holds of the batches `keys` and look again at every batch of their
    institutions that still holds rows: what is still held, and what a delivery released."""
    lake = ctx.lake
    orgs = sorted({k.split("/", 1)[0] for k in keys})
    earlier = read(lake, orgs)
    scope = sorted(set(keys) | {r["batch_key"] for r in earlier if r["status"] == HELD})
    previous = [r for r in earlier if r["batch_key"] in scope]
    was_held: dict[str, list[str]] = {}
    for r in previous:
        was_held.setdefault(r["table"], []).append(r["record_id"])
    now_held: list[dict[str, Any]] = []
    still_there: set[tuple[str, str]] = set()
    rows = _scope_rows(ctx, scope)
    if rows is not None:
        # one job: the rows held now, and which rows held before are still delivered
        linked = with_links(rows, patients, encounters, quarantine, ctx.config.visits_optional())
        known = F.lit(False)
        for table, ids in was_held.items():
            known = known | ((F.col("table") == table) & F.col("id").isin(ids))
        picked = linked.where(F.col("hold_reason").isNotNull() | known).select(
            "table", "org_code", "batch_key", "batch_id", F.col("source_file").alias("file"),
            F.col("source_line").alias("line"), F.col("id").alias("record_id"), F.col("hold_parent").alias("parent"),
            F.col("hold_parent_key").alias("parent_key"), F.col("hold_reason").alias("reason")).collect()
        for r in picked:
            still_there.add((r["table"], r["record_id"]))
            if r["reason"] is not None:
                now_held.append(r.asDict())
    held_now = {(r["table"], r["record_id"]) for r in now_held}
    waiting: dict[str, set[str]] = {}
    for r in previous:
        if r["status"] == HELD and (r["table"], r["record_id"]) not in held_now:
            waiting.setdefault(r["parent"], set()).add(r["parent_key"])
    merged = merge_holds(previous, now_held, still_there, _parent_batches(ctx, waiting), ctx.run_id, control.now())
    write(lake, merged, scope, ctx.run_id)
    released = sum(1 for r in merged if r["status"] == RELEASED and r["run_id"] == ctx.run_id)
    return HoldCount(held=len(now_held), released=released)
