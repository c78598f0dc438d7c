"""Spark column forms of the domain rules: eGFR and KDIGO stages from the constants in
`clinical`, the keyed source pseudonym of `pseudonym`, and the finite-number rule of
`numbers`. Used by the stages' pure DataFrame transforms; tests compare them with the pure
forms."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medgov.domain.clinical import ACR_A2_FROM, ACR_A2_TO, CKD_EPI_2021, G_LOWEST, G_STAGES
from medgov.domain.numbers import NON_FINITE_PATTERN
from medgov.domain.pseudonym import pseudonym
from medgov.domain.record_keys import RECORD_KEYS, record_key


def egfr_expr(scr_mg_dl: Column, age: Column, female: Column) -> Column:
    """Spark form of `clinical.egfr_ckd_epi_2021` (same constants)."""
    c = CKD_EPI_2021
    kappa = F.when(female, F.lit(c.kappa_female)).otherwise(F.lit(c.kappa_male))
    alpha = F.when(female, F.lit(c.alpha_female)).otherwise(F.lit(c.alpha_male))
    ratio = scr_mg_dl / kappa
    return (F.lit(c.scale) * F.pow(F.least(ratio, F.lit(1.0)), alpha)
            * F.pow(F.greatest(ratio, F.lit(1.0)), F.lit(c.exponent_above))
            * F.pow(F.lit(c.age_base), age) * F.when(female, F.lit(c.female_factor)).otherwise(F.lit(1.0)))


def g_stage_expr(egfr: Column) -> Column:
    """Spark form of `clinical.g_stage` (null for a null eGFR)."""
    first_bound, first_stage = G_STAGES[0]
    staged = reduce(lambda acc, bs: acc.when(egfr >= bs[0], bs[1]), G_STAGES[1:],
                    F.when(egfr >= first_bound, first_stage))
    return staged.when(egfr.isNotNull(), G_LOWEST)


def a_stage_expr(acr: Column) -> Column:
    """Spark form of `clinical.a_stage` (null for a null ACR)."""
    return F.when(acr < ACR_A2_FROM, "A1").when(acr <= ACR_A2_TO, "A2").when(acr.isNotNull(), "A3")


def with_source_key(df: DataFrame, key: bytes, org_col: str = "_org_code", id_col: str = "patient_id") -> DataFrame:
    """Add `source_key` = keyed hash of (org, local patient id); the raw local id stays for
    the caller to drop."""

    @F.pandas_udf("string")
    def source_key(org, pid):  # type: ignore[no-untyped-def]
        return org.combine(pid, lambda o, p: pseudonym(key, "LOCAL", o, p))

    return df.withColumn("source_key", source_key(F.col(org_col), F.col(id_col)))


def with_record_key(df: DataFrame, key: bytes, table: str, org_col: str = "_org_code",
                    name: str = "record_key") -> DataFrame:
    """Add the keyed record key (`record_keys.record_key`) of each row of bronze table `table`
    as column `name` (null for a table without one)."""
    if table not in RECORD_KEYS:
        return df.withColumn(name, F.lit(None).cast("string"))
    columns = RECORD_KEYS[table][2]

    @F.pandas_udf("string")
    def keyed(org, values):  # type: ignore[no-untyped-def]
        import pandas as pd

        return pd.Series([record_key(key, table, o, v) for o, v in zip(org, values.to_dict("records"))],
                         index=org.index, dtype=object)

    return df.withColumn(name, keyed(F.col(org_col), F.struct(*[F.col(c) for c in columns])))


def non_finite(text: Column, value: Column) -> Column:
    """Spark form of `numbers`' rule: true where `text`, read as the double `value`, is NaN,
    an infinity or beyond a double's range; false otherwise (null text included)."""
    spelled = text.rlike("(?i)" + NON_FINITE_PATTERN)
    special = F.isnan(value) | (F.abs(value) == F.lit(float("inf")))
    return F.coalesce(spelled | special, spelled, special, F.lit(False))
