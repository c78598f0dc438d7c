"""Feasibility counts: how many persons of a curated dataset meet structured criteria, by up
to three strata, released under the site's disclosure control (`disclosure`), within the
client's budget and past the differencing guard, every request audited (`audit`). Gold is
read through delta-rs into Polars: no JVM on the request path."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl
from deltalake import DeltaTable

from medgov.errors import MedgovError
from medgov.serving import audit
from medgov.serving.disclosure import Policy, Released, protect
from medgov.serving.query import Criterion, FeasibilityQuery, QueryError, Stratum, check_against, column_kind, parse_query
from medgov.spec.datasets import Dataset, datasets
from medgov.spec.site import ServingPolicy
from medgov.storage.lake import Lake

ENDPOINT = "feasibility"
UNKNOWN = "unknown"  # the stratum value of a person whose value is missing
QUERY_KEYS = {"dataset", "criteria", "strata", "column", "in", "between", "op", "value", "any", "bands"}


class Refused(MedgovError):
    """A request refused, with the HTTP status it maps to and the one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Caller:
    """Who asks: a client of the service (its role's datasets), or the offline CLI."""

    client: str
    role: str
    datasets: frozenset[str] | None = None  # None: every dataset
    max_level: int | None = None  # the highest GB/T 39725 level of column it may use; None: any


def _dataset(name: str, caller: Caller) -> Dataset:
    known = {d.name: d for d in datasets()}
    if name not in known or (caller.datasets is not None and name not in caller.datasets):
        # the same answer for a dataset that does not exist and one the role may not read
        raise Refused(403, f"dataset {name!r} is not available to role {caller.role}")
    return known[name]


_tables: dict[str, DeltaTable] = {}
_frames: dict[tuple[str, int, tuple[str, ...]], pl.DataFrame] = {}
_frames_lock = threading.Lock()
FRAMES_KEPT = 8  # columns of a table version held in memory between requests


def _frame(lake: Lake, d: Dataset, columns: list[str]) -> tuple[pl.DataFrame, int]:
    """The columns of the dataset's current version, read once per version through delta-rs
    and kept for the next request (a published table changes once per publish)."""
    uri = lake.gold(d.name)
    with _frames_lock:
        dt = _tables.get(uri)
        if dt is None:
            if not DeltaTable.is_deltatable(uri):
                raise Refused(404, f"{d.name} is not published in this lake yet")
            dt = _tables[uri] = DeltaTable(uri)
        else:
            dt.update_incremental()
        key = (uri, dt.version(), tuple(columns))
        if key not in _frames:
            data = dt.to_pyarrow_dataset().to_table(columns=columns, use_threads=False)
            while len(_frames) >= FRAMES_KEPT:
                gone = next(iter(_frames))
                _frames.pop(gone)
                for k in [k for k in _distinct_cache if k[0] == gone]:
                    _distinct_cache.pop(k)
            frame = pl.from_arrow(data)
            # text columns as categories: grouping and filtering on them is several times faster
            _frames[key] = frame.with_columns(  # type: ignore[union-attr]
                [pl.col(c).cast(pl.Categorical) for c, t in frame.schema.items()  # type: ignore[union-attr]
                 if t == pl.String and c != "patient_key"])
        return _frames[key], key[1]


_distinct_cache: dict[tuple[tuple[str, int, tuple[str, ...]], str], frozenset[Any]] = {}


def _distinct(frame: pl.DataFrame, column: str) -> frozenset[Any]:
    """The values a column holds (list columns: their items), once per kept frame."""
    with _frames_lock:
        owner = next((k for k, f in _frames.items() if f is frame), None)
        key = (owner, column) if owner is not None else None
        if key is not None and key in _distinct_cache:
            return _distinct_cache[key]
    series = frame.get_column(column)
    if isinstance(series.dtype, pl.List):
        series = series.explode()
    values = frozenset(series.drop_nulls().unique().to_list())
    if key is not None:
        with _frames_lock:
            _distinct_cache[key] = values
    return values


def _condition(c: Criterion, kind: str) -> pl.Expr:
    col = pl.col(c.column)
    if c.any is not None:
        return col.list.eval(pl.element().is_in(c.any)).list.any()
    if c.in_ is not None:
        values = [str(v) for v in c.in_] if kind == "text" else list(c.in_)
        return col.is_in(values)
    if c.between is not None:
        return col.is_between(c.between[0], c.between[1], closed="both")
    ops = {"<": col < c.value, "<=": col <= c.value, ">": col > c.value, ">=": col >= c.value, "=": col == c.value}
    return ops[c.op]  # type: ignore[index]


def _band_labels(bands: list[float]) -> list[str]:
    def fmt(x: float) -> str:
        return f"{x:g}"
    labels = [f"<{fmt(bands[0])}"]
    labels += [f"[{fmt(lo)},{fmt(hi)})" for lo, hi in zip(bands, bands[1:])]
    return labels + [f">={fmt(bands[-1])}", UNKNOWN]


