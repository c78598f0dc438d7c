"""The SQL on FHIR v2 conformance suite, run in one Spark session: every test file's views
over its resources, the report in the specification's format, and the rows each test gave
(`<rows>/<file stem>/<test index>.json`) so a third party can check them against `expect`."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from medgov.errors import MedgovError
from medgov.views.runner import column_types, run_view


@dataclass
class SuiteResult:
    passed: Counter = field(default_factory=Counter)  # tag (shareable, experimental) -> tests passed
    total: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # "<file>: <title>: <reason>"


def _canonical(value: Any) -> Any:
    """A value compared as the suite means it: numbers by value, lists in order."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return str(value)


def _key(row: dict[str, Any]) -> str:
    return json.dumps(_canonical(row), sort_keys=True)


def _decode(row: dict[str, Any], untyped: list[str]) -> dict[str, Any]:
    for n in untyped:  # no type declared: the JSON value as it was
        v = row.get(n)
        row[n] = [json.loads(x) for x in v] if isinstance(v, list) else (json.loads(v) if v is not None else None)
    return row


def rows_of(view: dict[str, Any], resources: Any, compiler: str = "auto") -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, rows as JSON-ready dicts) of `view` over a DataFrame of resources."""
    df = run_view(view, resources, compiler=compiler)
    untyped = [n for n, t in column_types(view).items() if t is None]
    return df.columns, [_decode(r.asDict(recursive=True), untyped) for r in df.collect()]


def _judge(test: dict[str, Any], names: list[str], rows: list[dict[str, Any]]) -> tuple[bool, str, Any]:
    if "expectError" in test:
        return False, "the view was expected to be refused", rows
    if "expectColumns" in test and names != test["expectColumns"]:
        return False, f"columns {names} != {test['expectColumns']}", rows
    if "expect" in test:
        got, want = sorted(map(_key, rows)), sorted(map(_key, test["expect"]))
        if got != want:
            return False, f"rows differ: got {len(got)}, expected {len(want)}", rows
    return True, "", rows


def run_test(spark: SparkSession, resources: Any, test: dict[str, Any], compiler: str = "auto"
             ) -> tuple[bool, str, Any]:
    """(passed, reason, what the view gave: rows or {"error": reason}) for one test."""
    try:
        names, rows = rows_of(test["view"], resources, compiler)
    except Exception as exc:  # noqa: BLE001 - a refused view is an outcome here, with its reason
        reason = _reason(exc)
        if "expectError" in test:
            return True, f"refused: {reason}", {"error": reason}
        return False, f"error: {reason}", {"error": reason}
    return _judge(test, names, rows)


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def run_suite(spark: SparkSession, suite: Path, report: Path | None = None, rows_dir: Path | None = None,
              compiler: str = "auto") -> SuiteResult:
    """Run every `*.json` test file of `suite`; write the report and the rows when asked.
    `compiler` as `run_view` takes it ("variant" runs every case on the VARIANT compiler)."""
    files = sorted(Path(suite).glob("*.json"))
    if not files:
        raise MedgovError(f"no test files (*.json) in {suite}")
    result = SuiteResult()
    out: dict[str, Any] = {}
    for f in files:
        doc = json.loads(f.read_text(encoding="utf-8"))
        resources = spark.createDataFrame([(json.dumps(r),) for r in doc.get("resources", [])], "resource string")
        entries = []
        for i, test in enumerate(doc.get("tests", [])):
            passed, reason, rows = run_test(spark, resources, test, compiler)
            tag = "experimental" if "experimental" in (test.get("tags") or []) else "shareable"
            result.total[tag] += 1
            result.passed[tag] += int(passed)
            if not passed:
                result.failures.append(f"{f.name}: {test.get('title')}: {reason}")
            entries.append({"name": test.get("title"), "result": {"passed": passed, **({"reason": reason}
                                                                                         if reason else {})}})
            if rows_dir is not None:
                target = Path(rows_dir) / f.stem / f"{i}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(rows, ensure_ascii=False, default=str), encoding="utf-8")
        out[f.name] = {"tests": entries}
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        Path(report).write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")
    return result
