"""Dirty deliveries: every defect a hospital extract can carry, each its own small batch.

All cases land in one landing zone (one institution code per case) and go through one
`medgov run`; each test then checks its case: no crash, every delivered row published or
quarantined with a reason, rejected batches recorded with a reason a steward can act on,
and that reason visible both in `medgov report` and in the quality results.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Callable

import pytest
from deltalake import DeltaTable

from batches import LAB_HEADER, csv_bytes, write_batch
from lakes import medgov
from conftest import TEST_KEY
from medgov.spec.contracts import contract

pytestmark = pytest.mark.system

PAT_HEADER = contract("patient").names
VITAL_HEADER = contract("vital_sign").names
ID_BAD_CHECK = "110101199003077777"  # domain.md §1: invalid, the check character should be 4
LOCAL = ZoneInfo("Asia/Shanghai")
LEGACY_15 = "110105800101271"  # 6 + YYMMDD + 3 (domain.md §1), the 18-digit form below
SURNAMES = "欧阳司马上官诸葛东方皇甫尉迟公孙慕容长孙宇文轩辕令狐钟离夏侯端木"
GIVEN = "明远静怡浩然雨桐子墨若曦俊杰思琪博文诗涵嘉懿梓萱"


def identity(i: int) -> tuple[str, str]:
    """A name and a phone unique to case `i` (what the leak scan looks for)."""
    name = SURNAMES[(2 * i) % len(SURNAMES):(2 * i) % len(SURNAMES) + 2] + GIVEN[i % len(GIVEN)] + GIVEN[(i * 7 + 3) % len(GIVEN)]
    return name, f"139{i:04d}{(i * 7919) % 10000:04d}"


def id_no(i: int, birth: str = "19800101", male: bool = True) -> str:
    """A valid resident identity number unique to case `i` (GB 11643, domain.md §1)."""
    from medgov.domain.identity import id_check_char

    body = f"110105{birth}{i:02d}{1 if male else 2}"
    return body + id_check_char(body)


def patient(i: int, pid: str = "P1", number: str | None = None, sex: str = "1", birth: str = "1980-01-01") -> list[str]:
    name, phone = identity(i)
    return [pid, "01", number or id_no(i), name, sex, birth, "01", phone, "110105", "2024-03-01 08:00:00"]


def _legacy_18() -> str:
    from medgov.domain.identity import upgrade_15

    return upgrade_15(LEGACY_15)


LEGACY_18 = _legacy_18()


def local(ts: datetime) -> str:
    """A stored instant as Asia/Shanghai wall time (extract-spec §2's default zone)."""
    return ts.astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")


def lab(n: int, pid: str = "P1", result: str = "88", reported: str = "2024-03-01 10:00:00",
        item_name: str = "肌酐") -> list[str]:
    return [f"R{n}", "1", "", pid, "CREA", item_name, result, "umol/L", "57-111", "", "血清", "", reported]


@dataclass
class Case:
    name: str
    files: dict[str, tuple[str, bytes, int]]  # file -> (table, bytes, declared rows)
    encoding: str | None = "utf-8"
    manifest: dict | None = None
    prepare: Callable[[Path], None] | None = None  # change the batch folder after it is written
    rejected: str | None = None  # the reason must contain this
    quarantined: dict[str, int] = field(default_factory=dict)  # reason kind -> rows quarantined (any layer)
    notes: list[str] = field(default_factory=list)
    findings: list[tuple[str, str]] = field(default_factory=list)  # (suite, column) that must fail
    check: Callable[["Dirty", str], None] | None = None  # case-specific assertions, given the batch key
    identifiers: list[str] = field(default_factory=list)


def _files(i: int, labs: list[list[str]] | None = None, header: list[str] = LAB_HEADER, encoding: str = "utf-8",
           newline: str = "\n", pat: list[list[str]] | None = None, vitals: list[list[str]] | None = None,
           bom: bool = False) -> dict[str, tuple[str, bytes, int]]:
    pat = pat if pat is not None else [patient(i)]
    files = {"patient.csv": ("patient", csv_bytes(PAT_HEADER, pat, encoding, newline), len(pat))}
    if labs is not None:
        raw = csv_bytes(header, labs, encoding, newline)
        files["lab_result.csv"] = ("lab_result", (b"\xef\xbb\xbf" + raw) if bom else raw, len(labs))
    if vitals is not None:
        files["vital_sign.csv"] = ("vital_sign", csv_bytes(VITAL_HEADER, vitals, encoding, newline), len(vitals))
    return files


def _raw_lab(i: int, text: str, rows: int, encoding: str = "utf-8") -> dict[str, tuple[str, bytes, int]]:
    return {**_files(i), "lab_result.csv": ("lab_result", text.encode(encoding), rows)}


def _bronze(d: "Dirty", table: str, key: str) -> list[dict]:
    return [r for r in d.table("bronze", table) if r["_batch_key"] == key]


def _silver(d: "Dirty", table: str, key: str) -> list[dict]:
    return [r for r in d.table("silver", table) if r["batch_key"] == key]


def _cases() -> list[Case]:
    future = (datetime.now() + timedelta(days=400)).strftime("%Y-%m-%d %H:%M:%S")
    shapes = ["2024-03-01", "2024/03/01", "20240301", "2024-03-01 08:30:00", "2024-03-01T08:30:00",
              "2024-03-01T08:30:00+08:00", "20240301083000", "2024/3/1 8:30"]
    truncated = csv_bytes(LAB_HEADER, [lab(1), lab(2)]).decode()
    truncated = truncated[: truncated.rindex("88")]  # the extract stopped mid-row: no result, no newline
    huge = "x" * (10 * 1024 * 1024)
    cases = [
        # --- encodings ---
        Case("gbk-declared-utf8", _files(0, [lab(1)], encoding="gbk"), encoding="utf-8",
             rejected="the bytes are GBK/GB18030, declare gbk or gb18030"),
        Case("utf8-declared-gbk", _files(1, [lab(1)]), encoding="gbk",
             rejected="declared gbk but the bytes are UTF-8"),
        Case("undeclared-utf8", _files(2, [lab(1)]), encoding=None,
             notes=["no encoding declared; the bytes are UTF-8"]),
        Case("undeclared-gbk", _files(3, [lab(1)], encoding="gbk"), encoding=None,
             notes=["no encoding declared; the bytes are GBK/GB18030"],
             check=lambda d, k: _assert_name_decoded(d, k, 3)),
        Case("byte-order-mark", _files(4, [lab(1)], bom=True),
             check=lambda d, k: _assert_lab_values(d, k, {"R1": {"result": "88"}})),
        Case("crlf", _files(5, [lab(1), lab(2)], newline="\r\n"),
             check=lambda d, k: _assert_lab_values(d, k, {"R2": {"specimen": "血清", "reported_time": "2024-03-01 10:00:00"}})),
        Case("quoted-commas-newlines", _files(6, [lab(1, item_name="肌酐,\n血清 \"酶法\""), lab(2)]),
             check=lambda d, k: _assert_lab_values(d, k, {"R1": {"item_name": "肌酐,\n血清 \"酶法\"", "_line": 2},
                                                          "R2": {"_line": 4}})),
        # --- shape of the file ---
        Case("truncated-last-line", _raw_lab(7, truncated, 2),
             quarantined={"wrong number of fields": 1, "missing required value in result": 1,
                          "missing required value in reported_time": 1}),  # every reason of the row
        Case("truncated-in-transit", _files(8, [lab(1), lab(2)]),
             prepare=lambda folder: _truncate(folder / "lab_result.csv"), rejected="does not match manifest"),
        Case("header-only", _files(9, [])),
        Case("zero-bytes", _raw_lab(10, "", 0), rejected="lab_result.csv: file is empty (no header line)"),
        Case("no-header", {**_files(11), "lab_result.csv": ("lab_result", csv_bytes(lab(1), [lab(2)]), 1)},
             rejected="is the header line missing?"),
        Case("extra-columns", _files(12, [lab(1) + ["内部备注"]], header=LAB_HEADER + ["his_internal_note"]),
             notes=["ignored column(s) not in the lab_result contract: his_internal_note"]),
        Case("missing-optional-columns", _files(13, [[v for h, v in zip(LAB_HEADER, lab(1)) if h not in ("specimen", "ref_range")]],
                                                header=[h for h in LAB_HEADER if h not in ("specimen", "ref_range")]),
             notes=["optional column(s) absent, left empty: ref_range, specimen"],
             check=lambda d, k: _assert_lab_values(d, k, {"R1": {"specimen": None, "result": "88"}})),
        Case("missing-required-column", _files(14, [[v for h, v in zip(LAB_HEADER, lab(1)) if h != "result"]],
                                               header=[h for h in LAB_HEADER if h != "result"]),
             rejected="header lacks required column(s) result"),
        Case("columns-reordered", _files(15, [list(reversed(lab(1)))], header=list(reversed(LAB_HEADER))),
             check=lambda d, k: _assert_lab_values(d, k, {"R1": {"result": "88", "item_code": "CREA"}})),
        Case("duplicate-rows", _files(16, [lab(1), lab(1), lab(2)]),
             quarantined={"exact duplicate": 1},
             check=lambda d, k: _assert_quarantine_detail(d, k, "exact duplicate: superseded by line 3")),
        Case("duplicate-keys", _files(17, [lab(1, result="88"), lab(1, result="99")]),
             quarantined={"duplicate key (report_id, item_seq) in this batch": 1},
             check=lambda d, k: (_assert_lab_values(d, k, {"R1": {"result": "99", "_line": 3}}),
                                 _assert_quarantine_detail(d, k, "superseded by line 3"))),
        Case("ten-megabyte-text", _files(18, [lab(1, item_name=huge), lab(2)]),
             quarantined={"value too long in item_name": 1},
             check=lambda d, k: _assert_quarantine_record_short(d, k)),
        # --- values ---
        Case("non-numeric-numbers", _files(19, [lab(1, result="阴性"), lab(2, result="<5"), lab(3, result="1,234"),
                                                lab(4, result="—")],
                                           vitals=[["", "P1", f"2024-03-0{n + 1} 08:00:00", v, "80", "", "", ""]
                                                   for n, v in enumerate(["阴性", "<5", "1,234", "—", "120"])]),
             quarantined={"non-numeric value in sbp": 3},
             findings=[("silver.observation", "sbp")],  # 1,234 mmHg is a number, and implausible
             check=lambda d, k: _assert_numbers(d, k)),
        Case("full-width-digits", _files(20, vitals=[["", "Ｐ１", "２０２４－０３－０１　０８：３０：００", "１２０", "８０",
                                                      "", "", ""]]),
             check=lambda d, k: _assert_vital(d, k, sbp=120.0, measured="2024-03-01 08:30:00")),
        Case("every-date-shape", _files(21, [lab(n, reported=s) for n, s in enumerate(shapes)]),
             check=lambda d, k: _assert_date_shapes(d, k, shapes)),
        Case("impossible-dates", _files(22, [lab(1, reported="2024-02-30"), lab(2, reported="00000000"), lab(3)]),
             quarantined={"unparseable datetime in reported_time": 2}),
        Case("future-dates", _files(23, [lab(1, reported=future)]),
             findings=[("bronze.lab_result", "has_future_date"), ("silver.observation", "not_future")]),
        Case("dates-before-birth", _files(24, [lab(1, reported="1975-06-01 09:00:00")]),
             findings=[("silver.observation", "after_birth")]),
        Case("empty-measurements", _files(25, vitals=[["", "P1", "2024-03-01 08:00:00", "", "", "", "", ""],
                                                      ["", "P1", "2024-03-02 08:00:00", "130", "85", "", "", ""]]),
             quarantined={"row carries no value": 1}),
        # --- identity ---
        Case("id-bad-check-character", _files(26, [lab(1)], pat=[patient(26, number=ID_BAD_CHECK)]),
             findings=[("silver.patient", "id_no_valid")], identifiers=[ID_BAD_CHECK]),
        Case("id-legacy-15-digit", _files(27, [lab(1)], pat=[patient(27, number=LEGACY_15)]),
             check=lambda d, k: _assert_legacy_links(d, k), identifiers=[LEGACY_15]),
        Case("sex-contradicts-id", _files(28, [lab(1)], pat=[patient(28, number=id_no(28, "19491231", male=False),
                                                                     sex="1", birth="1949-12-31")]),
             findings=[("silver.patient", "id_sex_matches")]),
        # --- the batch ---
        Case("manifest-missing", _files(29, [lab(1)]), prepare=lambda f: (f / "manifest.json").unlink(),
             rejected="manifest.json is missing"),
        Case("manifest-not-json", _files(30, [lab(1)]),
             prepare=lambda f: (f / "manifest.json").write_text("{'files': [lab_result.csv]", encoding="utf-8"),
             rejected="manifest.json is not valid JSON"),
        Case("sha256-mismatch", _files(31, [lab(1)]), prepare=lambda f: _edit_manifest(f, sha256="0" * 64),
             rejected="lab_result.csv: sha256"),
        Case("row-count-mismatch", _files(32, [lab(1), lab(2)]), prepare=lambda f: _edit_manifest(f, rows=5),
             rejected="lab_result.csv: 2 data rows but manifest declares 5"),
        Case("listed-but-absent", _files(33, [lab(1)]), prepare=lambda f: (f / "lab_result.csv").unlink(),
             rejected="lab_result.csv is listed in manifest.json but absent"),
        Case("present-but-unlisted", _files(34, [lab(1)]),
             prepare=lambda f: (f / "visit.csv").write_text("visit_id\n", encoding="utf-8"),
             rejected="present but not listed in manifest.json: visit.csv"),
        Case("flag-without-folder", {}, rejected="ready flag without batch folder"),
        Case("unknown-table", _files(36, [lab(1)]), prepare=lambda f: _edit_manifest(f, table="billing"),
             rejected="unknown table 'billing'"),
        Case("path-traversal", _files(37, [lab(1)]), prepare=_traversal,
             rejected="is not a plain file name inside the batch folder"),
        # --- the landing zone as a trust boundary ---
        Case("batch-folder-linked-outside", _files(38, [lab(1)]), prepare=_link_folder_outside,
             rejected="is a symbolic link; the landing zone accepts real folders only"),
        Case("data-file-linked-outside", _files(39, [lab(1)]), prepare=lambda f: _link_file_outside(f, "patient.csv"),
             rejected="patient.csv is a symbolic link; the landing zone accepts regular files only"),
        Case("fifo-for-a-file", _files(40, [lab(1)]), prepare=_fifo_for_lab,
             rejected="lab_result.csv is a FIFO (named pipe); the landing zone accepts regular files only"),
        Case("oversized-file", _files(41, [lab(1)]), prepare=lambda f: os.truncate(f / "lab_result.csv", 17 << 20),
             rejected="lab_result.csv is 17.0MiB; the site allows at most 16.0MiB per file (file_bytes)"),
        Case("hard-link", _files(42, [lab(1)]), prepare=lambda f: os.link(f / "patient.csv", _outside(f) / "hl.csv"),
             rejected="patient.csv has 2 names (a hard link)"),
        # --- numbers that are not finite ---
        Case("non-finite-lab-results", _files(43, [lab(1, result="NaN"), lab(2, result="Infinity"),
                                                   lab(3, result="-inf"), lab(4, result="1e309"), lab(5)]),
             findings=[("bronze.lab_result", "result_finite")], check=lambda d, k: _assert_no_value(d, k)),
        Case("non-finite-vitals", _files(44, vitals=[["", "P1", f"2024-03-0{n + 1} 08:00:00", v, "80", "", "", ""]
                                                     for n, v in enumerate(["NaN", "inf", "1e309", "120"])]),
             quarantined={"not a finite number in sbp": 3}),
    ]
    return cases


def _outside(folder: Path) -> Path:
    """A folder beside the landing root (what a link from the landing zone could expose)."""
    out = folder.parent.parent.parent / "outside"
    out.mkdir(exist_ok=True)
    return out


def _link_folder_outside(folder: Path) -> None:
    target = _outside(folder) / folder.name
    shutil.move(folder, target)
    folder.symlink_to(target)


def _link_file_outside(folder: Path, name: str) -> None:
    """The file moves outside, the link takes its place: the manifest's sha256 still matches."""
    target = _outside(folder) / f"{folder.name}-{name}"
    shutil.move(folder / name, target)
    (folder / name).symlink_to(target)


def _fifo_for_lab(folder: Path) -> None:
    (folder / "lab_result.csv").unlink()
    os.mkfifo(folder / "lab_result.csv")


def landing_copy(src: Path, dst: Path) -> None:
    """Copy a landing zone as it is: links as links, FIFOs as FIFOs (copying one's content
    would block), a file with a second name still with two, and every time as it was."""
    def special(folder: str, names: list[str]) -> list[str]:
        return [n for n in names if stat.S_ISFIFO(os.lstat(os.path.join(folder, n)).st_mode)]

    shutil.copytree(src, dst, symlinks=True, ignore=special)
    for path in sorted(src.rglob("*")):
        st = os.lstat(path)
        copy = dst / path.relative_to(src)
        if stat.S_ISFIFO(st.st_mode):
            os.mkfifo(copy)
            os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.utime(copy.parent, ns=(os.stat(path.parent).st_atime_ns, os.stat(path.parent).st_mtime_ns))
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            os.link(copy, dst.parent / f"second-name-of-{path.name}")


def _edit_manifest(folder: Path, **change) -> None:
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    next(f for f in m["files"] if f["name"] == "lab_result.csv").update(change)
    (folder / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-20])


