"""Release copies of a curated dataset, one per GB/T 39725 level: `release/<dataset>/level_<n>`
holds the dataset's rows with only the columns of level n or lower. The serving layer shares
these copies (Delta Sharing), so a client's response never comes from filtering the full
table: a column above the role's level is not in any file it can reach. Written by publish
after the dataset's MERGE, through delta-rs."""

from __future__ import annotations

from deltalake import DeltaTable, write_deltalake

from medgov.spec.datasets import Dataset
from medgov.storage.lake import Lake

LEVELS = (1, 2, 3, 4)


def release_table(lake: Lake, dataset: str, level: int) -> str:
    return lake.table("release", f"{dataset}/level_{level}")


def columns_at(d: Dataset, level: int) -> list[str]:
    """The dataset's columns of level `level` or lower, in declared order (level 4 if unset)."""
    return [n for n, c in d.columns.items() if int(c.get("level", 4)) <= level]


def write_releases(lake: Lake, d: Dataset) -> list[tuple[str, list[str], int]]:
    """Rewrite every release copy of `d` from its gold table; (uri, columns, rows) of each.
    A level with no column of its own gets no copy."""
    gold = DeltaTable(lake.gold(d.name)).to_pyarrow_dataset().to_table(use_threads=False)
    out = []
    for level in LEVELS:
        cols = [c for c in columns_at(d, level) if c in gold.column_names]
        if not cols:
            continue
        data = gold.select(cols)
        uri = release_table(lake, d.name, level)
        write_deltalake(uri, data, mode="overwrite", schema_mode="overwrite",
                        description=f"{d.title}: release copy with the columns of GB/T 39725 level {level} or lower")
        out.append((uri, cols, data.num_rows))
    return out
