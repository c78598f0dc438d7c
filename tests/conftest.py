"""Shared fixtures and markers.

One Spark session per test run, and few pipeline runs shared by many tests: `demo` (the
sample through every stage), `followups` (later deliveries into a copy of it), `one_org`
(one institution's batches: what crashed, concurrent and cluster runs must equal), all in
this process; and `two_cli_runs` (two `medgov run` processes at once on one_org's landing).
Markers follow what a test needs: `spark` for the in-process session and `system` for a
whole pipeline run are set here from the fixtures; test modules mark `airflow`, `browser`,
`cluster` and `system` themselves. `make test-fast` leaves out system, airflow, browser and
cluster tests.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from medgov.storage.lake import Lake

pytest_plugins = ["serving_fixtures"]  # lake, persons, site_folder for tests/serving

logging.getLogger("py4j").setLevel(logging.WARNING)  # py4j logs on interpreter exit, after pytest closed its streams

SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared beside the checkout (tests only)
TEST_KEY = "test-only-pseudonym-key-0123456789abcdef"


def shared_file(rel: str) -> Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} not present: the shared reference files are needed for this test")
    return path


# a test using one of these fixtures needs a whole pipeline run
SYSTEM_FIXTURES = {"demo", "one_org", "followups", "two_cli_runs", "foreign_run"}


# Under `pytest -n 2 --dist loadgroup` (make test) the tests sharing a costly run stay on one
# worker, so the run is made once: the first group whose fixture a test uses.
XDIST_GROUPS = (("demo", {"demo", "followups"}), ("cli_runs", {"two_cli_runs"}), ("dirty", {"dirty"}),
                ("foreign", {"foreign_run"}))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(item.fixturenames)
        if "spark" in names:
            item.add_marker(pytest.mark.spark)
        if SYSTEM_FIXTURES & names:
            item.add_marker(pytest.mark.system)
        group = next((g for g, fixtures in XDIST_GROUPS if fixtures & names), None)
        if group is None and _module_scoped(item):
            group = item.nodeid.split("::", 1)[0]  # its module's fixture is then made once, not once per worker
        if group:
            item.add_marker(pytest.mark.xdist_group(group))


def _module_scoped(item) -> bool:
    """The test uses a fixture made once per module (e.g. the SQL on FHIR suite's run)."""
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs)


