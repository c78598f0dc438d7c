"""Batch verification: a batch is accepted whole or rejected whole with a reason."""

import io
import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batches import lab_csv, lab_row, write_batch
from medgov.spec.contracts import contract
from medgov.ingest import extract_csv
from medgov.ingest.extract_csv import decode, parse
from medgov.ingest import landing
from medgov.ingest.landing import BatchRef, BatchRejected, discover
from medgov.ingest.stage import read_batch
from medgov.spec.site import load_site

ORG = "H33030200001"
NOW = datetime.now(timezone.utc)


def ref(landing, batch="b1"):
    return BatchRef(landing, ORG, batch)


def read(root, batch="b1"):
    """Read a batch across the landing boundary (default limits) and parse it."""
    r = ref(root, batch)
    return read_batch(r, landing.read(r, load_site().landing), NOW)


def good(landing, batch="b1", **kw):
    raw = lab_csv([lab_row(1), lab_row(2)])
    return write_batch(landing, ORG, batch, {"lab_result.csv": ("lab_result", raw, 2)}, **kw)


def test_an_encoding_other_than_the_registered_one_is_noted(tmp_path):
    raw = lab_csv([lab_row(1), lab_row(2)]).decode("utf-8").encode("gbk")
    write_batch(tmp_path, ORG, "b1", {"lab_result.csv": ("lab_result", raw, 2)}, encoding="gbk")
    r = ref(tmp_path)
    _, notes = read_batch(r, landing.read(r, load_site().landing), NOW, expected_encoding="utf-8")
    assert notes == ["lab_result.csv declares gbk; the institution registry expects utf-8"]
    _, notes = read_batch(r, landing.read(r, load_site().landing), NOW, expected_encoding="gbk")
    assert notes == []


def test_valid_batch_is_read(tmp_path):
    good(tmp_path)
    tables, notes = read(tmp_path)
    assert notes == []
    t = tables["lab_result"]
    assert t.num_rows == 2
    assert t.column("_line").to_pylist() == [2, 3]
    assert set(t.column("_batch_key").to_pylist()) == {f"{ORG}/b1"}


