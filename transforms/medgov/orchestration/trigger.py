"""Airflow event trigger for the landing zone: fires when any `*.ready` flag is new.

Airflow's own file triggers watch one named file, but batch names are not known in
advance. This trigger watches every `<landing>/<org>/<batch>.ready` and fires for flags not
yet taken by ingest (absent from the lake's delivery log, or written after the batch's last
delivery: a re-delivery). Flags are left in place — they are the hospitals' record.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from medgov.ingest.landing import pending_flags

# The class path Airflow stores with each serialised trigger. Triggers stored before the
# package layout moved name `medgov.airflow_trigger.LandingZoneTrigger`, which still imports.
CLASS_PATH = "medgov.orchestration.trigger.LandingZoneTrigger"


class LandingZoneTrigger(BaseEventTrigger):
    """Fire once per scan that finds pending ready flags; the event lists their batch keys."""

    def __init__(self, landing: str, lake: str, poke_interval: float = 5.0) -> None:
        super().__init__()
        self.landing = landing
        self.lake = lake
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (CLASS_PATH,
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
