"""Airflow event trigger for the landing zone: fires when any `*.ready` flag is new.

Airflow's own file triggers watch one named file, but batch names are not known in
advance. This trigger watches every `<landing>/<org>/<batch>.ready` and fires for flags not
yet taken by ingest (absent from the lake's delivery log, or written after the batch's last
delivery: a re-delivery). Flags are left in place — they are the hospitals' record.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from medgov import state
from medgov.lake import Lake
from medgov.manifest import discover


def pending_flags(landing: str | Path, lake: str | Path) -> list[str]:
    """Batch keys whose ready flag has not been ingested since it was written."""
    seen = state.last_deliveries(Lake.at(lake)) if Path(lake).exists() else {}
    pending = []
    for ref in discover(Path(landing)):
        last = seen.get(ref.key)
        flag_time = datetime.fromtimestamp(ref.flag.stat().st_mtime, timezone.utc)
        if last is None or flag_time > last["received_at"]:
            pending.append(ref.key)
    return pending


class LandingZoneTrigger(BaseEventTrigger):
    """Fire once per scan that finds pending ready flags; the event lists their batch keys."""

    def __init__(self, landing: str, lake: str, poke_interval: float = 5.0) -> None:
        super().__init__()
        self.landing = landing
        self.lake = lake
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("medgov.airflow_trigger.LandingZoneTrigger",
                {"landing": self.landing, "lake": self.lake, "poke_interval": self.poke_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        fired: set[str] = set()  # keys announced by this trigger instance, until ingest records them
        while True:
            pending = await asyncio.to_thread(pending_flags, self.landing, self.lake)
            fired &= set(pending)
            new = [k for k in pending if k not in fired]
            if new:
                fired.update(new)
                self.log.info("ready flags: %s", ", ".join(new))
                yield TriggerEvent({"batches": new})
            await asyncio.sleep(self.poke_interval)
