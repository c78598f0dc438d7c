"""The landing zone (extract-spec §1): batch folders under `<landing>/<org_code>/`, each
announced by a `<batch_id>.ready` flag written last; which flags are new, and reading a
batch across the trust boundary (`boundary`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from medgov.errors import BatchDeferred, BatchRejected
from medgov.ingest import boundary
from medgov.ingest.boundary import Landed
from medgov.spec.lifecycle import DeliveryStatus
from medgov.spec.site import LandingLimits
from medgov.storage import control
from medgov.storage.lake import Lake

__all__ = ["BatchDeferred", "BatchRef", "BatchRejected", "Landing", "discover", "pending_flags", "read"]

ORG_CODE = re.compile(r"[A-Z0-9]{6,22}")
BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BAD_NAME = "ready flag name breaks the interface (org code [A-Z0-9]{6,22}, batch id [A-Za-z0-9_-]{1,64})"


@dataclass(frozen=True)
class BatchRef:
    """A batch folder in the landing zone whose `.ready` flag exists."""

    landing: Path
    org_code: str
    batch_id: str
    flagged_at: datetime | None = None  # the flag's modification time

    @property
    def key(self) -> str:
        return f"{self.org_code}/{self.batch_id}"


@dataclass(frozen=True)
class Landing:
    """The landing zone at one look: batches ready to read, and flags or folders refused with
    their reason (bad names, links, special files), keyed `org/batch_id` or `org/*`."""

    batches: list[BatchRef]
    refused: dict[str, str]


def look(landing: Path) -> Landing:
    """Ready batches sorted by org and batch id, and what was refused on the way."""
    seen = boundary.survey(landing)
    refs, refused = [], dict(seen.refused)
    for org, batch_id, flagged_at in sorted(seen.flags):
        if ORG_CODE.fullmatch(org) and BATCH_ID.fullmatch(batch_id):
            if f"{org}/{batch_id}" not in refused:
                refs.append(BatchRef(landing, org, batch_id, flagged_at))
        else:
            refused[f"{org}/{batch_id}.ready"] = BAD_NAME
    return Landing(refs, refused)


def discover(landing: Path) -> list[BatchRef]:
    """Batches whose `.ready` flag exists, sorted by org and batch id; bad names are skipped."""
    return look(landing).batches


def read(batch: BatchRef, limits: LandingLimits) -> Landed:
    """Every file of the batch folder, within the site's limits; raises BatchRejected or BatchDeferred."""
    return boundary.read_within_budget(batch.landing, batch.org_code, batch.batch_id, limits)


def refusal_fingerprint(batch: BatchRef) -> str:
    return boundary.refusal_fingerprint(batch.landing, batch.org_code, batch.batch_id)


def pending_flags(landing: str | Path, lake: str | Path) -> list[str]:
    """Batch keys whose ready flag has not been ingested since it was written (absent from the
    lake's delivery log, or written after the batch's last delivery: a re-delivery), and
    batches deferred for slow storage (tried again)."""
    seen = control.last_deliveries(Lake.at(lake)) if Path(lake).exists() else {}
    pending = []
    for ref in discover(Path(landing)):
        last = seen.get(ref.key)
        if last is None or last["status"] == DeliveryStatus.DEFERRED or ref.flagged_at > last["received_at"]:
            pending.append(ref.key)
    return pending
