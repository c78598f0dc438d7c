"""Run the CLI in a subprocess and read a lake back as comparable rows (tests only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from deltalake import DeltaTable

from medgov.spec.tables import BATCH_COLUMN, BRONZE_TABLES, SILVER_RESOURCES

# run-specific values: who wrote a row and when, not what it says
VOLATILE = {"run_id", "updated_run_id", "_ingested_at", "quarantined_at", "validated_at", "received_at", "held_at",
            "released_at"}
# logs of the runs themselves: a crashed and resumed lake has more of them, by design
RUN_LOGS = {"control/runs", "control/published"}
CONTROL_VOLATILE = {"updated_at", "applied_at"}
SILVER = tuple(t.name for t in SILVER_RESOURCES)


def medgov(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`medgov <args>` in a fresh process (its own Spark), output captured, wide terminal."""
    proc = subprocess.run([sys.executable, "-m", "medgov.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "250", **(env or {})}, timeout=1200)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _row(r: dict, drop: set[str]) -> str:
    return json.dumps({k: v for k, v in r.items() if k not in drop}, default=str, sort_keys=True, ensure_ascii=False)


def tables(lake: Path) -> dict[str, list[str]]:
    """Every Delta table's rows as sorted JSON, without volatile columns."""
    out = {}
    for log in sorted(lake.rglob("_delta_log")):
        uri = log.parent
        rel = str(uri.relative_to(lake))
        if rel in RUN_LOGS:
            continue
        drop = VOLATILE | (CONTROL_VOLATILE if rel.startswith("control") else set())
        out[rel] = sorted(_row(r, drop) for r in DeltaTable(str(uri)).to_pyarrow_table().to_pylist())
    return out


def visible_by_batch(lake: Path) -> dict[str, dict[str, list[str]]]:
    """What a reader sees: batch -> table -> sorted rows (bronze and silver through `visible`)."""
    from medgov.storage.lake import Lake
    from medgov.storage.visible import read_visible

    seen: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for zone, names in (("bronze", BRONZE_TABLES), ("silver", SILVER)):
        for name in names:
            if DeltaTable.is_deltatable(str(lake / zone / name)):
                for r in read_visible(Lake.at(lake), zone, name).to_pylist():
                    seen[r[BATCH_COLUMN[zone]]].setdefault(f"{zone}/{name}", []).append(_row(r, VOLATILE))
    return {b: {t: sorted(rows) for t, rows in per.items()} for b, per in seen.items()}
