"""How many source rows a run is about to process or read, known before Spark starts: the
Spark profile (`medgov.storage.spark`) is chosen from it. It starts no Spark."""

from __future__ import annotations

import os
from pathlib import Path

from medgov.spec.lifecycle import STAGES
from medgov.storage import control
from medgov.storage.lake import Lake
from medgov.storage.workload import Workload

__all__ = ["Workload", "landing_rows", "run_size"]


# bytes per data row of a delivered extract, for batches not read yet (the landing zone's
# manifests are untrusted until ingest reads them, so only file sizes are used); the sample
# feeds measure 105-115
BYTES_PER_ROW = 110


def _folder_bytes(landing: Path, folder: Path) -> int:
    """Bytes of the regular files directly in `folder`; nothing is followed out of the landing
    zone (a linked batch or institution folder counts 0: ingest refuses it with its reason)."""
    total = 0
    try:
        if folder.is_symlink() or folder.parent.is_symlink() or \
                Path(os.path.realpath(folder)).parent.parent != Path(os.path.realpath(landing)):
            return 0
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

    return sum(_folder_bytes(Path(landing), Path(landing) / key) for key in pending_flags(landing, lake)) // BYTES_PER_ROW


def _declared(batches: list[dict]) -> int:
    return sum(b["rows_declared"] or 0 for b in batches)


def run_size(lake: str, landing: str | Path | None, names: list[str] | None = None) -> Workload | None:
    """The size of a run of the named stages (default: all): its backlog (the pending
    deliveries for ingest, the batches waiting in a later stage) and the rest of the lake,
    which every later stage reads beyond its backlog (normalize's MERGE reads the delivering
    institutions' partitions, publish scans silver for the persons a batch touched): a small
    delivery into a large lake is a small backlog in a large read. None when it cannot be told
    (an unreadable lake)."""
    wanted = [s for s in STAGES if names is None or s.name in names]
    try:
        backlog = landing_rows(landing, lake) if landing and any(s.takes is None for s in wanted) else 0
        waiting = {s.takes for s in wanted if s.takes is not None}
        if not waiting or (Lake.at(lake).is_local and not Path(lake).exists()):
            return Workload(backlog)
        batches = list(control.batches(Lake.at(lake)).values())
        queued = _declared([b for b in batches if b["stage"] in waiting])
        return Workload(backlog + queued, _declared(batches) - queued)
    except Exception:  # noqa: BLE001 - an estimate only: unknown means the default profile
        return None
