"""The CKD registry from silver Observation, Condition and Patient (pure DataFrame transform)."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medgov.domain.columns import a_stage_expr, egfr_expr, g_stage_expr
from medgov.spec.terminology import loinc


def _diagnosis_match(codes: list[str]) -> F.Column:
    """A stem matches an entry equal to it, or a 3-character entry it falls under."""
    def one(col: F.Column) -> F.Column:
        cond = F.lit(False)
        for c in codes:
            cond = cond | (col == c) | (col.startswith(c + ".") if len(c) == 3 else F.lit(False))
        return cond
    return one


def _qualifying_date(results: DataFrame, flag: str, days: int) -> DataFrame:
    """Per patient, the first date with an abnormal result at least `days` after the first abnormal one."""
    abnormal = results.where(F.col(flag)).select("patient_key", "sample_date")
    first = abnormal.groupBy("patient_key").agg(F.min("sample_date").alias("_first"))
    return (abnormal.join(first, "patient_key")
            .where(F.datediff("sample_date", "_first") >= days)
            .groupBy("patient_key").agg(F.min("sample_date").alias(f"{flag}_date")))


def build(observations: DataFrame, conditions: DataFrame, patients: DataFrame,
                 definition: dict[str, Any], run_id: str) -> DataFrame:
    """One row per patient meeting the CKD definition of `schemas/datasets/ckd_registry.yaml`."""
    d = definition["definition"]
    creatinine_molar, creatinine_mass, acr_urine = loinc("creatinine_molar"), loinc("creatinine_mass"), loinc("acr_urine")
    p = patients.select(F.col("id").alias("patient_key"), F.col("gender").alias("sex"), "birth_date")
    obs = observations.where(F.col("comparator").isNull() & F.col("value").isNotNull())
    scr = (obs.where(F.col("loinc").isin(creatinine_molar, creatinine_mass))
           .withColumn("scr_umol", F.when(F.col("loinc") == creatinine_mass, F.col("value") * d["creatinine_umol_per_mgdl"])
                       .otherwise(F.col("value")))
           .withColumn("sample_date", F.to_date("effective_time"))
           .join(p, "patient_key")
           .withColumn("age", F.floor(F.months_between("sample_date", "birth_date") / 12))
           .withColumn("egfr", F.when((F.col("age") >= d["adult_age"]) & F.col("sex").isin("male", "female"),
                                      egfr_expr(F.col("scr_umol") / d["creatinine_umol_per_mgdl"], F.col("age"),
                                                F.col("sex") == "female")))
           .withColumn("low_egfr", F.coalesce(F.col("egfr") < d["egfr_below"], F.lit(False))))
    acr = (obs.where(F.col("loinc") == acr_urine).withColumn("sample_date", F.to_date("effective_time"))
           .withColumn("high_acr", F.col("value") >= d["acr_at_least"]))

    latest_w = Window.partitionBy("patient_key").orderBy(F.col("effective_time").desc(), F.col("id").desc())
    latest_scr = (scr.withColumn("_r", F.row_number().over(latest_w)).where("_r = 1")
                  .select("patient_key", "sex", "age", F.col("scr_umol").alias("latest_creatinine_umol_l"),
                          F.col("sample_date").alias("latest_creatinine_date"), "egfr"))
    n_scr = scr.groupBy("patient_key").agg(F.count("*").alias("n_creatinine_results"))
    latest_acr = (acr.withColumn("_r", F.row_number().over(latest_w)).where("_r = 1")
                  .select("patient_key", F.col("value").alias("latest_acr_mg_g")))

    match = _diagnosis_match(d["diagnosis_codes"])
    dx = (conditions.select("patient_key", "recorded_time", F.explode(
        F.concat(F.array("icd_stem"), F.coalesce("icd_manifestations", F.array().cast("array<string>")))).alias("stem"))
          .where(match(F.col("stem")))
          .groupBy("patient_key").agg(F.to_date(F.min("recorded_time")).alias("diagnosis_date"),
                                      F.array_sort(F.collect_set("stem")).alias("ckd_diagnosis_codes")))

    egfr_q = _qualifying_date(scr, "low_egfr", d["persistence_days"])
    acr_q = _qualifying_date(acr, "high_acr", d["persistence_days"])
    orgs = (observations.select("patient_key", "org_code").unionByName(conditions.select("patient_key", "org_code"))
            .groupBy("patient_key").agg(F.array_sort(F.collect_set("org_code")).alias("source_institutions")))

    cohort = dx.select("patient_key").unionByName(egfr_q.select("patient_key")).unionByName(
        acr_q.select("patient_key")).distinct()
    basis = F.filter(F.array(F.when(F.col("diagnosis_date").isNotNull(), F.lit("diagnosis")),
                             F.when(F.col("low_egfr_date").isNotNull(), F.lit("egfr")),
                             F.when(F.col("high_acr_date").isNotNull(), F.lit("acr"))), lambda x: x.isNotNull())
    out = (cohort.join(latest_scr, "patient_key", "left").join(n_scr, "patient_key", "left")
           .join(latest_acr, "patient_key", "left").join(dx, "patient_key", "left")
           .join(egfr_q, "patient_key", "left").join(acr_q, "patient_key", "left").join(orgs, "patient_key", "left")
           .join(p.select("patient_key", F.col("sex").alias("_psex")), "patient_key", "left"))
    return out.select(
        "patient_key",
        F.coalesce("sex", "_psex").alias("sex"),
        F.col("age").cast("int").alias("age_years"),
        F.round("latest_creatinine_umol_l", 1).alias("latest_creatinine_umol_l"),
        "latest_creatinine_date",
        F.round("egfr", 2).alias("egfr"),
        g_stage_expr(F.col("egfr")).alias("g_stage"),
        F.round("latest_acr_mg_g", 1).alias("latest_acr_mg_g"),
        a_stage_expr(F.col("latest_acr_mg_g")).alias("a_stage"),
        basis.alias("qualifying_basis"),
        F.least("diagnosis_date", "low_egfr_date", "high_acr_date").alias("first_qualifying_date"),
        F.coalesce("ckd_diagnosis_codes", F.array().cast("array<string>")).alias("ckd_diagnosis_codes"),
        F.coalesce("n_creatinine_results", F.lit(0)).cast("int").alias("n_creatinine_results"),
        F.coalesce("source_institutions", F.array().cast("array<string>")).alias("source_institutions"),
        F.lit(run_id).alias("updated_run_id"),
    )


# Column lineage of the registry: output column -> (silver table, column) it is derived from.
COLUMN_LINEAGE: dict[str, list[tuple[str, str]]] = {
    "patient_key": [("observation", "patient_key"), ("condition", "patient_key"), ("patient", "id")],
    "sex": [("patient", "gender")],
    "age_years": [("patient", "birth_date"), ("observation", "effective_time")],
    "latest_creatinine_umol_l": [("observation", "value"), ("observation", "loinc"), ("observation", "effective_time")],
    "latest_creatinine_date": [("observation", "effective_time")],
    "egfr": [("observation", "value"), ("observation", "loinc"), ("patient", "gender"), ("patient", "birth_date")],
    "g_stage": [("observation", "value"), ("patient", "gender"), ("patient", "birth_date")],
    "latest_acr_mg_g": [("observation", "value"), ("observation", "loinc")],
    "a_stage": [("observation", "value"), ("observation", "loinc")],
    "qualifying_basis": [("observation", "value"), ("condition", "icd_stem"), ("condition", "icd_manifestations")],
    "first_qualifying_date": [("observation", "effective_time"), ("condition", "recorded_time")],
    "ckd_diagnosis_codes": [("condition", "icd_stem"), ("condition", "icd_manifestations")],
    "n_creatinine_results": [("observation", "loinc")],
    "source_institutions": [("observation", "org_code"), ("condition", "org_code")],
}
