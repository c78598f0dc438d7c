"""The same pipeline on a real Spark standalone cluster: a master and two workers from the
pyspark installation, each its own JVM, on this machine. `SPARK_MASTER=spark://…` points
`medgov run` at it; the tables equal the local run's."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from lakes import medgov, tables

pytestmark = [pytest.mark.cluster, pytest.mark.system]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class() -> Path:
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not path.exists():
        pytest.skip(f"{path} missing: this pyspark installation cannot start a standalone cluster")
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    spark_class = _spark_class()
    root = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "SPARK_HOME": str(spark_class.parent.parent), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOG_DIR": str(root / "logs"), "SPARK_WORKER_DIR": str(root / "work")}
    port, ui = _free_port(), _free_port()
    procs = []

    def start(name: str, *args: str) -> None:
        log = (root / f"{name}.log").open("w")
        procs.append(subprocess.Popen([str(spark_class), *args], env=env, stdout=log, stderr=subprocess.STDOUT))

    start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
          "--webui-port", str(ui))
    url = f"spark://127.0.0.1:{port}"
    for i in (1, 2):
        start(f"worker{i}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1",
              "--memory", "3g", "--webui-port", str(_free_port()), "--work-dir", str(root / f"work{i}"), url)
    try:
        alive = 0
        for _ in range(120):  # until the master's status page lists both workers
            try:
                status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2))
                alive = status.get("aliveworkers", 0)
                if alive == 2:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert alive == 2, "the standalone cluster did not come up: " + (root / "master.log").read_text()[-1500:]
        yield url, ui, env
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_pipeline_on_a_standalone_cluster_gives_the_local_tables(cluster, one_org, tmp_path):
    url, ui, env = cluster
    landing = tmp_path / "landing"
    shutil.copytree(one_org.landing, landing)
    lake = tmp_path / "lake"
    proc = medgov("run", "--landing", str(landing), "--lake", str(lake),
                  env={"SPARK_MASTER": url, "SPARK_LOCAL_IP": "127.0.0.1", "MEDGOV_DRIVER_MEMORY": "2g"})
    assert "publish: gold.ckd_registry" in proc.stdout
    # the work ran on the cluster's executors, not in a local driver
    apps = json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=5))
    done = apps.get("completedapps", []) + apps.get("activeapps", [])
    assert any(a.get("name") == "medgov" for a in done), [a.get("name") for a in done]
    # each executor JVM was launched with the run's profile flags (the suite's: short), as the
    # worker's log of its launch command shows
    launched = [p.read_text(errors="replace").splitlines()[0] for p in (Path(env["SPARK_WORKER_DIR"]).parent)
                .glob("work*/app-*/*/stderr")]
    assert len(launched) == 2 and all("-XX:TieredStopAtLevel=1" in cmd for cmd in launched), launched
    got, want = tables(lake), one_org.tables
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], f"{name} differs between the cluster and the local run"
