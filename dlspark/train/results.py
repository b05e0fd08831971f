"""What the trainers and their workers return: typed records instead of dicts with agreed keys."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlspark.manifest import Manifest


@dataclass(frozen=True)
class WarmStart:
    """What a warm start copied from the current model version (train.warm_start)."""

    source: str  # the model version's directory
    layers: list[str]  # the layers whose weights were copied
    products_kept: int  # products of the new vocabulary whose rows came from the saved model
    customers_kept: int

    def describe(self) -> str:
        return (
            f"{len(self.layers)} layers copied, {self.products_kept:,} products and "
            f"{self.customers_kept:,} customers of its vocabularies kept"
        )


@dataclass(frozen=True)
class WorkerResult:
    """One barrier worker's result, sent from its process to the driver as one JSON line."""

    rank: int
    model: str | None  # the chief's saved model; None on the other workers
    history: list[dict[str, float]]
    digest: str  # of the final weights: equal on every worker when they trained in step
    samples_per_s: list[float]
    marks: dict[str, float]  # launch milestones (time.time()): started, imported, strategy, data, first_step
    warm_start: WarmStart | None = None
    started_ahead: bool = False  # the process was started ahead of the job, its import begun or done (ahead.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> WorkerResult:
        warm = raw.get("warm_start")
        return cls(**{**raw, "warm_start": WarmStart(**warm) if warm else None})


@dataclass(frozen=True)
class WorkerFailure:
    """Why a barrier worker failed, sent by its task to the driver's log server as structured data."""

    rank: int
    exit_code: int | None
    exit: str  # "exited with code 1", "was killed by SIGKILL", "exited without a result"
    error: str  # the worker's exception line, or ""
    last_lines: str

    def reason(self) -> str:
        return f"dlspark training worker {self.rank} {self.exit}{': ' + self.error[:300] if self.error else ''}"


@dataclass
class TrainResult:
    """What a training run gives back (driver or barrier): the trained model and how training went."""

    model: Any  # keras.Model
    manifest: Manifest
    history: list[dict[str, float]]
    samples_per_s: list[float]
    warm_start: WarmStart | None = None
    first_step: float | None = None  # driver mode: when the first training step ended (time.time())
    attempts: int = 1  # barrier mode: submissions of the barrier job
    launch: dict[str, float] = field(default_factory=dict)  # barrier mode: seconds to each launch milestone
    workers: list[WorkerResult] = field(default_factory=list)  # barrier mode
