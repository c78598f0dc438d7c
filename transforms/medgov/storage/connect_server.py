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
from typing import Callable

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
    wait_ready(proc, host, port, timeout, f" (log: {log_file})" if log else "")
    return proc


def wait_ready(proc: subprocess.Popen, host: str, port: int, timeout: float = 120.0, where: str = "") -> None:
    """Return once the server `proc` accepts connections; raise if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MedgovError(f"the Spark Connect server exited with code {proc.returncode}{where}")
        if _listening("127.0.0.1" if host == "0.0.0.0" else host, port):
            return
        time.sleep(0.5)
    proc.kill()
    raise MedgovError(f"the Spark Connect server did not start within {timeout:.0f} s")


def warm_up(url: str, write_sample: Callable[[Path], object]) -> float:
    """Run the whole pipeline once through the server at `url` on a sample that
    `write_sample(landing)` writes (`medgov.sample.generate.generate`), into a scratch lake
    that is removed after, and return the seconds it took.

    A fresh server's JVM interprets the code a stage needs until its JIT has compiled it: on
    the reference machine a 1.6 k-row delivery's four stages took 54.5 s on a new server and
    31.8 s on one that had run them before. The warm-up pays that once, before the first
    hospital delivery. It uses a throwaway pseudonym key and sends no lineage anywhere."""
    import secrets
    import tempfile

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OPENLINEAGE") and k not in ("MEDGOV_PSEUDONYM_KEY_FILE", "MEDGOV_STAGING_DIR")}
    env.update({"SPARK_REMOTE": url, "MEDGOV_PSEUDONYM_KEY": secrets.token_hex(32), "OPENLINEAGE_DISABLED": "true"})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medgov-warm-up-") as scratch:
        write_sample(Path(scratch) / "landing")
        run = subprocess.run([sys.executable, "-m", "medgov.cli", "run", "--landing", f"{scratch}/landing",
                              "--lake", f"{scratch}/lake"], env=env, capture_output=True, text=True)
    if run.returncode:
        last = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit code {run.returncode}"
        raise MedgovError(f"the warm-up run failed: {last[:300]}")
    return time.monotonic() - started


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
