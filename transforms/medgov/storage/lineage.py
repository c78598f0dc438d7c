"""OpenLineage events for each stage run: START, then COMPLETE or FAIL.

Transport follows the standard OpenLineage configuration (`OPENLINEAGE_CONFIG`, an
`openlineage.yml`, `OPENLINEAGE__…` variables, `OPENLINEAGE_URL` for HTTP/Marquez). With
none of those, events are appended as JSON lines to `<lake>/lineage/events.jsonl`; on an
object-store lake, where nothing appends, each event is its own object
`<lake>/lineage/events-<time>.json`. `events` reads either back.
Facets carry column names, counts and check outcomes only — never data values.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated.base import DatasetFacet, RunFacet
from openlineage.client.generated import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    schema_dataset,
)
from openlineage.client.transport.file import FileConfig, FileTransport

from medgov.storage import control
from medgov.storage.lake import Lake
from medgov.storage.objects import files, filesystem, read_bytes

NAMESPACE = os.environ.get("MEDGOV_LINEAGE_NAMESPACE", "medgov")
PRODUCER = "https://github.com/medgov/medgov"


@attr.define
class TerminologyFacet(DatasetFacet):
    """medgov's dataset facet on Observations: the content hash of the concept maps in force
    (packaged and site), and how many rows each mapping method coded in this run. Its schema
    is `schemas/facets/TerminologyFacet.json`."""

    version: str
    methods: dict[str, int] = attr.field(factory=dict)

    @staticmethod
    def _get_schema() -> str:
        return f"{PRODUCER}/blob/main/schemas/facets/TerminologyFacet.json"


@attr.define
class SiteConfigFacet(RunFacet):
    """medgov's run facet: which site configuration the stage ran under (the content hash of
    the `--config` folder, `none` for the packaged defaults). Its schema is
    `schemas/facets/SiteConfigFacet.json`."""

    version: str

    @staticmethod
    def _get_schema() -> str:
        return f"{PRODUCER}/blob/main/schemas/facets/SiteConfigFacet.json"


@dataclass(frozen=True)
class ParentRun:
    """The run that started this one (an Airflow task instance, under Airflow)."""

    namespace: str
    job_name: str
    run_id: str


def _configured_elsewhere() -> bool:
    env = os.environ
    return bool(
        env.get("OPENLINEAGE_URL") or env.get("OPENLINEAGE_CONFIG") or env.get("OPENLINEAGE_DISABLED")
        or any(k.startswith("OPENLINEAGE__TRANSPORT") for k in env) or Path("openlineage.yml").exists()
    )


def client_for(lake: Lake) -> OpenLineageClient:
    """The standard-configured client, or files under the lake by default."""
    if _configured_elsewhere():
        return OpenLineageClient()
    if lake.is_local:
        Path(lake.lineage_file).parent.mkdir(parents=True, exist_ok=True)
        return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=lake.lineage_file, append=True)))
    # one object per event: the transport names each `<path>-<time>.json`
    config = FileConfig(log_file_path=filesystem(_events_prefix(lake))[1], append=False,
                        filesystem="medgov.storage.objects.fsspec_filesystem", fs_kwargs={"uri": lake.root})
    return OpenLineageClient(transport=FileTransport(config))


def _events_prefix(lake: Lake) -> str:
    return lake.lineage_file.removesuffix(".jsonl")


def location(lake: Lake) -> str:
    """Where the default transport writes the lake's events, for people to find them."""
    return lake.lineage_file if lake.is_local else f"{_events_prefix(lake)}-*.json"


def events(lake: Lake) -> list[dict[str, Any]]:
    """The lake's lineage events (from its default file transport), oldest first. A line or
    object cut short by a crash is skipped; the next complete event still counts."""
    if lake.is_local:
        path = Path(lake.lineage_file)
        texts = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    else:
        folder, name = _events_prefix(lake).rsplit("/", 1)
        texts = [(read_bytes(uri) or b"").decode("utf-8") for uri in files(folder, f"{name}-")]
    out = []
    for text in texts:
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return sorted(out, key=lambda e: e.get("eventTime", ""))  # stable: a file's order among equals


