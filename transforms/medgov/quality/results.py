"""The `quality/quality_results` table: one row per check, batch and layer, and the masked
example rows of failing checks (`quality/check_examples`).

Every layer writes here: ingest (the delivery's conformance, the rows the contracts
quarantined and why), normalize (the rows that built no valid FHIR), validate (the GX suites
on bronze and silver). Each replaces only its own layer for the batches it handled, so a
steward reads one table. Check metadata comes from the catalogue (`medgov.spec.checks`).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any, Iterable

import pyarrow as pa

from medgov.spec.checks import Check
from medgov.storage.commits import sql_in, write_with_retry
from medgov.storage.lake import Lake

RESULTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("batch_key", pa.string()), ("org_code", pa.string()), ("batch_id", pa.string()),
    ("layer", pa.string()), ("table", pa.string()), ("suite", pa.string()), ("expectation", pa.string()),
    ("column", pa.string()), ("description", pa.string()), ("category", pa.string()), ("severity", pa.string()),
    ("threshold", pa.float64()), ("element_count", pa.int64()), ("unexpected_count", pa.int64()),
    ("unexpected_percent", pa.float64()), ("observed_value", pa.string()), ("success", pa.bool_()),
    ("validated_at", pa.timestamp("us", "UTC")),
])

EXAMPLES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("batch_key", pa.string()), ("org_code", pa.string()), ("layer", pa.string()),
    ("suite", pa.string()), ("expectation", pa.string()), ("column", pa.string()), ("file", pa.string()),
    ("line", pa.int64()), ("values", pa.string()), ("validated_at", pa.timestamp("us", "UTC")),
])


def reason_kind(reason: str) -> tuple[str, str | None]:
    """`unparseable date in birth_date: '1980-02-30'` -> ('unparseable date in birth_date', 'birth_date').

    Reasons are written `<kind>[ in <column>][: <detail>]`; the detail may quote a value, so
    only the kind leaves the quarantine table.
    """
    kind = reason.split(": ", 1)[0]
    head, sep, column = kind.rpartition(" in ")
    return kind, column if sep and column.isidentifier() else None


_FROM_COUNTS: Any = object()  # unexpected_percent not given: the share of element_count


def result_row(check: Check, run_id: str, batch_key: str, at: datetime, *, element_count: int | None,
               unexpected_count: int | None, observed: Any, success: bool | None = None,
               column: str | None = None, unexpected_percent: float | None = _FROM_COUNTS) -> dict[str, Any]:
    """One row of `quality_results`: the check's declared metadata and one batch's outcome.
    `success` defaults to the check's threshold applied to the counts; `unexpected_percent`
    to the unexpected share of the rows (GX gives its own, None where it considered no row)."""
    org, batch_id = batch_key.split("/", 1)
    if unexpected_percent is _FROM_COUNTS:
        unexpected_percent = (None if element_count is None or unexpected_count is None
                              else 100.0 * unexpected_count / element_count if element_count else 0.0)
    return {
        "run_id": run_id, "batch_key": batch_key, "org_code": org, "batch_id": batch_id, "layer": check.layer,
        "table": check.table, "suite": check.suite, "expectation": check.expectation,
        "column": column if column is not None else check.column, "description": check.description,
        "category": check.category, "severity": check.severity, "threshold": check.threshold,
        "element_count": element_count, "unexpected_count": unexpected_count,
        "unexpected_percent": unexpected_percent,
        "observed_value": None if observed is None else json.dumps(observed, ensure_ascii=False, default=str),
        "success": check.passes(element_count, unexpected_count) if success is None else success,
        "validated_at": at,
    }


def delivery_results(conforms: Check, deviations: Check, delivery: dict[str, Any], at: datetime
                     ) -> list[dict[str, Any]]:
    """Interface checks of one delivery attempt: did it conform (`conforms`), and, when it was
    accepted, did it need a deviation absorbed (`deviations`)."""
    ok = delivery["status"] == "accepted"
    run, key = delivery["run_id"], delivery["batch_key"]
    rows = [result_row(conforms, run, key, at, element_count=1, unexpected_count=0 if ok else 1,
                       observed="accepted" if ok else delivery["reason"])]
    if ok:
        notes = delivery.get("notes") or []
        rows.append(result_row(deviations, run, key, at, element_count=1, unexpected_count=1 if notes else 0,
                               observed=notes))
    return rows


def row_results(check: Check, run_id: str, batch_key: str, rows: int, reasons: Counter[str], at: datetime
                ) -> list[dict[str, Any]]:
    """Rows of one table and batch that a stage quarantined, one result per reason kind (a row
    with two reasons counts under both); a single passing result when none was."""
    if not reasons:
        return [result_row(check, run_id, batch_key, at, element_count=rows, unexpected_count=0,
                           observed="all rows conform")]
    by_kind: Counter[tuple[str, str | None]] = Counter()
    for reason, n in reasons.items():
        by_kind[reason_kind(reason)] += n
    return [result_row(check, run_id, batch_key, at, element_count=rows, unexpected_count=n, observed=kind,
                       column=column)
            for (kind, column), n in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))]


def _replace(uri: str, rows: list[dict[str, Any]], schema: pa.Schema, keys: list[str], layers: Iterable[str],
             description: str) -> None:
    data = pa.Table.from_pylist(rows, schema)
    where = f"{sql_in('layer', list(layers))} AND {sql_in('batch_key', keys)}"
    write_with_retry(uri, data, where, partition_by=["layer"], description=description)


def write(lake: Lake, rows: list[dict[str, Any]], keys: list[str], layers: Iterable[str]) -> None:
    """Replace the results of these layers for these batches in one commit."""
    _replace(lake.quality_results, rows, RESULTS_SCHEMA, keys, layers,
             "quality check results per run, batch, layer and check")


def write_examples(lake: Lake, rows: list[dict[str, Any]], keys: list[str], layers: Iterable[str]) -> None:
    """Replace the masked example rows of failing checks of these layers for these batches."""
    _replace(lake.check_examples, rows, EXAMPLES_SCHEMA, keys, layers,
             "masked example rows of failing quality checks (file, line, checked values)")
