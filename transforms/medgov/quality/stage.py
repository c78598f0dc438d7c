"""Stage 3, validate: the GX suites on bronze and silver; blocking failures stop publish.

Each suite runs once per stage run over all its batches; every batch gets its own verdict per
check (from `outcomes`, GX's semantics in one pass), its own result rows and its own Data Docs
page. Suites run on two threads: a GX run mostly waits on small calls into the JVM.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable

from pyspark.sql import DataFrame

from medgov.domain.pseudonym import load_key
from medgov.quality import holds, results
from medgov.quality.examples import examples_by_batch
from medgov.quality.gx_runner import QualityRunner, all_batches_run_name
from medgov.quality.outcomes import batch_outcomes
from medgov.quality.views import bronze_view, silver_view
from medgov.spec.checks import suite_checks
from medgov.spec.contracts import contract
from medgov.spec.lifecycle import BatchStage, stage
from medgov.spec.tables import BATCH_COLUMN, BRONZE_TABLES, PATIENT_XREF, SILVER_TABLES
from medgov.storage import control, faults
from medgov.storage.commits import sql_in
from medgov.storage.context import Context
from medgov.storage.lineage import DatasetInfo, stage_run
from medgov.storage.spark import side_by_side

STAGE = stage("validate")


@dataclass
class ValidateResult:
    passed: list[str] = field(default_factory=list)
    blocked: dict[str, list[str]] = field(default_factory=dict)  # batch -> failed blocking checks
    checks: int = 0
    failed_warnings: int = 0
    held: int = 0  # rows held out of gold in the batches looked at (patient or visit missing)
    released: int = 0  # rows an arriving or corrected parent released in this run


def _assertions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """dataQualityAssertions facet entries: one per expectation and column, success over all batches."""
    merged: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        k = (r["expectation"], r["column"])
        a = merged.setdefault(k, {"assertion": r["expectation"], "column": r["column"], "success": True,
                                  "severity": r["severity"], "description": r["description"]})
        a["success"] = a["success"] and r["success"]
    return list(merged.values())


def _failing_examples(view: DataFrame, suite: str, key_col: str, rows: list[dict[str, Any]],
                      locator: tuple[str, str]) -> list[dict[str, Any]]:
    """Masked example rows for each failing check, in the batches it fails on: one Spark job
    per failing check."""
    configs = {(c.expectation, c.column): c for c in suite_checks(suite)}
    failing: dict[tuple[str, str | None], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        if not r["success"] and (r["expectation"], r["column"]) in configs:
            failing[(r["expectation"], r["column"])][r["batch_key"]] = r
    out = []
    for (expectation, column), by_batch in failing.items():
        check = configs[(expectation, column)]
        found = examples_by_batch(view, expectation, check.kwargs, key_col, sorted(by_batch), *locator,
                                  shown=check.shown)
        for batch_key, found_rows in found.items():
            r = by_batch[batch_key]
            out += [{k: r[k] for k in ("run_id", "batch_key", "org_code", "layer", "suite", "expectation",
                                       "column", "validated_at")} | ex for ex in found_rows]
    return out


def _validate_batches(ctx: Context, runner: QualityRunner, suite: str, view: DataFrame, key_col: str,
                      locator: tuple[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run `suite` once over every batch in `view` (GX, for its semantics and Data Docs), take
    each batch's verdicts from one pass of the same checks grouped by batch, and select masked
    examples of the failing ones."""
    ctx.progress(f"validate {suite}")
    view = view.cache()
    checks = suite_checks(suite)
    outcomes = batch_outcomes(view, [(c.expectation, c.kwargs) for c in checks], key_col)
    rows: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    if outcomes:  # none of these batches delivered this table: nothing to check
        at = datetime.now(timezone.utc)
        whole = runner.run_suite(suite, view, all_batches_run_name(ctx.run_id), at)
        rows = runner.batch_results(suite, whole, outcomes, ctx.run_id, at, ctx.config)
        found = _failing_examples(view, suite, key_col, rows, locator)
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


