"""The one runner of the stages: `medgov run` (all of them), each Airflow DAG (one) and the
benchmark (all, timed) call `run_stages`, which takes the pseudonym key first, holds each
stage's lock on the lake, and runs the stages in the lifecycle's order."""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from medgov.domain.pseudonym import load_key
from medgov.errors import MedgovError
from medgov.spec.lifecycle import STAGES, Stage, stage
from medgov.storage import control
from medgov.storage.lake import Lake
from medgov.storage.lineage import ParentRun
from medgov.storage.locks import stage_lock
from medgov.storage.memory import return_freed_memory
from medgov.storage.staging import remove_leftovers

if TYPE_CHECKING:
    from medgov.storage.context import Context

# called after each stage with its name, its result and the seconds it took
StageDone = Callable[[str, Any, float], None]

# Imports that cost seconds and that only a stage needs (Great Expectations alone takes ~7 s),
# by stage: loaded in the background while the JVM starts, which leaves Python idle anyway.
_SLOW_IMPORTS = {"validate": ("great_expectations",)}


def stage_function(s: Stage) -> Callable[..., Any]:
    """The function that runs stage `s` (imported on first use: reading the lifecycle starts nothing)."""
    module, _, name = s.function.partition(":")
    return getattr(importlib.import_module(module), name)


def preload(names: Iterable[str] | None = None) -> threading.Thread:
    """Start importing the named stages' slow dependencies in a background thread; call it
    before starting Spark. A failed import is left for the stage itself to report."""
    wanted = [m for n in (names if names is not None else [s.name for s in STAGES])
              for m in _SLOW_IMPORTS.get(n, ())]
    if wanted:
        # pyspark first, in this thread: GX imports it too, and two threads importing one
        # package at once can see it half-initialised ("cannot import name 'SQLContext' from
        # partially initialized module 'pyspark.sql'"); starting Spark needs it anyway
        importlib.import_module("pyspark.sql")

    def load() -> None:
        for module in wanted:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - the stage imports it again and says what is wrong
                return

    thread = threading.Thread(target=load, name="medgov-preload", daemon=True)
    thread.start()
    return thread


def run_stages(ctx: Context, landing: str | Path | None = None, names: Iterable[str] | None = None,
               on_done: StageDone | None = None) -> dict[str, Any]:
    """Run the named stages (default: all) in the lifecycle's order on their backlogs, each under its lock;
    returns each stage's result by name. Fails before touching anything without the key."""
    load_key()
    wanted = {stage(n).name for n in names} if names is not None else {s.name for s in STAGES}
    chosen = [s for s in STAGES if s.name in wanted]  # always in the lifecycle's order
    done: dict[str, Any] = {}
    for s in chosen:
        started = time.monotonic()
        with stage_lock(ctx.lake, s.name, ctx.progress):
            # a crashed run's staging (bronze-grade rows) goes before any stage runs again;
            # ingest does it itself (also when called directly), with its own parse folders
            if s.takes is not None:
                for name in remove_leftovers(ctx.lake.staging):
                    ctx.progress(f"removed a crashed run's staging folder {name}")
            if s.takes is None:
                if landing is None:
                    raise MedgovError(f"{s.name} needs the landing folder (MEDGOV_LANDING for the DAGs)")
                done[s.name] = stage_function(s)(ctx, landing)
            else:
                done[s.name] = stage_function(s)(ctx)
        return_freed_memory()  # what the stage freed (parsed batches, GX results) is not the next one's
        if on_done:
            on_done(s.name, done[s.name], time.monotonic() - started)
    return done


def check_revalidatable(lake: Lake, keys: list[str]) -> None:
    """Raise the one-line reason why these batches cannot go through the gate again (no lake,
    an unknown batch, one not yet through normalize). Starts no Spark."""
    if lake.is_local and not Path(lake.root).is_dir():
        raise MedgovError(f"lake folder not found: {lake.root}")
    current = control.batches(lake)
    unknown = [k for k in keys if k not in current]
    if unknown:
        raise MedgovError(f"no batch {unknown[0]} in {lake.root} (batch keys are ORG/BATCH_ID)")
    early = [k for k in keys if current[k]["stage"] not in control.REQUEUEABLE]
    if early:
        raise MedgovError(f"batch {early[0]} is {current[early[0]]['stage']}: it reaches the gate on its own")


def revalidate(ctx: Context, keys: list[str]) -> dict[str, Any]:
    """Send batches back through the quality gate (after a configuration change: thresholds,
    concept maps) and publish what passes; the validate and publish results by name."""
    from medgov.spec.lifecycle import BatchStage

    load_key()
    check_revalidatable(ctx.lake, keys)
    moved = control.requeue(ctx.lake, keys, BatchStage.SILVER, ctx.run_id)
    if len(moved) != len(keys):
        raise MedgovError("another run moved these batches meanwhile; try again")
    return run_stages(ctx, None, ["validate", "publish"])


def has_work(name: str, lake: str, landing: str | None = None) -> bool:
    """True when the stage would do something (ingest: a pending ready flag). Starts no Spark."""
    s = stage(name)
    if s.takes is None:
        from medgov.ingest.landing import pending_flags

        return bool(landing) and bool(pending_flags(landing, lake))
    if not Path(lake).exists():
        return False
    if s.name == "normalize":  # changed concept maps send published batches back to it
        from medgov.normalize.remap import pending
        from medgov.spec.site import load_site
        from medgov.spec.terminology import Terminology

        if pending(Lake.at(lake), Terminology.load(load_site().folder)):
            return True
    return bool(control.in_stage(Lake.at(lake), s.takes))


def run_stage(name: str, lake: str, landing: str | None = None, parent: ParentRun | None = None) -> dict[str, Any]:
    """Run one stage in this process on its backlog, as a DAG task does; its result as a dict."""
    from medgov.storage.context import make_context

    from medgov.pipeline.workload import run_size

    load_key()  # a worker without the key fails before it starts Spark or touches the lake
    work = run_size(lake, landing, [name])  # before the preload thread starts importing (imports race)
    preload([name])
    ctx = make_context(lake, parent=parent, work=work)
    return asdict(run_stages(ctx, landing, [name])[name])
