"""medgov DAGs: landing flag -> ingest -> normalize -> validate -> publish, chained by assets.

Thin wrappers: one DAG per stage of `medgov.spec.lifecycle.STAGES`, in its order; each task
calls `medgov.pipeline.runner.run_stage`, the same runner `medgov run` uses.
Configure with MEDGOV_LANDING, MEDGOV_LAKE and MEDGOV_PSEUDONYM_KEY(_FILE) in the
workers' environment (see infra/airflow/).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

from medgov.orchestration.trigger import LandingZoneTrigger
from medgov.spec.lifecycle import STAGES

LANDING = os.path.abspath(os.environ.get("MEDGOV_LANDING", "sample/landing"))
LAKE = os.path.abspath(os.environ.get("MEDGOV_LAKE", "lake"))
POKE = float(os.environ.get("MEDGOV_POKE_INTERVAL", "5"))

landing_flags = Asset(
    name="medgov_landing_ready_flags", uri=f"file://{LANDING}",
    watchers=[AssetWatcher(name="medgov_landing_watcher", trigger=LandingZoneTrigger(LANDING, LAKE, POKE))],
)
bronze = Asset(name="medgov_bronze", uri=f"file://{LAKE}/bronze")
silver = Asset(name="medgov_silver", uri=f"file://{LAKE}/silver")
quality = Asset(name="medgov_quality", uri=f"file://{LAKE}/quality/quality_results")
gold = Asset(name="medgov_gold_ckd_registry", uri=f"file://{LAKE}/gold/ckd_registry")

DEFAULTS = {"retries": 1, "retry_delay": pendulum.duration(seconds=30)}


def _parent():
    """The Airflow task run as OpenLineage parent of the stage's run."""
    from medgov.storage.lineage import ParentRun

    try:
        from airflow.providers.openlineage.plugins.macros import (
            lineage_job_name,
            lineage_job_namespace,
            lineage_run_id,
        )

        ti = get_current_context()["ti"]
        return ParentRun(lineage_job_namespace(), lineage_job_name(ti), lineage_run_id(ti))
    except Exception:  # lineage must never stop the data
        return None


def _run(stage: str) -> dict:
    from medgov.pipeline.runner import has_work, run_stage

    if not has_work(stage, LAKE, LANDING):
        raise AirflowSkipException(f"nothing to {stage}")  # no outlet event, downstream stays idle
    return run_stage(stage, LAKE, LANDING, parent=_parent())


def stage_dag(stage: str, schedule: list[Asset], outlet: Asset, doc: str):
    """One DAG per stage: a single task that runs the stage on its backlog and emits `outlet`."""

    @dag(dag_id=f"medgov_{stage}", schedule=schedule, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
         catchup=False, max_active_runs=1, default_args=DEFAULTS, tags=["medgov"], doc_md=doc)
    def pipeline_stage():
        @task(task_id=stage, outlets=[outlet])
        def run() -> dict:
            return _run(stage)

        run()

    return pipeline_stage()


OUTLETS = {"ingest": bronze, "normalize": silver, "validate": quality, "publish": gold}
DOCS = {
    "ingest": "Verified landing batches -> bronze Delta tables + quarantine. Fired by any new `.ready` flag.",
    "normalize": "Bronze batches -> FHIR R4 silver tables (pseudonymised, validated resources).",
    "validate": "Great Expectations suites on bronze and silver; blocking failures hold a batch back.",
    "publish": "Curated CKD registry (gold) from batches that passed the quality gate, MERGE on patient key.",
}

# each stage's DAG runs on the asset its predecessor emits; the first on the landing zone's flags
_upstream = [landing_flags] + [OUTLETS[s.name] for s in STAGES[:-1]]
_dags = {s.name: stage_dag(s.name, [up], OUTLETS[s.name], DOCS[s.name]) for s, up in zip(STAGES, _upstream)}
ingest_dag, normalize_dag, validate_dag, publish_dag = (_dags[n] for n in ("ingest", "normalize", "validate", "publish"))
