"""Silver: bronze rows -> FHIR R4 resources (JSON + flattened columns), built and validated
in the Spark executors partition by partition.

Pure DataFrame -> DataFrame transforms. The pseudonym key is shipped to the executors with
the task closure (as Spark ships any UDF state); it is never written or logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from medgov.normalize import builders as fb
from medgov.normalize.fhir_validation import FastValidator, validation_error
from medgov.spec.tables import BRONZE_TABLES, SILVER_LINEAGE, SilverTable, silver_of
from medgov.spec.terminology import Terminology
from medgov.storage.memory import return_freed_memory
from medgov.storage.repeats import where_repeated

# bronze table -> the function that turns one of its rows into FHIR resources
BUILDERS: dict[str, Callable[..., list[tuple[dict, dict]]]] = {
    "patient": fb.build_patient, "visit": fb.build_encounter, "diagnosis": fb.build_condition,
    "lab_result": fb.build_lab, "vital_sign": fb.build_vitals, "prescription": fb.build_medication}


@dataclass(frozen=True)
class Spec:
    """How one bronze table becomes rows of one silver table."""

    source: str
    table: SilverTable
    builder: Callable[..., list[tuple[dict, dict]]]

    @property
    def target(self) -> str:
        return self.table.name

    @property
    def resource_type(self) -> str:
        return self.table.resource_type


SPECS: tuple[Spec, ...] = tuple(Spec(source, silver_of(source), BUILDERS[source]) for source in BRONZE_TABLES)


def output_schema(spec: Spec) -> StructType:
    return StructType.fromDDL(spec.table.ddl)


def _mapper(spec: Spec, key: bytes, term: Terminology, schema: StructType) -> Callable:
    names = schema.fieldNames()
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    map_cols = [f.name for f in schema.fields if f.dataType.typeName() == "map"]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fast = FastValidator()  # per partition: shapes, codes and references repeat across its rows
        for rb in batches:
            yield _built(rb, fast)
        del fast
        # the partition's rows, dicts and caches are freed: hand their pages back to the OS, or
        # the worker keeps its largest partition's high-water mark while it waits for the next
        return_freed_memory()

    def _built(rb: pa.RecordBatch, fast: FastValidator) -> pa.RecordBatch:
        """One Arrow batch of source rows -> the batch of resources built from them."""
        records: list[dict[str, Any]] = []  # each resource's flattened columns, JSON and error
        origin: list[int] = []  # the source row of each record
        for i, row in enumerate(rb.to_pylist()):
            try:
                built = spec.builder(row, key, term)
            except Exception as exc:  # a row the builder cannot handle goes to quarantine, never lost
                built = [({"resourceType": spec.resource_type}, {"error": f"cannot build {spec.resource_type}: "
                                                                           f"{type(exc).__name__}"})]
            if not built:  # e.g. a vital-sign row with every measurement empty: recorded, not dropped
                built = [({"resourceType": spec.resource_type},
                          {"error": f"row carries no value: no {spec.resource_type} built"})]
            for resource, flat in built:
                flat["error"] = flat.pop("error", None) or validation_error(resource, fast)
                flat["resource_json"] = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
                records.append(flat)
                origin.append(i)
        return pa.RecordBatch.from_pydict(_columns(rb, records, origin), schema=arrow_schema)

    def _columns(rb: pa.RecordBatch, records: list[dict[str, Any]], origin: list[int]) -> dict[str, list[Any]]:
        """The output columns, built a column at a time: a builder's value, else the source
        row's lineage (its patient key for `patient_key`), else null."""
        taken = {name: rb.column(source).to_pylist() for source, name in SILVER_LINEAGE.items() if name in names}
        if "patient_key" in rb.schema.names:
            taken.setdefault("patient_key", rb.column("patient_key").to_pylist())
        out: dict[str, list[Any]] = {}
        for n in names:
            source = taken.get(n)
            col = [r.get(n) for r in records] if source is None else [r.get(n, source[o]) for r, o in zip(records, origin)]
            out[n] = [list(v.items()) if isinstance(v, dict) else v for v in col] if n in map_cols else col
        return out

    return run


