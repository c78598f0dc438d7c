"""Curated dataset definitions (`schemas/datasets/<name>.yaml`): cohort parameters and the
GB/T 39725 classification of every published column."""

from __future__ import annotations

from typing import Any

from medgov.spec.package_data import schema_file


def dataset(name: str) -> dict[str, Any]:
    """The definition of dataset `name`."""
    return schema_file(f"datasets/{name}.yaml")


def column_metadata(definition: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Delta column metadata from a dataset definition: comment + GB/T 39725 category and level."""
    return {name: {"comment": f"{c['comment']} [GB/T 39725: {c['category']}, level {c['level']}]",
                   "gbt39725.category": c["category"], "gbt39725.level": str(c["level"])}
            for name, c in definition["columns"].items()}
