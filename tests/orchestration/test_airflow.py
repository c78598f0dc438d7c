"""Airflow: the landing-zone trigger, every DAG under dag.test(), and the real event path."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from medgov.ingest.landing import pending_flags
from medgov.orchestration.trigger import LandingZoneTrigger

DAGS = Path(__file__).resolve().parents[2] / "dags"
BIN = Path(sys.executable).parent


def airflow_env(home: Path, landing: Path, lake: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "MEDGOV_LANDING": str(landing), "MEDGOV_LAKE": str(lake), "MEDGOV_POKE_INTERVAL": "2",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # airflow starts its parts as `airflow …`
    })
    env.update(extra)
    return env


def test_pending_flags_follow_the_delivery_log(demo, tmp_path):
    assert pending_flags(demo.landing, demo.lake) == []
    flag = demo.landing / "H33030200001" / "20230101-b2.ready"
    later = time.time() + 5
    os.utime(flag, (later, later))  # a re-delivery rewrites its flag
    try:
        assert pending_flags(demo.landing, demo.lake) == ["H33030200001/20230101-b2"]
    finally:
        os.utime(flag, (later - 3600 * 24 * 365, later - 3600 * 24 * 365))
    assert len(pending_flags(demo.landing, tmp_path / "empty-lake")) == 7


def test_trigger_fires_for_any_new_flag_and_serializes(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    (landing / "H33030200001").mkdir(parents=True)
    trigger = LandingZoneTrigger(str(landing), str(lake), poke_interval=0.1)
    path, kwargs = trigger.serialize()
    assert path == "medgov.orchestration.trigger.LandingZoneTrigger" and kwargs["landing"] == str(landing)

    async def first_event():
        gen = trigger.run()
        task = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0.3)
        assert not task.done()  # nothing ready yet
        (landing / "H33030200001" / "any-batch-name").mkdir()
        (landing / "H33030200001" / "any-batch-name.ready").touch()
        event = await asyncio.wait_for(task, 5)
        await gen.aclose()
        return event

    # in a thread of its own: a session fixture on this worker (Playwright's sync API) may
    # hold an event loop open on the main thread, and asyncio.run refuses to nest
    with ThreadPoolExecutor(1) as pool:
        event = pool.submit(asyncio.run, first_event()).result(timeout=30)
    assert event.payload == {"batches": ["H33030200001/any-batch-name"]}


def test_triggers_stored_under_the_old_class_path_still_load(tmp_path):
    """Airflow's database keeps each trigger's class path; the path before the package moved
    (`medgov.airflow_trigger`) must still rebuild the same trigger."""
    from airflow._shared.module_loading import import_string  # what the triggerer loads them with

    cls = import_string("medgov.airflow_trigger.LandingZoneTrigger")
    assert cls is LandingZoneTrigger
    old = cls(str(tmp_path / "landing"), str(tmp_path / "lake"), poke_interval=3.0)
    assert old.serialize() == LandingZoneTrigger(**old.serialize()[1]).serialize()


def test_dags_folder_imports_cleanly(tmp_path):
    """The DAG processor's view: four DAGs, no import errors, chained by assets."""
    env = airflow_env(tmp_path / "airflow", tmp_path / "landing", tmp_path / "lake")
    script = (
        "from airflow.models.dagbag import DagBag\n"
        "bag = DagBag(%r)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "for dag_id, d in sorted(bag.dags.items()):\n"
        "    print('DAG', dag_id, [t.task_id for t in d.tasks], sorted(a.name for t in d.tasks for a in t.outlets))\n"
        % str(DAGS))
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    dags = sorted(line.split(" ", 2)[1:] for line in p.stdout.splitlines() if line.startswith("DAG "))
    assert dags == [["medgov_ingest", "['ingest'] ['medgov_bronze']"],
                    ["medgov_normalize", "['normalize'] ['medgov_silver']"],
                    ["medgov_publish", "['publish'] ['medgov_gold_ckd_registry']"],
                    ["medgov_validate", "['validate'] ['medgov_quality']"]], p.stderr[-2000:]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.airflow
