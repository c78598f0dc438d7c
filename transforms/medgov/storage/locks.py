"""One process per stage and lake at a time, so two runs never do the same work twice.

On a local (or NFS/POSIX) lake the lock is an advisory `flock` on `<lake>/_locks/<stage>.lock`,
released by the kernel when the holder dies, so a killed run never leaves a stale lock. A
second `medgov run` waits for each stage in turn and then finds the work done. Different
stages run side by side (an ingest while a publish runs); the tables they share commit with
Delta's optimistic concurrency and retry (see `commits`). On an S3-compatible lake the lock is
a lease object, `<lake>/_locks/<stage>.lock`, written with conditional PUTs and renewed while
the stage runs (`medgov.storage.lease`): a killed run blocks the stage for one lease at most.
Other object stores get no lock; there the Airflow DAGs serialise each stage
(`max_active_runs=1`).
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from medgov.errors import MedgovError
from medgov.storage.lake import Lake

POLL_SECONDS = 0.5


@contextmanager
def stage_lock(lake: Lake, stage: str, progress: Callable[[str], None] = lambda m: None) -> Iterator[None]:
    """Hold the lake's lock for `stage`; wait (up to MEDGOV_LOCK_TIMEOUT seconds) while another process does."""
    timeout = float(os.environ.get("MEDGOV_LOCK_TIMEOUT", "21600"))
    if not lake.is_local:
        if lake.root.startswith(("s3://", "s3a://")):
            from medgov.storage.lease import lease_lock

            with lease_lock(f"{lake.root}/_locks/{stage}.lock", stage, timeout, progress):
                yield
        else:
            yield
        return
    folder = Path(lake.root) / "_locks"
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(folder / f"{stage}.lock", "a+") as handle:
        waiting = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    progress(f"{stage}: waiting for another run of this stage to finish")
                    waiting = True
                if time.monotonic() > deadline:
                    raise MedgovError(f"another run held the {stage} lock of {lake.root} for over {timeout:.0f} s "
                                      "(MEDGOV_LOCK_TIMEOUT)") from None
                time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