def dataset_id(uri: str) -> tuple[str, str]:
    """OpenLineage dataset naming: `file` + absolute path, or `scheme://authority` + path."""
    if "://" not in uri:
        return "file", uri
    scheme, rest = uri.split("://", 1)
    authority, _, path = rest.partition("/")
    return f"{scheme}://{authority}", "/" + path


@dataclass
class DatasetInfo:
    uri: str
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    rows: int | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)
    column_lineage: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # out col -> [(input uri, col)]
    custom: dict[str, DatasetFacet] = field(default_factory=dict)  # medgov's own facets, by name

    def facets(self) -> dict[str, Any]:
        facets: dict[str, Any] = {}
        if self.columns:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in self.columns])
        if self.column_lineage:
            fields = {}
            for out_col, sources in self.column_lineage.items():
                inputs = []
                for src_uri, src_col in sources:
                    ns, name = dataset_id(src_uri)
                    inputs.append(column_lineage_dataset.InputField(namespace=ns, name=name, field=src_col))
                fields[out_col] = column_lineage_dataset.Fields(inputFields=inputs)
            facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)
        if self.assertions:
            facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=[data_quality_assertions_dataset.Assertion(**a) for a in self.assertions])
        return facets | self.custom


@dataclass
class StageRun:
    """What a stage reports while it runs; turned into the COMPLETE event."""

    run_id: str
    inputs: list[DatasetInfo] = field(default_factory=list)
    outputs: list[DatasetInfo] = field(default_factory=list)


def _event(state: RunState, job_name: str, run: StageRun, parent: ParentRun | None, error: str | None,
           site: str | None = None) -> RunEvent:
    run_facets: dict[str, Any] = {}
    if site is not None:
        run_facets["medgov_site"] = SiteConfigFacet(version=site)
    if parent:
        run_facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent.run_id),
            job=parent_run.Job(namespace=parent.namespace, name=parent.job_name))
    if error:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=error, programmingLanguage="python")
    inputs = [InputDataset(*dataset_id(d.uri), facets=d.facets()) for d in run.inputs]
    outputs = []
    for d in run.outputs:
        out_facets = {}
        if d.rows is not None:
            out_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=d.rows)
        outputs.append(OutputDataset(*dataset_id(d.uri), facets=d.facets(), outputFacets=out_facets))
    job_facets = {"jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="MEDGOV", jobType="TASK")}
    return RunEvent(eventType=state, eventTime=datetime.now(timezone.utc).isoformat(),
                    run=Run(runId=run.run_id, facets=run_facets), job=Job(NAMESPACE, job_name, facets=job_facets),
                    producer=PRODUCER, inputs=inputs, outputs=outputs)


@contextmanager
def stage_run(lake: Lake, job_name: str, parent: ParentRun | None = None, site: str | None = None
              ) -> Iterator[StageRun]:
    """Emit START now, COMPLETE with what the stage recorded, or FAIL with the error's one
    line; each with the site configuration's version when given, which a completed run also
    logs in `control/runs`."""
    client = client_for(lake)
    run = StageRun(run_id=str(uuid.uuid7()) if hasattr(uuid, "uuid7") else _uuid7())
    started, at = time.monotonic(), control.now()
    client.emit(_event(RunState.START, job_name, run, parent, None, site))
    try:
        yield run
    except BaseException as exc:
        client.emit(_event(RunState.FAIL, job_name, run, parent, f"{type(exc).__name__}: {str(exc)[:500]}", site))
        raise
    client.emit(_event(RunState.COMPLETE, job_name, run, parent, None, site))
    if site is not None:  # the run log, keyed like the lineage events: which settings the run had
        control.record_run(lake, run.run_id, job_name.removeprefix("medgov."), site, at, time.monotonic() - started)


def _uuid7() -> str:
    from openlineage.client.uuid import generate_new_uuid

    return str(generate_new_uuid())
