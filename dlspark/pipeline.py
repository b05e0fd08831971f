"""The stages in order, run by name; what each produced is its StageReport."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from dlspark.config import PipelineConfig, config_hash
from dlspark.layout import DATASETS, Layout
from dlspark.report import StageReport, Timer
from dlspark.stages import clean, dedup, ingest, mine, shards
from dlspark.stages.common import require_dataset

log = logging.getLogger(__name__)

StageFn = Callable[[SparkSession, PipelineConfig], StageReport]
STAGES: dict[str, StageFn] = {
    "ingest": ingest.run,
    "clean": clean.run,
    "dedup": dedup.run,
    "mine": mine.run,
    "shards": shards.run,
}
# Stages that run on the driver (no SparkSession needed, except barrier training's tasks): training, evaluation.
DriverStageFn = Callable[[PipelineConfig, SparkSession | None], StageReport]


def _driver_stages() -> dict[str, DriverStageFn]:
    from dlspark.train.stage import run_evaluate, run_train  # TensorFlow only where training is asked for

    return {"train": run_train, "evaluate": run_evaluate}


DRIVER_STAGES = ("train", "evaluate")
# The dataset each stage reads, so a missing input is reported before Spark starts.
INPUTS = {
    "clean": "ingested",
    "dedup": "clean",
    "mine": "events",
    "shards": "events",
    "train": "shards",
    "evaluate": "shards",
}


def check_inputs(name: str, cfg: PipelineConfig) -> None:
    """Fail fast, without Spark, when the data a stage reads is not there."""
    root = Layout.at(cfg.data.root)
    if name == "ingest":
        ingest.check_inputs(cfg, root)
    elif name in INPUTS:
        require_dataset(root.path(INPUTS[name]), DATASETS[INPUTS[name]])


def run_stage(name: str, spark: SparkSession | None, cfg: PipelineConfig) -> StageReport:
    """Run one stage, time it, and write its report inside its output (driver stages may have no SparkSession)."""
    log.info("stage %s: starting", name)
    with Timer() as timer:
        if name in DRIVER_STAGES:
            report = _driver_stages()[name](cfg, spark)
        elif spark is None:
            raise ValueError(f"stage {name} needs a SparkSession")
        else:
            report = STAGES[name](spark, cfg)
    report.seconds = timer.seconds
    report.config_hash = config_hash(cfg)
    report.write()
    log.info("stage %s: done in %.1f s", name, report.seconds)
    return report


def run_stages(names: list[str], spark: SparkSession | None, cfg: PipelineConfig) -> list[StageReport]:
    return [run_stage(name, spark, cfg) for name in names]


def format_reports(reports: list[StageReport]) -> str:
    """A small table a person can read: rows in and out of each stage, and why rows were set aside."""
    header = f"{'stage':<8} {'rows in':>11} {'rows out':>11} {'quarantined':>12} {'removed':>9} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for r in reports:
        lines.append(
            f"{r.stage:<8} {r.rows_in:>11,} {r.rows_out:>11,} {r.quarantined_total:>12,} "
            f"{sum(r.removed.values()):>9,} {r.seconds:>8.1f}"
        )
    for r in reports:
        if r.quarantined:
            reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(r.quarantined.items(), key=lambda kv: -kv[1]))
            lines.append(f"  {r.stage} quarantine: {reasons}")
        if r.removed:
            lines.append("  " + r.stage + " removed: " + ", ".join(f"{k} {v:,}" for k, v in r.removed.items()))
        interesting = {
            k: v for k, v in r.details.items() if not k.startswith("rows_in.") and not isinstance(v, list | dict)
        }
        if interesting:
            lines.append(
                "  " + r.stage + ": " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in interesting.items())
            )
    return "\n".join(lines)


def format_rules(rules: list[dict[str, Any]]) -> str:
    """The top rules as a table: lift, confidence, support, and the rule in product names."""
    if not rules:
        return "No rules at this support and confidence (mining.min_support, mining.min_confidence)."
    lines = [f"{'lift':>7} {'conf':>5} {'support':>8} {'conviction':>10}  rule", "-" * 72]
    for rule in rules:
        conviction = rule["conviction"] if isinstance(rule["conviction"], str) else f"{rule['conviction']:.2f}"
        lines.append(
            f"{rule['lift']:>7.2f} {rule['confidence']:>5.2f} {rule['support']:>8.4f} {conviction:>10}  "
            f"{' + '.join(rule['antecedent_names'])}  ->  {rule['consequent_names'][0]}"
        )
    return "\n".join(lines)