@pytest.mark.parametrize("mutate,reason", [
    (lambda f: (f / "manifest.json").unlink(), "manifest.json is missing"),
    (lambda f: (f / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda f: (f / "lab_result.csv").write_bytes(b"report_id\n"), "sha256"),
    (lambda f: (f / "lab_result.csv").unlink(), "listed in manifest.json but absent"),
    (lambda f: (f / "extra.csv").write_text("a,b\n"), "present but not listed"),
])
def test_broken_batches_are_rejected_with_reason(tmp_path, mutate, reason):
    folder = good(tmp_path)
    mutate(folder)
    with pytest.raises(BatchRejected, match=reason):
        read(tmp_path)


def _rewrite_manifest(folder, change):
    m = json.loads((folder / "manifest.json").read_text())
    change(m)
    (folder / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("change,reason", [
    (lambda m: m["files"][0].update(rows=3), "2 data rows but manifest declares 3"),
    (lambda m: m["files"][0].update(name="../../etc/passwd"), "not a plain file name"),
    (lambda m: m["files"][0].update(table="billing"), "unknown table"),
    (lambda m: m["files"][0].update(encoding="latin-1"), "files.0.encoding"),
    (lambda m: m.update(org_code="OTHERORG01"), "manifest names OTHERORG01/b1"),
    (lambda m: m.update(files=[]), "files"),
    (lambda m: m.update(spec_version="2"), "spec_version"),
])
def test_manifest_contract(tmp_path, change, reason):
    folder = good(tmp_path)
    _rewrite_manifest(folder, change)
    with pytest.raises(BatchRejected, match=reason):
        read(tmp_path)


def test_ready_flag_without_folder(tmp_path):
    (tmp_path / ORG).mkdir()
    (tmp_path / ORG / "b7.ready").touch()
    with pytest.raises(BatchRejected, match="ready flag without batch folder"):
        read(tmp_path, "b7")


def test_batch_without_flag_is_not_discovered(tmp_path):
    good(tmp_path, ready=False)
    assert discover(tmp_path) == []
    (tmp_path / ORG / "b1.ready").touch()
    assert [r.key for r in discover(tmp_path)] == [f"{ORG}/b1"]


def test_badly_named_flags_are_reported(tmp_path):
    (tmp_path / "bad org").mkdir()
    (tmp_path / "bad org" / "x.ready").touch()
    assert landing.look(tmp_path).refused == {"bad org/x.ready": landing.BAD_NAME}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_encodings_decode(encoding):
    raw = lab_csv([lab_row(1, result="阴性")], encoding=encoding)
    t, _ = parse(decode(raw, encoding, "f.csv")[0], "f.csv", contract("lab_result"), 1)
    assert t.column("result").to_pylist() == ["阴性"]
    assert t.column("report_id").to_pylist() == ["R1"]  # a BOM does not leak into the first header


def test_wrong_declared_encoding_rejects():
    raw = lab_csv([lab_row(1, result="阴性")], encoding="gbk")
    with pytest.raises(BatchRejected, match="not valid utf-8"):
        decode(raw, "utf-8", "lab_result.csv")


def test_quoted_newlines_crlf_and_line_numbers():
    rows = [lab_row(1), lab_row(2), lab_row(3)]
    rows[1][5] = "肌酐,\n多行"
    raw = lab_csv(rows, newline="\r\n")
    t, _ = parse(decode(raw, "utf-8", "f")[0], "f", contract("lab_result"), 3)
    assert t.column("item_name").to_pylist()[1] == "肌酐,\n多行"
    assert t.column("_line").to_pylist() == [2, 3, 5]  # the record after the 2-line field starts on line 5


def test_missing_required_column_rejects():
    text = "report_id,item_seq\nR1,1\n"
    with pytest.raises(BatchRejected, match="lacks required column"):
        parse(text, "f", contract("lab_result"), 1)


def test_short_row_is_kept_for_quarantine():
    text = ",".join(["report_id", "item_seq", "patient_id", "item_code", "result", "reported_time"]) + "\nR1,1,P1\n"
    t, _ = parse(text, "f", contract("lab_result"), 1)
    assert t.column("_shape_error").to_pylist() == ["wrong number of fields: row has 3, header has 6"]


def test_unterminated_quote_rejects():
    text = ",".join(["report_id", "item_seq", "patient_id", "item_code", "result", "reported_time"]) + '\nR1,1,P1,C,"88,x\n'
    with pytest.raises(BatchRejected, match="malformed CSV|data rows"):
        parse(text, "f", contract("lab_result"), 1)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=["a", ",", '"', "\r", "\n", "\u2028", "\x0c", "\x85", "中"], max_size=40))
def test_lines_split_as_a_file_opened_with_newline_empty(text):
    """The parse slices lines itself (no copy of the text); they must be the lines the csv
    module's contract (a file opened with newline="") gives, or record line numbers move."""
    assert list(extract_csv._lines(text)) == list(io.StringIO(text, newline=""))


def test_rows_parsed_in_chunks_are_the_rows_parsed_at_once(monkeypatch):
    """Rows become Arrow columns a chunk at a time; chunk edges change nothing, also inside a
    quoted multi-line field, a short row or a lone-CR line ending."""
    rows = [lab_row(i) for i in range(1, 12)]
    rows[3][5] = "肌酐,\n多行"
    raw = lab_csv(rows, newline="\r\n").replace(b"R7,", b"R7\r", 1)  # R7's line: a short row, then a new one
    text = decode(raw, "utf-8", "f")[0]
    whole, _ = parse(text, "f", contract("lab_result"), 12)
    monkeypatch.setattr(extract_csv, "CHUNK_ROWS", 3)
    chunked, _ = parse(text, "f", contract("lab_result"), 12)
    assert chunked.column("_line").num_chunks > 1
    assert chunked.to_pylist() == whole.to_pylist()
    assert whole.column("_line").to_pylist() == [2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14]
    shapes = whole.column("_shape_error").to_pylist()
    assert [i for i, s in enumerate(shapes) if s] == [6, 7]  # "R7" alone, and the rest of its line
