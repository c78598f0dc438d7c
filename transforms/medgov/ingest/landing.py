"""The landing zone (extract-spec §1): batch folders under `<landing>/<org_code>/`, each
announced by a `<batch_id>.ready` flag written last; which flags are new, and what a batch
folder holds."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from medgov.storage import control
from medgov.storage.lake import Lake

ORG_CODE = re.compile(r"[A-Z0-9]{6,22}")
BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class BatchRef:
    """A batch folder in the landing zone whose `.ready` flag exists."""

    landing: Path
    org_code: str
    batch_id: str

    @property
    def folder(self) -> Path:
        return self.landing / self.org_code / self.batch_id

    @property
    def flag(self) -> Path:
        return self.landing / self.org_code / f"{self.batch_id}.ready"

    @property
    def key(self) -> str:
        return f"{self.org_code}/{self.batch_id}"


class BatchRejected(Exception):
    """The batch breaks the interface; nothing of it is published. The message is the reason."""


def discover(landing: Path) -> list[BatchRef]:
    """Batches whose `.ready` flag exists, sorted by org and batch id; bad names are skipped."""
    refs: list[BatchRef] = []
    for flag in sorted(landing.glob("*/*.ready")):
        org, batch_id = flag.parent.name, flag.name[: -len(".ready")]
        if ORG_CODE.fullmatch(org) and BATCH_ID.fullmatch(batch_id):
            refs.append(BatchRef(landing, org, batch_id))
    return refs


def invalid_flags(landing: Path) -> list[str]:
    """`.ready` flags whose org code or batch id breaks the interface's naming rules."""
    bad = []
    for flag in sorted(landing.glob("*/*.ready")):
        org, batch_id = flag.parent.name, flag.name[: -len(".ready")]
        if not (ORG_CODE.fullmatch(org) and BATCH_ID.fullmatch(batch_id)):
            bad.append(f"{org}/{flag.name}")
    return bad


def fingerprint(batch: BatchRef) -> str:
    """Content hash of everything in the batch folder (names and bytes)."""
    h = hashlib.sha256()
    if batch.folder.is_dir():
        for p in sorted(batch.folder.iterdir()):
            if p.is_file():
                h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def pending_flags(landing: str | Path, lake: str | Path) -> list[str]:
    """Batch keys whose ready flag has not been ingested since it was written (absent from the
    lake's delivery log, or written after the batch's last delivery: a re-delivery)."""
    seen = control.last_deliveries(Lake.at(lake)) if Path(lake).exists() else {}
    pending = []
    for ref in discover(Path(landing)):
        last = seen.get(ref.key)
        flag_time = datetime.fromtimestamp(ref.flag.stat().st_mtime, timezone.utc)
        if last is None or flag_time > last["received_at"]:
            pending.append(ref.key)
    return pending
