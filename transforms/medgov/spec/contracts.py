"""Table contracts of the extract interface, read from `schemas/contracts/`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from medgov.spec.package_data import schema_file


def interface() -> dict[str, Any]:
    """Interface-wide rules: the tables in load order, date shapes, timezone, encodings."""
    return schema_file("contracts/_interface.yaml")


# The interface's tables in load order (patient first: later tables resolve subjects through it).
TABLES: tuple[str, ...] = tuple(interface()["tables"])


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # str | date | datetime | decimal
    required: bool = False
    privacy: str | None = None  # "direct" for direct identifiers


@dataclass(frozen=True)
class Contract:
    table: str
    title: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def direct_identifiers(self) -> list[str]:
        return [c.name for c in self.columns if c.privacy == "direct"]

    @property
    def dated(self) -> list[str]:
        return [c.name for c in self.columns if c.type in ("date", "datetime")]


@lru_cache(maxsize=None)
def contract(table: str) -> Contract:
    """The contract of one extract table."""
    if table not in TABLES:
        raise KeyError(table)
    raw = schema_file(f"contracts/{table}.yaml")
    cols = tuple(Column(c["name"], c["type"], bool(c.get("required")), c.get("privacy")) for c in raw["columns"])
    return Contract(raw["table"], raw["title"], tuple(raw["key"]), cols)
