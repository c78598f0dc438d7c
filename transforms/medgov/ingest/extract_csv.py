"""Decode and parse one delivered CSV file into string columns with record line numbers."""

from __future__ import annotations

import csv
import re
from typing import Iterator

import pyarrow as pa

from medgov.errors import BatchRejected
from medgov.spec.contracts import Contract

SHAPE_ERROR = "_shape_error"

# The csv module refuses fields over 128 KiB by default; a free-text field may be far longer
# and must reach the contract check (which quarantines over-long values), not reject the batch.
csv.field_size_limit(1 << 30)

# Rows turn into Arrow columns this many at a time: a Python string per field costs ~50 bytes
# beyond its text, so a whole file's rows held as lists cost several times the file (the
# driver reached 1.9 GB in ingest at 5 M rows).
CHUNK_ROWS = 64 * 1024
# where a file opened with newline="" ends its lines (the csv module's contract)
_LINE_END = re.compile(r"\r\n|\r|\n")


def _lines(text: str) -> Iterator[str]:
    """`text`'s lines with their endings, as a file opened with newline="" gives them, sliced
    one at a time: io.StringIO would copy the whole text at four bytes a character first."""
    start = 0
    for m in _LINE_END.finditer(text):
        yield text[start:m.end()]
        start = m.end()
    if start < len(text):
        yield text[start:]


def _valid(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _utf8_text(data: bytes) -> bool:
    """Valid UTF-8 with multi-byte characters. Chinese GBK text is practically never valid UTF-8
    (a GBK trail byte rarely continues a UTF-8 sequence), so this tells the two apart."""
    return not data.isascii() and _valid(data, "utf-8")


def decode(data: bytes, encoding: str | None, name: str) -> tuple[str, str | None]:
    """Bytes to text in the declared encoding, and a note for the steward when one is due.

    A UTF-8 byte-order mark is dropped either way. A declaration the bytes contradict rejects
    the batch with the fix in the reason (decoding anyway would garble every Chinese value);
    a missing declaration is detected (UTF-8, else GB18030, GBK's superset) and noted.
    """
    if encoding is None:
        if _valid(data, "utf-8"):
            return data.decode("utf-8-sig"), f"{name}: no encoding declared; the bytes are UTF-8 and were read so"
        if _valid(data, "gb18030"):
            return data.decode("gb18030"), f"{name}: no encoding declared; the bytes are GBK/GB18030 and were read so"
        raise BatchRejected(f"{name}: no encoding declared and the bytes are neither UTF-8 nor GB18030")
    if encoding in ("gbk", "gb18030") and _utf8_text(data):
        raise BatchRejected(f"{name}: declared {encoding} but the bytes are UTF-8: declare utf-8 in manifest.json")
    codec = "utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding
    try:
        return data.decode(codec), None
    except UnicodeDecodeError as exc:
        hint = ""
        if codec == "utf-8-sig" and _valid(data, "gb18030"):
            hint = ": the bytes are GBK/GB18030, declare gbk or gb18030 in manifest.json"
        raise BatchRejected(f"{name}: bytes at offset {exc.start} are not valid {encoding}{hint}") from None


def _header_name(h: str) -> str:
    return h.strip().strip("\ufeff").lower()


def _listed(names: list[str]) -> str:
    return ", ".join(n[:40] for n in names[:10]) + (" …" if len(names) > 10 else "")


def parse(text: str, name: str, contract: Contract, declared_rows: int) -> tuple[pa.Table, list[str]]:
    """RFC 4180 CSV to an Arrow table of the contract's columns (strings) plus `_line`, and
    notes on columns that were ignored or absent.

    Rows with a wrong number of fields are kept with a `_shape_error` so that they reach
    quarantine; a missing header, a header lacking a required column, an unterminated quote
    or a row count other than the manifest's rejects the batch.
    """
    reader = csv.reader(_lines(text), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise BatchRejected(f"{name}: file is empty (no header line)") from None
    except csv.Error as exc:
        raise BatchRejected(f"{name}: malformed CSV header: {exc}") from None
    columns = [_header_name(h) for h in header]
    known = set(contract.names)
    if not known.intersection(columns):
        # never echo the line: without a header it is a data row and may hold identifiers
        raise BatchRejected(f"{name}: the first line has none of the {contract.table} column names "
                            "(is the header line missing?)")
    missing = [c.name for c in contract.columns if c.required and c.name not in columns]
    if missing:
        raise BatchRejected(f"{name}: header lacks required column(s) {', '.join(missing)}")
    if len(set(columns)) != len(columns):
        raise BatchRejected(f"{name}: header repeats a column name")
    notes = []
    extra = [c for c in columns if c not in known]
    if extra:
        notes.append(f"{name}: ignored column(s) not in the {contract.table} contract: {_listed(extra)}")
    absent = [c for c in contract.names if c not in columns]
    if absent:
        notes.append(f"{name}: optional column(s) absent, left empty: {_listed(absent)}")
    index = {c: i for i, c in enumerate(columns)}
    wanted = contract.names
    chunks: dict[str, list[pa.Array]] = {c: [] for c in [*wanted, "_line", SHAPE_ERROR]}
    out: dict[str, list[str | None]] = {c: [] for c in wanted}
    lines: list[int] = []
    shape: list[str | None] = []
    n = 0

    def flush() -> None:
        for c, values in out.items():
            chunks[c].append(pa.array(values, pa.string()))
            values.clear()
        chunks["_line"].append(pa.array(lines, pa.int64()))
        chunks[SHAPE_ERROR].append(pa.array(shape, pa.string()))
        lines.clear()
        shape.clear()

    start = reader.line_num + 1
    try:
        for record in reader:
            if not record:  # blank line: not a data row
                start = reader.line_num + 1
                continue
            lines.append(start)
            if len(record) != len(columns):
                shape.append(f"wrong number of fields: row has {len(record)}, header has {len(columns)}")
            else:
                shape.append(None)
            for c in wanted:
                i = index.get(c)
                out[c].append(record[i] if i is not None and i < len(record) else None)
            start = reader.line_num + 1
            n += 1
            if len(lines) == CHUNK_ROWS:
                flush()
    except csv.Error as exc:
        raise BatchRejected(f"{name}: malformed CSV near line {reader.line_num}: {exc}") from None
    if n != declared_rows:
        raise BatchRejected(f"{name}: {n} data rows but manifest declares {declared_rows}")
    flush()
    types = {"_line": pa.int64()}
    return pa.table({c: pa.chunked_array(parts, types.get(c, pa.string())) for c, parts in chunks.items()}), notes
