"""One timed pipeline run for the benchmark, in its own process: `python -m medgov.bench.timed_run
LANDING LAKE OUT.json`. Writes per-stage wall seconds (Spark start-up counted apart) and what
each stage did."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def _facts(name: str, result: Any) -> dict[str, Any]:
    if name == "ingest":
        return {"batches": len(result.accepted), "bronze_rows": sum(r["bronze"] for r in result.rows.values()),
                "quarantined": sum(r["quarantined"] for r in result.rows.values())}
    if name == "normalize":
        return {"resources": sum(result.resources.values()), "invalid": sum(result.invalid.values())}
    if name == "validate":
        return {"checks": result.checks}
    return {}


def main(landing: str, lake: str, out: str) -> None:
    started = time.monotonic()
    from medgov.pipeline.runner import preload, run_stages
    from medgov.storage.context import make_context

    from medgov.pipeline.workload import run_size
    from medgov.storage.spark import profile_name

    work = run_size(lake, landing)  # before the preload thread starts importing (imports race)
    preload()
    ctx = make_context(lake, work=work)
    ctx.spark.range(1).count()  # the JVM and the first job: start-up, not stage work
    times = {"startup": time.monotonic() - started}
    facts: dict[str, Any] = {}

    def done(name: str, result: Any, seconds: float) -> None:
        times[name] = seconds
        facts.update(_facts(name, result))

    run_stages(ctx, landing, on_done=done)
    times["total"] = time.monotonic() - started
    ctx.spark.stop()
    Path(out).write_text(json.dumps({"seconds": times, "spark_profile": profile_name(work), **facts}),
                         encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:4])
