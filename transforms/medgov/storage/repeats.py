"""Rank only the rows whose key repeats. Keys usually occur once: finding the repeated ones
shuffles the key columns alone (one small job), and only their rows go through the window,
which would otherwise shuffle and sort every row with all its columns."""

from __future__ import annotations

from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# above this many repeated keys, the window runs over every row rather than over theirs
REPEATS_APART = 100_000


def where_repeated(df: DataFrame, keys: list[str], ranked: Callable[[DataFrame], DataFrame],
                   among: Column | None = None) -> DataFrame:
    """`ranked(df)`, computed only on the rows whose `keys` occur more than once (counting the
    rows where `among` holds, every row without it); the other rows pass unchanged. `ranked`
    must leave a row whose key occurs once as it was, and keep `df`'s columns. Runs one Spark
    job and reads `df` up to three times: pass a cached frame. A key with a null in it is not
    told apart from others by a join, so then every row is ranked, as before."""
    counted = df if among is None else df.where(among)
    repeated = (counted.groupBy(*keys).count().where("count > 1").drop("count")
                .limit(REPEATS_APART + 1).collect())
    if not repeated:
        return df
    if len(repeated) > REPEATS_APART or any(v is None for r in repeated for v in r):
        return ranked(df)
    found = F.broadcast(df.sparkSession.createDataFrame([tuple(r) for r in repeated], df.select(*keys).schema))
    once = df.join(found, keys, "left_anti")
    return once.unionByName(ranked(df.join(found, keys, "left_semi")).select(*df.columns))
