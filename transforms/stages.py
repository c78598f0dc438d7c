"""Run one stage by name, starting Spark only when the stage has work: what the DAGs call."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from medgov import state
from medgov.lake import Lake
from medgov.lineage import ParentRun
from medgov.locks import stage_lock

BACKLOG_STAGE = {"normalize": "bronze", "validate": "silver", "publish": "validated"}


def has_work(stage: str, lake: str, landing: str | None = None) -> bool:
    """True when the stage would do something (ingest: a pending ready flag)."""
    if stage == "ingest":
        from medgov.airflow_trigger import pending_flags

        return bool(landing) and bool(pending_flags(landing, lake))
    if not Path(lake).exists():
        return False
    return bool(state.in_stage(Lake.at(lake), BACKLOG_STAGE[stage]))


def run_stage(stage: str, lake: str, landing: str | None = None, parent: ParentRun | None = None) -> dict[str, Any]:
    """Run `stage` (ingest | normalize | validate | publish) on its backlog; returns its result."""
    from medgov.context import make_context
    from medgov.identity import load_key
    from medgov.stage_ingest import ingest
    from medgov.stage_normalize import normalize
    from medgov.stage_publish import publish
    from medgov.stage_validate import validate

    load_key()  # a worker without the key fails before it touches the lake, whatever the stage
    ctx = make_context(lake, parent=parent)
    with stage_lock(ctx.lake, stage):
        if stage == "ingest":
            if landing is None:
                raise ValueError("ingest needs the landing folder")
            result = ingest(ctx, landing)
        else:
            result = {"normalize": normalize, "validate": validate, "publish": publish}[stage](ctx)
    return asdict(result)
