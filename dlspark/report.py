"""Stage reports: the small JSON each stage writes beside its output, and the checks that its counts add up."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from dlspark import __version__, fs


def report_path(output: str) -> str:
    """Where the report of the stage that wrote `output` lives: inside it (Spark skips files starting with _)."""
    return f"{output}/_report.json"


@dataclass
class StageReport:
    """What one stage read, wrote and set aside; `rows_in == rows_out + sum(quarantined)` plus any removals."""

    stage: str
    output: str = ""  # the dataset the stage wrote; its report is written inside it
    rows_in: int = 0
    rows_out: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    config_hash: str = ""
    code_version: str = __version__
    settings_hash: str = ""  # of the configuration sections this stage depends on (the stage's settings)
    inputs: dict[str, str] = field(default_factory=dict)  # fingerprints of what it read (its reads)
    skipped: bool = False  # set by the pipeline for a stage it did not rerun: this report is the earlier run's

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def balanced(self) -> bool:
        return self.rows_in == self.rows_out + self.quarantined_total + sum(self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "quarantined_total": self.quarantined_total, "balanced": self.balanced()}

    def write(self, path: str | None = None) -> None:
        """Write the report inside its output (or at `path`, e.g. inside the staged output)."""
        fs.write_json(path or report_path(self.output), self.to_dict())

    @classmethod
    def read(cls, path: str) -> StageReport:
        raw = fs.read_json(path)
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__ and k != "skipped"})


class Timer:
    """Wall-clock seconds of a `with` block, rounded for reports."""

    def __enter__(self) -> Timer:
        self._start = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.monotonic() - self._start, 2)
