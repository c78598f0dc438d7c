"""`medgov spark-server`: starts a Spark Connect server, says when clients may attach, and a
service manager's SIGTERM stops it and its JVM. (Its warm-up, `connect_server.warm_up`, runs
in the Airflow test, against the suite's server.)"""

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