def pytest_collection_finish(session):
    """On an xdist worker under --dist loadgroup, xdist has put each group in its tests' ids by
    now; when it has not (pytest 9.2 with xdist 3.8: pytest-dev/pytest-xdist#1386) every
    shared run is made once per worker and the suite silently takes far longer: stop."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        mark = item.get_closest_marker("xdist_group")
        if mark and not item.nodeid.endswith(f"@{mark.args[0]}"):
            pytest.exit(f"pytest-xdist --dist loadgroup does not group {item.nodeid} (see pytest-dev/pytest-xdist#1386; "
                        "pyproject pins a pytest it works with)", returncode=3)


@pytest.fixture(scope="session", autouse=True)
def _env(tmp_path_factory):
    os.environ["MEDGOV_PSEUDONYM_KEY"] = TEST_KEY
    # Test runs are small and short-lived, in this process and in every `medgov` process it
    # starts: the short-run Spark profile (see medgov.storage.spark.PROFILES).
    os.environ.setdefault("MEDGOV_SPARK_PROFILE", "short")
    for var in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        os.environ.pop(var, None)
    yield


@pytest.fixture(scope="session")
def spark():
    from medgov.storage.spark import get_spark

    session = get_spark("medgov-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory):
    """A Spark Connect server (`medgov spark-server`'s server) for the whole test run: chains of
    `medgov` processes attach to it with SPARK_REMOTE instead of each starting a JVM, as Airflow
    tasks do. One shared by all workers: the JIT work one test's runs did (a fresh server takes
    half again as long) serves the next test's, on whichever worker. Under xdist the first
    worker to ask starts it and the controller stops it at the end (`pytest_sessionfinish`)."""
    from medgov.storage import connect_server as server

    def build(folder: Path) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = server.start(port, memory="4g", log=folder / "server.log")
        (folder / "pid").write_text(str(proc.pid))
        (folder / "url").write_text(f"sc://127.0.0.1:{port}")

    folder = _once_per_run(tmp_path_factory, CONNECT_SERVER, build)
    yield (folder / "url").read_text()
    if "PYTEST_XDIST_WORKER" not in os.environ:
        _stop_server(folder)


CONNECT_SERVER = "connect_server"


def _stop_server(folder: Path) -> None:
    import signal
    import time

    pid_file = folder / "pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):  # the JVM's shutdown hooks stop Spark; then it is gone
            if not _running(pid):
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _running(pid: int) -> bool:
    """Not exited (an exited child its parent has not reaped yet counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def pytest_sessionfinish(session):
    """The xdist controller stops the run's shared Connect server, once every worker is done."""
    if "PYTEST_XDIST_WORKER" in os.environ or not hasattr(session.config, "_tmp_path_factory"):
        return
    if session.config.pluginmanager.hasplugin("dsession"):  # the controller of xdist workers
        _stop_server(session.config._tmp_path_factory.getbasetemp() / CONNECT_SERVER)


@dataclass
class ObjectStore:
    endpoint: str
    env: dict[str, str]  # what a `medgov` process needs to reach it

    def lake(self) -> Lake:
        """A new, empty lake on the store."""
        import uuid

        return Lake.at(f"s3://lake/{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """An S3-compatible server on loopback (moto's server mode, conditional writes enforced),
    with bucket `lake`; its endpoint and test credentials are in this process's environment
    for as long as it runs, as a deployment would set them. A process of its own: delta-rs
    holds the GIL through some blocking calls, so a server thread in this process could not
    answer them."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start (log: {log.name})") from None
            time.sleep(0.2)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "medgov-test", "AWS_SECRET_ACCESS_KEY": "medgov-test",
           "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        boto3.client("s3").create_bucket(Bucket="lake")
        yield ObjectStore(endpoint, env)
    server.terminate()
    server.wait(30)
    log.close()


@dataclass
class DemoRun:
    landing: Path
    lake: Path
    generated: object
    result: object


@pytest.fixture(scope="session")
def demo(tmp_path_factory, spark) -> DemoRun:
    """The sample (3 institutions, 6 good batches, 1 corrupt) run once through every stage."""
    from medgov.storage.context import make_context
    from medgov.sample.generate import generate
    from medgov.pipeline.runner import run_stages

    root = tmp_path_factory.mktemp("demo")
    landing, lake = root / "landing", root / "lake"
    gen = generate(landing, patients=60, seed=11)
    result = run_stages(make_context(str(lake)), landing)
    return DemoRun(landing, lake, gen, result)


@dataclass
class Followups:
    """Later deliveries into a copy of the demo lake, in two in-process runs."""

    landing: Path
    lake: Path
    first: dict  # run_stages results of the first follow-up run
    second: dict  # ... and of the second
    early_key: str  # the labs-first result's subject key after the first run
    withdrawn_lines: int  # lab rows the corrected re-delivery withdrew
    site: Path  # the site configuration of the second run: one accepted lab-item decision
    worklist_before: list  # `medgov terms` worklist after the first run (medgov.terms.WorkItem)


TERMS_ORG = "H33030200088"
TERMS_BATCH = f"{TERMS_ORG}/ambiguous-creatinine"
TERMS_CODE = "LX-CR"  # creatinine without a specimen: serum or urine? the steward decides


RELINK_ORG = "H33030200009"
PATIENT_HEADER = "patient_id,id_type,id_no,name,sex_code,birth_date,updated_at\n"
CORRECTED = "H33030200001/20230101-b2"
ORPHANS = "H33030200001/orphans"


@pytest.fixture(scope="session")
def followups(demo, tmp_path_factory) -> Followups:
    """What happens after the demo, shared by the re-delivery, quality-gate and relinking tests
    (two runs instead of four). Run 1 takes three deliveries: a corrected re-delivery of
    H33030200001/20230101-b2 withdrawing its last three lab results; a batch of lab results
    for patients the institution never delivered (orphans: blocked by the gate); and another
    institution's lab result delivered before its patient (labs-first). Run 2 takes that
    patient (patients-later), with a valid identity number."""
    import hashlib
    import json

    from batches import lab_csv, lab_row, write_batch
    from deltalake import DeltaTable
    from medgov.pipeline.runner import run_stages
    from medgov.storage.context import make_context

    root = tmp_path_factory.mktemp("followups")
    landing, lake = root / "landing", root / "lake"
    shutil.copytree(demo.landing, landing)
    shutil.copytree(demo.lake, lake)
    folder = landing / CORRECTED
    manifest = json.loads((folder / "manifest.json").read_text())
    lab = (folder / "lab_result.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lab[:-3]
    raw = "".join(kept).encode("utf-8")
    for f in manifest["files"]:
        if f["name"] == "lab_result.csv":
            f["rows"], f["sha256"] = len(kept) - 1, hashlib.sha256(raw).hexdigest()
    (folder / "lab_result.csv").write_bytes(raw)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (landing / f"{CORRECTED}.ready").touch()
    # a new institution's creatinine under its own code, name only, no specimen: left to the
    # steward after run 1, accepted before run 2, then in gold (two low eGFRs 5 months apart)
    pat = (PATIENT_HEADER + "P1,01,11010519500101001X,测试,1,1950-01-01,2024-01-01 08:00:00\n").encode()
    creat = [[f"R{i}", "1", "", "P1", TERMS_CODE, "肌酐", "300", "umol/L", "", "", "", "", when]
             for i, when in enumerate(["2024-01-02 09:00:00", "2024-06-03 09:00:00"])]
    write_batch(landing, TERMS_ORG, "ambiguous-creatinine",
                {"patient.csv": ("patient", pat, 1), "lab_result.csv": ("lab_result", lab_csv(creat), 2)})
    ghosts = [lab_row(i, patient=f"GHOST{i}", result="400", reported=f"2024-0{1 + (i % 2) * 5}-01 10:00:00")
              for i in range(12)]
    write_batch(landing, "H33030200001", "orphans", {"lab_result.csv": ("lab_result", lab_csv(ghosts), 12)})
    write_batch(landing, RELINK_ORG, "labs-first",
                {"lab_result.csv": ("lab_result", lab_csv([lab_row(1, patient="P77")]), 1)})
    first = run_stages(make_context(str(lake)), landing)
    from medgov.spec.site import load_site
    from medgov.terms import accept, worklist

    worklist_before = worklist(lake)
    site = root / "site"
    site.mkdir()
    accept([(TERMS_ORG, TERMS_CODE, "14682-9")], site, by="test steward")
    obs = DeltaTable(str(lake / "silver" / "observation")).to_pyarrow_table().to_pylist()
    [early] = [o for o in obs if o["batch_key"] == f"{RELINK_ORG}/labs-first"]
    header = PATIENT_HEADER
    patient = (header + "P77,01,11010519491231002X,测试,2,1949-12-31,2024-03-02 08:00:00\n").encode()
    # the visit the early result names comes too: the result then has all it waits for
    visit = ("visit_id,patient_id,visit_type,start_time,updated_at\n"
             "V1,P77,1,2024-03-01 09:00:00,2024-03-02 08:00:00\n").encode()
    write_batch(landing, RELINK_ORG, "patients-later", {"patient.csv": ("patient", patient, 1),
                                                       "visit.csv": ("visit", visit, 1)})
    second = run_stages(make_context(str(lake), config=load_site(site)), landing)
    return Followups(landing, lake, first, second, early["patient_key"], 3, site, worklist_before)


@dataclass
class ForeignRun:
    """The foreign feed (three never-seen institutions) with no site configuration: the
    first batches in one run, the second batches (one bringing patients late) in the next."""

    landing: Path
    lake: Path
    feed: object  # medgov.sample.foreign.ForeignFeed
    first: dict  # run_stages results of each run
    second: dict
    holds_after_first: list  # quality/holds rows after the first run
    stages_after_first: dict  # batch -> stage after the first run
    gold_after_first: int  # ckd_registry rows after the first run
    corrected: tuple  # (org, local patient id): a quarantined patient re-delivered right in the second run
    correcting_batch: str


@pytest.fixture(scope="session")
def foreign_run(tmp_path_factory, spark) -> ForeignRun:
    from deltalake import DeltaTable
    from medgov.pipeline.runner import run_stages
    from medgov.quality import holds
    from medgov.sample.foreign import generate_foreign
    from medgov.storage import control
    from medgov.storage.context import make_context
    from medgov.storage.lake import Lake

    root = tmp_path_factory.mktemp("foreign_run")
    landing, lake = root / "landing", root / "lake"
    feed = generate_foreign(landing, patients=90, seed=3)
    from batches import write_batch

    # the institution sends one quarantined patient again, birth date filled in (no identity
    # number: the person key stays the local one its results already carry)
    org, pid = feed.quarantined_patients[0]
    fixed = (PATIENT_HEADER + f"{pid},,,,1,1960-05-01,2024-03-01 08:00:00\n").encode()
    write_batch(landing, org, "202401-03", {"patient.csv": ("patient", fixed, 1)})
    later = sorted(landing.glob("*/*-0[23].ready"))
    for flag in later:
        flag.rename(flag.with_suffix(".later"))
    first = run_stages(make_context(str(lake)), landing)
    held = holds.read(Lake.at(lake))
    stages = {k: b["stage"] for k, b in control.batches(Lake.at(lake)).items()}
    gold = DeltaTable(str(lake / "gold" / "ckd_registry")).to_pyarrow_table().num_rows
    for flag in later:
        flag.with_suffix(".later").rename(flag)
    second = run_stages(make_context(str(lake)), landing)
    return ForeignRun(landing, lake, feed, first, second, held, stages, gold, (org, pid), f"{org}/202401-03")


@dataclass
class ReferenceRun:
    landing: Path
    lake: Path
    tables: dict  # table -> sorted rows without volatile columns (lakes.tables)
    visible: dict  # batch -> table -> rows a reader sees (lakes.visible_by_batch)
    generated: object  # the sample's raw identifiers (tests only)


def _once_per_run(tmp_path_factory, name: str, build) -> Path:
    """`build(folder)` once for the whole test run: under xdist the first worker to ask builds
    in the run's shared temporary folder while the others wait for it (a file lock) and then
    read what it built; without xdist, a folder of this session's own."""
    import fcntl

    if "PYTEST_XDIST_WORKER" not in os.environ:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / name  # popen-gwN's parent: this run's, shared
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():  # not yet, or a worker's attempt failed half-way
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def one_org(tmp_path_factory, spark) -> ReferenceRun:
    """One institution's two sample batches, run once through every stage without
    interruption (in-process: the tables do not depend on it; once per test run, shared by
    the workers): what crashed, concurrent and cluster runs must end up equal to. Read-only."""
    from lakes import tables, visible_by_batch
    from medgov.pipeline.runner import run_stages
    from medgov.sample.generate import generate
    from medgov.storage.context import make_context

    def sample(landing: Path):
        gen = generate(landing, patients=24, seed=5)
        for org in sorted(p for p in landing.iterdir() if p.is_dir())[1:]:
            shutil.rmtree(org)
        return gen

    def build(root: Path) -> None:
        sample(root / "landing")
        run_stages(make_context(str(root / "reference")), root / "landing")

    root = _once_per_run(tmp_path_factory, "one_org", build)
    gen = sample(tmp_path_factory.mktemp("one_org_sample"))  # the same sample: its raw identifiers
    lake = root / "reference"
    return ReferenceRun(root / "landing", lake, tables(lake), visible_by_batch(lake), gen)


@dataclass
class CliRuns:
    lake: Path
    outputs: list[tuple[int, str, str]]  # (exit code, stdout, stderr) of each `medgov run`


@pytest.fixture(scope="session")
def two_cli_runs(one_org, connect_server, tmp_path_factory) -> CliRuns:
    """Two `medgov run` processes started together on one_org's landing zone and a new lake,
    sharing a Spark Connect server: the concurrency test's runs, and the CLI's output for the
    output tests."""
    import subprocess
    import sys

    lake = tmp_path_factory.mktemp("two_cli_runs") / "lake"
    args = [sys.executable, "-m", "medgov.cli", "run", "--landing", str(one_org.landing), "--lake", str(lake)]
    env = {**os.environ, "COLUMNS": "250", "SPARK_REMOTE": connect_server}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=1200)
        outputs.append((p.returncode, out, err))
    return CliRuns(lake, outputs)
