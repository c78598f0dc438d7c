"""Stage 3 — validate: GX suites on bronze and silver per batch; blocking failures stop publish."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from dataclasses import dataclass, field
from typing import Any, Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medgov import faults, quality_results, state
from medgov.context import Context
from medgov.contracts import TABLES, contract
from medgov.identity import load_key
from medgov.lake import SILVER_TABLES
from medgov.lineage import DatasetInfo, stage_run
from medgov.resources import column_of, suite_file
from medgov.check_examples import examples
from medgov.quality import QualityRunner
from medgov.quality_results import EXAMPLES_SCHEMA, RESULTS_SCHEMA
from medgov.quality_views import bronze_view, silver_view
from medgov.commits import sql_in

@dataclass
class ValidateResult:
    passed: list[str] = field(default_factory=list)
    blocked: dict[str, list[str]] = field(default_factory=dict)  # batch -> failed blocking checks
    checks: int = 0
    failed_warnings: int = 0


def _assertions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """dataQualityAssertions facet entries: one per expectation and column, success over all batches."""
    merged: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        k = (r["expectation"], r["column"])
        a = merged.setdefault(k, {"assertion": r["expectation"], "column": r["column"], "success": True,
                                  "severity": r["severity"], "description": r["description"]})
        a["success"] = a["success"] and r["success"]
    return list(merged.values())


def _failing_examples(batch_view, suite: str, rows: list[dict[str, Any]], locator: tuple[str, str]
                      ) -> list[dict[str, Any]]:
    """Masked example rows for each failing check of one batch (none for passing checks)."""
    configs = {(e["type"], column_of(e["kwargs"])): e["kwargs"] for e in suite_file(suite)["expectations"]}
    out = []
    for r in rows:
        if r["success"]:
            continue
        kwargs = configs.get((r["expectation"], r["column"]))
        if kwargs is None:
            continue
        for ex in examples(batch_view, r["expectation"], kwargs, *locator):
            out.append({k: r[k] for k in ("run_id", "batch_key", "org_code", "layer", "suite", "expectation",
                                          "column", "validated_at")} | ex)
    return out


def _validate_batches(ctx: Context, runner: QualityRunner, suite: str, view, key_col: str, keys: list[str],
                      locator: tuple[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run `suite` once per batch present in `view` (cached once for all of them); results and
    masked examples of the failing checks."""
    view = view.cache()
    present = {r[0] for r in view.groupBy(key_col).count().collect()}
    rows: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for k in keys:
        if k in present:
            ctx.progress(f"validate {suite} {k}")
            batch_view = view.where(F.col(key_col) == k)
            batch_rows = runner.validate(suite, batch_view, k, ctx.run_id)
            rows += batch_rows
            found += _failing_examples(batch_view, suite, batch_rows, locator)
    view.unpersist()
    return rows, found


@dataclass(frozen=True)
class _Suite:
    """One GX suite to run on the batches: what it checks and where the rows are."""

    name: str
    uri: str
    key_col: str
    locator: tuple[str, str]  # the columns that point a reader at the source line
    view: Callable[[], DataFrame]


def _threads() -> int:
    return max(1, int(os.environ.get("MEDGOV_VALIDATE_THREADS", "2")))


def _bronze_view(ctx: Context, uri: str, table: str, keys: list[str], key: bytes, keyed: bool) -> DataFrame:
    return bronze_view(ctx.store.read(uri, sql_in("_batch_key", keys)), contract(table), key, keyed)


def _silver_view(ctx: Context, uri: str, table: str, keys: list[str], patients, encounters) -> DataFrame:
    return silver_view(ctx.store.read(uri, sql_in("batch_key", keys)), table, patients, encounters)


def validate(ctx: Context, keys: list[str] | None = None) -> ValidateResult:
    """Validate the given batches (default: those whose stage is `silver`)."""
    taken = state.taken(ctx.lake, "silver", keys)
    keys = list(taken)
    result = ValidateResult()
    if not keys:
        return result
    key = load_key()
    lake, store = ctx.lake, ctx.store
    runner = QualityRunner(lake)
    rows: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    with stage_run(lake, "medgov.validate", ctx.parent) as run:
        suites: list[_Suite] = []
        for table in TABLES:
            uri = lake.table("bronze", table)
            if store.exists(uri):
                keyed = "source_key" in json.dumps(suite_file(f"bronze.{table}")["expectations"])
                suites.append(_Suite(f"bronze.{table}", uri, "_batch_key", ("_file", "_line"),
                                     partial(_bronze_view, ctx, uri, table, keys, key, keyed)))
        silver = {t: lake.table("silver", t) for t in SILVER_TABLES}
        patients = store.read(silver["patient"]) if store.exists(silver["patient"]) else None
        encounters = store.read(silver["encounter"]) if store.exists(silver["encounter"]) else None
        for table in SILVER_TABLES:
            if table != "patient_xref" and store.exists(silver[table]):
                suites.append(_Suite(f"silver.{table}", silver[table], "batch_key", ("source_file", "source_line"),
                                     partial(_silver_view, ctx, silver[table], table, keys, patients, encounters)))
        for suite in suites:
            runner.prepare(suite.name)  # GX objects are created one at a time, before the threads start
        # Suites run side by side: a GX run mostly waits on many small calls into the JVM, time a
        # second thread fills. Results keep the suites' order.
        with ThreadPoolExecutor(max_workers=_threads()) as pool:
            outcomes = list(pool.map(lambda s: _validate_batches(ctx, runner, s.name, s.view(), s.key_col, keys,
                                                                 s.locator), suites))
        for suite, (suite_rows, suite_examples) in zip(suites, outcomes):
            rows += suite_rows
            found += suite_examples
            run.inputs.append(DatasetInfo(suite.uri, assertions=_assertions(suite_rows)))
        runner.build_docs()
        quality_results.write_examples(lake, found, keys, layers=("bronze", "silver"))
        quality_results.write(lake, rows, keys, layers=("bronze", "silver"))
        run.outputs.append(DatasetInfo(lake.quality_results, [(f.name, str(f.type)) for f in RESULTS_SCHEMA],
                                       rows=len(rows)))
        run.outputs.append(DatasetInfo(lake.check_examples, [(f.name, str(f.type)) for f in EXAMPLES_SCHEMA],
                                       rows=len(found)))
        failures: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            if not r["success"]:
                if r["severity"] == "blocking":
                    failures[r["batch_key"]].append(f"{r['suite']}: {r['expectation']}({r['column']})")
                else:
                    result.failed_warnings += 1
        result.checks = len(rows)
        result.passed = [k for k in keys if k not in failures]
        result.blocked = {k: failures[k] for k in keys if k in failures}
        counts = {k: len(failures.get(k, [])) for k in keys}
        faults.point("validate.before_bookkeeping")
        if result.passed:
            state.advance(lake, {k: taken[k] for k in result.passed}, "validated", ctx.run_id, only_from="silver",
                          quality_passed={k: True for k in result.passed}, blocking_failures=counts)
        if result.blocked:
            state.advance(lake, {k: taken[k] for k in result.blocked}, "blocked", ctx.run_id, only_from="silver",
                          quality_passed={k: False for k in result.blocked}, blocking_failures=counts)
    return result
