"""Normalize deletes withdrawn rows only for batches silver already holds: a new batch's MERGE
then has no delete clause, which would rewrite every file of its institution."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa
from deltalake import write_deltalake

from medgov.normalize.stage import _holds_batches


class _Store:
    storage_options = None

    @staticmethod
    def exists(uri: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(uri)


def test_only_batches_with_rows_in_silver_are_held(tmp_path):
    uri = str(tmp_path / "observation")
    ctx = SimpleNamespace(store=_Store())
    assert _holds_batches(ctx, uri, ["ORG000001/b1"]) is False  # no table yet
    rows = pa.table({"id": ["1", "2", "3"], "org_code": ["ORG000001", "ORG000001", "ORG000002"],
                     "batch_key": ["ORG000001/b1", "ORG000001/b1", "ORG000002/b1"]})
    write_deltalake(uri, rows, partition_by=["org_code"])
    assert _holds_batches(ctx, uri, ["ORG000001/b1"]) is True  # a re-delivery
    assert _holds_batches(ctx, uri, ["ORG000001/b2", "ORG000002/b2"]) is False  # new batches
    assert _holds_batches(ctx, uri, ["ORG000003/b1", "ORG000002/b1"]) is True
