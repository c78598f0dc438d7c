"""`medgov bench`: the whole pipeline timed on generated feeds of several sizes.

For each size: sample extracts (lab results most of the rows), a floor measured in the same
run (pyarrow reads the same CSV files and writes them once as Parquet), then the pipeline in
a fresh process per repetition with its peak memory (RSS of the process tree, JVM included).
Medians of the repetitions are reported. Then the incremental cost (one small batch into the
largest lake versus into an empty one) and the FHIR validation throughput.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from medgov.errors import MedgovError
from medgov.spec.lifecycle import STAGES as PIPELINE_STAGES

STAGES = ("startup", *(s.name for s in PIPELINE_STAGES))  # timed parts of a run
LAB_PANEL = 8  # blood-count items per visit: lab results ≈ 70 % of the rows, as in a city feed
INCREMENT_ROWS = 10_000
# the increment's timed runs, as the report names them (the server's own memory is not in its RSS)
INCREMENT_RUNS = {"into_empty": "into an empty lake", "into_full": "into the full lake",
                  "into_empty_server": "into an empty lake, through a warm Spark Connect server"}


def _rows_per_patient(seed: int) -> float:
    from medgov.sample.generate import generate

    with tempfile.TemporaryDirectory() as d:
        g = generate(d, patients=400, seed=seed, lab_panel=LAB_PANEL)
        return sum(g.rows.values()) / 400


def make_feed(out: Path, rows: int, seed: int, per_patient: float) -> int:
    """Sample extracts of about `rows` data rows under `out`; the exact number written."""
    from medgov.sample.generate import generate

    g = generate(out, patients=max(1, round(rows / per_patient)), seed=seed, lab_panel=LAB_PANEL)
    return sum(g.rows.values())


def floor_seconds(landing: Path, scratch: Path) -> float:
    """pyarrow reading every CSV of the landing zone (all columns as text, in its declared
    encoding) and writing each once as Parquet: the cost of just touching the bytes."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    started = time.monotonic()
    for manifest in landing.glob("*/*/manifest.json"):
        for f in json.loads(manifest.read_text(encoding="utf-8"))["files"]:
            path = manifest.parent / f["name"]
            if not path.exists():
                continue
            enc = f.get("encoding", "utf-8").replace("utf-8-sig", "utf-8")
            with open(path, "rb") as fh:
                names = fh.readline().decode(enc).lstrip("\ufeff").strip().split(",")
            with open(path, "rb") as fh:
                table = pcsv.read_csv(fh, read_options=pcsv.ReadOptions(encoding=enc, block_size=1 << 22),
                                      convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names}),
                                      parse_options=pcsv.ParseOptions(newlines_in_values=True,
                                                                      invalid_row_handler=lambda row: "skip"))
            pq.write_table(table, scratch / f"{manifest.parent.parent.name}-{manifest.parent.name}-{f['name']}.parquet")
    return time.monotonic() - started


def process_kind(proc: psutil.Process, root_pid: int) -> str | None:
    """`driver` (the run's own Python), `jvm` (Spark's Java), `workers` (Python workers Spark
    starts, and anything else below the run), or None for a process the JVM is still spawning.

    The JVM starts each Python worker with posix_spawn, whose child shares the JVM's memory
    (vfork) until it runs the new program: for that instant it is a second "process" under
    the thread's name (`Executor task l`) whose RSS is the JVM's own. Counted, it added the
    JVM's 1-3 GB to the tree's peak and showed up as one giant Python worker.
    """
    if proc.pid == root_pid:
        return "driver"
    try:
        name = proc.name().lower()
        if name.startswith("java"):
            return "jvm"
        parent = proc.parent()
        if parent is not None and parent.name().lower().startswith("java") and proc.exe() == parent.exe():
            return None
    except psutil.Error:
        return "workers"
    return "workers"


