"""What the quality suites look at: each layer's rows with derived check columns and
without direct identifiers, so no check result or Data Docs page can carry one.

Pure DataFrame -> DataFrame transforms.
"""

from __future__ import annotations

from typing import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medgov.domain.columns import non_finite, with_source_key
from medgov.quality.holds import with_links
from medgov.spec.contracts import Contract
from medgov.spec.terminology import loinc

# silver table -> column holding the event time used for temporal checks
EVENT_TIME = {"encounter": "start_time", "condition": "recorded_time", "observation": "effective_time",
              "medication_request": "authored_time"}

# derived per-concept value columns of the observation view, by LOINC concept name
# (`concept_maps/loinc.yaml`; the codes are domain.md §2's)
CONCEPT_COLUMNS = {"creatinine_umol_l": ["creatinine_molar"], "glucose_mmol_l": ["glucose", "glucose_fasting"],
                   "hba1c_pct": ["hba1c"], "acr_mg_g": ["acr_urine"], "heart_rate": ["heart_rate"],
                   "height_cm": ["body_height"], "weight_kg": ["body_weight"]}
# blood-pressure components of the observation view, from the panel's component map
COMPONENT_COLUMNS = {"sbp": "systolic_bp", "dbp": "diastolic_bp"}


def _age_years(birth: str, at) -> F.Column:
    return F.floor(F.months_between(at, F.col(birth)) / 12)


def bronze_view(df: DataFrame, contract: Contract, key: bytes, keyed: bool = True) -> DataFrame:
    """Bronze rows with a keyed `source_key` instead of the local patient id (when `keyed`: a
    Python pass over every row, so only for suites that check it), no direct identifiers, and
    `has_future_date` (and `result_finite` for lab results, which may be numbers or text)."""
    if keyed and "patient_id" in df.columns:
        df = with_source_key(df, key)
    future = F.lit(False)
    for c in contract.dated:
        future = future | F.coalesce(F.col(c).cast("timestamp") > F.current_timestamp(), F.lit(False))
    df = df.withColumn("has_future_date", future)
    if contract.table == "patient":
        df = df.withColumn("age_years", _age_years("birth_date", F.col("_ingested_at")))
    if contract.table == "lab_result":  # NaN, the infinities, 1e309: no value, flagged here
        df = df.withColumn("result_finite", ~non_finite(F.col("result"), F.col("result").try_cast("double")))
    return df.drop(*contract.direct_identifiers)


def silver_view(df: DataFrame, table: str, patients: DataFrame | None, encounters: DataFrame | None,
                quarantine: DataFrame | None = None, visits_optional: Sequence[str] = ()) -> DataFrame:
    """Silver rows with referential-integrity (`holds.with_links`: present, quarantined or not
    yet delivered, and the hold's reason), temporal and per-concept columns; no resource JSON."""
    df = df.drop("resource_json")
    if table == "patient":
        return df.withColumn("age_years", _age_years("birth_date", F.current_date()))
    df = with_links(df, patients, encounters, quarantine, visits_optional).withColumn("held", F.col("hold_reason").isNotNull())
    if patients is not None:
        p = patients.select(F.col("id").alias("_pid"), F.col("birth_date").alias("_birth"))
        df = df.join(p, df["patient_key"] == p["_pid"], "left").drop("_pid")
    else:
        df = df.withColumn("_birth", F.lit(None).cast("date"))
    when = F.col(EVENT_TIME[table])
    df = df.withColumn("after_birth", F.when(F.col("_birth").isNotNull() & when.isNotNull(),
                                              when.cast("date") >= F.col("_birth")))
    df = df.withColumn("not_future", F.when(when.isNotNull(), when <= F.current_timestamp()))
    df = df.drop("_birth", "hold_parent", "hold_parent_key")
    if table == "observation":
        for name, concepts in CONCEPT_COLUMNS.items():
            df = df.withColumn(name, F.when(F.col("loinc").isin([loinc(c) for c in concepts]), F.col("value")))
        for name, concept in COMPONENT_COLUMNS.items():
            df = df.withColumn(name, F.col("components").getItem(loinc(concept)))
        df = df.withColumn("lab_mapped", F.when(F.col("category") == "laboratory", F.col("mapped")))
        df = df.drop("components")
    return df