def _traversal(folder: Path) -> None:
    """Name a file two levels up; put a file there whose hash matches, so only the name can stop it."""
    target = folder.parent.parent / "secret.csv"
    data = (folder / "lab_result.csv").read_bytes()
    target.write_bytes(data)
    (folder / "lab_result.csv").unlink()
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    entry = next(f for f in m["files"] if f["name"] == "lab_result.csv")
    entry.update(name="../../secret.csv", sha256=hashlib.sha256(data).hexdigest())
    (folder / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


# --- case-specific checks ------------------------------------------------------------------


def _assert_name_decoded(d: "Dirty", key: str, i: int) -> None:
    [row] = _bronze(d, "patient", key)
    assert row["name"] == identity(i)[0]


def _assert_lab_values(d: "Dirty", key: str, expected: dict[str, dict]) -> None:
    rows = {r["report_id"]: r for r in _bronze(d, "lab_result", key)}
    for report, values in expected.items():
        for col, value in values.items():
            got = rows[report][col]
            got = local(got) if isinstance(got, datetime) else got
            assert got == value, (report, col, got)


def _quarantine(d: "Dirty", key: str) -> list[dict]:
    return [r for r in d.table("bronze", "quarantine") if r["batch_key"] == key]


def _assert_quarantine_detail(d: "Dirty", key: str, text: str) -> None:
    assert any(text in reason for r in _quarantine(d, key) for reason in r["reasons"])


def _assert_quarantine_record_short(d: "Dirty", key: str) -> None:
    [q] = _quarantine(d, key)
    assert len(q["record"]) < 2000  # the steward sees the start of the value, not 10 MB


def _assert_numbers(d: "Dirty", key: str) -> None:
    obs = _silver(d, "observation", key)
    by_value = {(r["comparator"], r["value"], r["value_string"]) for r in obs if r["category"] == "laboratory"}
    assert by_value == {(None, None, "阴性"), ("<", 5.0, None), (None, 1234.0, None), (None, None, "—")}
    bp = [r for r in obs if r["loinc"] == "85354-9"]
    assert sorted(dict(r["components"])["8480-6"] for r in bp) == [120.0, 1234.0]


def _assert_no_value(d: "Dirty", key: str) -> None:
    """A result that is no finite number keeps neither a value nor a valueString."""
    obs = {r["source_line"]: r for r in _silver(d, "observation", key)}
    assert [(obs[line]["value"], obs[line]["value_string"]) for line in range(2, 7)] == [(None, None)] * 4 + [(88.0, None)]


def _assert_vital(d: "Dirty", key: str, sbp: float, measured: str) -> None:
    [row] = _bronze(d, "vital_sign", key)
    assert row["sbp"] == sbp and row["patient_id"] == "P1"
    assert local(row["measured_time"]) == measured


def _assert_date_shapes(d: "Dirty", key: str, shapes: list[str]) -> None:
    rows = {r["report_id"]: r["reported_time"] for r in _bronze(d, "lab_result", key)}
    assert len(rows) == len(shapes)
    for n, shape in enumerate(shapes):
        expected = "2024-03-01 00:00:00" if len(shape) <= 10 else "2024-03-01 08:30:00"
        assert local(rows[f"R{n}"]) == expected, shape


def _assert_legacy_links(d: "Dirty", key: str) -> None:
    from medgov.domain.pseudonym import person_key

    [p] = _silver(d, "patient", key)
    assert p["id_no_valid"] is True
    # the same person delivered elsewhere with the 18-digit number gets the same pseudonym
    assert p["id"] == person_key(TEST_KEY.encode(), "ELSEWHERE01", "X", "01", LEGACY_18)


# --- the run -------------------------------------------------------------------------------


@dataclass
class Dirty:
    root: Path
    landing: Path
    lake: Path
    cases: dict[str, tuple[Case, str]]  # name -> (case, batch key)
    output: str  # everything `medgov run` printed
    report: str  # `medgov report`
    opened_outside: list[str]  # what the run opened beside the landing root (inotify): nothing
    _tables: dict = field(default_factory=dict)

    def table(self, zone: str, name: str) -> list[dict]:
        if (zone, name) not in self._tables:
            uri = self.lake / zone / name
            self._tables[(zone, name)] = (DeltaTable(str(uri)).to_pyarrow_table().to_pylist()
                                          if DeltaTable.is_deltatable(str(uri)) else [])
        return self._tables[(zone, name)]


@pytest.fixture(scope="session")  # session: a worker running other modules in between keeps it
def dirty(tmp_path_factory, connect_server) -> Dirty:
    from landing_watch import OpenWatch

    root = tmp_path_factory.mktemp("dirty")
    landing, lake, config = root / "landing", root / "lake", root / "config"
    landing.mkdir()
    config.mkdir()
    # a site limit the oversized case exceeds (and the ten-megabyte case does not)
    (config / "landing.yaml").write_text("file_bytes: 16 MiB\n", encoding="utf-8")
    cases: dict[str, tuple[Case, str]] = {}
    for i, case in enumerate(_cases()):
        org = f"CASE{i:02d}"
        if case.files:
            folder = write_batch(landing, org, case.name, case.files, encoding=case.encoding,
                                 manifest_overrides=case.manifest)
            if case.prepare:
                case.prepare(folder)
        else:
            (landing / org).mkdir()
            (landing / org / f"{case.name}.ready").touch()
        cases[case.name] = (case, f"{org}/{case.name}")
    outside = root / "outside"
    watch = OpenWatch(outside, *(p for p in outside.iterdir() if p.is_dir()))
    # attached to the run's Connect server, as an Airflow task is: no JVM of its own to start
    run = medgov("run", "--landing", str(landing), "--lake", str(lake), "--config", str(config),
                 env={"SPARK_REMOTE": connect_server})
    opened_outside = watch.opened()
    watch.close()
    report = medgov("report", "--lake", str(lake))
    return Dirty(root, landing, lake, cases, run.stdout + run.stderr, report.stdout, opened_outside, {})


CASES = [c.name for c in _cases()]


@pytest.mark.parametrize("name", CASES)
def test_outcome_and_nothing_lost(dirty, name):
    """Rejected whole with its reason, or accepted with every row in bronze or quarantine."""
    case, key = dirty.cases[name]
    deliveries = [d for d in dirty.table("control", "deliveries") if d["batch_key"] == key]
    assert len(deliveries) == 1, deliveries
    [delivery] = deliveries
    if case.rejected:
        assert delivery["status"] == "rejected"
        assert case.rejected in delivery["reason"]
        assert not any(r["_batch_key"] == key for t in ("patient", "lab_result", "vital_sign")
                       for r in dirty.table("bronze", t))
        return
    assert delivery["status"] == "accepted", delivery["reason"]
    quarantine = _quarantine(dirty, key)
    kinds = Counter(reason.split(": ")[0] for r in quarantine for reason in r["reasons"])
    assert dict(kinds) == case.quarantined
    for file, (table, _, rows) in case.files.items():
        in_bronze = len([r for r in _bronze(dirty, table, key) if r["_file"] == file])
        in_quarantine = len([r for r in quarantine if r["layer"] == "bronze" and r["file"] == file])
        assert in_bronze + in_quarantine == rows, (file, in_bronze, in_quarantine, rows)
    for note in case.notes:
        assert any(note in n for n in delivery["notes"]), delivery["notes"]
    if not case.notes:
        assert not delivery["notes"]


SILVER_OF = {"patient": "patient", "lab_result": "observation", "vital_sign": "observation"}


@pytest.mark.parametrize("name", [c.name for c in _cases() if not c.rejected])
def test_every_bronze_row_reaches_silver_or_quarantine(dirty, name):
    """Follow each published bronze line into silver (by file and line) or the silver quarantine."""
    case, key = dirty.cases[name]
    for file, (table, _, _) in case.files.items():
        lines = {r["_line"] for r in _bronze(dirty, table, key) if r["_file"] == file}
        in_silver = {r["source_line"] for r in _silver(dirty, SILVER_OF[table], key) if r["source_file"] == file}
        quarantined = {r["line"] for r in _quarantine(dirty, key) if r["layer"] == "silver" and r["file"] == file}
        assert lines == in_silver | quarantined, (file, lines, in_silver, quarantined)
        assert not in_silver & quarantined


@pytest.mark.parametrize("name", CASES)
def test_reason_is_in_the_quality_results(dirty, name):
    case, key = dirty.cases[name]
    results = [r for r in dirty.table("quality", "quality_results") if r["batch_key"] == key]
    conform = [r for r in results if r["expectation"] == "batch_conforms_to_extract_spec"]
    assert len(conform) == 1 and conform[0]["layer"] == "ingest" and conform[0]["category"] == "conformance"
    if case.rejected:
        assert conform[0]["success"] is False and case.rejected in json.loads(conform[0]["observed_value"])
        assert {r["layer"] for r in results} == {"ingest"}
        return
    assert conform[0]["success"] is True
    for layer, expectation in (("bronze", "rows_conform_to_contract"), ("silver", "rows_build_valid_fhir")):
        checks = [r for r in results if r["expectation"] == expectation]
        assert checks, expectation
        failed = Counter()
        for r in checks:
            if not r["success"]:
                failed[json.loads(r["observed_value"])] += r["unexpected_count"]
        quarantined = Counter(reason.split(": ")[0] for q in _quarantine(dirty, key) if q["layer"] == layer
                              for reason in q["reasons"])
        assert failed == quarantined, (expectation, failed, quarantined)
    [deviation] = [r for r in results if r["expectation"] == "no_deviation_absorbed"]
    assert deviation["success"] is (not case.notes)
    for note in case.notes:
        assert any(note in n for n in json.loads(deviation["observed_value"]))
    failed = {(r["suite"], r["column"]) for r in results if not r["success"]}
    for finding in case.findings:
        assert finding in failed, (finding, sorted(failed))


@pytest.mark.parametrize("name", [c.name for c in _cases() if c.rejected or c.quarantined or c.notes or c.findings])
def test_reason_is_in_the_report(dirty, name):
    """Rejections, quarantine reasons and notes by batch; failing checks by suite and column."""
    case, key = dirty.cases[name]
    text = " ".join(line for line in dirty.report.splitlines() if key in line)
    if case.rejected:
        assert "rejected" in text and case.rejected in text
    for kind in case.quarantined:
        assert kind in text
    for note in case.notes:
        assert note in text
    for suite, column in case.findings:
        assert any(suite in line and f" {column} " in line for line in dirty.report.splitlines()), (suite, column)


@pytest.mark.parametrize("name", [c.name for c in _cases() if c.check])
def test_case_specific_outcome(dirty, name):
    case, key = dirty.cases[name]
    case.check(dirty, key)


def test_path_traversal_reads_nothing_outside_the_batch(dirty):
    _, key = dirty.cases["path-traversal"]
    assert not any(r["_batch_key"] == key for r in dirty.table("bronze", "patient"))
    assert (dirty.landing / "secret.csv").exists()  # was there to be read, and was not


def test_nothing_outside_the_landing_root_was_opened(dirty):
    """The linked folder and files were there to be read (the sha256 in their manifests
    matches), and the run opened none of them, nor listed the linked folder."""
    assert sorted(p.name for p in (dirty.root / "outside").iterdir()) == [
        "batch-folder-linked-outside", "data-file-linked-outside-patient.csv", "hl.csv"]
    assert dirty.opened_outside == []


def test_every_other_institutions_batch_went_through_in_the_same_run(dirty):
    """A link, a FIFO or an oversized file in one institution's folder stalls no one else:
    every accepted batch of the run reached a final stage, the clean ones gold."""
    stages = {b["batch_key"]: b["stage"] for b in dirty.table("control", "batches")}
    accepted = [key for case, key in dirty.cases.values() if not case.rejected]
    assert {stages[k] for k in accepted} <= {"published", "blocked"}
    clean = [key for case, key in dirty.cases.values()
             if not (case.rejected or case.quarantined or case.findings or case.notes or case.identifiers)]
    assert len(clean) >= 5 and all(stages[k] == "published" for k in clean), {k: stages[k] for k in clean}


def test_the_run_printed_each_rejection_and_no_traceback(dirty):
    assert "Traceback" not in dirty.output
    for case, key in dirty.cases.values():
        if case.rejected:
            assert f"rejected {key}" in dirty.output


def test_no_raw_identifier_outside_bronze_or_in_the_output(dirty):
    """The privacy scan over this run: Delta tables outside bronze, the masked quarantine,
    quality results, Data Docs, lineage, and everything `medgov run` and `report` printed."""
    from test_privacy import downstream_texts

    identifiers = {v for i in range(len(CASES)) for v in (*identity(i), id_no(i))}
    identifiers |= {v for c, _ in dirty.cases.values() for v in c.identifiers} | {LEGACY_18}
    bronze = json.dumps(dirty.table("bronze", "patient"), default=str, ensure_ascii=False)
    assert sum(1 for i in identifiers if i in bronze) >= 20  # the scan below has something to find
    texts = list(downstream_texts(dirty.lake)) + [("medgov run output", dirty.output), ("report", dirty.report)]
    assert len(texts) > 30
    for where, text in texts:
        leaked = [i for i in identifiers if i in text]
        assert not leaked, f"{where} holds a raw identifier"
        assert TEST_KEY not in text, where


def test_identical_redelivery_changes_nothing_and_a_corrected_one_replaces(dirty, spark, tmp_path):
    """The same bytes delivered again (new flag, new file times) are recognised; a fixed
    re-delivery of a rejected batch is accepted and its rejection leaves the report."""
    from medgov.pipeline.runner import run_stages
    from medgov.spec.site import load_site
    from medgov.storage.context import make_context

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    landing_copy(dirty.landing, landing)
    shutil.copytree(dirty.lake, lake)
    _, same = dirty.cases["crlf"]
    folder = landing / same
    for f in folder.iterdir():
        f.write_bytes(f.read_bytes())  # rewritten, identical
    (landing / f"{same}.ready").unlink()
    (landing / f"{same}.ready").touch()
    _, fixed = dirty.cases["sha256-mismatch"]
    m = json.loads((landing / fixed / "manifest.json").read_text(encoding="utf-8"))
    for f in m["files"]:
        f["sha256"] = hashlib.sha256((landing / fixed / f["name"]).read_bytes()).hexdigest()
    (landing / fixed / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    versions = {p.name: DeltaTable(str(p)).version() for p in (lake / "silver").iterdir()}

    site = load_site(dirty.root / "config")  # the site the first run had
    ingest = run_stages(make_context(str(lake), config=site), landing)["ingest"]
    assert ingest.accepted == [fixed] and ingest.rejected == {}  # rejections already recorded are not repeated
    deliveries = [d for d in DeltaTable(str(lake / "control" / "deliveries")).to_pyarrow_table().to_pylist()]
    assert len([d for d in deliveries if d["batch_key"] == same]) == 1  # not taken again
    attempts = sorted((d for d in deliveries if d["batch_key"] == fixed), key=lambda d: d["received_at"])
    assert [d["status"] for d in attempts] == ["rejected", "accepted"]
    assert DeltaTable(str(lake / "silver" / "observation")).version() > versions["observation"]
    results = DeltaTable(str(lake / "quality" / "quality_results")).to_pyarrow_table().to_pylist()
    [conform] = [r for r in results if r["batch_key"] == fixed and r["expectation"] == "batch_conforms_to_extract_spec"]
    assert conform["success"] is True
    report = medgov("report", "--lake", str(lake)).stdout
    assert f"rejected {fixed}" not in report and "rejected CASE32/row-count-mismatch" in report