def build_resources(df: DataFrame, spec: Spec, key: bytes, term: Terminology) -> DataFrame:
    """Typed bronze rows (with `patient_key` for non-patient tables) -> resources + `error`."""
    schema = output_schema(spec)
    return df.mapInArrow(_mapper(spec, key, term, schema), schema)


def resolve_patient(df: DataFrame, xref: DataFrame) -> DataFrame:
    """Person pseudonym through the cross-reference; an unknown local patient keeps its own key
    (a referential-integrity finding for the quality suite, not a lost row)."""
    x = xref.select(F.col("source_key").alias("_xk"), F.col("patient_key").alias("_xp"))
    joined = df.join(F.broadcast(x), df["source_key"] == x["_xk"], "left")
    return joined.withColumn("patient_key", F.coalesce("_xp", "source_key")).drop("_xk", "_xp", "patient_id")


def latest_per_id(df: DataFrame, order: list[str]) -> DataFrame:
    """One row per resource id: the latest delivery wins (later batch, later line). Only the
    ids that repeat are ranked (`storage.repeats`): pass a cached frame."""
    w = Window.partitionBy("id").orderBy(*[F.col(c).desc_nulls_last() for c in order])

    def ranked(rows: DataFrame) -> DataFrame:
        return rows.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")

    return where_repeated(df, ["id"], ranked)


def xref_rows(patients: DataFrame) -> DataFrame:
    """(source_key -> patient_key) pairs from built Patient rows."""
    return patients.select("source_key", "patient_key", "org_code", "batch_key", "updated_at")


def silver_quarantine(df: DataFrame, table: str, run_id: str) -> DataFrame:
    """Rows whose resource failed to build or validate, in the quarantine table's shape; a
    patient's `record_id` is its local patient key, what the rows waiting for it carry
    (`domain.record_keys`), any other's its resource id."""
    bad = df.where(F.col("error").isNotNull())
    record = F.col("source_key") if "source_key" in df.columns else F.col("id")
    return bad.select(
        F.lit("silver").alias("layer"), "org_code", "batch_id", "batch_key", F.lit(table).alias("table"),
        F.col("source_file").alias("file"), F.col("source_line").alias("line"), record.alias("record_id"),
        F.array("error").alias("reasons"), F.col("resource_json").alias("record"), F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("quarantined_at"),
    )


def link_changes(new_xref: DataFrame, old_xref: DataFrame | None) -> DataFrame:
    """(org_code, old_key, new_key) for local patients whose person key changes with this delivery.

    Before a local patient is in the cross-reference, its resources carry its own source key
    (see `resolve_patient`); afterwards, the person key the patient file established.
    """
    new = new_xref.select("source_key", "org_code", F.col("patient_key").alias("new_key"))
    if old_xref is None:
        joined = new.withColumn("old_key", F.col("source_key"))
    else:
        old = old_xref.select("source_key", F.col("patient_key").alias("_old"))
        joined = new.join(old, "source_key", "left").withColumn("old_key", F.coalesce("_old", "source_key"))
    return joined.where(F.col("old_key") != F.col("new_key")).select("org_code", "old_key", "new_key")


def referencing(df: DataFrame, changes: DataFrame) -> DataFrame:
    """(org_code, patient_key) of the silver rows whose subject is a key that changes."""
    c = changes.select(F.col("org_code").alias("_org"), "old_key")
    keys = df.select("org_code", "patient_key")
    return keys.join(F.broadcast(c), (keys["org_code"] == c["_org"]) & (keys["patient_key"] == c["old_key"])).select(
        "org_code", "patient_key")


def relink(df: DataFrame, changes: DataFrame) -> DataFrame:
    """Silver rows whose subject moved to another person key, with key and resource JSON re-pointed."""
    c = changes.select(F.col("org_code").alias("_org"), "old_key", "new_key")
    hit = df.join(F.broadcast(c), (df["org_code"] == c["_org"]) & (df["patient_key"] == c["old_key"]))
    moved = F.replace("resource_json", F.concat(F.lit('"Patient/'), "old_key", F.lit('"')),
                      F.concat(F.lit('"Patient/'), "new_key", F.lit('"')))
    return (hit.withColumn("resource_json", moved).withColumn("patient_key", F.col("new_key"))
            .drop("_org", "old_key", "new_key"))
