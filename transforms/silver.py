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

from medgov import fhir_build as fb
from medgov.fhir_validate import FastValidator, validate
from medgov.identity import pseudonym

COMMON = ("id string, patient_key string, org_code string, batch_id string, batch_key string, "
          "source_file string, source_line long, resource_json string, error string")

# lab results and vital signs both become Observations with the same flattened columns
OBSERVATION_FLAT = ("encounter_id string, category string, loinc string, local_code string, mapped boolean, "
                    "value double, comparator string, unit string, unit_status string, value_string string, "
                    "effective_time timestamp, issued_time timestamp, components map<string,double>")


@dataclass(frozen=True)
class Spec:
    """How one bronze table becomes rows of one silver table."""

    source: str
    target: str
    resource_type: str
    builder: Callable[..., list[tuple[dict, dict]]]
    flat: str  # Spark DDL of the flattened columns


SPECS: tuple[Spec, ...] = (
    Spec("patient", "patient", "Patient", fb.build_patient,
         "source_key string, gender string, birth_date date, sex_code string, id_type string, has_id_no boolean, "
         "id_no_valid boolean, id_birth_matches boolean, id_sex_matches boolean, ethnicity_code string, "
         "updated_at timestamp"),
    Spec("visit", "encounter", "Encounter", fb.build_encounter,
         "visit_type string, class_code string, status string, start_time timestamp, end_time timestamp, "
         "dept_code string"),
    Spec("diagnosis", "condition", "Condition", fb.build_condition,
         "encounter_id string, icd_code string, icd_stem string, icd_category string, "
         "icd_manifestations array<string>, diag_type string, principal boolean, recorded_time timestamp"),
    Spec("lab_result", "observation", "Observation", fb.build_lab,
         OBSERVATION_FLAT),
    Spec("vital_sign", "observation", "Observation", fb.build_vitals,
         OBSERVATION_FLAT),
    Spec("prescription", "medication_request", "MedicationRequest", fb.build_medication,
         "encounter_id string, drug_code string, atc_code string, dose double, dose_unit string, frequency string, "
         "route string, days double, authored_time timestamp"),
)


def output_schema(spec: Spec) -> StructType:
    return StructType.fromDDL(f"{COMMON}, {spec.flat}")


def _mapper(spec: Spec, key: bytes, term: fb.Terminology, schema: StructType) -> Callable:
    names = schema.fieldNames()
    arrow_schema = to_arrow_schema(schema, timezone="UTC")
    map_cols = [f.name for f in schema.fields if f.dataType.typeName() == "map"]

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fast = FastValidator()  # per partition: shapes, codes and references repeat across its rows
        for rb in batches:
            out: dict[str, list[Any]] = {n: [] for n in names}
            for row in rb.to_pylist():
                lineage = {"org_code": row["_org_code"], "batch_id": row["_batch_id"], "batch_key": row["_batch_key"],
                           "source_file": row["_file"], "source_line": row["_line"]}
                try:
                    built = spec.builder(row, key, term)
                except Exception as exc:  # a row the builder cannot handle goes to quarantine, never lost
                    built = [({"resourceType": spec.resource_type}, {"error": f"cannot build {spec.resource_type}: "
                                                                               f"{type(exc).__name__}"})]
                if not built:  # e.g. a vital-sign row with every measurement empty: recorded, not dropped
                    built = [({"resourceType": spec.resource_type},
                              {"error": f"row carries no value: no {spec.resource_type} built"})]
                for resource, flat in built:
                    error = flat.pop("error", None) or validate(resource, fast)
                    record = {**lineage, **flat, "resource_json": json.dumps(resource, ensure_ascii=False,
                                                                            separators=(",", ":")),
                              "error": error}
                    record.setdefault("patient_key", row.get("patient_key"))
                    for n in names:
                        v = record.get(n)
                        out[n].append(list(v.items()) if n in map_cols and isinstance(v, dict) else v)
            yield pa.RecordBatch.from_pydict(out, schema=arrow_schema)

    return run


def build_resources(df: DataFrame, spec: Spec, key: bytes, term: fb.Terminology) -> DataFrame:
    """Typed bronze rows (with `patient_key` for non-patient tables) -> resources + `error`."""
    schema = output_schema(spec)
    return df.mapInArrow(_mapper(spec, key, term, schema), schema)


def with_source_key(df: DataFrame, key: bytes) -> DataFrame:
    """Add `source_key` = keyed hash of (org, local patient id) and drop the raw local id."""

    @F.pandas_udf("string")
    def source_key(org, pid):  # type: ignore[no-untyped-def]
        return org.combine(pid, lambda o, p: pseudonym(key, "LOCAL", o, p))

    return df.withColumn("source_key", source_key(F.col("_org_code"), F.col("patient_id")))


def resolve_patient(df: DataFrame, xref: DataFrame) -> DataFrame:
    """Person pseudonym through the cross-reference; an unknown local patient keeps its own key
    (a referential-integrity finding for the quality suite, not a lost row)."""
    x = xref.select(F.col("source_key").alias("_xk"), F.col("patient_key").alias("_xp"))
    joined = df.join(F.broadcast(x), df["source_key"] == x["_xk"], "left")
    return joined.withColumn("patient_key", F.coalesce("_xp", "source_key")).drop("_xk", "_xp", "patient_id")


def latest_per_id(df: DataFrame, order: list[str]) -> DataFrame:
    """One row per resource id: the latest delivery wins (later batch, later line)."""
    w = Window.partitionBy("id").orderBy(*[F.col(c).desc_nulls_last() for c in order])
    return df.withColumn("_rank", F.row_number().over(w)).where("_rank = 1").drop("_rank")


def xref_rows(patients: DataFrame) -> DataFrame:
    """(source_key -> patient_key) pairs from built Patient rows."""
    return patients.select("source_key", "patient_key", "org_code", "batch_key", "updated_at")


def silver_quarantine(df: DataFrame, table: str, run_id: str) -> DataFrame:
    """Rows whose resource failed to build or validate, in the quarantine table's shape."""
    bad = df.where(F.col("error").isNotNull())
    return bad.select(
        F.lit("silver").alias("layer"), "org_code", "batch_id", "batch_key", F.lit(table).alias("table"),
        F.col("source_file").alias("file"), F.col("source_line").alias("line"), F.col("id").alias("record_id"),
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
