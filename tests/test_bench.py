"""The benchmark runs end to end at a tiny size, so it cannot rot (figures are not asserted:
machines are noisy; `make bench` measures)."""

import json

import pytest

from lakes import medgov
from medgov.bench import floor_seconds, linearity, make_feed

pytestmark = pytest.mark.slow


def test_bench_smoke(tmp_path):
    proc = medgov("bench", "--sizes", "1500,3000", "--reps", "1", "--out", str(tmp_path / "out"),
                  "--work", str(tmp_path / "work"))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    sizes = results["sizes"]
    assert [s["target_rows"] for s in sizes] == [1500, 3000]
    for s in sizes:
        assert s["rows"] > 0 and s["seconds"]["total"] > 0 and s["floor_seconds"] > 0
        assert set(s["seconds"]) == {"startup", "ingest", "normalize", "validate", "publish", "total"}
        assert s["peak_rss_mb"] > 100  # the JVM is counted: the process tree, not just Python
        assert s["resources"] > s["rows"] * 0.5 and s["invalid"] == 0
    inc = results["incremental"]
    assert inc["rows"] > 0 and inc["into_full"]["batches"] == inc["into_empty"]["batches"] == 1
    assert results["fhir_validation"]["resources_per_second"] > 0
    assert results["fhir_validation"]["same_verdicts"] is True
    assert len(results["linearity"]) == 1
    assert (tmp_path / "out" / "scaling.png").stat().st_size > 1000
    assert "× floor" in proc.stdout and "incremental:" in proc.stdout


def test_feed_size_and_floor(tmp_path):
    rows = make_feed(tmp_path / "landing", 5000, seed=3, per_patient=60.0)
    assert 3500 < rows < 6500
    scratch = tmp_path / "floor"
    scratch.mkdir()
    assert floor_seconds(tmp_path / "landing", scratch) > 0
    written = list(scratch.glob("*.parquet"))
    import pyarrow.parquet as pq

    # every CSV of every accepted batch (plus the corrupt one) is read whole, as text
    assert sum(pq.read_metadata(p).num_rows for p in written) >= rows


def test_bad_sizes_are_one_line_errors(tmp_path):
    proc = medgov("bench", "--sizes", "ten", "--out", str(tmp_path), check=False)
    assert proc.returncode == 1 and "--sizes must be numbers" in proc.stderr and proc.stderr.count("\n") == 1


def test_linearity_compares_consecutive_sizes():
    sizes = [{"rows": 100, "seconds": {"total": 10.0}}, {"rows": 500, "seconds": {"total": 40.0}}]
    (lin,) = linearity(sizes)
    assert (lin["row_ratio"], lin["time_ratio"], lin["time_per_row_ratio"]) == (5.0, 4.0, 0.8)
