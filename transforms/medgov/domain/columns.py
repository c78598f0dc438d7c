"""Spark column forms of the domain rules: eGFR and KDIGO stages from the constants in
`clinical`, the keyed source pseudonym of `pseudonym`, and the finite-number rule of
`numbers`. Used by the stages' pure DataFrame transforms; tests compare them with the pure
forms."""

from __future__ import annotations

import hashlib
import weakref

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from medgov.domain.clinical import ACR_A2_FROM, ACR_A2_TO, CKD_EPI_2021, G_LOWEST, G_STAGES
from medgov.domain.numbers import NON_FINITE_PATTERN
from medgov.domain.record_keys import RECORD_KEYS, record_key


def sql_functions() -> dict[str, str]:
    """The domain formulas as Spark SQL functions, from the constants of `clinical`, for the
    dataset SQL (`schemas/datasets/*/cohort.sql`): `ckd_epi_2021(scr_mg_dl, age, female)`,
    `kdigo_g_stage(egfr)` and `kdigo_a_stage(acr_mg_g)` (null in, null out). Name ->
    CREATE TEMPORARY FUNCTION statement."""
    c = CKD_EPI_2021
    ratio = f"(scr_mg_dl / IF(female, {c.kappa_female}D, {c.kappa_male}D))"
    egfr = (f"{c.scale}D * pow(least({ratio}, 1.0D), IF(female, {c.alpha_female}D, {c.alpha_male}D))"
            f" * pow(greatest({ratio}, 1.0D), {c.exponent_above}D) * pow({c.age_base}D, age)"
            f" * IF(female, {c.female_factor}D, 1.0D)")
    g = " ".join(f"WHEN egfr >= {bound}D THEN '{stage}'" for bound, stage in G_STAGES)
    a = f"WHEN acr_mg_g < {ACR_A2_FROM}D THEN 'A1' WHEN acr_mg_g <= {ACR_A2_TO}D THEN 'A2'"
    bodies = {
        "ckd_epi_2021": ("scr_mg_dl DOUBLE, age DOUBLE, female BOOLEAN", "DOUBLE", egfr),
        "kdigo_g_stage": ("egfr DOUBLE", "STRING", f"CASE {g} WHEN egfr IS NOT NULL THEN '{G_LOWEST}' END"),
        "kdigo_a_stage": ("acr_mg_g DOUBLE", "STRING", f"CASE {a} WHEN acr_mg_g IS NOT NULL THEN 'A3' END"),
    }
    return {name: f"CREATE OR REPLACE TEMPORARY FUNCTION {name}({args}) RETURNS {ret} RETURN {body}"
            for name, (args, ret, body) in bodies.items()}


# sessions that have the functions: each statement is a round trip (through Spark Connect, four
# datasets registering all three cost a publish about half a second)
_REGISTERED: weakref.WeakSet = weakref.WeakSet()


def register_sql_functions(spark: SparkSession) -> None:
    """Make `sql_functions()` callable in the session's SQL (and by `egfr_expr` & co.), once
    per session."""
    if spark in _REGISTERED:
        return
    for statement in sql_functions().values():
        spark.sql(statement)
    _REGISTERED.add(spark)


def egfr_expr(scr_mg_dl: Column, age: Column, female: Column) -> Column:
    """Spark form of `clinical.egfr_ckd_epi_2021` (after `register_sql_functions`)."""
    return F.call_function("ckd_epi_2021", scr_mg_dl, age, female)


def g_stage_expr(egfr: Column) -> Column:
    """Spark form of `clinical.g_stage` (null for a null eGFR; after `register_sql_functions`)."""
    return F.call_function("kdigo_g_stage", egfr)


def a_stage_expr(acr: Column) -> Column:
    """Spark form of `clinical.a_stage` (null for a null ACR; after `register_sql_functions`)."""
    return F.call_function("kdigo_a_stage", acr)


def _hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys (RFC 2104, SHA-256's 64-byte block: a longer key
    is hashed first)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def with_source_key(df: DataFrame, key: bytes, org_col: str = "_org_code", id_col: str = "patient_id") -> DataFrame:
    """Add `source_key` = keyed hash of (org, local patient id), equal to
    `pseudonym(key, "LOCAL", org, id)`; the raw local id stays for the caller to drop.

    HMAC-SHA256 as Spark expressions (two `sha2` over the padded keys), so no Python worker
    runs beside the resource builder. The padded keys reach the executors as the columns of a
    one-row broadcast frame, as data: never as a literal in a plan, which Spark may print."""
    ipad, opad = _hmac_pads(key)
    pads = df.sparkSession.createDataFrame([(ipad, opad)], "_ipad binary, _opad binary")
    message = F.encode(F.concat(F.lit("LOCAL|"), F.col(org_col), F.lit("|"), F.col(id_col)), "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.col("_ipad"), message), 256))
    keyed = F.substring(F.sha2(F.concat(F.col("_opad"), inner), 256), 1, 32)
    return df.crossJoin(F.broadcast(pads)).withColumn("source_key", keyed).drop("_ipad", "_opad")


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