class PeakRss:
    """Samples the summed RSS of a process and its children until stopped: the peak of the
    sum, when it came and each kind's share of it (`at_peak`: what to cut to lower the peak),
    and each kind's own peak (driver, JVM, Python workers; not at the same instant) with the
    number of processes and the largest one at that moment."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid, self.every, self.peak, self.peak_at = pid, every, 0, 0.0
        self.by_kind: dict[str, int] = {"driver": 0, "jvm": 0, "workers": 0}
        self.at_peak: dict[str, int] = dict(self.by_kind)
        self.detail: dict[str, dict[str, float]] = {k: {"processes": 0, "largest_mb": 0.0} for k in self.by_kind}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> dict[str, list[int]]:
        root = psutil.Process(self.pid)
        kinds: dict[str, list[int]] = {k: [] for k in self.by_kind}
        for p in [root, *root.children(recursive=True)]:
            try:
                kind = process_kind(p, self.pid)
                if kind is not None:
                    kinds[kind].append(p.memory_info().rss)
            except psutil.Error:
                pass
        return kinds

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                kinds = self._sample()
            except psutil.Error:
                return
            total = sum(map(sum, kinds.values()))
            if total > self.peak:
                self.peak, self.peak_at = total, time.monotonic() - self._started
                self.at_peak = {k: sum(sizes) for k, sizes in kinds.items()}
            for k, sizes in kinds.items():
                if sum(sizes) > self.by_kind[k]:
                    self.by_kind[k] = sum(sizes)
                    self.detail[k] = {"processes": len(sizes), "largest_mb": max(sizes) / 2**20,
                                      "at": time.monotonic() - self._started}
            time.sleep(self.every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def stage_at(seconds: dict[str, float], at: float) -> str:
    """The stage a run was in `at` seconds after its start (the stages ran in `STAGES` order)."""
    end = 0.0
    for stage in STAGES:
        end += seconds.get(stage, 0.0)
        if at <= end:
            return stage
    return STAGES[-1]


def _first_error(log: str) -> str:
    """The line of a failed run's stderr that says what went wrong (a JVM trace's first
    exception, a Python error), else its last line."""
    lines = [x.strip() for x in log.splitlines() if x.strip()]
    found = [x for x in lines if ("Error" in x or "Exception" in x) and not x.startswith(("at ", "WARNING"))]
    causes = [x for x in found if x.startswith(("Caused by:", ": java.", "java."))]
    pick = causes[-1] if causes else (found[0] if found else (lines[-1] if lines else "no output"))
    return pick.lstrip(": ")[:300]


def timed_run(landing: Path, lake: Path, env: dict[str, str]) -> dict[str, Any]:
    """The pipeline in a fresh process: per-stage seconds, facts and peak memory (MB)."""
    out = lake.parent / f"{lake.name}.timings.json"
    log = lake.parent / f"{lake.name}.stderr.log"
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-m", "medgov.bench.timed_run", str(landing), str(lake), str(out)],
                                env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        rss = PeakRss(proc.pid)
        proc.wait()
        peak = rss.stop()
    if proc.returncode != 0:
        raise MedgovError(f"benchmark run failed ({_first_error(log.read_text(encoding='utf-8'))}); see {log}")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["peak_rss_mb"] = peak / 2**20
    result["peak_rss_by_kind_mb"] = {k: v / 2**20 for k, v in rss.by_kind.items()}
    result["peak_rss_split_mb"] = {k: v / 2**20 for k, v in rss.at_peak.items()}
    result["peak_rss_processes"] = {k: {**{f: v for f, v in d.items() if f != "at"},
                                        **({"stage": stage_at(result["seconds"], d["at"])} if "at" in d else {})}
                                    for k, d in rss.detail.items()}
    result["peak_stage"] = stage_at(result["seconds"], rss.peak_at)
    return result


def fhir_throughput(lake: Path, limit: int = 20_000) -> dict[str, Any]:
    """Resources per second, one core: the validation the pipeline runs (fhir.resources model
    + required bindings, through `FastValidator` as in the executors) on Observations the
    benchmark run built, parsed from their JSON; and plain `model_validate` for comparison."""
    from deltalake import DeltaTable

    from medgov.normalize.fhir_validation import FastValidator, validation_error

    table = DeltaTable(str(lake / "silver" / "observation")).to_pyarrow_dataset().head(limit, columns=["resource_json"])
    docs = [json.loads(s) for s in table.column("resource_json").to_pylist()]

    def timed(fast: FastValidator | None) -> tuple[float, list[str | None]]:
        started = time.process_time()
        verdicts = [validation_error(d, fast) for d in docs]
        return time.process_time() - started, verdicts

    cpu, verdicts = timed(FastValidator())
    cpu_full, verdicts_full = timed(None)
    # compared per resource, verdict and reason (equal counts could hide two different resources)
    differing = sum(1 for a, b in zip(verdicts, verdicts_full) if a != b)
    return {"resources": len(docs), "invalid": sum(v is not None for v in verdicts), "cpu_seconds": cpu,
            "resources_per_second": len(docs) / cpu if cpu else None,
            "model_validate_per_second": len(docs) / cpu_full if cpu_full else None,
            "same_verdicts": differing == 0, "differing_verdicts": differing}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = {k: statistics.median(r["seconds"][k] for r in runs) for k in (*STAGES, "total")}
    worst = max(runs, key=lambda r: r["peak_rss_mb"])
    peak_keys = ("peak_rss_mb", "peak_rss_by_kind_mb", "peak_rss_split_mb", "peak_rss_processes", "peak_stage")
    return {"seconds": seconds, **{k: worst[k] for k in peak_keys if k in worst},
            **{k: runs[0][k] for k in runs[0] if k != "seconds" and k not in peak_keys},
            "repetitions": [r["seconds"]["total"] for r in runs]}


def run(sizes: list[int], reps: int | dict[int, int], out: Path, work: Path | None = None, seed: int = 7,
        progress=lambda message: None, increment_rows: int = INCREMENT_ROWS, server: bool = True) -> dict[str, Any]:
    """Measure every size, `reps` times (or `reps[size]` times); write `out/results.json` (and the
    scaling plot) and return the results."""
    if work is None:  # a scratch folder of its own, removed afterwards (the 5 M-row lake is ~5 GB)
        scratch_work = Path(tempfile.mkdtemp(prefix="medgov-bench-"))
        try:
            return run(sizes, reps, out, scratch_work, seed, progress, increment_rows, server)
        finally:
            shutil.rmtree(scratch_work, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MEDGOV_PSEUDONYM_KEY": os.environ.get("MEDGOV_PSEUDONYM_KEY") or secrets.token_hex(32)}
    per_patient = _rows_per_patient(seed)
    results: dict[str, Any] = {"machine": machine(), "sizes": []}
    lake = work / "lake"
    for size in sizes:
        landing = work / f"landing-{size}"
        shutil.rmtree(landing, ignore_errors=True)
        progress(f"generate ~{size:,} rows")
        rows = make_feed(landing, size, seed, per_patient)
        times = reps[size] if isinstance(reps, dict) else reps
        floors = []
        for _ in range(times):
            scratch = work / "floor"
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            floors.append(floor_seconds(landing, scratch))
        runs = []
        for i in range(times):
            progress(f"{rows:,} rows: run {i + 1}/{times}")
            shutil.rmtree(lake, ignore_errors=True)
            runs.append(timed_run(landing, lake, env))
        m = _median_run(runs)
        floor = statistics.median(floors)
        results["sizes"].append({"target_rows": size, "rows": rows, **m, "floor_seconds": floor,
                                 "rows_per_second": rows / m["seconds"]["total"],
                                 "floor_ratio": m["seconds"]["total"] / floor if floor else None})
        if size != sizes[-1]:
            shutil.rmtree(landing, ignore_errors=True)
    if sizes:
        results["fhir_validation"] = fhir_throughput(lake)
        if increment_rows:
            # the increment's patients are numbered after the largest feed's (make_feed's count)
            results["incremental"] = incremental(work, lake, env, seed, per_patient, progress, increment_rows, server,
                                                 first_patient=max(1, round(sizes[-1] / per_patient)))
    results["linearity"] = linearity(results["sizes"])
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    plot(results, out / "scaling.png")
    return results


def incremental(work: Path, full_lake: Path, env: dict[str, str], seed: int, per_patient: float,
                progress, target_rows: int = INCREMENT_ROWS, server: bool = False,
                first_patient: int = 0) -> dict[str, Any]:
    """One new batch of about `target_rows` rows (a day's delivery) into the lake of the largest run,
    and into an empty lake; with `server`, into another empty lake through a warm Spark Connect
    server too. Its patients are numbered from `first_patient`: past the full lake's, they are
    new patients with new visits, not other people under the lake's local ids (which would
    relink and overwrite the lake's records: a corrected re-delivery, not a day)."""
    from medgov.sample.generate import generate

    landing = work / "landing-increment"
    shutil.rmtree(landing, ignore_errors=True)
    # later batch ids than the big feed's; its one largest batch stands for a day's delivery
    from datetime import date

    # its largest batch holds about a fifth of what it generates (3 institutions, 2 batches each)
    generate(landing, patients=max(1, round(target_rows * 5 / per_patient)), seed=seed + 1,
             start=date(2026, 1, 1), lab_panel=LAB_PANEL, first_patient=first_patient)
    batches = sorted(landing.glob("*/*/manifest.json"),
                     key=lambda m: -sum(f["rows"] for f in json.loads(m.read_text(encoding="utf-8"))["files"]))
    keep = batches[0].parent
    for m in batches[1:]:
        shutil.rmtree(m.parent)
        (m.parent.parent / f"{m.parent.name}.ready").unlink()
    rows = sum(f["rows"] for f in json.loads((keep / "manifest.json").read_text(encoding="utf-8"))["files"])
    progress(f"increment of {rows:,} rows into an empty lake")
    empty = work / "lake-empty"
    shutil.rmtree(empty, ignore_errors=True)
    into_empty = timed_run(landing, empty, env)
    progress(f"increment of {rows:,} rows into the full lake")
    into_full = timed_run(landing, full_lake, env)
    out = {"rows": rows, "into_empty": into_empty, "into_full": into_full,
           "ratio": into_full["seconds"]["total"] / into_empty["seconds"]["total"]}
    if server:
        out["into_empty_server"] = _through_server(landing, work / "lake-empty-server", env, progress)
    return out


def _through_server(landing: Path, lake: Path, env: dict[str, str], progress) -> dict[str, Any]:
    """The same delivery as an event-driven deployment runs it: the process attaches to a
    Spark Connect server started and warmed up before (`medgov spark-server`), so it starts
    no JVM. The server's own memory is not in the run's peak RSS."""
    import socket
    from medgov.sample.generate import warm_up_sample
    from medgov.storage import connect_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    progress("starting and warming up a Spark Connect server")
    server = connect_server.start(port, memory="4g", log=lake.parent / "connect-server.log")
    try:
        url = f"sc://127.0.0.1:{port}"
        connect_server.warm_up(url, warm_up_sample)
        progress("the increment into an empty lake, through the warm server")
        shutil.rmtree(lake, ignore_errors=True)
        return timed_run(landing, lake, {**env, "SPARK_REMOTE": url})
    finally:
        connect_server.stop(server)


def linearity(sizes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time ratio against row ratio between consecutive sizes (≤ 1.1 × the row ratio is linear)."""
    out = []
    for a, b in zip(sizes, sizes[1:]):
        rows = b["rows"] / a["rows"]
        secs = b["seconds"]["total"] / a["seconds"]["total"]
        out.append({"from": a["rows"], "to": b["rows"], "row_ratio": rows, "time_ratio": secs,
                    "time_per_row_ratio": secs / rows})
    return out


def machine() -> dict[str, Any]:
    import pyspark

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "pyspark": pyspark.__version__, "platform": platform.platform(),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def plot(results: dict[str, Any], path: Path) -> None:
    """Seconds against source rows, pipeline per stage and in total, with the pyarrow floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    if not sizes:
        return
    rows = [s["rows"] for s in sizes]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(rows, [s["seconds"]["total"] for s in sizes], "o-", label="medgov total", linewidth=2)
    for stage in STAGES:
        ax.plot(rows, [s["seconds"][stage] for s in sizes], ".--", label=stage, alpha=0.7)
    ax.plot(rows, [s["floor_seconds"] for s in sizes], "s:", label="pyarrow floor (CSV → Parquet)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("source rows")
    ax.set_ylabel("wall seconds (median)")
    m = results["machine"]
    ax.set_title(f"medgov benchmark · {m['cpus']} cores, {m['memory_gb']} GB")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _split(run: dict[str, Any]) -> str:
    """The tree's peak by kind of process at that instant: ' (driver …, jvm …, workers … MB)'."""
    split = run.get("peak_rss_split_mb")
    return " (" + ", ".join(f"{k} {v:,.0f}" for k, v in split.items()) + " MB)" if split else ""


def render(results: dict[str, Any]) -> None:
    """The results as terminal tables."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a log or a pipe: the table whole, not squeezed to 80 columns
        console = Console(width=132)
    t = Table(title="medgov benchmark (median of repetitions; seconds)")
    for col in ("rows", *STAGES, "total", "rows/s", "peak RSS MB", "floor s", "× floor"):
        t.add_column(col, justify="right")
    for s in results["sizes"]:
        t.add_row(f"{s['rows']:,}", *(f"{s['seconds'][k]:.1f}" for k in STAGES), f"{s['seconds']['total']:.1f}",
                  f"{s['rows_per_second']:,.0f}", f"{s['peak_rss_mb']:,.0f}", f"{s['floor_seconds']:.2f}",
                  f"{s['floor_ratio']:.0f}" if s["floor_ratio"] else "")
    console.print(t)
    for s in results["sizes"]:
        kinds = s.get("peak_rss_by_kind_mb")
        if kinds:
            procs = s.get("peak_rss_processes", {})
            console.print(f"{s['rows']:,} rows, peak RSS {s['peak_rss_mb']:,.0f} MB during {s.get('peak_stage', '?')}"
                          + _split(s)
                          + "; by process (each its own peak): " + ", ".join(
                              f"{k} {v:,.0f} MB" + (f" in {procs[k]['stage']}" if procs.get(k, {}).get("stage") else "")
                              + (f" ({procs[k]['processes']} processes, largest {procs[k]['largest_mb']:,.0f} MB)"
                                 if procs.get(k, {}).get("processes", 0) > 1 else "")
                              for k, v in kinds.items()) + f"; Spark profile {s.get('spark_profile', '?')}")
    for lin in results.get("linearity", []):
        console.print(f"{lin['from']:,} → {lin['to']:,} rows: {lin['row_ratio']:.1f}× rows took "
                      f"{lin['time_ratio']:.2f}× the time")
    inc = results.get("incremental")
    if inc:
        console.print(f"incremental: {inc['rows']:,} rows into the full lake {inc['into_full']['seconds']['total']:.1f} s, "
                      f"into an empty lake {inc['into_empty']['seconds']['total']:.1f} s (ratio {inc['ratio']:.2f})")
        for where, label in INCREMENT_RUNS.items():
            if where not in inc:
                continue
            r = inc[where]
            console.print(f"  {label}: {r['seconds']['total']:.1f} s (" + ", ".join(
                f"{k} {r['seconds'][k]:.1f}" for k in STAGES) + f" s); Spark profile {r.get('spark_profile', '?')}; "
                f"peak RSS {r['peak_rss_mb']:,.0f} MB in {r.get('peak_stage', '?')}" + _split(r))
    fv = results.get("fhir_validation")
    if fv and fv.get("resources_per_second"):
        plain = fv.get("model_validate_per_second")
        console.print(f"FHIR validation: {fv['resources_per_second']:,.0f} Observations/s on one core "
                      f"({fv['resources']:,} validated, {fv['invalid']} invalid)"
                      + (f"; plain model_validate {plain:,.0f}/s" if plain else ""))
