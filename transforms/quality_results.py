"""The `quality/quality_results` table: one row per check, batch and layer.

Written by validate (the GX suites on bronze and silver) and by ingest (the interface
checks: whether a delivery conformed, which rows the contracts quarantined and why), each
replacing only its own layer for the batches it handled, so a steward reads one table.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import Any, Iterable

import pyarrow as pa

from medgov.lake import Lake
from medgov.commits import sql_in, write_with_retry

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


def write(lake: Lake, rows: list[dict[str, Any]], keys: list[str], layers: Iterable[str]) -> None:
    """Replace the results of these layers for these batches in one commit."""
    uri = lake.quality_results
    data = pa.Table.from_pylist(rows, RESULTS_SCHEMA)
    where = f"{sql_in('layer', list(layers))} AND {sql_in('batch_key', keys)}"
    write_with_retry(uri, data, where, partition_by=["layer"],
                     description="quality check results per run, batch, layer and check")


def write_examples(lake: Lake, rows: list[dict[str, Any]], keys: list[str], layers: Iterable[str]) -> None:
    """Replace the masked example rows of failing checks of these layers for these batches."""
    data = pa.Table.from_pylist(rows, EXAMPLES_SCHEMA)
    where = f"{sql_in('layer', list(layers))} AND {sql_in('batch_key', keys)}"
    write_with_retry(lake.check_examples, data, where, partition_by=["layer"],
                     description="masked example rows of failing quality checks (file, line, checked values)")


def _row(run_id: str, batch_key: str, at: datetime, **fields: Any) -> dict[str, Any]:
    org, batch_id = batch_key.split("/", 1)
    row = {"run_id": run_id, "batch_key": batch_key, "org_code": org, "batch_id": batch_id, "layer": "ingest",
           "category": "conformance", "threshold": 1.0, "column": None, "validated_at": at}
    row.update(fields)
    n, bad = row.get("element_count"), row.get("unexpected_count")
    row["unexpected_percent"] = 100.0 * bad / n if n and bad is not None else (0.0 if n == 0 else None)
    return row


def delivery_results(delivery: dict[str, Any], at: datetime) -> list[dict[str, Any]]:
    """Interface checks of one delivery attempt: conformance (blocking) and absorbed deviations."""
    ok = delivery["status"] == "accepted"
    rows = [_row(delivery["run_id"], delivery["batch_key"], at, table=None, suite="ingest.delivery",
                 expectation="batch_conforms_to_extract_spec", severity="blocking",
                 description="manifest, file list, sha256, row counts, encoding and CSV header follow the "
                             "extract interface (extract-spec §1)",
                 element_count=1, unexpected_count=0 if ok else 1, success=ok,
                 observed_value=json.dumps("accepted" if ok else delivery["reason"], ensure_ascii=False))]
    if ok:
        notes = delivery.get("notes") or []
        rows.append(_row(delivery["run_id"], delivery["batch_key"], at, table=None, suite="ingest.delivery",
                         expectation="no_deviation_absorbed", severity="warning",
                         description="no undeclared encoding, ignored column or absent optional column had to be "
                                     "absorbed", element_count=1, unexpected_count=1 if notes else 0,
                         success=not notes, observed_value=json.dumps(notes, ensure_ascii=False)))
    return rows


def row_results(run_id: str, batch_key: str, layer: str, table: str, expectation: str, description: str,
                rows: int, reasons: Counter[str], failing: int, at: datetime) -> list[dict[str, Any]]:
    """Rows of one table and batch that a stage quarantined, one result per reason kind (a row
    with two reasons counts under both); a single passing result when none was."""
    common = dict(layer=layer, table=table, suite=f"{layer}.{table}", expectation=expectation, severity="warning",
                  description=description, element_count=rows)
    if not failing:
        return [_row(run_id, batch_key, at, **common, unexpected_count=0, success=True,
                     observed_value=json.dumps("all rows conform"))]
    by_kind: Counter[tuple[str, str | None]] = Counter()
    for reason, n in reasons.items():
        by_kind[reason_kind(reason)] += n
    return [_row(run_id, batch_key, at, **{**common, "column": column}, unexpected_count=n, success=False,
                 observed_value=json.dumps(kind, ensure_ascii=False))
            for (kind, column), n in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))]


CONTRACT_CHECK = ("rows_conform_to_contract",
                  "every row has its required values, parseable dates and numbers, the header's field count, "
                  "text within the FHIR string limit and a key unique in the batch")
BUILD_CHECK = ("rows_build_valid_fhir",
               "every row yields FHIR R4 resources that pass the R4 model and the required value-set bindings")
