"""No raw identity number, name or phone anywhere downstream of bronze."""

import json

from deltalake import DeltaTable

from conftest import TEST_KEY

RAW_ZONE = {"bronze"}  # bronze tables hold the delivery as received (the ingestion boundary)


def downstream_texts(lake):
    """Every Delta table outside bronze (plus the masked quarantine), and every other file."""
    for log in lake.rglob("_delta_log"):
        table = log.parent
        rel = table.relative_to(lake)
        if rel.parts[0] in RAW_ZONE and rel.name != "quarantine":
            continue
        yield str(rel), json.dumps(DeltaTable(str(table)).to_pyarrow_table().to_pylist(), default=str,
                                   ensure_ascii=False)
    for path in lake.rglob("*"):
        rel = path.relative_to(lake)
        if path.is_file() and rel.parts[0] not in RAW_ZONE | {"_private"} and ".parquet" not in path.name \
                and "_delta_log" not in rel.parts:
            yield str(rel), path.read_text(encoding="utf-8", errors="replace")


def test_no_raw_identifier_downstream_of_bronze(demo):
    identifiers = {i for i in demo.generated.identifiers if len(i) >= 2}
    assert len(identifiers) > 100
    scanned = 0
    for where, text in downstream_texts(demo.lake):
        scanned += 1
        leaked = [i for i in identifiers if i in text]
        assert not leaked, f"{where} contains raw identifiers, e.g. {leaked[:1]!r}"[:200]
    assert scanned > 30  # silver, gold, quality results, Data Docs pages, lineage events


def test_key_never_written_to_the_lake(demo):
    for where, text in downstream_texts(demo.lake):
        assert TEST_KEY not in text, where
    for log in demo.lake.rglob("*.json"):
        assert TEST_KEY not in log.read_text(encoding="utf-8", errors="replace")


def test_bronze_does_hold_the_raw_delivery(demo):
    """The scan above would be empty-handed if the sample had no identifiers: check it has them."""
    bronze = json.dumps(DeltaTable(str(demo.lake / "bronze" / "patient")).to_pyarrow_table().to_pylist(), default=str,
                        ensure_ascii=False)
    assert sum(1 for i in demo.generated.identifiers if i in bronze) > 50
