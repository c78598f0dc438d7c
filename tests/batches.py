"""Build small landing batches in tests (the shape of extract-spec §1)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from medgov.spec.contracts import contract

LAB_HEADER = contract("lab_result").names


def write_batch(landing: Path, org: str, batch_id: str, files: dict[str, tuple[str, bytes, int]],
                encoding: str | None = "utf-8", manifest_overrides: dict | None = None, ready: bool = True,
                encodings: dict[str, str | None] | None = None) -> Path:
    """files: name -> (table, raw bytes, declared rows); `encoding` None leaves it undeclared,
    `encodings` sets it per file."""
    folder = landing / org / batch_id
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, (table, raw, rows) in files.items():
        (folder / name).write_bytes(raw)
        entry = {"name": name, "table": table, "rows": rows, "sha256": hashlib.sha256(raw).hexdigest()}
        declared = (encodings or {}).get(name, encoding)
        if declared is not None:
            entry["encoding"] = declared
        entries.append(entry)
    manifest = {"spec_version": "1", "org_code": org, "batch_id": batch_id, "source_system": "LIS",
                "extracted_at": "2024-03-01T23:10:00+08:00", "files": entries}
    manifest.update(manifest_overrides or {})
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    if ready:
        (landing / org / f"{batch_id}.ready").touch()
    return folder


def csv_bytes(header: list[str], rows: list[list[str]], encoding: str = "utf-8", newline: str = "\n") -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def lab_csv(rows: list[list[str]], encoding: str = "utf-8", newline: str = "\n") -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(LAB_HEADER)
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


def lab_row(i: int, patient: str = "P1", result: str = "88", unit: str = "umol/L", code: str = "CREA",
            reported: str = "2024-03-01 10:00:00") -> list[str]:
    return [f"R{i}", "1", f"V{i}", patient, code, "肌酐", result, unit, "57-111", "", "血清", "", reported]
