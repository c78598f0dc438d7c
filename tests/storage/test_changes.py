"""Keys whose rows differ between two versions of a Delta table: row by row, not every key in
a file a MERGE rewrote."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from medgov.storage.changes import changed_keys

SCHEMA = pa.schema([("id", pa.string()), ("patient_key", pa.string()), ("resource_json", pa.string())])


def _rows(*rows: tuple[str, str, str]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(SCHEMA.names, r)) for r in rows], schema=SCHEMA)


def _merge(uri: str, rows: pa.Table) -> None:
    (DeltaTable(uri).merge(rows, "t.id = s.id", source_alias="s", target_alias="t")
     .when_matched_update_all().when_not_matched_insert_all().execute())


def _changes(uri: str, since: int | None) -> set[str] | None:
    return changed_keys(uri, since, "patient_key", ["id", "resource_json"])


def test_only_the_rows_a_merge_changed_count(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, _rows(("o1", "p1", '{"v":1}'), ("o2", "p2", '{"v":2}'), ("o3", "p3", '{"v":3}')))
    _merge(uri, _rows(("o2", "p2", '{"v":20}')))  # rewrites the one file, o1 and o3 copied as they were
    assert len(DeltaTable(uri).file_uris()) == 1 and _changes(uri, 0) == {"p2"}
    _merge(uri, _rows(("o3", "p4", '{"v":3,"subject":"p4"}')))  # relinked: both persons
    assert _changes(uri, 1) == {"p3", "p4"}
    _merge(uri, _rows(("o5", "p5", '{"v":5}')))  # a new row
    assert _changes(uri, 2) == {"p5"}
    DeltaTable(uri).delete("id = 'o1'")  # a withdrawn row
    assert _changes(uri, 3) == {"p1"}
    assert _changes(uri, 0) == {"p1", "p2", "p3", "p4", "p5"}
    assert _changes(uri, 4) == set()  # the current version
    assert _changes(uri, None) == {"p2", "p4", "p5"}  # before the table: every row there now


def test_a_rewrite_with_the_same_rows_changes_nothing(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, _rows(("o1", "p1", '{"v":1}')))
    write_deltalake(uri, _rows(("o2", "p2", '{"v":2}')), mode="append")
    DeltaTable(uri).optimize.compact()  # two files become one, no row changes
    assert DeltaTable(uri).version() == 2 and _changes(uri, 1) == set()


def test_a_vacuumed_version_cannot_be_compared(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, _rows(("o1", "p1", '{"v":1}')))
    _merge(uri, _rows(("o1", "p1", '{"v":2}')))
    DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert _changes(uri, 0) is None  # the caller then recomputes everyone