def _band_index(expr: pl.Expr, bands: list[float]) -> pl.Expr:
    """The band of a number as the index of its label in `_band_labels` (-1: unknown). The
    grouping is on small integers; labels are put on the few groups afterwards."""
    above = pl.sum_horizontal([(expr >= b).cast(pl.Int8) for b in bands])
    return pl.when(expr.is_null()).then(pl.lit(-1, pl.Int8)).otherwise(above)


def _strata_columns(frame: pl.DataFrame, strata: list[Stratum], d: Dataset
                    ) -> tuple[list[pl.Expr], list[list[Any]], list[Callable[[Any], str]]]:
    """One `_s<i>` grouping expression per stratum, each stratum's domain (its bands, or every
    value the whole dataset holds, not only the cohort's: a value absent from the domain would
    itself tell that no person of the cohort has it), and how a group's value becomes its label."""
    domains, exprs, label_of = [], [], []
    for i, s in enumerate(strata):
        if s.bands is not None:
            labels = _band_labels(s.bands)
            domains.append(labels)
            exprs.append(_band_index(pl.col(s.column), s.bands).alias(f"_s{i}"))
            label_of.append(lambda v, labels=labels: labels[v])
        else:
            values = {str(v) for v in _distinct(frame, s.column)}
            if frame.get_column(s.column).null_count():
                values.add(UNKNOWN)
            domains.append(sorted(values, key=lambda v: (v == UNKNOWN, v)))
            exprs.append(pl.col(s.column).alias(f"_s{i}"))
            label_of.append(lambda v: UNKNOWN if v is None else str(v))
    return exprs, domains, label_of


def _mask(q: FeasibilityQuery, d: Dataset) -> pl.Expr:
    """Whether a row (a person: a dataset holds one row per person) meets every criterion."""
    cond = pl.lit(True)
    for c in q.criteria:
        cond = cond & _condition(c, column_kind(d, c.column)).fill_null(False)
    return cond


def _levels(q: FeasibilityQuery, d: Dataset, caller: Caller) -> None:
    """A criterion or stratum on a column above the role's level is refused: counts by a
    level-3 column tell level-3 facts about the cohort."""
    if caller.max_level is None:
        return
    for column in [c.column for c in q.criteria] + [s.column for s in q.strata]:
        level = int(d.columns[column].get("level", 4))
        if level > caller.max_level:
            raise Refused(403, f"{d.name}.{column} is level {level}, above role {caller.role}'s {caller.max_level}")


def _answered(history: list[dict[str, Any]], within: timedelta) -> list[dict[str, Any]]:
    """The client's answered feasibility queries of the last `within`, oldest first."""
    start = datetime.now(timezone.utc) - within
    return [e for e in history if e["endpoint"] == ENDPOINT and e["status"] == 200 and e["at"] >= start]


def _budget(history: list[dict[str, Any]], caller: Caller, policy: ServingPolicy) -> None:
    done = _answered(history, timedelta(days=1))
    if len(done) >= policy.queries_per_day:
        raise Refused(429, f"client {caller.client} has used its {policy.queries_per_day} feasibility queries "
                           "of the last 24 hours")


def _differencing(lake: Lake, history: list[dict[str, Any]], q: FeasibilityQuery, d: Dataset,
                  policy: ServingPolicy) -> None:
    """Refuse a cohort that differs from one of the client's recent cohorts on the same
    dataset by fewer persons than the minimum cell (the classic 'all but one' pair). Both
    cohorts are masks over the same rows of the current version: the difference is counted
    in one vectorised pass."""
    mine = q.criteria_only().canonical()
    recent = [e for e in _answered(history, timedelta(days=policy.differencing_window_days))
              if e["datasets"] == [d.name]]
    seen = {mine}
    for e in reversed(recent[-policy.differencing_lookback:]):
        earlier = parse_query(json.loads(e["query"])).criteria_only()
        if earlier.canonical() in seen:
            continue
        seen.add(earlier.canonical())
        columns = sorted({"patient_key", *[c.column for c in q.criteria], *[c.column for c in earlier.criteria]})
        both, _ = _frame(lake, d, columns)
        apart = both.select((_mask(q, d) ^ _mask(earlier, d)).sum()).item()
        if 0 < apart < policy.min_cell:
            raise Refused(403, f"differencing guard: this cohort differs from one of your earlier queries "
                               f"(at {e['at']:%Y-%m-%d %H:%M} UTC, {e['query_hash']}) by fewer than "
                               f"{policy.min_cell} persons")


