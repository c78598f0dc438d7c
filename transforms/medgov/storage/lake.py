"""Where things live inside a lake directory (local path or object-store URI)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Lake:
    """Names of the zones and tables of one lake; `root` may be a path or an s3:// URI."""

    root: str

    @classmethod
    def at(cls, root: str | Path) -> "Lake":
        root = str(root)
        if "://" not in root:
            root = str(Path(root).resolve())
        return cls(root.rstrip("/"))

    @property
    def is_local(self) -> bool:
        return "://" not in self.root

    def table(self, zone: str, name: str) -> str:
        return f"{self.root}/{zone}/{name}"

    def bronze(self, name: str) -> str:
        return self.table("bronze", name)

    def silver(self, name: str) -> str:
        return self.table("silver", name)

    def gold(self, name: str) -> str:
        return self.table("gold", name)

    @property
    def batches(self) -> str:
        return self.table("control", "batches")

    @property
    def deliveries(self) -> str:
        return self.table("control", "deliveries")

    @property
    def quarantine(self) -> str:
        return self.table("bronze", "quarantine")

    @property
    def quality_results(self) -> str:
        return self.table("quality", "quality_results")

    @property
    def holds(self) -> str:
        return self.table("quality", "holds")

    @property
    def check_examples(self) -> str:
        return self.table("quality", "check_examples")

    @property
    def gx_root(self) -> str:
        return f"{self.root}/quality/gx"

    @property
    def data_docs_index(self) -> str:
        return f"{self.gx_root}/gx/uncommitted/data_docs/local_site/index.html"

    @property
    def staging(self) -> Path | None:
        """Scratch space for rows on their way into a table (Parquet the executors can read and
        write): `MEDGOV_STAGING_DIR`, else `_staging/` in a local lake; None for an object-store
        lake without one. It holds bronze-grade data while a stage runs, and nothing after."""
        configured = os.environ.get("MEDGOV_STAGING_DIR")
        if configured:
            return Path(configured)
        return Path(self.root) / "_staging" if self.is_local else None

    @property
    def lineage_file(self) -> str:
        return f"{self.root}/lineage/events.jsonl"
