"""One timed pipeline run for the benchmark, in its own process: `python -m medgov.bench_run
LANDING LAKE OUT.json`. Writes per-stage wall seconds (Spark start-up counted apart)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(landing: str, lake: str, out: str) -> None:
    started = time.monotonic()
    from medgov.context import make_context
    from medgov.stage_ingest import ingest
    from medgov.stage_normalize import normalize
    from medgov.stage_publish import publish
    from medgov.stage_validate import validate

    ctx = make_context(lake)
    ctx.spark.range(1).count()  # the JVM and the first job: start-up, not stage work
    times = {"startup": time.monotonic() - started}
    facts: dict[str, object] = {}
    for name, stage in (("ingest", lambda: ingest(ctx, landing)), ("normalize", lambda: normalize(ctx)),
                        ("validate", lambda: validate(ctx)), ("publish", lambda: publish(ctx))):
        t = time.monotonic()
        result = stage()
        times[name] = time.monotonic() - t
        if name == "ingest":
            facts["batches"] = len(result.accepted)
            facts["bronze_rows"] = sum(r["bronze"] for r in result.rows.values())
            facts["quarantined"] = sum(r["quarantined"] for r in result.rows.values())
        elif name == "normalize":
            facts["resources"] = sum(result.resources.values())
            facts["invalid"] = sum(result.invalid.values())
        elif name == "validate":
            facts["checks"] = result.checks
    times["total"] = time.monotonic() - started
    ctx.spark.stop()
    Path(out).write_text(json.dumps({"seconds": times, **facts}), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:4])
