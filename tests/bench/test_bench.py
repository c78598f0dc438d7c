"""The benchmark runs end to end at a tiny size, so it cannot rot (figures are not asserted:
machines are noisy; `make bench` measures)."""

import json
import re

import pytest

from lakes import medgov
from medgov.bench.harness import STAGES, floor_seconds, linearity, make_feed, process_kind, stage_at


@pytest.mark.system
def test_bench_smoke(tmp_path):
    """One size, no increment: one pipeline process (the increment's runs are the same timed
    runs; `incremental` is tested below, linearity by `linearity`'s test)."""
    proc = medgov("bench", "--sizes", "1500", "--reps", "1", "--increment", "0", "--out", str(tmp_path / "out"),
                  "--work", str(tmp_path / "work"))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    sizes = results["sizes"]
    assert [s["target_rows"] for s in sizes] == [1500]
    for s in sizes:
        assert s["rows"] > 0 and s["seconds"]["total"] > 0 and s["floor_seconds"] > 0
        assert set(s["seconds"]) == {"startup", "ingest", "normalize", "validate", "publish", "total"}
        assert s["peak_rss_mb"] > 100  # the JVM is counted: the process tree, not just Python
        kinds = s["peak_rss_by_kind_mb"]  # each kind's own peak: none above the tree's
        assert kinds["jvm"] > 100 and kinds["driver"] > 30 and max(kinds.values()) <= s["peak_rss_mb"] + 1
        split = s["peak_rss_split_mb"]  # the tree's peak, by kind at that instant: it adds up, none above its own peak
        assert sum(split.values()) == pytest.approx(s["peak_rss_mb"]) and split["jvm"] > 100
        assert all(split[k] <= kinds[k] + 1e-6 for k in kinds)
        procs = s["peak_rss_processes"]  # how many processes of each kind at its peak, and the largest
        assert procs["jvm"]["processes"] == 1 and procs["driver"]["processes"] == 1
        assert procs["jvm"]["largest_mb"] == pytest.approx(kinds["jvm"])
        assert procs["jvm"]["stage"] in STAGES and procs["driver"]["stage"] in STAGES  # where each kind peaked
        assert s["peak_stage"] in STAGES[1:]  # the tree peaks once a stage runs, not while the JVM starts
        assert s["spark_profile"] == "short"  # the suite's profile (tests/conftest.py)
        assert s["resources"] > s["rows"] * 0.5 and s["invalid"] == 0
        assert s["batches"] == 6 and s["checks"] > 100
    assert "incremental" not in results
    assert results["fhir_validation"]["resources_per_second"] > 0
    assert results["fhir_validation"]["same_verdicts"] is True
    assert results["linearity"] == []  # one size: nothing to compare
    assert (tmp_path / "out" / "scaling.png").stat().st_size > 1000
    assert "× floor" in proc.stdout and "FHIR validation:" in proc.stdout
    assert f"during {sizes[0]['peak_stage']} (driver " in proc.stdout and "; by process" in proc.stdout
    assert f"MB in {sizes[0]['peak_rss_processes']['driver']['stage']}" in proc.stdout


class _Proc:
    """The part of psutil.Process that `process_kind` reads."""

    def __init__(self, pid, name, exe, parent=None):
        self.pid, self._name, self._exe, self._parent = pid, name, exe, parent

    def name(self):
        return self._name

    def exe(self):
        return self._exe

    def parent(self):
        return self._parent


def test_a_worker_the_jvm_is_still_spawning_is_not_counted():
    # posix_spawn's child shares the JVM's memory until it execs; its RSS is the JVM's own
    # (seen in a 1 M-row run as a 2.6 GB "Python worker" named after the spawning thread)
    driver = _Proc(10, "python3", "/venv/bin/python3")
    jvm = _Proc(11, "java", "/usr/lib/jvm/bin/java", driver)
    assert process_kind(driver, 10) == "driver"
    assert process_kind(jvm, 10) == "jvm"
    assert process_kind(_Proc(12, "Executor task l", "/usr/lib/jvm/bin/java", jvm), 10) is None
    daemon = _Proc(13, "python", "/venv/bin/python3", jvm)
    assert process_kind(daemon, 10) == "workers"  # exec'd: its memory is its own
    # forked from the daemon, the same program as its parent, but a real worker with its own pages
    assert process_kind(_Proc(14, "python", "/venv/bin/python3", daemon), 10) == "workers"


