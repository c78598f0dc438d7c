"""A few example rows for each failing check, masked, so a steward can show a hospital what
to fix: the row's file and line, and the checked values (quasi-identifiers generalised).

GX keeps no samples of unexpected values (see `quality`): its Data Docs and stores are
written as they are. Here the unexpected rows of a failing check are selected again in
Spark with the expectation's own semantics (nulls ignored except by not-null checks;
`between` inclusive unless strict), then masked before they are stored.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medgov.masking import mask_record

EXAMPLES_PER_CHECK = 3

def _between(col: F.Column, kw: dict[str, Any]) -> F.Column:
    low, high = kw.get("min_value"), kw.get("max_value")
    ok = F.lit(True)
    if low is not None:
        ok = ok & ((col > low) if kw.get("strict_min") else (col >= low))
    if high is not None:
        ok = ok & ((col < high) if kw.get("strict_max") else (col <= high))
    return col.isNotNull() & ~ok


def _duplicated(df: DataFrame, cols: list[str], ignore_row_if: str) -> DataFrame:
    """Rows whose combination of `cols` occurs more than once, skipping rows GX skips."""
    present = [F.col(c).isNotNull() for c in cols]
    keep = F.lit(True)
    if ignore_row_if == "all_values_are_missing":
        keep = present[0]
        for p in present[1:]:
            keep = keep | p
    elif ignore_row_if == "any_value_is_missing":
        for p in present:
            keep = keep & p
    w = Window.partitionBy(*cols)
    return df.where(keep).withColumn("_n", F.count(F.lit(1)).over(w)).where(F.col("_n") > 1).drop("_n")


def unexpected_rows(df: DataFrame, expectation: str, kwargs: dict[str, Any]) -> DataFrame:
    """The rows of `df` that `expectation` with `kwargs` counts as unexpected."""
    if expectation == "expect_column_values_to_be_unique":
        return _duplicated(df, [kwargs["column"]], "all_values_are_missing")
    if expectation == "expect_compound_columns_to_be_unique":
        return _duplicated(df, list(kwargs["column_list"]), kwargs.get("ignore_row_if", "all_values_are_missing"))
    if expectation == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = F.col(kwargs["column_A"]), F.col(kwargs["column_B"])
        greater = (a >= b) if kwargs.get("or_equal") else (a > b)
        return df.where(a.isNotNull() & b.isNotNull() & ~greater)
    col = F.col(kwargs["column"])
    if expectation == "expect_column_values_to_not_be_null":
        return df.where(col.isNull())
    if expectation == "expect_column_values_to_be_in_set":
        return df.where(col.isNotNull() & ~col.isin(list(kwargs["value_set"])))
    if expectation == "expect_column_values_to_be_between":
        return df.where(_between(col, kwargs))
    if expectation == "expect_column_values_to_match_regex":
        return df.where(col.isNotNull() & ~col.cast("string").rlike(kwargs["regex"]))
    raise KeyError(f"no example selector for {expectation}")


def checked_columns(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs["column_A"], kwargs["column_B"]]


def examples(df: DataFrame, expectation: str, kwargs: dict[str, Any], file_col: str, line_col: str,
             limit: int = EXAMPLES_PER_CHECK) -> list[dict[str, Any]]:
    """Up to `limit` unexpected rows as {file, line, values (masked JSON)}, in file order."""
    cols = checked_columns(kwargs)
    rows = (unexpected_rows(df, expectation, kwargs).select(file_col, line_col, *cols)
            .orderBy(file_col, line_col).limit(limit).collect())
    return [{"file": r[file_col], "line": r[line_col],
             "values": json.dumps(mask_record({c: r[c] for c in cols}), ensure_ascii=False)} for r in rows]
