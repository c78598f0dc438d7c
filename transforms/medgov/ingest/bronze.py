"""Bronze: delivered strings -> typed rows per the table contract, or quarantine with reasons.

Pure DataFrame -> DataFrame transforms; reading files and writing tables happen elsewhere.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from medgov.domain.columns import non_finite, with_record_key
from medgov.domain.identity import FULLWIDTH, HALFWIDTH
from medgov.ingest.extract_csv import SHAPE_ERROR
from medgov.spec.contracts import Contract, interface
from medgov.spec.tables import BRONZE_LINEAGE_COLUMNS
from medgov.storage.repeats import where_repeated

# FHIR R4 datatypes: "strings SHALL NOT exceed 1MB (1024*1024 characters) in size"
MAX_TEXT = 1024 * 1024
# characters of one value shown in a quarantine record: enough to act on, not a copy of a document
SHOWN = 200
_THOUSANDS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"  # `1,234` / `12,345.6`: a grouping comma, not a decimal comma



def clean_text(c: Column) -> Column:
    """Full-width to half-width, outer blanks (incl. ideographic/no-break spaces) removed, '' -> null."""
    s = F.translate(c, FULLWIDTH, HALFWIDTH)
    s = F.regexp_replace(s, r"^[\s\u00a0]+|[\s\u00a0]+$", "")
    return F.when(s == "", F.lit(None)).otherwise(s)


def pattern_shape(pattern: str) -> str:
    """A regex every value `pattern` can parse matches (each number field as any digit run).

    Spark's parser signals a mismatch with an exception, costly per value; trying only the
    pattern whose shape fits keeps the same result at a fraction of the cost.
    """
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = pattern.index("'", i + 1)
            out.append(re.escape(pattern[i + 1:end]))
            i = end + 1
        elif ch.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == ch:
                j += 1
            out.append(r"(Z|[+-][0-9]{1,2}(:?[0-9]{2}){0,2})" if ch == "X" else "[0-9]+")
            i = j
        else:
            out.append(re.escape(ch))
            i += 1
    return "^" + "".join(out) + "$"


def parse_timestamp(c: Column, patterns: list[str]) -> Column:
    """First pattern that parses the whole value; null when none does (never an error)."""
    return F.coalesce(*[F.when(c.rlike(pattern_shape(p)), F.try_to_timestamp(c, F.lit(p))) for p in patterns])


def _reason(cond: Column, text: Column | str) -> Column:
    return F.when(cond, text if isinstance(text, Column) else F.lit(text))


def _raw(name: str) -> str:
    return f"_raw_{name}"


def apply_contract(df: DataFrame, contract: Contract) -> DataFrame:
    """Typed contract columns plus `_reasons` (empty array when the row is publishable),
    duplicate keys marked (`typed_rows`, then `mark_duplicates`)."""
    return mark_duplicates(typed_rows(df, contract), contract)


def typed_rows(df: DataFrame, contract: Contract) -> DataFrame:
    """Typed contract columns plus `_reasons` for what each row breaks on its own.

    Three projections, so that each cleaned text and each parsed value is computed once
    (Spark keeps projections apart when merging them would repeat a costly expression).
    """
    fmt = interface()
    cleaned = df.select(*[clean_text(F.col(c.name)).alias(_raw(c.name)) for c in contract.columns],
                        F.col(SHAPE_ERROR), *[F.col(c) for c in BRONZE_LINEAGE_COLUMNS])
    values: list[Column] = []
    for col in contract.columns:
        raw = F.col(_raw(col.name))
        if col.type == "str":
            value = raw
        elif col.type in ("date", "datetime"):
            ts = parse_timestamp(raw, fmt["datetime"])
            value = ts.cast("date") if col.type == "date" else ts
        elif col.type == "decimal":
            number = F.when(raw.rlike(_THOUSANDS), F.regexp_replace(raw, ",", "")).otherwise(raw).try_cast("double")
            # NaN, the infinities and 1e309 cast to doubles, but are no measurement (quarantined below)
            value = F.when(non_finite(raw, number), F.lit(None).cast("double")).otherwise(number)
        else:  # a contract typo must fail loudly in development, not silently in production
            raise ValueError(f"unknown column type {col.type!r} in contract {contract.table}")
        values.append(value.alias(col.name))
    parsed = cleaned.select("*", *values)
    reasons: list[Column] = [F.col(SHAPE_ERROR)]
    for col in contract.columns:
        raw, value = F.col(_raw(col.name)), F.col(col.name)
        shown = F.substring(raw, 1, 40)
        if col.type == "str":
            reasons.append(_reason(F.length(raw) > MAX_TEXT,
                                   f"value too long in {col.name}: over {MAX_TEXT} characters (FHIR string limit)"))
        elif col.type in ("date", "datetime"):
            reasons.append(_reason(raw.isNotNull() & value.isNull(),
                                   F.concat(F.lit(f"unparseable {col.type} in {col.name}: '"), shown, F.lit("'"))))
        else:
            finite = ~non_finite(raw, raw.try_cast("double"))
            reasons.append(_reason(raw.isNotNull() & value.isNull() & finite,
                                   F.concat(F.lit(f"non-numeric value in {col.name}: '"), shown, F.lit("'"))))
            reasons.append(_reason(~finite, F.concat(F.lit(f"not a finite number in {col.name}: '"), shown,
                                                      F.lit("'"))))
        if col.required:
            reasons.append(_reason(raw.isNull(), f"missing required value in {col.name}"))
    reason_array = F.filter(F.array(*reasons), lambda r: r.isNotNull())
    return parsed.select(*[F.col(c.name) for c in contract.columns], *[F.col(c) for c in BRONZE_LINEAGE_COLUMNS],
                         reason_array.alias("_reasons"))


def mark_duplicates(df: DataFrame, contract: Contract) -> DataFrame:
    """Within one batch a key must occur once: of otherwise valid rows sharing a key, the last
    line wins and each earlier one gets a reason naming the winning line (nothing dropped
    silently). A later *batch* delivering the same key is an update, handled in silver.
    Only the keys that repeat are ranked (`storage.repeats`): pass a cached frame."""
    clean = F.size("_reasons") == 0
    w = Window.partitionBy("_batch_key", clean.alias("_clean"), *contract.key).orderBy(F.col("_line").desc())
    content = F.struct(*contract.names)
    winner_line = F.first("_line").over(w)
    same = content.eqNullSafe(F.first(content).over(w))
    keys = ", ".join(contract.key)
    dup = F.when(same, F.concat(F.lit("exact duplicate: superseded by line "), winner_line.cast("string"))).otherwise(
        F.concat(F.lit(f"duplicate key ({keys}) in this batch: superseded by line "), winner_line.cast("string")))
    marked = F.when(clean & (F.row_number().over(w) > 1), F.array(dup)).otherwise(F.col("_reasons"))
    return where_repeated(df, ["_batch_key", *contract.key], lambda rows: rows.withColumn("_reasons", marked),
                          among=clean)


def publishable(df: DataFrame) -> DataFrame:
    """Rows without reasons, without the `_reasons` column."""
    return df.where(F.size("_reasons") == 0).drop("_reasons")


def masked_record(df: DataFrame, columns: list[str], direct: list[str]) -> Column:
    """The row as JSON with direct identifiers masked: quarantine must not leak them either."""
    def shown(c: str) -> Column:
        v = F.col(c).cast("string")
        return F.when(F.length(v) > SHOWN, F.concat(F.substring(v, 1, SHOWN), F.lit("…"))).otherwise(v)

    fields = [(F.when(F.col(c).isNotNull(), F.lit("***")) if c in direct else shown(c)).alias(c) for c in columns]
    return F.to_json(F.struct(*fields))


def quarantined(df: DataFrame, contract: Contract, run_id: str, key: bytes) -> DataFrame:
    """Rows with reasons, in the shape of the `quarantine` table (layer `bronze`), each with
    its keyed record key as `record_id` (`domain.record_keys`): what the rows depending on it
    and a later correction are matched by."""
    bad = with_record_key(df.where(F.size("_reasons") > 0), key, contract.table, name="_record_key")
    return bad.select(
        F.lit("bronze").alias("layer"),
        F.col("_org_code").alias("org_code"),
        F.col("_batch_id").alias("batch_id"),
        F.col("_batch_key").alias("batch_key"),
        F.lit(contract.table).alias("table"),
        F.col("_file").alias("file"),
        F.col("_line").alias("line"),
        F.col("_record_key").alias("record_id"),
        F.col("_reasons").alias("reasons"),
        masked_record(bad, contract.names, contract.direct_identifiers).alias("record"),
        F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("quarantined_at"),
    )
