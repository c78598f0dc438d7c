"""A long-lived Spark Connect server on this machine, for processes that should not each start
a JVM: Airflow tasks, a chain of `medgov run`s, the test suite. Clients reach it through
`SPARK_REMOTE=sc://host:port` (see `medgov.storage.spark.get_spark`).

The server runs the UDFs of every client in its own Python workers, so it must run the same
interpreter and medgov version as its clients (restart it after an upgrade). It binds to
127.0.0.1 unless told otherwise: a plan carries the pseudonym key to the server's workers, so
the channel must not leave the machine without TLS in front of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from medgov.errors import MedgovError
from medgov.spec.contracts import interface


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def command(port: int, host: str = "127.0.0.1", memory: str = "3g") -> list[str]:
    """The spark-submit command line of a local Connect server on `host:port`."""
    home = _spark_home()
    submit = home / "bin" / "spark-submit"
    if not submit.exists():
        raise MedgovError(f"{submit} missing: this pyspark installation cannot start a Spark Connect server")
    log4j = Path(__file__).with_name("log4j2.properties")
    return [str(submit), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "medgov-connect", "--master", os.environ.get("SPARK_MASTER", "local[*]"),
            "--driver-memory", memory,
            "--conf", f"spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file:{log4j}",
            "--conf", f"spark.connect.grpc.binding.address={host}",
            "--conf", f"spark.connect.grpc.binding.port={port}",
            "--conf", f"spark.sql.session.timeZone={interface()['timezone']}",
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.sql.execution.arrow.pyspark.enabled=true",
            "spark-internal"]


def environment() -> dict[str, str]:
    """The server's environment: this interpreter for its Python workers, the pyspark home."""
    from medgov.storage.spark import ensure_java

    ensure_java()
    env = {**os.environ, "SPARK_HOME": str(_spark_home()), "PYSPARK_PYTHON": sys.executable}
    env.pop("SPARK_REMOTE", None)  # the server is the session, not a client of one
    return env


def start(port: int, host: str = "127.0.0.1", memory: str = "3g", log: Path | None = None,
          timeout: float = 120.0) -> subprocess.Popen:
    """Start a server in the background and return once it accepts connections."""
    log_file = Path(log) if log else Path(os.devnull)
    with log_file.open("w") as out:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen(command(port, host, memory), env=environment(), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MedgovError(f"the Spark Connect server exited with code {proc.returncode}"
                              + (f" (log: {log_file})" if log else ""))
        if _listening(host, port):
            return proc
        time.sleep(0.5)
    proc.kill()
    raise MedgovError(f"the Spark Connect server did not start within {timeout:.0f} s")


def _listening(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