def test_stage_at_places_a_moment_in_the_stage_that_was_running():
    seconds = {"startup": 5.0, "ingest": 10.0, "normalize": 20.0, "validate": 5.0, "publish": 5.0}
    assert [stage_at(seconds, t) for t in (0.0, 5.0, 5.1, 34.9, 38.0, 44.9)] == \
        ["startup", "startup", "ingest", "normalize", "validate", "publish"]
    assert stage_at(seconds, 60.0) == "publish"  # sampled after the last stage's clock stopped


def test_incremental_times_the_largest_batch_into_an_empty_then_the_full_lake(tmp_path, monkeypatch):
    """The increment: one generated batch (the largest), later than any of the feed's, timed
    into an empty lake and into the full one, each in the harness's timed run."""
    from medgov.bench import harness

    calls = []

    def timed(landing, lake, env):
        batches = sorted(str(m.parent.relative_to(landing)) for m in landing.glob("*/*/manifest.json"))
        flags = sorted(str(f.relative_to(landing)) for f in landing.glob("*/*.ready"))
        calls.append((lake.name, batches, flags))
        return {"seconds": {"total": 10.0 if lake.name == "lake-empty" else 25.0}, "batches": len(batches)}

    monkeypatch.setattr(harness, "timed_run", timed)
    inc = harness.incremental(tmp_path, tmp_path / "full", {}, seed=7, per_patient=60.0,
                              progress=lambda m: None, target_rows=600, first_patient=5000)
    assert [c[0] for c in calls] == ["lake-empty", "full"]
    # new patients: local ids numbered past the full lake's (P<org><number>), none of the lake's reused
    text = "".join(f.read_text(encoding="utf-8", errors="replace")
                   for f in (tmp_path / "landing-increment").glob("*/*/*patient*.csv"))
    numbers = {int(n) for n in re.findall(r"\bP\d{4}(\d{6})\b", text)}
    assert numbers and min(numbers) >= 5000
    (_, batches, flags), _ = calls
    assert len(batches) == 1 and flags == [f"{batches[0]}.ready"] and batches[0].split("/")[1] >= "20260101"
    assert 100 < inc["rows"] < 1500 and inc["ratio"] == 2.5


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


def test_bad_repetitions_are_one_line_errors(tmp_path):
    for reps in ("0", "3,1", "two"):  # none, or a count per size that does not match the sizes
        proc = medgov("bench", "--sizes", "1000,2000,3000", "--reps", reps, "--out", str(tmp_path), check=False)
        assert proc.returncode == 1 and "--reps must be" in proc.stderr and proc.stderr.count("\n") == 1, reps


def test_each_size_runs_its_own_number_of_repetitions(tmp_path, monkeypatch):
    """`make bench` runs 3, 3 and 1: the largest size once (its median is its one run)."""
    from medgov.bench import harness

    runs = []

    def timed(landing, lake, env):
        runs.append(landing.name)
        return {"seconds": dict.fromkeys((*STAGES, "total"), 1.0 + len(runs)), "peak_rss_mb": 10.0 * len(runs)}

    monkeypatch.setattr(harness, "make_feed", lambda out, rows, seed, per_patient: rows)
    monkeypatch.setattr(harness, "floor_seconds", lambda landing, scratch: 0.5)
    monkeypatch.setattr(harness, "timed_run", timed)
    monkeypatch.setattr(harness, "fhir_throughput", lambda lake: {})
    monkeypatch.setattr(harness, "plot", lambda results, path: None)
    results = harness.run([1000, 5000], {1000: 3, 5000: 1}, tmp_path / "out", tmp_path / "work", increment_rows=0)
    assert runs == ["landing-1000"] * 3 + ["landing-5000"]
    small, large = results["sizes"]
    assert small["repetitions"] == [2.0, 3.0, 4.0] and small["seconds"]["total"] == 3.0
    assert small["peak_rss_mb"] == 30.0  # the worst repetition's memory, not the median's
    assert large["repetitions"] == [5.0] and large["seconds"]["total"] == 5.0


