"""View throughput: a 15-column Observation ViewDefinition over the lake's silver
Observations (repeated up to the requested count), run by the Spark view runner, against a
row-by-row Python FHIRPath evaluation (fhirpathpy, each path compiled once) of the same
columns on a sample, in the same process. Both start from the resource JSON text, as silver
holds it. Reported per core: Spark uses every core of its session, the Python loop one.

The Spark figure is the steady state: the view runs once over a slice first, so the JVM has
compiled the generated code. The JSON parse alone (`from_json` into the struct the view
reads) is measured in the same run: no view over JSON text runs faster than it."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as PF

from medgov.views.runner import plan, run_view, view_schema

# 15 columns of a typical laboratory extract
OBSERVATION_VIEW: dict[str, Any] = {
    "resourceType": "ViewDefinition", "resource": "Observation", "status": "active",
    "select": [{"column": [
        {"name": "id", "path": "id", "type": "id"},
        {"name": "status", "path": "status", "type": "code"},
        {"name": "category", "path": "category.coding.code.first()", "type": "code"},
        {"name": "loinc", "path": "code.coding.where(system = 'http://loinc.org').code.first()", "type": "code"},
        {"name": "local_code", "path": "code.coding.where(system != 'http://loinc.org').code.first()", "type": "code"},
        {"name": "text", "path": "code.text", "type": "string"},
        {"name": "subject", "path": "subject.reference", "type": "string"},
        {"name": "encounter", "path": "encounter.reference", "type": "string"},
        {"name": "effective", "path": "effective.ofType(dateTime)", "type": "dateTime"},
        {"name": "issued", "path": "issued", "type": "instant"},
        {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
        {"name": "unit", "path": "value.ofType(Quantity).code", "type": "code"},
        {"name": "comparator", "path": "value.ofType(Quantity).comparator", "type": "code"},
        {"name": "low", "path": "referenceRange.low.value.first()", "type": "decimal"},
        {"name": "high", "path": "referenceRange.high.value.first()", "type": "decimal"},
    ]}],
}
# fhirpathpy has no `ofType` on FHIR JSON's choice names: the same elements by their JSON names
_PYTHON_PATHS = {"effective": "effectiveDateTime", "value": "valueQuantity.value", "unit": "valueQuantity.code",
                 "comparator": "valueQuantity.comparator"}


def _python_rows(resources: list[str]) -> tuple[float, int]:
    """Seconds to parse each resource and evaluate the view's columns with fhirpathpy."""
    from fhirpathpy import compile as fhirpath_compile

    columns = OBSERVATION_VIEW["select"][0]["column"]
    compiled = [(c["name"], fhirpath_compile(_PYTHON_PATHS.get(c["name"], c["path"]))) for c in columns]
    start = time.perf_counter()
    rows = 0
    for text in resources:
        r = json.loads(text)
        row = {}
        for name, fn in compiled:
            got = fn(r)
            row[name] = got[0] if got else None
        rows += 1
    return time.perf_counter() - start, rows


def repeated(resources: DataFrame, count: int) -> DataFrame:
    """`count` resources: the given ones repeated (ids repeat too: throughput only), cached."""
    n = resources.count()
    times = max(1, -(-count // max(n, 1)))
    copies = resources.crossJoin(resources.sparkSession.range(times).withColumnRenamed("id", "_copy"))
    return copies.limit(count).select("resource_json").cache()


def view_throughput(spark: SparkSession, resources: DataFrame, count: int = 1_000_000,
                    python_sample: int = 20_000) -> dict[str, Any]:
    """Resources per second per core, Spark runner against fhirpathpy row by row."""
    data = repeated(resources, count)
    n = data.count()
    try:
        cores = spark.sparkContext.defaultParallelism
    except Exception:  # noqa: BLE001 - a Spark Connect session has no SparkContext: count this machine's
        cores = os.cpu_count() or 1
    def timed(frame: DataFrame) -> float:
        start = time.perf_counter()
        frame.write.format("noop").mode("overwrite").save()
        return time.perf_counter() - start

    timed(run_view(OBSERVATION_VIEW, data.limit(max(n // 10, 1)), "resource_json"))  # warm-up
    spark_seconds = timed(run_view(OBSERVATION_VIEW, data, "resource_json"))
    schema = view_schema(OBSERVATION_VIEW)
    parse_seconds = timed(data.select(PF.from_json("resource_json", schema).alias("r")))
    sample = [r[0] for r in data.limit(python_sample).collect()]
    python_seconds, python_rows = _python_rows(sample)
    data.unpersist()
    spark_rate = n / spark_seconds / cores
    python_rate = python_rows / python_seconds
    parse_rate = n / parse_seconds / cores
    return {"resources": n, "columns": len(OBSERVATION_VIEW["select"][0]["column"]), "cores": cores,
            "plan": "typed" if plan(OBSERVATION_VIEW).typed else "variant",
            "spark_seconds": round(spark_seconds, 2), "spark_per_core_per_s": round(spark_rate),
            "parse_seconds": round(parse_seconds, 2), "parse_per_core_per_s": round(parse_rate),
            "parse_ratio": round(parse_rate / python_rate, 1),
            "python_sample": python_rows, "python_seconds": round(python_seconds, 2),
            "python_per_core_per_s": round(python_rate), "ratio": round(spark_rate / python_rate, 1)}
