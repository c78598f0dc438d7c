"""Feasibility counts: how many persons of a curated dataset meet structured criteria, by up
to three strata, released under the site's disclosure control (`disclosure`), within the
client's budget and past the differencing guard, every request audited (`audit`). Gold is
read through delta-rs into Polars: no JVM on the request path."""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import dataclass
from datetime import timedelta
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


def _dataset(name: str, caller: Caller) -> Dataset:
    known = {d.name: d for d in datasets()}
    if name not in known or (caller.datasets is not None and name not in caller.datasets):
        # the same answer for a dataset that does not exist and one the role may not read
        raise Refused(403, f"dataset {name!r} is not available to role {caller.role}")
    return known[name]


def _frame(lake: Lake, d: Dataset, columns: list[str]) -> tuple[pl.DataFrame, int]:
    uri = lake.gold(d.name)
    if not DeltaTable.is_deltatable(uri):
        raise Refused(404, f"{d.name} is not published in this lake yet")
    dt = DeltaTable(uri)
    data = dt.to_pyarrow_dataset().to_table(columns=columns, use_threads=False)
    return pl.from_arrow(data), dt.version()  # type: ignore[return-value]


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


def _band(expr: pl.Expr, bands: list[float]) -> pl.Expr:
    labels = _band_labels(bands)
    out = pl.when(expr.is_null()).then(pl.lit(UNKNOWN)).when(expr < bands[0]).then(pl.lit(labels[0]))
    for i, (lo, hi) in enumerate(zip(bands, bands[1:])):
        out = out.when((expr >= lo) & (expr < hi)).then(pl.lit(labels[i + 1]))
    return out.otherwise(pl.lit(labels[-2]))


def _strata_columns(frame: pl.DataFrame, strata: list[Stratum], d: Dataset) -> tuple[pl.DataFrame, list[list[Any]]]:
    """The frame with one `_s<i>` label column per stratum, and each stratum's domain: its
    bands, or every value the whole dataset holds (not only the cohort's: a value absent from
    the domain would itself tell that no person of the cohort has it)."""
    domains = []
    exprs = []
    for i, s in enumerate(strata):
        if s.bands is not None:
            domains.append(_band_labels(s.bands))
            exprs.append(_band(pl.col(s.column), s.bands).alias(f"_s{i}"))
        else:
            label = pl.col(s.column).cast(pl.String).fill_null(UNKNOWN)
            values = frame.select(label.unique()).to_series().to_list()
            domains.append(sorted(values, key=lambda v: (v == UNKNOWN, v)))
            exprs.append(label.alias(f"_s{i}"))
    return frame.with_columns(exprs) if exprs else frame, domains


def _cohort(frame: pl.DataFrame, q: FeasibilityQuery, d: Dataset) -> pl.DataFrame:
    cond = pl.lit(True)
    for c in q.criteria:
        cond = cond & _condition(c, column_kind(d, c.column)).fill_null(False)
    return frame.filter(cond)


def _budget(lake: Lake, caller: Caller, policy: ServingPolicy) -> None:
    done = [e for e in audit.entries(lake, caller.client, since=timedelta(days=1))
            if e["endpoint"] == ENDPOINT and e["status"] == 200]
    if len(done) >= policy.queries_per_day:
        raise Refused(429, f"client {caller.client} has used its {policy.queries_per_day} feasibility queries "
                           "of the last 24 hours")


def _differencing(lake: Lake, caller: Caller, q: FeasibilityQuery, d: Dataset, frame: pl.DataFrame,
                  persons: set[Any], policy: ServingPolicy) -> None:
    """Refuse a cohort that differs from one of the client's recent cohorts on the same
    dataset by fewer persons than the minimum cell (the classic 'all but one' pair)."""
    mine = q.criteria_only().canonical()
    recent = [e for e in audit.entries(lake, caller.client, since=timedelta(days=policy.differencing_window_days))
              if e["endpoint"] == ENDPOINT and e["status"] == 200 and e["datasets"] == [d.name]]
    seen = {mine}
    for e in reversed(recent[-policy.differencing_lookback:]):
        earlier = parse_query(json.loads(e["query"])).criteria_only()
        if earlier.canonical() in seen:
            continue
        seen.add(earlier.canonical())
        needed = {c.column for c in earlier.criteria}
        if not needed <= set(frame.columns):
            frame_more, _ = _frame(lake, d, sorted(needed | {"patient_key"}))
        else:
            frame_more = frame
        theirs = set(_cohort(frame_more, earlier, d).get_column("patient_key").to_list())
        apart = len(persons ^ theirs)
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
        _budget(lake, caller, policy)
        columns = sorted({"patient_key", *[c.column for c in q.criteria], *[s.column for s in q.strata]})
        frame, version = _frame(lake, d, columns)
        q = _as_recorded(q, frame, d)
        entry.query_hash, entry.query = q.digest(), q.canonical()
        frame, domains = _strata_columns(frame, list(q.strata), d)
        cells = math.prod(len(x) for x in domains) if domains else 1
        if cells > policy.max_cells:
            raise Refused(400, f"the strata make {cells} cells, more than the {policy.max_cells} one response may hold")
        cohort = _cohort(frame, q, d)
        persons = set(cohort.get_column("patient_key").to_list())
        _differencing(lake, caller, q, d, frame, persons, policy)
        keys = [f"_s{i}" for i in range(len(q.strata))]
        if keys:
            grouped = cohort.group_by(keys).agg(pl.col("patient_key").n_unique().alias("n"))
            counts = {tuple(r[:-1]): int(r[-1]) for r in grouped.iter_rows()}
        else:
            counts = {(): len(persons)}
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
            held = set(frame.get_column(c.column).drop_nulls().unique().to_list())
            c = c.model_copy(update={"in_": sorted(str(v) for v in c.in_ if str(v) in held)})
        elif c.any is not None:
            held = set(frame.get_column(c.column).explode().drop_nulls().unique().to_list())
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
