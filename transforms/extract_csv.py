"""Decode and parse one delivered CSV file into string columns with record line numbers."""

from __future__ import annotations

import csv
import io

import pyarrow as pa

from medgov.contracts import Contract
from medgov.manifest import BatchRejected

SHAPE_ERROR = "_shape_error"


def decode(data: bytes, encoding: str, name: str) -> str:
    """Bytes to text in the declared encoding; a UTF-8 byte-order mark is dropped either way."""
    codec = "utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise BatchRejected(
            f"{name}: bytes at offset {exc.start} are not valid {encoding} (declared encoding wrong?)"
        ) from None


def _header_name(h: str) -> str:
    return h.strip().strip("\ufeff").lower()


def parse(text: str, name: str, contract: Contract, declared_rows: int) -> pa.Table:
    """RFC 4180 CSV to an Arrow table of the contract's columns (strings) plus `_line`.

    Rows with a wrong number of fields are kept with a `_shape_error` so that they reach
    quarantine; a header lacking a required column, an unterminated quote or a row count
    other than the manifest's rejects the batch.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise BatchRejected(f"{name}: file is empty (no header line)") from None
    except csv.Error as exc:
        raise BatchRejected(f"{name}: malformed CSV header: {exc}") from None
    columns = [_header_name(h) for h in header]
    missing = [c.name for c in contract.columns if c.required and c.name not in columns]
    if missing:
        raise BatchRejected(f"{name}: header lacks required column(s) {', '.join(missing)}")
    if len(set(columns)) != len(columns):
        raise BatchRejected(f"{name}: header repeats a column name")
    index = {c: i for i, c in enumerate(columns)}
    wanted = contract.names
    out: dict[str, list[str | None]] = {c: [] for c in wanted}
    lines: list[int] = []
    shape: list[str | None] = []
    start = reader.line_num + 1
    try:
        for record in reader:
            if not record:  # blank line: not a data row
                start = reader.line_num + 1
                continue
            lines.append(start)
            if len(record) != len(columns):
                shape.append(f"row has {len(record)} fields, header has {len(columns)}")
            else:
                shape.append(None)
            for c in wanted:
                i = index.get(c)
                out[c].append(record[i] if i is not None and i < len(record) else None)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise BatchRejected(f"{name}: malformed CSV near line {reader.line_num}: {exc}") from None
    if len(lines) != declared_rows:
        raise BatchRejected(f"{name}: {len(lines)} data rows but manifest declares {declared_rows}")
    arrays = {c: pa.array(v, pa.string()) for c, v in out.items()}
    arrays["_line"] = pa.array(lines, pa.int64())
    arrays[SHAPE_ERROR] = pa.array(shape, pa.string())
    return pa.table(arrays)
