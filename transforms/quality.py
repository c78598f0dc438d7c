"""Run the Great Expectations suites of `expectations/` and turn results into rows.

Result format keeps counts and observed values but no samples of unexpected values
(`partial_unexpected_count: 0`): together with views that hold no direct identifiers, no
quality result or Data Docs page can reveal one.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import Any

import great_expectations as gx
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import ProgressBarsConfig
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
from pyspark.sql import DataFrame

from medgov.lake import Lake
from medgov.resources import column_of, suite_file

RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0, "include_unexpected_rows": False}

RESULT_COLUMNS = ["run_id", "batch_key", "org_code", "batch_id", "layer", "table", "suite", "expectation", "column",
                  "description", "category", "severity", "threshold", "element_count", "unexpected_count",
                  "unexpected_percent", "observed_value", "success", "validated_at"]


class QualityRunner:
    """A file-backed GX context under the lake (`quality/gx`), with Data Docs beside it."""

    def __init__(self, lake: Lake) -> None:
        logging.getLogger("great_expectations").setLevel(logging.ERROR)
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        root = lake.gx_root if lake.is_local else os.environ.get("MEDGOV_GX_ROOT", "gx_project")
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
        doc = suite_file(name)
        suite = gx.ExpectationSuite(name=name, meta={"layer": doc["layer"], "table": doc["table"]})
        for e in doc["expectations"]:
            suite.add_expectation(ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"], meta=e["meta"]).to_domain_obj())
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

    def validate(self, name: str, df: DataFrame, batch_key: str, run_id: str) -> list[dict[str, Any]]:
        """Validate one batch's rows against suite `name`; one result row per expectation."""
        vd = self.prepare(name)
        now = datetime.now(timezone.utc)
        result = vd.run(batch_parameters={"dataframe": df}, result_format=RESULT_FORMAT,
                        run_id=RunIdentifier(run_name=f"{batch_key.replace('/', '__')}__{run_id}", run_time=now))
        layer, table = name.split(".", 1)
        org, batch_id = batch_key.split("/", 1)
        rows = []
        for r in result.results:
            cfg = r.expectation_config
            res = r.result or {}
            meta = cfg.meta or {}
            observed = res.get("observed_value")
            if r.exception_info and r.exception_info.get("raised_exception"):
                observed = "error: " + str(r.exception_info.get("exception_message", ""))[:200]
            rows.append({
                "run_id": run_id, "batch_key": batch_key, "org_code": org, "batch_id": batch_id, "layer": layer,
                "table": table, "suite": name, "expectation": cfg.type, "column": column_of(cfg.kwargs),
                "description": meta.get("description"), "category": meta.get("category"),
                "severity": meta.get("severity", "warning"), "threshold": float(cfg.kwargs.get("mostly", 1.0)),
                "element_count": res.get("element_count"), "unexpected_count": res.get("unexpected_count"),
                "unexpected_percent": res.get("unexpected_percent"),
                "observed_value": None if observed is None else json.dumps(observed, default=str),
                "success": bool(r.success), "validated_at": now,
            })
        return rows

    def build_docs(self) -> None:
        self.context.build_data_docs()