def answer(lake: Lake, doc: Any, caller: Caller, policy: ServingPolicy) -> dict[str, Any]:
    """The released counts for a feasibility query document, audited; Refused (with the HTTP
    status) for a query that cannot be answered, also audited."""
    start = time.perf_counter()
    entry = audit.Entry(client=caller.client, role=caller.role, endpoint=ENDPOINT, status=200)
    try:
        try:
            q = parse_query(doc)
        except QueryError as exc:
            raise Refused(400, str(exc)) from None
        d = _dataset(q.dataset, caller)
        entry.datasets = [d.name]
        try:
            check_against(q, d)
        except QueryError as exc:
            raise Refused(400, str(exc)) from None
        _levels(q, d, caller)
        history = audit.entries(lake, caller.client)  # read once for the budget and the guard
        _budget(history, caller, policy)
        columns = sorted({"patient_key", *[c.column for c in q.criteria], *[s.column for s in q.strata]})
        frame, version = _frame(lake, d, columns)
        q = _as_recorded(q, frame, d)
        entry.query_hash, entry.query = q.digest(), q.canonical()
        labels, domains, label_of = _strata_columns(frame, list(q.strata), d)
        cells = math.prod(len(x) for x in domains) if domains else 1
        if cells > policy.max_cells:
            raise Refused(400, f"the strata make {cells} cells, more than the {policy.max_cells} one response may hold")
        _differencing(lake, history, q, d, policy)
        cohort = frame.lazy().filter(_mask(q, d))
        if labels:
            grouped = cohort.group_by(labels).agg(pl.len().alias("n")).collect()
            counts = {tuple(f(v) for f, v in zip(label_of, r[:-1])): int(r[-1]) for r in grouped.iter_rows()}
        else:
            counts = {(): int(cohort.select(pl.len()).collect().item())}
        released = protect([s.column for s in q.strata], domains, counts,
                           Policy(policy.min_cell, policy.rounding, policy.suppress_zero))
        entry.cells_released = sum(v is not None for v in released.cells.values())
        entry.cells_suppressed = released.suppressed
        return _response(q, d, released, domains, version, policy)
    except Refused as exc:
        entry.status, entry.reason = exc.status, _redacted(str(exc), doc)
        raise
    finally:
        entry.duration_ms = int((time.perf_counter() - start) * 1000)
        audit.record(lake, entry)


def _as_recorded(q: FeasibilityQuery, frame: pl.DataFrame, d: Dataset) -> FeasibilityQuery:
    """The query with every listed text value that no person has left out: the same cohort,
    and an audit that never holds a string the caller typed which is not already a value of
    a published, non-identifying column (a typed-in identity number, say)."""
    criteria = []
    for c in q.criteria:
        kind = column_kind(d, c.column)
        if c.in_ is not None and kind == "text":
            held = {str(v) for v in _distinct(frame, c.column)}
            c = c.model_copy(update={"in_": sorted(str(v) for v in c.in_ if str(v) in held)})
        elif c.any is not None:
            held = _distinct(frame, c.column)
            c = c.model_copy(update={"any": sorted(v for v in c.any if v in held)})
        criteria.append(c)
    return q.model_copy(update={"criteria": criteria})


def _redacted(reason: str, doc: Any) -> str:
    """A refusal's reason for the audit: every string the caller sent that is not a declared
    dataset or column name replaced by '…'."""
    declared = {d.name for d in datasets()} | {c for d in datasets() for c in d.columns} | QUERY_KEYS

    def strings(x: Any) -> list[str]:
        if isinstance(x, str):
            return [x]
        if isinstance(x, dict):
            return [s for k, v in x.items() for s in strings(k) + strings(v)]
        if isinstance(x, (list, tuple)):
            return [s for v in x for s in strings(v)]
        return []  # numbers and booleans: nothing a person could be named by
    for text in sorted(set(strings(doc)) - declared, key=len, reverse=True):
        if len(text) >= 3:  # shorter ones are operators and words of the reason itself
            reason = reason.replace(text, "…")
    return reason


def _response(q: FeasibilityQuery, d: Dataset, released: Released, domains: list[list[Any]], version: int,
              policy: ServingPolicy) -> dict[str, Any]:
    names = [s.column for s in q.strata]
    return {
        "dataset": d.name,
        "dataset_version": version,
        "query_hash": q.digest(),
        "total": released.total,
        "strata": names,
        "cells": [{**dict(zip(names, key)), "count": released.cells[key]}
                  for key in (itertools.product(*domains) if names else [()])],
        "margins": {n: [{"value": v, "count": c} for v, c in released.margins[n].items()] for n in names},
        "suppressed": released.suppressed,
        "disclosure": {"min_cell": policy.min_cell, "rounding": policy.rounding,
                       "suppressed_below_min_cell": released.suppressed_primary,
                       "suppressed_to_protect_others": released.suppressed_complementary,
                       "notes": released.notes},
    }
