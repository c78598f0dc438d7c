"""Disclosure control for released counts: small cells suppressed, the others rounded, and
complementary suppression so that no suppressed value can be recovered by subtraction from
the margins or the total released beside it. Pure Python, no I/O.

Sources of the defaults (`schemas/serving.yaml` documents them, a site overrides them):
- minimum cell 10: OHDSI's `minCellCount` practice for shared aggregate results, and the
  small-cell rule of national health-data releases;
- 11 is the CMS / PCORnet rule (counts of 1-10 suppressed): set `min_cell: 11`;
- rounding to a base (5 by default) as i2b2's obfuscated counts and census tables do, so
  that two overlapping releases do not differ by an exact small number.

A released table is a full cross-classification of up to three strata: its cells, each
stratum's one-way margins, and the total. Every margin and the total is a sum of cells, and
the total is the sum of each stratum's margins; these are the relations complementary
suppression protects.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Policy:
    """One site's disclosure rules."""

    min_cell: int = 10
    rounding: int = 5
    suppress_zero: bool = False  # a true 0 is released as 0 unless set

    def small(self, count: int) -> bool:
        return (0 < count < self.min_cell) or (self.suppress_zero and count == 0)

    def rounded(self, count: int) -> int:
        if self.rounding <= 1:
            return count
        return int(self.rounding * round(count / self.rounding))


@dataclass
class Released:
    """What may leave: each value rounded, or None where suppressed."""

    dimensions: list[str]
    cells: dict[Key, int | None]
    margins: dict[str, dict[Any, int | None]]
    total: int | None
    suppressed_primary: int = 0
    suppressed_complementary: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def suppressed(self) -> int:
        return self.suppressed_primary + self.suppressed_complementary


def protect(dimensions: list[str], domains: list[list[Any]], counts: dict[Key, int], policy: Policy) -> Released:
    """The released table of exact `counts` (cell key -> persons; absent keys are 0) over the
    cross product of `domains` (one list of values per dimension)."""
    cells = {key: counts.get(key, 0) for key in itertools.product(*domains)} if dimensions else {(): counts.get((), 0)}
    total = sum(cells.values())
    margins = {d: {v: sum(c for k, c in cells.items() if k[i] == v) for v in domains[i]}
               for i, d in enumerate(dimensions)}
    # every released value by an id: ("cell", key), ("margin", dim, value), ("total",)
    exact: dict[tuple[Any, ...], int] = {("cell", k): c for k, c in cells.items()}
    for d, values in margins.items():
        exact.update({("margin", d, v): c for v, c in values.items()})
    exact[("total",)] = total
    hidden = {i for i, c in exact.items() if policy.small(c)}
    primary = len(hidden)
    complementary = _complementary(dimensions, domains, exact, hidden)
    notes = []
    if ("total",) in hidden:
        notes.append(f"the cohort is smaller than the minimum cell ({policy.min_cell}): every count is suppressed")
        hidden |= set(exact)

    def out(i: tuple[Any, ...]) -> int | None:
        return None if i in hidden else policy.rounded(exact[i])
    return Released(
        dimensions=list(dimensions),
        cells={k: out(("cell", k)) for k in cells},
        margins={d: {v: out(("margin", d, v)) for v in values} for d, values in margins.items()},
        total=out(("total",)),
        suppressed_primary=primary,
        suppressed_complementary=len(hidden) - primary if notes else complementary,
        notes=notes,
    )


def relations(dimensions: list[str], domains: list[list[Any]]) -> list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(the sum's id, the ids of its parts) for every additive relation of the table."""
    cell_keys = list(itertools.product(*domains)) if dimensions else [()]
    out = [(("total",), [("cell", k) for k in cell_keys])]
    for i, d in enumerate(dimensions):
        out.append((("total",), [("margin", d, v) for v in domains[i]]))
        for v in domains[i]:
            out.append((("margin", d, v), [("cell", k) for k in cell_keys if k[i] == v]))
    return out


def _complementary(dimensions: list[str], domains: list[list[Any]], exact: dict[tuple[Any, ...], int],
                   hidden: set[tuple[Any, ...]]) -> int:
    """Suppress more values until no relation has exactly one suppressed member (which its
    sum or its other parts would give away); the smallest visible part goes first. Returns
    how many were added. Rounding makes the remaining linear bounds coarser still."""
    added = 0
    rels = relations(dimensions, domains)
    changed = True
    while changed:
        changed = False
        for whole, parts in rels:
            members = [whole, *parts]
            if sum(m in hidden for m in members) != 1:
                continue
            visible = [p for p in parts if p not in hidden]
            pick = min(visible, key=lambda p: (exact[p], str(p))) if visible else whole
            hidden.add(pick)
            added += 1
            changed = True
    return added


def recoverable(released: Released, domains: list[list[Any]]) -> list[tuple[Any, ...]]:
    """The suppressed values a reader could compute by one subtraction (none, when protected)."""
    value: dict[tuple[Any, ...], int | None] = {("cell", k): c for k, c in released.cells.items()}
    for d, values in released.margins.items():
        value.update({("margin", d, v): c for v, c in values.items()})
    value[("total",)] = released.total
    out = []
    for whole, parts in relations(released.dimensions, domains):
        members = [whole, *parts]
        missing = [m for m in members if value[m] is None]
        if len(missing) == 1:
            out.append(missing[0])
    return out