def _bronze_view(ctx: Context, uri: str, table: str, keys: list[str], key: bytes, keyed: bool) -> DataFrame:
    return bronze_view(ctx.store.read(uri, sql_in(BATCH_COLUMN["bronze"], keys)), contract(table), key, keyed)


def _silver_view(ctx: Context, uri: str, table: str, keys: list[str], patients, encounters, quarantine
                 ) -> DataFrame:
    return silver_view(ctx.store.read(uri, sql_in(BATCH_COLUMN["silver"], keys)), table, patients, encounters,
                       quarantine, ctx.config.visits_optional())



def validate(ctx: Context, keys: list[str] | None = None) -> ValidateResult:
    """Validate the given batches (default: those whose stage is `silver`)."""
    taken = control.taken(ctx.lake, STAGE.takes, keys)
    keys = list(taken)
    result = ValidateResult()
    if not keys:
        return result
    key = load_key()
    lake, store = ctx.lake, ctx.store
    runner = QualityRunner(lake)
    rows: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    with stage_run(lake, STAGE.job, ctx.parent, ctx.config.version) as run:
        suites: list[_Suite] = []
        for table in BRONZE_TABLES:
            uri = lake.bronze(table)
            if store.exists(uri):
                # the keyed source column costs a Python pass over every row: only where a check reads it
                keyed = any("source_key" in (c.column or "") for c in suite_checks(f"bronze.{table}"))
                suites.append(_Suite(f"bronze.{table}", uri, BATCH_COLUMN["bronze"], ("_file", "_line"),
                                     partial(_bronze_view, ctx, uri, table, keys, key, keyed)))
        silver = {t: lake.silver(t) for t in SILVER_TABLES}
        patients = store.read(silver["patient"]) if store.exists(silver["patient"]) else None
        encounters = store.read(silver["encounter"]) if store.exists(silver["encounter"]) else None
        quarantine = holds.parents_in_quarantine(ctx)
        for table in SILVER_TABLES:
            if table != PATIENT_XREF and store.exists(silver[table]):
                suites.append(_Suite(f"silver.{table}", silver[table], BATCH_COLUMN["silver"],
                                     ("source_file", "source_line"),
                                     partial(_silver_view, ctx, silver[table], table, keys, patients, encounters,
                                              quarantine)))
        for suite in suites:
            runner.prepare(suite.name)  # GX objects are created one at a time, before the threads start
        # Suites run side by side: a GX run mostly waits on many small calls into the JVM, time a
        # second thread fills. Results keep the suites' order.
        outcomes = side_by_side("validate", lambda s: _validate_batches(ctx, runner, s.name, s.view(), s.key_col,
                                                                        s.locator), suites)
        for suite, (suite_rows, suite_examples) in zip(suites, outcomes):
            rows += suite_rows
            found += suite_examples
            run.inputs.append(DatasetInfo(suite.uri, assertions=_assertions(suite_rows)))
        runner.build_docs()
        ctx.progress("holds")
        count = holds.update(ctx, keys, patients, encounters, quarantine)
        result.held, result.released = count.held, count.released
        run.outputs.append(DatasetInfo(lake.holds, [(f.name, str(f.type)) for f in holds.HOLDS_SCHEMA],
                                       rows=count.held))
        if quarantine is not None:
            quarantine.unpersist()
        results.write_examples(lake, found, keys, layers=("bronze", "silver"))
        results.write(lake, rows, keys, layers=("bronze", "silver"))
        run.outputs.append(DatasetInfo(lake.quality_results, [(f.name, str(f.type)) for f in results.RESULTS_SCHEMA],
                                       rows=len(rows)))
        run.outputs.append(DatasetInfo(lake.check_examples, [(f.name, str(f.type)) for f in results.EXAMPLES_SCHEMA],
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
            control.advance(lake, {k: taken[k] for k in result.passed}, BatchStage.VALIDATED, ctx.run_id,
                            only_from=STAGE.takes, quality_passed={k: True for k in result.passed},
                            blocking_failures=counts)
        if result.blocked:
            control.advance(lake, {k: taken[k] for k in result.blocked}, BatchStage.BLOCKED, ctx.run_id,
                            only_from=STAGE.takes, quality_passed={k: False for k in result.blocked},
                            blocking_failures=counts)
    return result
