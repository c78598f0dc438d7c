"""A feasibility query: a structured cohort over one curated dataset (criteria on its
declared columns) and up to three strata. Criteria are values checked against the dataset's
declared columns and types, never text pasted into SQL; they are applied with Polars
expressions. No Spark here."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medgov.errors import MedgovError
from medgov.spec.datasets import Dataset

MAX_STRATA = 3
MAX_VALUES = 200  # values listed in one criterion
_NUMERIC = ("int", "bigint", "double", "float", "decimal")
# columns that single out a person, never a criterion or a stratum
IDENTIFYING = {"patient_key"}


class QueryError(MedgovError):
    """The query cannot be answered as asked: the one-line reason (HTTP 400/422)."""


class Criterion(BaseModel):
    """One condition on a column: exactly one of `in`, `between`, `op` + `value`, `any`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    column: str = Field(max_length=64)
    in_: list[str | int | float | bool] | None = Field(default=None, alias="in", max_length=MAX_VALUES)
    between: tuple[float | date, float | date] | None = None
    op: Literal["<", "<=", ">", ">=", "="] | None = None
    value: float | None = None
    any: list[str] | None = Field(default=None, max_length=MAX_VALUES)

    @model_validator(mode="after")
    def _one_operator(self) -> Criterion:
        given = [k for k in ("in_", "between", "op", "any") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"criterion on {self.column}: give exactly one of in, between, op (with value), any")
        if (self.op is None) != (self.value is None):
            raise ValueError(f"criterion on {self.column}: op and value go together")
        return self


class Stratum(BaseModel):
    """A stratum: a column's values, or a numeric column cut into bands (`bands` are the
    lower bounds: [0, 40, 60, 80] gives <40, 40-59, 60-79, 80+)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    column: str = Field(max_length=64)
    bands: list[float] | None = Field(default=None, min_length=1, max_length=50)


class FeasibilityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str = Field(max_length=64)
    criteria: list[Criterion] = Field(default_factory=list, max_length=20)
    strata: list[Stratum] = Field(default_factory=list, max_length=MAX_STRATA)

    def canonical(self) -> str:
        """The query as canonical JSON (what the audit stores and hashes)."""
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True,
                          ensure_ascii=False)

    def digest(self) -> str:
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()[:16]

    def criteria_only(self) -> FeasibilityQuery:
        """The same cohort without strata (what the differencing guard compares)."""
        return FeasibilityQuery(dataset=self.dataset, criteria=self.criteria)


def parse_query(doc: Any) -> FeasibilityQuery:
    """A FeasibilityQuery from a parsed document; QueryError naming the first problem."""
    if not isinstance(doc, dict):
        raise QueryError("a feasibility query is a mapping with dataset, criteria and strata")
    if len(doc.get("strata") or []) > MAX_STRATA:
        raise QueryError(f"at most {MAX_STRATA} strata, not {len(doc['strata'])}")
    try:
        return FeasibilityQuery.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "query"
        raise QueryError(f"{where}: {err['msg']}") from None


def column_kind(d: Dataset, column: str) -> str:
    """'number', 'date', 'text', 'list' or 'bool' for a declared column; QueryError otherwise."""
    meta = d.columns.get(column)
    if meta is None or column == "updated_run_id":
        raise QueryError(f"{d.name} has no column {column!r}")
    if column in IDENTIFYING:
        raise QueryError(f"{column} identifies a person: it is neither a criterion nor a stratum")
    t = str(meta["type"]).lower()
    if t.startswith("array"):
        return "list"
    if t.startswith(_NUMERIC):
        return "number"
    if t == "date" or t.startswith("timestamp"):
        return "date"
    if t == "boolean":
        return "bool"
    return "text"


def check_against(q: FeasibilityQuery, d: Dataset) -> None:
    """Each criterion's and stratum's column is declared, not identifying, and of a kind its
    operator takes; QueryError otherwise. (Counts leave no row: any other column may shape
    the cohort, whatever its GB/T 39725 level.)"""
    for c in q.criteria:
        kind = column_kind(d, c.column)
        if c.any is not None and kind != "list":
            raise QueryError(f"criterion on {c.column}: `any` takes a list column")
        if kind == "list" and c.any is None:
            raise QueryError(f"criterion on {c.column}: a list column takes `any`")
        if (c.op is not None or c.between is not None) and kind not in ("number", "date"):
            raise QueryError(f"criterion on {c.column}: op and between take a number or date column")
        if c.op is not None and kind == "date":
            raise QueryError(f"criterion on {c.column}: a date column takes between")
        if c.between is not None:
            lo, hi = c.between
            if isinstance(lo, date) != (kind == "date") or isinstance(hi, date) != (kind == "date"):
                raise QueryError(f"criterion on {c.column}: between takes two {'dates' if kind == 'date' else 'numbers'}")
            if lo > hi:  # type: ignore[operator]
                raise QueryError(f"criterion on {c.column}: between's lower bound is above its upper bound")
    seen = set()
    for s in q.strata:
        kind = column_kind(d, s.column)
        if s.column in seen:
            raise QueryError(f"stratum {s.column} given twice")
        seen.add(s.column)
        if kind == "list":
            raise QueryError(f"stratum {s.column}: a list column is a criterion (`any`), not a stratum: a person "
                             "would count in several cells")
        if kind in ("number", "date") and s.bands is None:
            raise QueryError(f"stratum {s.column}: a {kind} column needs bands")
        if s.bands is not None and (kind != "number" or s.bands != sorted(set(s.bands))):
            raise QueryError(f"stratum {s.column}: bands are increasing lower bounds of a number column")