def test_the_scratch_folder_it_made_is_removed_and_one_given_is_kept(tmp_path, monkeypatch):
    """Without --work the benchmark's feeds and lakes (gigabytes at 5 M rows) go when it ends,
    also when a run fails; a folder the user named is left for them to look at."""
    import tempfile

    from medgov.bench import harness
    from medgov.errors import MedgovError

    made = []

    def feed(out, rows, seed, per_patient):
        out.mkdir(parents=True)
        made.append(out.parent)
        return rows

    def failing(landing, lake, env):
        raise MedgovError("benchmark run failed")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(harness, "make_feed", feed)
    monkeypatch.setattr(harness, "floor_seconds", lambda landing, scratch: 0.5)
    monkeypatch.setattr(harness, "timed_run", lambda landing, lake, env: {
        "seconds": dict.fromkeys((*STAGES, "total"), 1.0), "peak_rss_mb": 1.0})
    monkeypatch.setattr(harness, "fhir_throughput", lambda lake: {})
    monkeypatch.setattr(harness, "plot", lambda results, path: None)
    harness.run([1000], 1, tmp_path / "out", increment_rows=0)
    assert made and made[0].name.startswith("medgov-bench-") and not made[0].exists()
    monkeypatch.setattr(harness, "timed_run", failing)
    with pytest.raises(MedgovError):
        harness.run([1000], 1, tmp_path / "out", increment_rows=0)
    assert not made[1].exists() and list((tmp_path / "tmp").iterdir()) == []
    monkeypatch.setattr(harness, "timed_run", lambda landing, lake, env: {
        "seconds": dict.fromkeys((*STAGES, "total"), 1.0), "peak_rss_mb": 1.0})
    harness.run([1000], 1, tmp_path / "out", tmp_path / "mine", increment_rows=0)
    assert (tmp_path / "mine" / "landing-1000").is_dir()  # the largest feed stays in a named folder


def test_linearity_compares_consecutive_sizes():
    sizes = [{"rows": 100, "seconds": {"total": 10.0}}, {"rows": 500, "seconds": {"total": 40.0}}]
    (lin,) = linearity(sizes)
    assert (lin["row_ratio"], lin["time_ratio"], lin["time_per_row_ratio"]) == (5.0, 4.0, 0.8)


def test_serving_bench_smoke(tmp_path):
    """`medgov bench-serving` at a tiny size: a registry written and released, the service
    started, concurrent feasibility clients timed, and the Delta Sharing read compared with
    local Parquet when the client's environment exists."""
    from pathlib import Path

    from medgov.bench.serving import registry, run
    from medgov.spec.datasets import dataset

    assert registry(10).column_names == list(dataset("ckd_registry").columns)  # every declared column
    client = Path(__file__).resolve().parents[2] / ".venv-sharing" / "bin" / "python"
    r = run(persons=2000, clients=2, requests=3, sharing_python=client)
    f = r["feasibility"]
    assert f["requests"] == 6 and 0 < f["p50_ms"] <= f["p95_ms"] <= f["max_ms"]
    if "skipped" not in r["sharing"]:
        assert "error" not in r["sharing"], r["sharing"]  # the client's own failure, said plainly
        assert r["sharing"]["rows"] == r["sharing"]["local_rows"] == 2000 and r["sharing"]["ratio"] > 0


def test_the_increment_through_a_warm_server_attaches_to_it(tmp_path, monkeypatch):
    """With `server`, a third timed run goes into its own empty lake with SPARK_REMOTE set to
    a server started and warmed up first, and stopped after."""
    from medgov.bench import harness
    from medgov.storage import connect_server

    events = []

    def timed(landing, lake, env):
        events.append(("run", lake.name, env.get("SPARK_REMOTE")))
        return {"seconds": {"total": 5.0}}

    monkeypatch.setattr(harness, "timed_run", timed)
    monkeypatch.setattr(connect_server, "start", lambda port, memory, log: events.append(("start", port)) or "proc")
    monkeypatch.setattr(connect_server, "warm_up", lambda url, write: events.append(("warm", url)) or 1.0)
    monkeypatch.setattr(connect_server, "stop", lambda proc: events.append(("stop", proc)))
    inc = harness.incremental(tmp_path, tmp_path / "full", {}, seed=7, per_patient=60.0,
                              progress=lambda m: None, target_rows=600, server=True)
    port = events[2][1]
    assert events == [("run", "lake-empty", None), ("run", "full", None), ("start", port),
                      ("warm", f"sc://127.0.0.1:{port}"), ("run", "lake-empty-server", f"sc://127.0.0.1:{port}"),
                      ("stop", "proc")]
    assert inc["into_empty_server"] == {"seconds": {"total": 5.0}}
