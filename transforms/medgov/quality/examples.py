"""A few example rows for each failing check, masked, so a steward can show a hospital what
to fix: the row's file and line, and the checked values (quasi-identifiers generalised).

GX keeps no samples of unexpected values (see `gx_runner`): its Data Docs and stores are
written as they are. Here the unexpected rows of a failing check are selected again in
Spark with the expectation's own semantics (`outcomes.flags`: nulls ignored except by
not-null checks, `between` inclusive unless strict), then masked before they are stored.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from medgov.domain.masking import mask_record
from medgov.quality.outcomes import unexpected_rows
from medgov.spec.checks import column_of

EXAMPLES_PER_CHECK = 3


def examples_by_batch(df: DataFrame, expectation: str, kwargs: dict[str, Any], key_col: str, batches: list[str],
                      file_col: str, line_col: str, limit: int = EXAMPLES_PER_CHECK,
                      shown: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    """Up to `limit` unexpected rows per batch (of `batches`) as {file, line, values (masked
    JSON of the checked columns and the `shown` ones, e.g. a hold's reason)}, in file order;
    one Spark job for all the batches."""
    cols = list(dict.fromkeys([*(column_of(kwargs) or "").split(","), *shown]))
    first = Window.partitionBy(key_col).orderBy(file_col, line_col)
    rows = (unexpected_rows(df.where(F.col(key_col).isin(batches)), expectation, kwargs, [key_col])
            .select(key_col, file_col, line_col, *cols)
            .withColumn("_rank", F.row_number().over(first)).where(F.col("_rank") <= limit)
            .orderBy(key_col, file_col, line_col).collect())
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r[key_col], []).append(
            {"file": r[file_col], "line": r[line_col],
             "values": json.dumps(mask_record({c: r[c] for c in cols}), ensure_ascii=False)})
    return out


def examples(df: DataFrame, expectation: str, kwargs: dict[str, Any], file_col: str, line_col: str,
             limit: int = EXAMPLES_PER_CHECK) -> list[dict[str, Any]]:
    """Up to `limit` unexpected rows of one frame (one batch), in file order."""
    one = df.withColumn("_batch", F.lit("_"))
    return examples_by_batch(one, expectation, kwargs, "_batch", ["_"], file_col, line_col, limit).get("_", [])
