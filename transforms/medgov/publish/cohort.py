"""A declared dataset's rows (`medgov.spec.datasets`): its views over FHIR resources, then its
cohort SQL over them, with its parameters bound as named SQL parameters (never pasted into
the text) and its code lists as a table. Pure: DataFrames in, a DataFrame out."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medgov.domain.columns import register_sql_functions
from medgov.errors import MedgovError
from medgov.spec.datasets import Dataset
from medgov.views.runner import run_view

CARRIED = ("org_code",)  # silver columns every view row carries (the delivering institution)
RUN_COLUMN = "updated_run_id"


def view_frames(d: Dataset, resources: dict[str, DataFrame],
                shared: dict[str, DataFrame] | None = None) -> dict[str, DataFrame]:
    """Each view of `d` over the resources of its type (`resource_json` + CARRIED columns),
    its rows materialised: the cohort SQL reads a view several times and would otherwise plan
    and run its FHIRPath each time. Views already in `shared` (by name, over the same
    resources) are reused and new ones added, so datasets built together run each view once."""
    shared = {} if shared is None else shared
    for name, view in d.views.items():
        if name in shared:
            continue
        src = resources.get(view["resource"])
        if src is None:
            raise MedgovError(f"dataset {d.name}: no {view['resource']} resources to run view {name} on")
        shared[name] = run_view(view, src, "resource_json", keep=CARRIED).localCheckpoint(eager=True)
    return {name: shared[name] for name in d.views}


def standard_tables(views: dict[str, DataFrame]) -> dict[str, DataFrame]:
    """The tables every cohort query may use besides its views:

    - `person` (patient_key, gender, birth_date): one row per linkage key from the `patient`
      view; an institution's patient record adds what another's lacks (max of each);
    - `institutions` (patient_key, institutions): the sorted institutions that delivered a
      row of any other view of the dataset for the person."""
    out: dict[str, DataFrame] = {}
    if "patient" in views:
        out["person"] = views["patient"].groupBy("patient_key").agg(
            F.max("gender").alias("gender"), F.to_date(F.max("birth_date")).alias("birth_date"))
    sources = [f.select("patient_key", "org_code") for name, f in sorted(views.items())
               if name != "patient" and {"patient_key", "org_code"} <= set(f.columns)]
    if sources:
        rows = sources[0]
        for more in sources[1:]:
            rows = rows.unionByName(more)
        out["institutions"] = rows.groupBy("patient_key").agg(
            F.array_sort(F.collect_set("org_code")).alias("institutions"))
    return out


def codes_frame(spark: SparkSession, d: Dataset) -> DataFrame:
    rows = [(lst, code, reason) for lst, entries in d.code_lists.items() for code, reason in entries.items()]
    return spark.createDataFrame(rows, "list string, code string, reason string")


def build(spark: SparkSession, d: Dataset, views: dict[str, DataFrame], upstream: dict[str, DataFrame],
          run_id: str) -> DataFrame:
    """The rows of dataset `d` from its views' rows (`view_frames`) and the rows of the
    datasets it depends on, in the declared column order and types. The upstream rows are
    materialised first: a dataset built from another would otherwise join two copies of one
    plan."""
    register_sql_functions(spark)  # ckd_epi_2021, kdigo_g_stage, kdigo_a_stage
    for name, frame in {**views, **standard_tables(views)}.items():
        frame.createOrReplaceTempView(name)
    for name in d.depends_on:
        upstream[name].localCheckpoint(eager=True).createOrReplaceTempView(name)
    codes_frame(spark, d).createOrReplaceTempView("codes")
    try:
        rows = spark.sql(d.sql, args=dict(d.parameters))
    except Exception as exc:  # Spark's analysis errors: the dataset's SQL is wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedgovError(f"schemas/datasets/{d.name}/cohort.sql: {first[:300]}") from None
    declared = [c for c in d.columns if c != RUN_COLUMN]
    if rows.columns != declared:
        raise MedgovError(f"schemas/datasets/{d.name}/cohort.sql gives columns {rows.columns}, "
                          f"dataset.yaml declares {declared}")
    return rows.select(*[F.col(f"`{c}`").cast(d.columns[c]["type"]).alias(c) for c in declared],
                       F.lit(run_id).alias(RUN_COLUMN))
