"""How many source rows a run is about to process or read, known before Spark starts: the
Spark profile (`medgov.storage.spark`) is chosen from it. Spark-free."""

from __future__ import annotations

import os
from pathlib import Path

from medgov.spec.lifecycle import STAGES
from medgov.storage import control
from medgov.storage.lake import Lake

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


def lake_rows(lake: str) -> int:
    """Declared rows of every batch the lake has accepted."""
    return sum(b["rows_declared"] or 0 for b in control.batches(Lake.at(lake)).values())


def run_rows(lake: str, landing: str | Path | None, names: list[str] | None = None) -> int | None:
    """Source rows the named stages (default: all) process or read: the pending deliveries for
    ingest; for any later stage, every accepted batch's rows. Those stages read silver beyond
    their backlog (normalize's MERGE reads the delivering institutions' partitions, publish
    scans silver for the persons a batch touched), so a small delivery into a large lake is a
    large run: on the short profile, publish of 9,456 rows into a 5 M-row lake took 437 s.
    None when it cannot be told (an unreadable lake)."""
    wanted = [s for s in STAGES if names is None or s.name in names]
    try:
        rows = landing_rows(landing, lake) if landing and any(s.takes is None for s in wanted) else 0
        if any(s.takes is not None for s in wanted) and (not Lake.at(lake).is_local or Path(lake).exists()):
            rows += lake_rows(lake)
        return rows
    except Exception:  # noqa: BLE001 - an estimate only: unknown means the default profile
        return None
