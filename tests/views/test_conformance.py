"""The official SQL on FHIR v2 conformance suite (../shared/reference/sql-on-fhir-v2): every
shareable case passes on the Spark runner, and again with every case on the VARIANT compiler
(the fallback for what the typed one does not cover); the report and the rows are written as
the specification asks; the experimental cases are reported, pass or fail."""

from __future__ import annotations

import json

import pytest

from conftest import shared_file
from medgov.views.conformance import run_suite


@pytest.fixture(scope="module")
def suite(spark, tmp_path_factory):
    folder = shared_file("reference/sql-on-fhir-v2/tests")
    out = tmp_path_factory.mktemp("sof")
    result = run_suite(spark, folder, out / "test_report.json", out / "rows")
    return folder, out, result


def test_every_shareable_case_passes(suite):
    _, _, result = suite
    print(f"shareable {result.passed['shareable']}/{result.total['shareable']}, experimental "
          f"{result.passed['experimental']}/{result.total['experimental']}")
    assert result.total["shareable"] == 123, result.total
    assert result.passed["shareable"] == 123, "\n".join(result.failures)


def test_the_report_and_rows_follow_the_specification(suite):
    folder, out, result = suite
    report = json.loads((out / "test_report.json").read_text())
    files = sorted(p.name for p in folder.glob("*.json"))
    assert sorted(report) == files
    for name, entry in report.items():
        doc = json.loads((folder / name).read_text())
        assert [t["name"] for t in entry["tests"]] == [t["title"] for t in doc["tests"]]
        assert all(isinstance(t["result"]["passed"], bool) for t in entry["tests"])
        for i, test in enumerate(doc["tests"]):
            rows = json.loads((out / "rows" / name[:-5] / f"{i}.json").read_text())
            passed = entry["tests"][i]["result"]["passed"]
            if isinstance(rows, dict):  # refused: as expected, or a failure with its reason
                assert set(rows) == {"error"} and rows["error"] and passed == ("expectError" in test)
            else:
                assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
    assert sum(len(e["tests"]) for e in report.values()) == 134


def test_every_shareable_case_passes_on_the_variant_compiler_too(spark):
    result = run_suite(spark, shared_file("reference/sql-on-fhir-v2/tests"), compiler="variant")
    assert result.passed["shareable"] == result.total["shareable"] == 123, "\n".join(result.failures)


def test_most_cases_run_on_the_typed_compiler(suite):
    """The typed compiler covers the suite but for what a fixed struct cannot hold (repeat),
    untyped columns, choice elements read without ofType(), and the boundary functions."""
    from medgov.views.runner import plan

    folder, _, _ = suite
    kinds = {"typed": 0, "variant": 0}
    for f in folder.glob("*.json"):
        for test in json.loads(f.read_text())["tests"]:
            if "expectError" in test:
                continue
            kinds["typed" if plan(test["view"]).typed else "variant"] += 1
    assert kinds["typed"] >= 100 and kinds["variant"] <= 20, kinds
