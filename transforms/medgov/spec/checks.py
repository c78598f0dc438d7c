"""The check catalogue: every check the pipeline runs, read from `expectations/`.

Two engines, one format (in the manner of the OHDSI DQD check registry: checks as data, each
with its Kahn category and context, severity and threshold). Great Expectations suites
(`bronze.*`, `silver.*`) run in validate; medgov's own checks (`engine: medgov`: the
delivery's conformance at ingest, the contract's row checks, the FHIR build) run in their
stages and are declared beside them. A declaration whose name holds `{table}` stands for
one suite per interface table (`ingest.{table}` -> `ingest.lab_result`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from medgov.spec.contracts import TABLES
from medgov.spec.package_data import suite_file, suite_names

# the layers that record checks, in pipeline order
LAYERS = ("ingest", "bronze", "normalize", "silver")
CATEGORIES = ("conformance", "completeness", "plausibility")  # Kahn et al. 2016
CONTEXTS = ("verification", "validation")
SEVERITIES = ("blocking", "warning")


def column_of(kwargs: dict[str, Any]) -> str | None:
    """The column(s) a check looks at, as one name ("a,b" for pairs and lists)."""
    if "column" in kwargs:
        return kwargs["column"]
    if "column_list" in kwargs:
        return ",".join(kwargs["column_list"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return None


@dataclass(frozen=True)
class Check:
    """One declared check, as it is named in `quality/quality_results`."""

    suite: str
    layer: str
    table: str | None
    expectation: str
    column: str | None
    category: str
    context: str
    severity: str
    threshold: float
    description: str
    engine: str  # "gx" | "medgov"
    shown: tuple[str, ...] = ()  # columns a failing row's example shows beside the checked ones
    description_zh: str | None = None  # the description for the stewards, in Chinese
    kwargs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def meta(self) -> dict[str, str]:
        """The check's metadata as Great Expectations carries it."""
        return {"category": self.category, "severity": self.severity, "description": self.description,
                "context": self.context}

    def passes(self, rows: int | None, unexpected: int | None) -> bool:
        """The threshold's verdict: at least `threshold` of the rows are as expected."""
        if not rows or not unexpected:
            return True
        return (rows - unexpected) / rows >= self.threshold


def _checks_of(name: str, doc: dict[str, Any]) -> list[Check]:
    tables = TABLES if "{table}" in doc["name"] else (doc.get("table"),)
    out = []
    for table in tables:
        for e in doc["expectations"]:
            meta, kwargs = e["meta"], e.get("kwargs", {})
            out.append(Check(
                suite=doc["name"].format(table=table), layer=doc["layer"], table=table, expectation=e["type"],
                column=column_of(kwargs), category=meta["category"], context=meta.get("context", "verification"),
                severity=meta.get("severity", "warning"), threshold=float(kwargs.get("mostly", 1.0)),
                description=meta["description"], engine=doc.get("engine", "gx"),
                shown=tuple(meta.get("show", ())), description_zh=meta.get("description_zh"), kwargs=kwargs))
    return out


@lru_cache(maxsize=None)
def catalogue() -> tuple[Check, ...]:
    """Every check of every suite file, per-table declarations expanded, in pipeline order."""
    checks = [c for name in suite_names() for c in _checks_of(name, suite_file(name))]
    order = {layer: i for i, layer in enumerate(LAYERS)}
    return tuple(sorted(checks, key=lambda c: order.get(c.layer, len(order))))


def suite_checks(suite: str) -> list[Check]:
    """The checks of one suite as results name it (`bronze.lab_result`, `ingest.delivery`)."""
    return [c for c in catalogue() if c.suite == suite]


def gx_suites() -> list[str]:
    """Names of the Great Expectations suites."""
    return sorted({c.suite for c in catalogue() if c.engine == "gx"})


def medgov_check(suite: str, expectation: str) -> Check:
    """A check medgov runs itself, by the suite and name results give it."""
    for c in suite_checks(suite):
        if c.expectation == expectation and c.engine == "medgov":
            return c
    raise KeyError(f"no medgov check {expectation!r} declared for suite {suite!r} in expectations/")
