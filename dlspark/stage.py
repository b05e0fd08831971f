"""What a stage is: one record (what it reads, writes and depends on, and its function), and what it is handed.

A stage is a function `run(ctx) -> StageReport`. The runner (pipeline.py) resolves where the stage reads (the
published datasets under data.root) and where it writes (its staging directory, published by rename once it
has finished) and hands both over in a StageContext; the configuration holds settings only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dlspark.errors import ConfigError, DlsparkError
from dlspark.layout import Layout
from dlspark.report import StageReport

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from dlspark.config import PipelineConfig


@dataclass(frozen=True)
class StageContext:
    """One run of one stage: its configuration, the published data root it reads, and where its outputs go."""

    stage: str
    cfg: PipelineConfig
    layout: Layout  # the published data: what the stage reads
    outputs: Mapping[str, str]  # each output the stage writes (a path relative to the root) -> where it writes it
    spark_session: SparkSession | None = None

    def output(self, name: str) -> str:
        """Where the stage writes `name` (one of its `writes`), or a path inside it ("mining/rules")."""
        for output, target in self.outputs.items():
            if name == output or name.startswith(output + "/"):
                return target + name[len(output) :]
        raise DlsparkError(f"stage {self.stage} does not write {name!r}; its outputs are {list(self.outputs)}")

    def input(self, *parts: str) -> str:
        """The published path of a dataset the stage reads."""
        return self.layout.path(*parts)

    @property
    def spark(self) -> SparkSession:
        if self.spark_session is None:
            raise DlsparkError(f"stage {self.stage} needs a SparkSession and none was started")
        return self.spark_session

    def new_report(self, **values: Any) -> StageReport:
        return StageReport(self.stage, **values)


def lazy(path: str) -> Callable[..., Any]:
    """The function at "module:name", imported when first called: stage modules import Spark and pandas, which
    `dlspark --help` and a configuration check should not wait for."""
    module, _, name = path.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = path
    return call


def always(cfg: PipelineConfig) -> bool:
    return True


def never(cfg: PipelineConfig) -> bool:
    return False


@dataclass(frozen=True)
class Stage:
    """Everything the runner, the CLI and the scheduler need to know about one stage.

    reads:    datasets written by earlier stages (checked before Spark starts and fingerprinted in the manifest)
    writes:   its outputs, relative to data.root, published together; the first holds its report
    settings: the configuration sections ("mining") and keys ("train.workers") its result depends on (a change
              elsewhere does not make it stale)
    by_day:   those of its outputs partitioned by date=YYYY-MM-DD: a daily run (--date) replaces one partition
    needs_spark: whether a run of it needs a SparkSession, for a given configuration
    check:    optional checks of its own inputs, run before Spark starts (they name the key to fix)
    source:   optional listing of what it reads from outside the pipeline (raw files), fingerprinted as "raw"
    ends_pipeline: optional last step of a pipeline run that ends with this stage (evaluate: promote the model)
    start_ahead: optional work a pipeline run starts for it as the stage before it starts (train: barrier workers
                 importing TensorFlow); given the SparkSession, which is never None there
    """

    name: str
    run: Callable[[StageContext], StageReport]
    help: str
    writes: tuple[str, ...]
    reads: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    by_day: tuple[str, ...] = ()
    needs_spark: Callable[[PipelineConfig], bool] = always
    check: Callable[[PipelineConfig], Any] | None = None
    source: Callable[[PipelineConfig], Any] | None = None
    ends_pipeline: Callable[[PipelineConfig, StageReport], None] | None = None
    start_ahead: Callable[[SparkSession, PipelineConfig], Any] | None = None

    def __post_init__(self) -> None:
        if not self.writes or set(self.by_day) - set(self.writes):
            raise ConfigError(
                f"stage {self.name}: writes {self.writes} must be non-empty and hold by_day {self.by_day}"
            )


@dataclass(frozen=True)
class Registry:
    """The stages in the order they run."""

    stages: tuple[Stage, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stage names must be unique: {names}")

    def __getitem__(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"unknown stage {name!r}; the stages are {self.names}")

    @property
    def names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    def daily(self) -> list[str]:
        """The stages a catch-up day runs: those whose outputs are partitioned by day (the day's own ETL)."""
        return [stage.name for stage in self.stages if stage.by_day]

    def between(self, first: str, last: str) -> list[str]:
        """The names from `first` to `last`, in order."""
        names = self.names
        start, end = names.index(self[first].name), names.index(self[last].name)
        if start > end:
            raise ConfigError(f"--from {first} comes after --to {last}; stages run in the order {names}")
        return names[start : end + 1]

    def plus(self, stage: Stage, after: str | None = None) -> Registry:
        """A registry with `stage` added after `after` (at the end when None)."""
        stages = list(self.stages)
        position = len(stages) if after is None else self.names.index(self[after].name) + 1
        return replace(self, stages=(*stages[:position], stage, *stages[position:]))
