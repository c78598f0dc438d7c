"""`medgov spark-server`: starts a Spark Connect server, says when clients may attach, and a
service manager's SIGTERM stops it and its JVM; its warm-up runs the pipeline on a sample with
a throwaway key. (A real warm-up costs a minute of a cold JVM: `medgov bench` runs one.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest


@pytest.mark.system
def test_the_server_says_ready_serves_a_client_and_stops_on_sigterm(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "medgov.cli", "spark-server", "--port", str(port),
                                 "--memory", "1g", "--no-warm"], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "spark-server: ready" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-2000:]
            time.sleep(0.5)
        assert "warming up" not in log.read_text()
        client = subprocess.run(
            [sys.executable, "-c", "from pyspark.sql import SparkSession; "
                                   f"print(SparkSession.builder.remote('sc://127.0.0.1:{port}').getOrCreate()"
                                   ".range(7).count())"], capture_output=True, text=True, timeout=120)
        assert client.stdout.strip().splitlines()[-1] == "7", client.stderr[-1000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        with socket.socket() as s:  # the JVM went with it
            assert s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_the_warm_up_runs_the_pipeline_on_a_sample_with_a_throwaway_key(tmp_path, monkeypatch):
    """`warm_up` runs `medgov run` through the server on the sample its caller writes, into a
    scratch lake, with a fresh key and no lineage transport, and says when that run failed."""
    from medgov.errors import MedgovError
    from medgov.storage import connect_server

    monkeypatch.setenv("OPENLINEAGE_URL", "http://marquez:5000")
    monkeypatch.setenv("MEDGOV_PSEUDONYM_KEY", "the-site-key")
    seen: dict = {}

    def write_sample(landing):
        seen["landing"] = landing
        landing.mkdir(parents=True)

    def run(args, env, capture_output, text):
        seen.update(args=args, env=env, scratch_existed=seen["landing"].is_dir())
        return subprocess.CompletedProcess(args, seen.get("code", 0), "", "medgov: error: no room\n")

    monkeypatch.setattr(connect_server.subprocess, "run", run)
    assert connect_server.warm_up("sc://127.0.0.1:1", write_sample) >= 0
    args, env = seen["args"], seen["env"]
    assert args[1:4] == ["-m", "medgov.cli", "run"] and args[args.index("--landing") + 1] == str(seen["landing"])
    assert env["SPARK_REMOTE"] == "sc://127.0.0.1:1" and env["OPENLINEAGE_DISABLED"] == "true"
    assert "OPENLINEAGE_URL" not in env and env["MEDGOV_PSEUDONYM_KEY"] not in ("the-site-key", "")
    assert seen["scratch_existed"] and not seen["landing"].exists()  # the scratch folder is gone after
    seen["code"] = 1
    with pytest.raises(MedgovError, match="the warm-up run failed: medgov: error: no room"):
        connect_server.warm_up("sc://127.0.0.1:1", write_sample)
