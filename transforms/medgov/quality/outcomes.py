"""Per-batch outcomes of a suite's checks in one Spark pass over every batch of a run, with
Great Expectations' own semantics: which rows a check considers, which it counts as
unexpected, and how `mostly` decides. Validate runs GX once per suite over all batches and
takes each batch's verdict from here (`tests/quality/test_outcomes.py` proves every outcome
equal to a GX run on that batch alone); the same predicates pick the example rows.

All the checks of the catalogue are map expectations: their result is counts, never a
sample of values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

NOT_NULL = "expect_column_values_to_not_be_null"


def _between(col: Column, kw: dict[str, Any]) -> Column:
    """True where a value lies inside the bounds (inclusive unless strict)."""
    low, high = kw.get("min_value"), kw.get("max_value")
    ok = F.lit(True)
    if low is not None:
        ok = ok & ((col > low) if kw.get("strict_min") else (col >= low))
    if high is not None:
        ok = ok & ((col < high) if kw.get("strict_max") else (col <= high))
    return ok


def _considered_rows(cols: list[Column], ignore_row_if: str) -> Column:
    """Rows a multi-column check looks at, by GX's `ignore_row_if`."""
    present = [c.isNotNull() for c in cols]
    if ignore_row_if in ("all_values_are_missing", "both_values_are_missing"):
        return present[0] if len(present) == 1 else _any(present)
    if ignore_row_if in ("any_value_is_missing", "either_value_is_missing"):
        return _all(present)
    return F.lit(True)  # "never" / "neither"


def _any(cs: list[Column]) -> Column:
    out = cs[0]
    for c in cs[1:]:
        out = out | c
    return out


def _all(cs: list[Column]) -> Column:
    out = cs[0]
    for c in cs[1:]:
        out = out & c
    return out


def _repeated(considered: Column, cols: list[str], by: list[str]) -> Column:
    """True where a considered row's values occur in another considered row of its batch."""
    w = Window.partitionBy(*by, *cols)
    return F.count(F.when(considered, F.lit(1))).over(w) > 1


def flags(expectation: str, kwargs: dict[str, Any], by: list[str] | None = None) -> tuple[Column | None, Column]:
    """(considered, unexpected) row predicates of one check; None for `considered` when the
    check looks at every row (not-null). `by` partitions uniqueness (the batch key)."""
    by = by or []
    if expectation == "expect_column_values_to_be_unique":
        col = F.col(kwargs["column"])
        considered = col.isNotNull()
        return considered, considered & _repeated(considered, [kwargs["column"]], by)
    if expectation == "expect_compound_columns_to_be_unique":
        names = list(kwargs["column_list"])
        considered = _considered_rows([F.col(n) for n in names], kwargs.get("ignore_row_if", "all_values_are_missing"))
        return considered, considered & _repeated(considered, names, by)
    if expectation == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = F.col(kwargs["column_A"]), F.col(kwargs["column_B"])
        considered = _considered_rows([a, b], kwargs.get("ignore_row_if", "both_values_are_missing"))
        greater = (a >= b) if kwargs.get("or_equal") else (a > b)
        return considered, considered & a.isNotNull() & b.isNotNull() & ~greater
    col = F.col(kwargs["column"])
    if expectation == NOT_NULL:
        return None, col.isNull()
    considered = col.isNotNull()
    if expectation == "expect_column_values_to_be_in_set":
        return considered, considered & ~col.isin(list(kwargs["value_set"]))
    if expectation == "expect_column_values_to_be_between":
        return considered, considered & ~_between(col, kwargs)
    if expectation == "expect_column_values_to_match_regex":
        return considered, considered & ~col.cast("string").rlike(kwargs["regex"])
    raise KeyError(f"no predicate for {expectation}")


@dataclass(frozen=True)
class Outcome:
    """One check on one batch: the rows, the rows it considers (None: all) and the unexpected."""

    element_count: int
    considered: int | None
    unexpected_count: int

    def success(self, mostly: float) -> bool:
        """GX's verdict: vacuous on no rows, else the share of considered rows as expected."""
        rows = self.element_count if self.considered is None else self.considered
        if self.element_count == 0 or rows == 0:
            return True
        return (float(rows) - float(self.unexpected_count)) / float(rows) >= mostly

    def result(self) -> dict[str, Any]:
        """The numbers GX reports for a map expectation (its `_format_map_output`)."""
        n, bad = self.element_count, self.unexpected_count
        total = bad / n * 100 if n > 0 else None
        out: dict[str, Any] = {"element_count": n, "unexpected_count": bad}
        if self.considered is None:
            out["unexpected_percent"] = total
            return out
        missing = n - self.considered
        nonmissing = bad / self.considered * 100 if n > 0 and self.considered > 0 else None
        out.update(unexpected_percent=nonmissing, missing_count=missing,
                   missing_percent=missing / n * 100 if n > 0 else None, unexpected_percent_total=total,
                   unexpected_percent_nonmissing=nonmissing)
        return out


def batch_outcomes(df: DataFrame, checks: list[tuple[str, dict[str, Any]]], key_col: str
                   ) -> dict[str, list[Outcome]]:
    """Every check's outcome on every batch of `df` (batch key in `key_col`), in one job."""
    flag_cols, aggs = [], [F.count(F.lit(1)).alias("_n")]
    for i, (expectation, kwargs) in enumerate(checks):
        considered, unexpected = flags(expectation, kwargs, [key_col])
        if considered is not None:
            flag_cols.append(considered.cast("int").alias(f"_c{i}"))
            aggs.append(F.sum(f"_c{i}").alias(f"_c{i}"))
        # window predicates (uniqueness) are computed in a projection: not inside an aggregate
        flag_cols.append(F.coalesce(unexpected, F.lit(False)).cast("int").alias(f"_u{i}"))
        aggs.append(F.sum(f"_u{i}").alias(f"_u{i}"))
    out: dict[str, list[Outcome]] = {}
    for r in df.select(key_col, *flag_cols).groupBy(key_col).agg(*aggs).collect():
        row = r.asDict()
        out[row[key_col]] = [Outcome(row["_n"], row.get(f"_c{i}"), row[f"_u{i}"]) for i in range(len(checks))]
    return out


def unexpected_rows(df: DataFrame, expectation: str, kwargs: dict[str, Any], by: list[str] | None = None
                    ) -> DataFrame:
    """The rows of `df` that the check counts as unexpected (uniqueness within `by`)."""
    unexpected = flags(expectation, kwargs, by)[1]
    flagged = df.withColumn("_unexpected", unexpected)
    return flagged.where(F.col("_unexpected")).drop("_unexpected")
