"""Fuzzing the landing zone: valid batches mutated (bytes, quoting, line endings, encodings,
manifest fields, file kinds) are either accepted with nothing lost or rejected with a
one-line reason: never a traceback, never a hang, never a read outside the landing root.

`make test` runs a fixed set of examples (derandomized, so CI is repeatable); for a longer,
random run: `MEDGOV_FUZZ_EXAMPLES=5000 make fuzz`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batches import csv_bytes, lab_csv, lab_row
from landing_watch import OpenWatch, fifo_has_no_reader
from medgov.errors import BatchDeferred, BatchRejected
from medgov.ingest import landing
from medgov.ingest.landing import BatchRef
from medgov.ingest.stage import read_batch
from medgov.spec.contracts import contract
from medgov.spec.site import load_site

ORG, BATCH = "H33030200001", "b1"
EXAMPLES = int(os.environ.get("MEDGOV_FUZZ_EXAMPLES", "300"))
LIMITS = load_site().landing.model_copy(update={"batch_seconds": 5, "file_bytes": 1 << 20})
NOW = datetime.now(timezone.utc)
PATIENTS = [["P1", "01", "", "测试甲", "1", "1980-01-01", "01", "", "", "2024-03-01"],
            ["P2", "01", "", "测试乙", "2", "1990-02-02", "01", "", "", "2024-03-01"]]
BASE = {"patient.csv": ("patient", csv_bytes(contract("patient").names, PATIENTS)),
        "lab_result.csv": ("lab_result", lab_csv([lab_row(1), lab_row(2, result="阴性"), lab_row(3, result="<5")]))}
KINDS = ["symlink", "fifo", "folder", "hardlink", "absent"]
ENCODINGS = ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "latin-1", "ascii"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 10**20) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


@dataclass
class Draft:
    """A batch before it is written: file bytes, the manifest (any JSON, or raw bytes), and
    the kind of entry each name becomes."""

    files: dict[str, bytes]
    manifest: Any
    kinds: dict[str, str] = field(default_factory=dict)
    folder_link: bool = False

    @classmethod
    def base(cls) -> "Draft":
        entries = [{"name": n, "table": t, "rows": data.count(b"\n") - 1, "encoding": "utf-8",
                    "sha256": hashlib.sha256(data).hexdigest()} for n, (t, data) in BASE.items()]
        return cls({n: data for n, (_, data) in BASE.items()},
                   {"spec_version": "1", "org_code": ORG, "batch_id": BATCH, "source_system": "LIS",
                    "extracted_at": "2024-03-01T23:10:00+08:00", "files": entries})

    def entry(self, name: str) -> dict | None:
        if isinstance(self.manifest, dict) and isinstance(self.manifest.get("files"), list):
            return next((f for f in self.manifest["files"] if isinstance(f, dict) and f.get("name") == name), None)
        return None

    def resign(self, name: str) -> None:
        e = self.entry(name)
        if e is not None:
            e["sha256"] = hashlib.sha256(self.files[name]).hexdigest()

    @property
    def hostile(self) -> bool:
        """An entry the boundary must refuse whatever else is true."""
        return self.folder_link or any(k in ("symlink", "fifo", "folder", "hardlink") for k in self.kinds.values())


def _at(data: bytes, fraction: float) -> int:
    return int(fraction * len(data))


def apply(draft: Draft, mutation: tuple) -> None:
    op, *args = mutation
    if op == "bytes":
        name, fraction, how, byte, resign = args
        data, i = draft.files[name], _at(draft.files[name], fraction)
        draft.files[name] = {"replace": data[:i] + bytes([byte]) + data[i + 1:], "insert": data[:i] + bytes([byte]) + data[i:],
                             "delete": data[:i] + data[i + 1:]}[how]
        if resign:
            draft.resign(name)
    elif op == "quote":
        name, fraction = args
        data, i = draft.files[name], _at(draft.files[name], fraction)
        draft.files[name] = data[:i] + b'"' + data[i:]
        draft.resign(name)
    elif op == "newline":
        name, style = args
        text = draft.files[name].replace(b"\r\n", b"\n")
        draft.files[name] = {"crlf": text.replace(b"\n", b"\r\n"), "cr": text.replace(b"\n", b"\r"),
                             "mixed": text.replace(b"\n", b"\r\n", 2), "none": text.rstrip(b"\n")}[style]
        draft.resign(name)
    elif op == "encoding":
        name, codec, declared = args
        draft.files[name] = draft.files[name].decode("utf-8", "replace").encode(codec, "replace")
        draft.resign(name)
        e = draft.entry(name)
        if e is not None:
            e["encoding"] = declared
    elif op == "field":
        path, value, delete = args
        node = draft.manifest
        keys = path.split(".")
        for k in keys[:-1]:
            if isinstance(node, dict):
                node = node.get(k)
            elif isinstance(node, list) and k.isdigit() and int(k) < len(node):
                node = node[int(k)]
            else:
                node = None
        if isinstance(node, dict):
            if delete:
                node.pop(keys[-1], None)
            else:
                node[keys[-1]] = value
    elif op == "manifest":
        (draft.manifest,) = args  # any JSON value, or raw bytes
    elif op == "kind":
        name, kind = args
        if name != ".":
            draft.kinds[name] = kind
        elif kind == "symlink":  # the batch folder itself
            draft.folder_link = True
    elif op == "extra":
        name, data = args
        draft.files[name] = data


names = st.sampled_from(sorted(BASE))
mutations = st.one_of(
    st.tuples(st.just("bytes"), names, st.floats(0, 1), st.sampled_from(["replace", "insert", "delete"]),
              st.integers(0, 255), st.booleans()),
    st.tuples(st.just("quote"), names, st.floats(0, 1)),
    st.tuples(st.just("newline"), names, st.sampled_from(["crlf", "cr", "mixed", "none"])),
    st.tuples(st.just("encoding"), names, st.sampled_from(ENCODINGS), st.sampled_from(ENCODINGS + [None])),
    st.tuples(st.just("field"), st.sampled_from(["spec_version", "org_code", "batch_id", "files", "files.0",
                                                 "files.0.name", "files.0.table", "files.0.rows", "files.1.sha256",
                                                 "files.1.encoding", "files.1.name"]), json_values, st.booleans()),
    st.tuples(st.just("manifest"), json_values | st.binary(max_size=64)),
    st.tuples(st.just("kind"), st.sampled_from(sorted(BASE) + ["manifest.json", "."]), st.sampled_from(KINDS)),
    st.tuples(st.just("extra"), st.sampled_from(["visit.csv", "notes.txt", ".hidden", "x y.csv"]), st.binary(max_size=32)),
)


def materialize(draft: Draft, root: Path, outside: Path) -> None:
    """Write the draft as batch folder root/ORG/b1 with its ready flag."""
    folder = (outside / BATCH) if draft.folder_link else root / ORG / BATCH
    folder.mkdir(parents=True)
    (root / ORG).mkdir(parents=True, exist_ok=True)
    manifest = draft.manifest if isinstance(draft.manifest, bytes) else json.dumps(draft.manifest).encode()
    for name, data in {**draft.files, "manifest.json": manifest}.items():
        kind, path = draft.kinds.get(name, "regular"), folder / name
        if kind == "regular":
            path.write_bytes(data)
        elif kind == "symlink":  # the same bytes outside: a matching sha256 must not help
            (outside / name).write_bytes(data)
            path.symlink_to(outside / name)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        elif kind == "hardlink":
            path.write_bytes(data)
            os.link(path, root.parent / f"second-name-{name}")
    if draft.folder_link:
        (root / ORG / BATCH).symlink_to(folder)
    (root / ORG / f"{BATCH}.ready").touch()


def outcome(root: Path) -> tuple[dict | None, str | None]:
    """(tables, None) when accepted, (None, reason) when rejected or deferred."""
    ref = BatchRef(root, ORG, BATCH)
    try:
        tables, _ = read_batch(ref, landing.read(ref, LIMITS), NOW)
    except (BatchRejected, BatchDeferred) as exc:
        return None, str(exc)
    return tables, None


def check_one(mutation_list: list[tuple], scratch: Path, accepted: list) -> None:
    """Write one mutated batch, read it across the boundary, and check the outcome."""
    draft = Draft.base()
    for m in mutation_list:
        apply(draft, copy.deepcopy(m))
    base = Path(tempfile.mkdtemp(prefix="case", dir=scratch))
    root, outside = base / "landing", base / "outside"
    outside.mkdir()
    try:
        materialize(draft, root, outside)
        watch = OpenWatch(outside, *(p for p in outside.iterdir() if p.is_dir() and not p.is_symlink()))
        started = time.monotonic()
        tables, reason = outcome(root)
        assert time.monotonic() - started < LIMITS.batch_seconds + 5, "a case must end within its budget"
        assert watch.opened() == [], "nothing outside the landing root is opened"
        watch.close()
        for name, kind in draft.kinds.items():
            if kind == "fifo":
                assert fifo_has_no_reader(root / ORG / BATCH / name)
        if tables is None:
            assert reason and "\n" not in reason and len(reason) < 600, reason
            return
        assert not draft.hostile, f"a link, FIFO, folder or hard link was accepted: {mutation_list}"
        declared = {f["table"]: f["rows"] for f in draft.manifest["files"]}
        for table, t in tables.items():
            assert t.num_rows == declared[table]
            lines = t.column("_line").to_pylist()
            assert lines == sorted(set(lines)), "every record keeps its own line"
            accepted.append((table, t))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_mutated_batch_is_accepted_whole_or_refused_with_a_reason(spark, tmp_path):
    """Every example: accepted with every row, or refused with a one-line reason, in bounded
    time, opening nothing outside the root; then the accepted rows typed by the bronze
    contract in one Spark pass: each published or quarantined, none lost or multiplied."""
    import pyarrow as pa

    from medgov.ingest.bronze import apply_contract

    accepted: list = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize="MEDGOV_FUZZ_EXAMPLES" not in os.environ,
              suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(mutations, min_size=1, max_size=3))
    def fuzz(mutation_list):
        check_one(mutation_list, tmp_path, accepted)

    fuzz()
    assert len(accepted) >= 20  # the mutations leave enough batches acceptable to type
    for table in sorted({t for t, _ in accepted}):
        arrow = pa.concat_tables([t for name, t in accepted if name == table], promote_options="default")
        typed = apply_contract(spark.createDataFrame(arrow), contract(table))
        good, bad = typed.selectExpr("sum(int(size(_reasons) = 0))", "sum(int(size(_reasons) > 0))").first()
        assert (good or 0) + (bad or 0) == arrow.num_rows
