"""How many source rows a run is about to process, known before Spark starts: the Spark
profile (`medgov.storage.spark`) is chosen from it. Spark-free."""

from __future__ import annotations

import os
from pathlib import Path

from medgov.spec.lifecycle import STAGES, BatchStage
from medgov.storage import control
from medgov.storage.lake import Lake

# bytes per data row of a delivered extract, for batches not read yet (the landing zone's
# manifests are untrusted until ingest reads them, so only file sizes are used); the sample
# feeds measure 105-115
BYTES_PER_ROW = 110


def _folder_bytes(folder: Path) -> int:
    """Bytes of the regular files directly in `folder` (links and subfolders are not followed)."""
    total = 0
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
    except OSError:
        return 0
    return total


def landing_rows(landing: str | Path, lake: str) -> int:
    """Estimated data rows of the batches whose ready flags are pending."""
    from medgov.ingest.landing import pending_flags

    return sum(_folder_bytes(Path(landing) / key) for key in pending_flags(landing, lake)) // BYTES_PER_ROW


def backlog_rows(lake: str, stages: list[BatchStage]) -> int:
    """Declared rows of the accepted batches waiting in `stages`."""
    return sum(b["rows_declared"] or 0 for b in control.batches(Lake.at(lake)).values() if b["stage"] in stages)


def pending_rows(lake: str, landing: str | Path | None, names: list[str] | None = None) -> int | None:
    """Source rows the named stages (default: all) will process: the pending deliveries for
    ingest, each other stage's backlog (a batch waiting at an earlier stage of the same run is
    counted there). None when it cannot be told (an object-store lake, an unreadable one)."""
    wanted = [s for s in STAGES if names is None or s.name in names]
    try:
        if not Lake.at(lake).is_local:
            return None
        rows = landing_rows(landing, lake) if landing and any(s.takes is None for s in wanted) else 0
        waiting = [s.takes for s in wanted if s.takes is not None]
        if waiting and Path(lake).exists():
            rows += backlog_rows(lake, waiting)
        return rows
    except Exception:  # noqa: BLE001 - an estimate only: unknown means the default profile
        return None
