"""The whole pipeline: ingest -> normalize -> validate -> publish, as the CLI and tests run it.

Under Airflow each stage is its own DAG calling the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medgov.context import Context
from medgov.identity import load_key
from medgov.locks import stage_lock
from medgov.stage_ingest import IngestResult, ingest
from medgov.stage_normalize import NormalizeResult, normalize
from medgov.stage_publish import PublishResult, publish
from medgov.stage_validate import ValidateResult, validate


@dataclass
class RunResult:
    ingest: IngestResult
    normalize: NormalizeResult
    validate: ValidateResult
    publish: PublishResult


def run_all(ctx: Context, landing: str | Path) -> RunResult:
    """Process every ready batch not yet processed, then carry each stage's backlog forward."""
    load_key()  # fail before touching anything when the pseudonym key is missing
    with stage_lock(ctx.lake, "ingest", ctx.progress):
        i = ingest(ctx, landing)
    with stage_lock(ctx.lake, "normalize", ctx.progress):
        n = normalize(ctx)
    with stage_lock(ctx.lake, "validate", ctx.progress):
        v = validate(ctx)
    with stage_lock(ctx.lake, "publish", ctx.progress):
        p = publish(ctx)
    return RunResult(i, n, v, p)
