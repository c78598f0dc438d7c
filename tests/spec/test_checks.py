"""The check catalogue: every check the pipeline runs is declared in expectations/ with the
same fields, and what the pipeline records follows the declaration."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from deltalake import DeltaTable

from medgov.quality.results import row_results
from medgov.spec.checks import CATEGORIES, CONTEXTS, LAYERS, SEVERITIES, catalogue, medgov_check, suite_checks
from medgov.spec.contracts import TABLES

MEDGOV = [str(Path(sys.executable).with_name("medgov"))]


def test_every_check_has_its_fields():
    checks = catalogue()
    assert len(checks) > 60
    for c in checks:
        assert c.layer in LAYERS and c.category in CATEGORIES and c.context in CONTEXTS, c
        assert c.severity in SEVERITIES and 0 < c.threshold <= 1 and len(c.description) > 10, c
        assert c.engine in ("gx", "medgov"), c
    assert {c.engine for c in checks} == {"gx", "medgov"}


def test_a_check_is_named_once():
    names = Counter((c.suite, c.expectation, c.column) for c in catalogue())
    assert [k for k, n in names.items() if n > 1] == []


def test_the_checks_outside_gx_are_declared_for_every_table():
    assert medgov_check("ingest.delivery", "batch_conforms_to_extract_spec").severity == "blocking"
    assert medgov_check("ingest.delivery", "no_deviation_absorbed").severity == "warning"
    for table in TABLES:
        assert medgov_check(f"ingest.{table}", "rows_conform_to_contract").table == table
        assert medgov_check(f"normalize.{table}", "rows_build_valid_fhir").layer == "normalize"
    with pytest.raises(KeyError, match="no medgov check"):
        medgov_check("ingest.billing", "rows_conform_to_contract")


def test_catalogue_is_in_pipeline_order():
    layers = [c.layer for c in catalogue()]
    assert layers == sorted(layers, key=LAYERS.index)


def test_a_declared_threshold_decides_a_row_check():
    """`mostly` applies to the checks medgov runs too: 5 bad rows in 100 fail at 1.0, pass at 0.9."""
    strict = medgov_check("ingest.lab_result", "rows_conform_to_contract")
    lenient = replace(strict, threshold=0.9)
    at = datetime.now(timezone.utc)
    reasons = Counter({"missing required value in result": 5})
    [failed] = row_results(strict, "r", "ORG001/b1", 100, reasons, at)
    [passed] = row_results(lenient, "r", "ORG001/b1", 100, reasons, at)
    assert (failed["success"], passed["success"]) == (False, True)
    assert failed["column"] == "result" and failed["unexpected_count"] == 5 and failed["threshold"] == 1.0


def test_every_result_of_a_run_is_a_declared_check(demo):
    """What the demo run recorded, in every layer, names a check of the catalogue and carries
    its declared severity, category, threshold and description."""
    rows = DeltaTable(str(demo.lake / "quality" / "quality_results")).to_pyarrow_table().to_pylist()
    assert {r["layer"] for r in rows} == set(LAYERS)
    for r in rows:
        declared = [c for c in suite_checks(r["suite"]) if c.expectation == r["expectation"]]
        assert declared, (r["suite"], r["expectation"])
        c = declared[0] if len(declared) == 1 else next(c for c in declared if c.column == r["column"])
        assert (r["severity"], r["category"], r["threshold"], r["description"]) == \
               (c.severity, c.category, c.threshold, c.description), r


def test_medgov_checks_lists_them_all():
    p = subprocess.run(MEDGOV + ["checks", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    listed = json.loads(p.stdout)
    assert len(listed) == len(catalogue())
    assert {"suite", "layer", "expectation", "column", "category", "context", "severity", "threshold",
            "description", "engine"} <= set(listed[0])
    table = subprocess.run(MEDGOV + ["checks", "--layer", "ingest"], capture_output=True, text=True, timeout=120,
                           env={"COLUMNS": "250", "PATH": ""})
    assert table.returncode == 0 and "batch_conforms_to_extract_spec" in table.stdout
    assert "expect_column" not in table.stdout  # the ingest layer has only medgov's checks
    bad = subprocess.run(MEDGOV + ["checks", "--format", "xml"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip() == "medgov: error: --format must be table or json, not 'xml'"
