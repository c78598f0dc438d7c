"""A run's size, the figure the Spark profile (`medgov.storage.spark`) is chosen from; the
pipeline measures it before Spark starts (`medgov.pipeline.workload.run_size`)."""

from __future__ import annotations

from typing import NamedTuple


class Workload(NamedTuple):
    """A run's size in source rows: those it processes (its backlog) and those it reads
    besides (the rest of the lake)."""

    backlog: int
    lake: int = 0