@pytest.mark.system
def test_ready_flag_leads_to_published_dataset(tmp_path, connect_server, record_property):
    """airflow standalone (scheduler, triggerer, DAG processor, API server) beside the suite's
    Spark Connect server: flags -> the four asset-chained DAGs, each task in its own process
    attached to the server (SPARK_REMOTE) -> gold. Each stage run names its Airflow task run as
    OpenLineage parent, and nothing the tasks logged identifies a person. (The latency it
    reports depends on how warm the suite's server is by then: the README's figures come from
    a server warmed as `medgov spark-server` warms itself; warming here cost the suite 1 min.)"""
    from medgov.sample.generate import generate
    from medgov.storage import control
    from medgov.storage.lake import Lake

    sample, landing, lake, home = tmp_path / "sample", tmp_path / "landing", tmp_path / "lake", tmp_path / "airflow"
    gen = generate(sample, patients=20, seed=9)
    landing.mkdir()
    api, worker_log, trigger_log = _free_ports(3)
    env = airflow_env(home, landing, lake, AIRFLOW__API__PORT=str(api),
                      AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://localhost:{api}/execution/",
                      AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(worker_log),
                      AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(trigger_log),
                      AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5", SPARK_REMOTE=connect_server)
    log_path = tmp_path / "standalone.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)

    def published(delivered: set[str]) -> bool:
        if not (lake / "control" / "batches").is_dir():
            return False
        stages = {k: b["stage"] for k, b in control.batches(Lake.at(lake)).items()}
        return set(stages) == delivered and set(stages.values()) == {"published"}

    def deliver(org: str, delivered: set[str]) -> float:
        shutil.copytree(sample / org, landing / org)  # batches with their .ready flags
        flagged = time.monotonic()
        deadline = time.time() + 480
        while not published(delivered):
            assert time.time() < deadline, log_path.read_text(errors="replace")[-4000:]
            time.sleep(1)
        return time.monotonic() - flagged

    try:
        deadline = time.time() + 300
        while "Airflow is ready" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None and time.time() < deadline, "airflow standalone did not start"
            time.sleep(2)
        time.sleep(10)  # let the DAG processor register the asset watcher
        # the latency a hospital feels (README, Performance): reported, not asserted
        latency = deliver("H33030200001", {"H33030200001/20230101-b1", "H33030200001/20230101-b2"})
        record_property("flag_to_gold_seconds", round(latency, 1))
        print(f"airflow: .ready flags to published in {latency:.1f} s")
        for line in _timeline(home / "airflow.db", lake):
            print(f"airflow: {line}")
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:  # standalone's children may outlive it (a scheduler still stopping its workers)
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        log.close()
    assert (lake / "gold" / "ckd_registry" / "_delta_log").is_dir()
    events = [json.loads(x) for x in (lake / "lineage" / "events.jsonl").read_text().splitlines()]
    parents = {e["job"]["name"]: e["run"]["facets"].get("parent", {}).get("job", {}).get("name") for e in events}
    for stage in ("ingest", "normalize", "validate", "publish"):  # stage runs name the Airflow task run
        assert parents[f"medgov.{stage}"] == f"medgov_{stage}.{stage}", parents
    task_logs = list(home.rglob("*.log"))
    assert any("medgov_publish" in str(p) for p in task_logs), task_logs  # the task logs were found
    logs = log_path.read_text(errors="replace") + "".join(f.read_text(errors="replace") for f in task_logs)
    assert not [i for i in gen.identifiers if len(i) >= 2 and i in logs]


def _timeline(db: Path, lake: Path) -> list[str]:
    """Where the latency went: per DAG run, the wait from the previous step to its run being
    queued and to its task starting, the task's time, and the stage's own time inside it
    (`control/runs`)."""
    import sqlite3
    from datetime import datetime

    from medgov.storage import control
    from medgov.storage.lake import Lake

    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT DISTINCT r.dag_id, r.queued_at, r.start_date, t.start_date, t.end_date, t.state FROM dag_run r "
            "JOIN task_instance t ON t.dag_id = r.dag_id AND t.run_id = r.run_id ORDER BY r.queued_at").fetchall()
    stage_seconds: dict[str, list[float]] = {}
    for r in control.runs(Lake.at(lake)):
        stage_seconds.setdefault(r["stage"], []).append(r["seconds"])

    def at(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    out, previous = [], None
    for dag, queued, started, t_start, t_end, state in rows:
        queued, started, t_start, t_end = map(at, (queued, started, t_start, t_end))
        before = f"{(queued - previous).total_seconds():5.1f} s after the previous task ended, " if previous else ""
        work = stage_seconds.get(dag.removeprefix("medgov_"), [])
        out.append(f"{dag}: {before}queued->task start {(t_start - queued).total_seconds():5.1f} s, "
                   f"task {(t_end - t_start).total_seconds() if t_end else float('nan'):5.1f} s ({state}); "
                   f"stage runs {', '.join(f'{w:.1f}' for w in work) or '-'} s")
        previous = t_end or previous
    return out
