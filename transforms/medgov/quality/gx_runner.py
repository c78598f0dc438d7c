"""Run the Great Expectations suites of the check catalogue and turn results into rows.

Result format keeps counts and observed values but no samples of unexpected values
(`partial_unexpected_count: 0`): together with views that hold no direct identifiers, no
quality result or Data Docs page can reveal one.
"""

from __future__ import annotations

import copy
from dataclasses import replace
import logging
import os
from datetime import datetime
from typing import Any

import great_expectations as gx
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.data_context.types.resource_identifiers import (
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from pyspark.sql import DataFrame

from medgov.quality.outcomes import Outcome
from medgov.quality.results import result_row
from medgov.spec.checks import Check, column_of, suite_checks
from medgov.spec.site import SiteConfig
from medgov.storage.lake import Lake

# GX decides each check's success (and raises its own errors) over all batches at once; the
# numbers on every stored page, per batch and for the whole run, come from `batch_outcomes`
# (proven equal to GX's counts in tests/quality). SUMMARY would add, per check, a query for
# unexpected values that no page shows (partial_unexpected_count 0): a third of a small
# run's GX time.
RESULT_FORMAT = {"result_format": "BOOLEAN_ONLY"}
# the run over every batch of a stage run: its Data Docs page sits beside the per-batch ones
ALL_BATCHES = "all-batches"


def _run_name(batch_key: str, run_id: str) -> str:
    """`<org>__<batch>__<run id>`: how Data Docs pages are told apart (the dashboard parses it)."""
    return f"{batch_key.replace('/', '__')}__{run_id}"


def all_batches_run_name(run_id: str) -> str:
    return f"{ALL_BATCHES}__{run_id}"


def _summed(outcomes: tuple[Outcome, ...]) -> Outcome:
    """One check's outcome over several batches."""
    considered = [o.considered for o in outcomes]
    return Outcome(sum(o.element_count for o in outcomes),
                   None if all(c is None for c in considered) else
                   sum(o.element_count if c is None else c for o, c in zip(outcomes, considered)),
                   sum(o.unexpected_count for o in outcomes))


def _batch_copy(whole_result: Any, check: Check, outcome: Outcome) -> Any:
    """GX's result for one check on one batch: the run's result with the batch's numbers and
    verdict (GX's error, where it raised one, stands as it is)."""
    r = copy.deepcopy(whole_result)
    if r.exception_info and r.exception_info.get("raised_exception"):
        return r
    numbers = outcome.result()
    r.result = {**(r.result or {}), **numbers}
    r.success = outcome.success(check.threshold)
    if r.expectation_config is not None and ("mostly" in r.expectation_config.kwargs or check.threshold < 1):
        r.expectation_config.kwargs["mostly"] = check.threshold  # an institution's override shows on its page
    return r


class QualityRunner:
    """A file-backed GX context under the lake (`quality/gx`), with Data Docs beside it."""

    def __init__(self, lake: Lake) -> None:
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        root = lake.gx_root if lake.is_local else os.environ.get("MEDGOV_GX_ROOT", "gx_project")
        self.context = gx.get_context(mode="file", project_root_dir=root)
        if self.context.variables.config_variables_file_path:
            # GX re-reads its config-variables YAML on every run, through one ruamel parser that
            # all threads share and that is not thread-safe (suites run on two threads: runs
            # failed with ruamel errors). medgov substitutes no config variables: drop the file
            # from the project and reopen it without that provider.
            self.context.variables.config_variables_file_path = None
            self.context.variables.save()
            self.context = gx.get_context(mode="file", project_root_dir=root)
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.variables.save()
        self.datasource = self.context.data_sources.add_or_update_spark("medgov_spark")
        self._definitions: dict[str, Any] = {}

    def prepare(self, name: str):
        """The suite's GX validation definition, created on first use (not thread-safe: call it
        for every suite before validating from several threads)."""
        if name in self._definitions:
            return self._definitions[name]
        checks = suite_checks(name)
        suite = gx.ExpectationSuite(name=name, meta={"layer": checks[0].layer, "table": checks[0].table})
        for c in checks:
            suite.add_expectation(ExpectationConfiguration(type=c.expectation, kwargs=c.kwargs, meta=c.meta).to_domain_obj())
        suite = self.context.suites.add_or_update(suite)
        try:
            asset = self.datasource.get_asset(name)
        except (LookupError, Exception):
            asset = self.datasource.add_dataframe_asset(name)
        try:
            batch_def = asset.get_batch_definition("whole")
        except (KeyError, Exception):
            batch_def = asset.add_batch_definition_whole_dataframe("whole")
        vd = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
        self._definitions[name] = vd
        return vd

    def run_suite(self, name: str, df: DataFrame, run_name: str, run_time: datetime) -> Any:
        """Validate `df` against suite `name` once; GX stores the result (a Data Docs page)
        and returns it (an ExpectationSuiteValidationResult)."""
        vd = self.prepare(name)
        return vd.run(batch_parameters={"dataframe": df}, result_format=RESULT_FORMAT,
                      run_id=RunIdentifier(run_name=run_name, run_time=run_time))

    def batch_results(self, name: str, whole: Any, outcomes: dict[str, list[Outcome]], run_id: str,
                      at: datetime, site: SiteConfig | None = None) -> list[dict[str, Any]]:
        """Each batch's result rows from one run over all batches (`whole`) and the per-batch
        `outcomes` of its checks (in the suite's order). Each batch's GX validation result is
        stored as GX would have stored a run on that batch alone, so Data Docs keep a page per
        batch, and the whole run's page is stored again with the numbers of all batches. A
        check GX could not evaluate keeps GX's error on every batch."""
        checks = suite_checks(name)
        by_check = {(r.expectation_config.type, column_of(r.expectation_config.kwargs)): r for r in whole.results}
        rows: list[dict[str, Any]] = []
        for batch_key, per_check in outcomes.items():
            org = batch_key.split("/", 1)[0]
            declared = [c if site is None else replace(c, threshold=site.threshold(org, name, c.column, c.threshold))
                        for c in checks]
            evaluated = self._store(name, whole, by_check, declared, per_check, _run_name(batch_key, run_id), at)
            for check, gx_result in zip(declared, evaluated):
                failed = bool(gx_result.exception_info and gx_result.exception_info.get("raised_exception"))
                observed = ("error: " + str(gx_result.exception_info.get("exception_message", ""))[:200]
                            if failed else None)
                numbers = gx_result.result or {}
                rows.append(result_row(check, run_id, batch_key, at, element_count=numbers.get("element_count"),
                                       unexpected_count=numbers.get("unexpected_count"),
                                       unexpected_percent=numbers.get("unexpected_percent"), observed=observed,
                                       success=bool(gx_result.success)))
        if outcomes:
            self._store(name, whole, by_check, checks, [_summed(o) for o in zip(*outcomes.values())],
                        all_batches_run_name(run_id), at)
        return rows

    def _store(self, name: str, whole: Any, by_check: dict, checks: list[Check], per_check: list[Outcome],
               run_name: str, at: datetime) -> list[Any]:
        """Store `whole` under `run_name` with these outcomes' numbers and verdicts; return
        its check results."""
        result = copy.deepcopy(whole)
        evaluated = [_batch_copy(by_check[(c.expectation, c.column)], c, o) for c, o in zip(checks, per_check)]
        result.results = evaluated
        result.success = all(r.success for r in evaluated)
        passed = sum(1 for r in evaluated if r.success)
        result.statistics = {"evaluated_expectations": len(evaluated), "successful_expectations": passed,
                             "unsuccessful_expectations": len(evaluated) - passed,
                             "success_percent": 100.0 * passed / len(evaluated) if evaluated else None}
        run = RunIdentifier(run_name=run_name, run_time=at)
        result.meta["run_id"] = run
        result.meta["validation_time"] = at
        suite_id = ExpectationSuiteIdentifier(name=name)
        # the dataframe asset's batch: every page of the suite shares it
        key = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run,
                                         batch_identifier=whole.batch_id)
        self.context.validation_results_store.store_validation_results(result, key, suite_id)
        return evaluated

    def build_docs(self) -> None:
        self.context.build_data_docs()
