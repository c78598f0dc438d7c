"""The batch lifecycle: the stages a batch moves through (recorded in `control/batches`) and
the one ordered list of pipeline stages that move it. `medgov run`, the DAGs and the
benchmark all run `STAGES` (through `medgov.pipeline.runner`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class BatchStage(StrEnum):
    """Where a batch stands; the value is what `control/batches` stores."""

    RECEIVING = "receiving"  # claimed by ingest: out of every reader's view until bronze is whole
    BRONZE = "bronze"  # bronze written: normalize's backlog
    SILVER = "silver"  # silver written: validate's backlog
    VALIDATED = "validated"  # passed the quality gate: publish's backlog
    BLOCKED = "blocked"  # a blocking check failed: held back from gold
    PUBLISHED = "published"  # in the curated datasets


class DeliveryStatus(StrEnum):
    """The outcome of one delivery attempt; the value is what `control/deliveries` stores."""

    ACCEPTED = "accepted"  # read, verified and parsed: on its way through the stages
    REJECTED = "rejected"  # breaks the interface: nothing of it published until re-delivered
    DEFERRED = "deferred"  # not read within its time budget (slow storage): tried again next run


# from which batch stage on a zone's rows of the batch are complete (what readers may see)
COMPLETE_FROM: dict[str, tuple[BatchStage, ...]] = {
    "bronze": (BatchStage.BRONZE, BatchStage.SILVER, BatchStage.VALIDATED, BatchStage.BLOCKED, BatchStage.PUBLISHED),
    "silver": (BatchStage.SILVER, BatchStage.VALIDATED, BatchStage.BLOCKED, BatchStage.PUBLISHED),
}
# batches whose rows the curated datasets are built from
PUBLISHABLE: tuple[BatchStage, ...] = (BatchStage.VALIDATED, BatchStage.PUBLISHED)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: the batches it takes, where it leaves them, and its function
    (`module:function`, imported only when the stage runs)."""

    name: str
    takes: BatchStage | None  # None: ingest takes ready flags in the landing zone
    leaves: tuple[BatchStage, ...]
    function: str

    @property
    def job(self) -> str:
        """The stage's OpenLineage job name."""
        return f"medgov.{self.name}"


STAGES: tuple[Stage, ...] = (
    Stage("ingest", None, (BatchStage.BRONZE,), "medgov.ingest.stage:ingest"),
    Stage("normalize", BatchStage.BRONZE, (BatchStage.SILVER,), "medgov.normalize.stage:normalize"),
    Stage("validate", BatchStage.SILVER, (BatchStage.VALIDATED, BatchStage.BLOCKED), "medgov.quality.stage:validate"),
    Stage("publish", BatchStage.VALIDATED, (BatchStage.PUBLISHED,), "medgov.publish.stage:publish"),
)


def stage(name: str) -> Stage:
    """The stage called `name` (ingest | normalize | validate | publish)."""
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r} (stages: {', '.join(s.name for s in STAGES)})")
