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


def test_no_key_in_the_repository():
    """The demo key lives in an ignored folder; no tracked file assigns a key value."""
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    assert len(tracked) > 50
    ignored = subprocess.run(["git", "check-ignore", "-q", "lake/_private/pseudonym.key"], cwd=root)
    assert ignored.returncode == 0, "the demo key's path must be git-ignored"
    assignment = re.compile(r"MEDGOV_PSEUDONYM_KEY\s*[=:]\s*['\"]?([^\s'\"$]{16,})")
    for name in tracked:
        path = root / name
        if path.suffix in (".png", ".jpg") or not path.is_file():
            continue
        for value in assignment.findall(path.read_text(encoding="utf-8", errors="replace")):
            assert value == TEST_KEY or "/" in value, f"{name} sets a pseudonym key in the repository"


def test_missing_key_stops_every_entry_point_before_it_writes(tmp_path, monkeypatch):
    """`run_stages` (the CLI) and each Airflow stage refuse to start without a key: no silent default."""
    import pytest

    from medgov.errors import MedgovError
    from medgov.domain.pseudonym import load_key

    monkeypatch.delenv("MEDGOV_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("MEDGOV_PSEUDONYM_KEY_FILE", raising=False)
    with pytest.raises(MedgovError, match="no pseudonym key"):
        load_key()
    from medgov.pipeline.runner import run_stage

    for stage in ("ingest", "normalize", "validate", "publish"):
        with pytest.raises(MedgovError, match="no pseudonym key"):
            run_stage(stage, str(tmp_path / "lake"), str(tmp_path))
    assert not (tmp_path / "lake").exists()
