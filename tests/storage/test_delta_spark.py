"""The delta-spark table path, for clusters whose Spark session is Delta-enabled.

Needs the Delta JVM jars, which this environment cannot download: set MEDGOV_DELTA_JARS to
local delta-spark and delta-storage jars to run it.
"""

import glob
import os
import subprocess
import sys

import pytest

JARS = os.environ.get("MEDGOV_DELTA_JARS") or ",".join(
    glob.glob(os.path.join(os.environ.get("SPARK_HOME", "/nonexistent"), "jars", "delta-*.jar")))

pytestmark = pytest.mark.skipif(not JARS, reason="Delta Lake JVM jars not present (no Maven access here); "
                                                 "set MEDGOV_DELTA_JARS to run the delta-spark path")

SCRIPT = """
from deltalake import DeltaTable
from medgov.storage.spark import get_spark, delta_enabled
from medgov.storage.table_store import SparkDeltaStore, store_for
spark = get_spark("delta-spark-test")
assert delta_enabled(spark)
store = store_for(spark)
assert isinstance(store, SparkDeltaStore)
uri = {uri!r}
store.replace(uri, spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string"), "TRUE")
store.merge(uri, spark.createDataFrame([(2, "B"), (3, "c")], "id int, v string"), ["id"])
rows = sorted(tuple(r) for r in store.read(uri).collect())
assert rows == [(1, "a"), (2, "B"), (3, "c")], rows
assert sorted(DeltaTable(uri).to_pyarrow_table().to_pylist(), key=lambda r: r["id"])[1]["v"] == "B"
print("OK")
"""


def test_spark_delta_store_round_trip(tmp_path):
    env = {**os.environ, "MEDGOV_DELTA_JARS": JARS}
    p = subprocess.run([sys.executable, "-c", SCRIPT.format(uri=str(tmp_path / "t"))], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.stdout.strip().endswith("OK"), p.stderr[-3000:]
