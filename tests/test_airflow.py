"""Airflow: the landing-zone trigger, every DAG under dag.test(), and the real event path."""

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medgov.airflow_trigger import LandingZoneTrigger, pending_flags

DAGS = Path(__file__).resolve().parents[1] / "dags"
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
    assert path == "medgov.airflow_trigger.LandingZoneTrigger" and kwargs["landing"] == str(landing)

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

    event = asyncio.run(first_event())
    assert event.payload == {"batches": ["H33030200001/any-batch-name"]}


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


@pytest.mark.slow
def test_every_dag_runs_with_dag_test(tmp_path):
    from medgov.generate import generate

    landing, lake, home = tmp_path / "landing", tmp_path / "lake", tmp_path / "airflow"
    gen = generate(landing, patients=25, seed=5)
    env = airflow_env(home, landing, lake)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "import medgov_pipeline as m\n"
        "for d in (m.ingest_dag, m.normalize_dag, m.validate_dag, m.publish_dag):\n"
        "    print('DAGRUN', d.dag_id, d.test().state, flush=True)\n" % str(DAGS))
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
    runs = [line.split()[1:] for line in p.stdout.splitlines() if line.startswith("DAGRUN")]
    assert runs == [["medgov_ingest", "success"], ["medgov_normalize", "success"], ["medgov_validate", "success"],
                    ["medgov_publish", "success"]], p.stderr[-3000:]
    assert (lake / "gold" / "ckd_registry" / "_delta_log").is_dir()
    events = [json.loads(x) for x in (lake / "lineage" / "events.jsonl").read_text().splitlines()]
    parents = {e["job"]["name"]: e["run"]["facets"]["parent"]["job"]["name"] for e in events}
    assert parents["medgov.publish"] == "medgov_publish.publish"  # stage runs name the Airflow task run
    # nothing identifying in what the tasks logged
    logs = p.stdout + p.stderr + "".join(f.read_text(errors="replace") for f in home.rglob("*.log"))
    assert not [i for i in gen.identifiers if len(i) >= 2 and i in logs]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_ready_flag_leads_to_published_dataset(tmp_path):
    """airflow standalone (scheduler, triggerer, DAG processor, API server): flag -> ... -> gold."""
    from medgov.generate import generate

    sample, landing, lake, home = tmp_path / "sample", tmp_path / "landing", tmp_path / "lake", tmp_path / "airflow"
    generate(sample, patients=20, seed=9)
    landing.mkdir()
    api, worker_log, trigger_log = _free_ports(3)
    env = airflow_env(home, landing, lake, AIRFLOW__API__PORT=str(api),
                      AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://localhost:{api}/execution/",
                      AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(worker_log),
                      AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(trigger_log),
                      AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5")
    log = open(tmp_path / "standalone.log", "w")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.time() + 180
        while "Airflow is ready" not in (tmp_path / "standalone.log").read_text(errors="replace"):
            assert proc.poll() is None and time.time() < deadline, "airflow standalone did not start"
            time.sleep(2)
        time.sleep(10)  # let the DAG processor register the asset watcher
        shutil.copytree(sample / "H33030200001", landing / "H33030200001")  # batches with their .ready flags
        deadline = time.time() + 480
        gold = lake / "gold" / "ckd_registry" / "_delta_log"
        while not gold.is_dir():
            assert time.time() < deadline, (tmp_path / "standalone.log").read_text(errors="replace")[-4000:]
            time.sleep(3)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
    from medgov import state
    from medgov.lake import Lake

    stages = {k: b["stage"] for k, b in state.batches(Lake.at(lake)).items()}
    assert stages and set(stages) <= {"H33030200001/20230101-b1", "H33030200001/20230101-b2"}
