"""The runner: stages run by name from the registry, each atomically, skipped when already up to date.

For each stage it checks the inputs, resolves where the stage reads and writes (a StageContext), times it,
writes its report (with the fingerprints of what it read and of the settings it depends on) inside the staged
output, and publishes (publish.py). A stage whose published report matches today's inputs and settings is
skipped unless forced.
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import SparkSession

from dlspark import fs, publish
from dlspark.config import PipelineConfig, config_hash, settings_hash
from dlspark.datasets import DATASETS, require_dataset
from dlspark.digest import short_hash
from dlspark.errors import InputError
from dlspark.report import StageReport, Timer, report_path
from dlspark.stage import Registry, Stage, StageContext
from dlspark.stages import STAGES

log = logging.getLogger(__name__)


def check_inputs(name: str, cfg: PipelineConfig, registry: Registry = STAGES) -> None:
    """Fail fast, without Spark, when the data a stage reads is not there."""
    stage = registry[name]
    if stage.check is not None:
        stage.check(cfg)
    for dataset in stage.reads:
        if dataset in DATASETS:  # the model is checked by evaluate itself, with its own message
            require_dataset(cfg.data.layout.path(dataset), DATASETS[dataset])


def run_stage(name: str, spark: SparkSession | None, cfg: PipelineConfig, registry: Registry = STAGES) -> StageReport:
    """Run one stage atomically, time it, and return its report.

    The stage writes its outputs under data.root/_staging/<stage>/; its report, with the fingerprints of what it
    read, goes inside the staged output; then the outputs are published by rename. A reader never sees half an
    output, and a stage that dies leaves the previous output as it was. A staging directory a killed stage left
    is reused by the next run (Spark overwrites it; the trainer resumes from the checkpoint in it).
    """
    stage, root = registry[name], cfg.data.layout
    publish.recover(root, name)
    inputs = input_fingerprints(stage, cfg, registry)
    staged = publish.staged_outputs(root, name, stage.writes)
    context = StageContext(name, cfg, root, staged, spark)
    log.info("stage %s: starting%s", name, f" for {cfg.data.date}" if cfg.data.date else "")
    with Timer() as timer:
        try:
            report = stage.run(context)
        except InputError:
            publish.discard(root, name)  # refused input: nothing to resume, nothing published
            raise
    report.output = root.path(stage.writes[0])
    report.seconds = timer.seconds
    report.config_hash = config_hash(cfg)
    report.settings_hash = settings_hash(cfg, stage.settings)
    report.inputs = inputs
    report.write(report_path(staged[stage.writes[0]]))
    merged = day_outputs(stage, cfg)
    for output in merged:  # each day partition gets the report too, so a rerun of the day can check it
        report.write(report_path(f"{staged[output]}/{day_partition(cfg)}"))
    publish.write_journal(root, name, stage.writes, merged)
    publish.recover(root, name)  # publishes: the same code finishes a publish that a crash interrupted
    log.info("stage %s: done in %.1f s", name, report.seconds)
    return report


def day_outputs(stage: Stage, cfg: PipelineConfig) -> list[str]:
    """The outputs a daily run merges into (replacing one day's partition) instead of replacing them whole."""
    return list(stage.by_day) if cfg.data.date else []


def day_partition(cfg: PipelineConfig) -> str:
    return f"date={cfg.data.date}"


def input_fingerprints(stage: Stage, cfg: PipelineConfig, registry: Registry = STAGES) -> dict[str, str]:
    """What a stage reads, as fingerprints: its raw files' names, sizes and times (of the day, in a daily run),
    and the report (manifest) of the stage that wrote each input (of its day partition, where the stage reads
    only the day), which changes with every run of that stage."""
    root = cfg.data.layout
    found = {}
    if stage.source is not None:
        found["raw"] = short_hash(json.dumps(stage.source(cfg), sort_keys=True))
    daily = bool(day_outputs(stage, cfg))
    for dataset in stage.reads:
        by_day = daily and any(dataset in other.by_day for other in registry.stages)
        report = report_path(root.path(dataset, day_partition(cfg)) if by_day else root.path(dataset))
        found[dataset] = short_hash(fs.read_bytes(report)) if fs.exists(report) else "missing"
    return found


def is_current(name: str, cfg: PipelineConfig, registry: Registry = STAGES) -> StageReport | None:
    """The published report of a stage whose inputs and settings are unchanged since it ran, else None."""
    stage, root = registry[name], cfg.data.layout
    main = root.path(stage.writes[0])
    if day_outputs(stage, cfg):
        main = f"{main}/{day_partition(cfg)}"
    if not fs.exists(report_path(main)) or publish.is_staged(root, name):
        return None
    report = StageReport.read(report_path(main))
    if report.settings_hash != settings_hash(cfg, stage.settings) or report.inputs != input_fingerprints(
        stage, cfg, registry
    ):
        return None
    if not all(fs.exists(root.path(output)) for output in stage.writes):
        return None
    return report


def run_pipeline(
    names: list[str],
    spark: SparkSession | None,
    cfg: PipelineConfig,
    force: bool = False,
    until_stale: bool = False,
    registry: Registry = STAGES,
) -> list[StageReport]:
    """Run `names` in order; a stage whose published output is current is skipped (unless `force`).

    With `until_stale`, stop at the first stage that would have to run (so a caller can skip the stages that are
    up to date before it starts Spark). As a stage starts, the next one's `start_ahead` work starts too. The last
    stage's `ends_pipeline` step (the model's promotion after `evaluate`) runs once the stages have.
    """
    reports = []
    for position, name in enumerate(names):
        current = None if force else is_current(name, cfg, registry)
        if current is None and until_stale:
            break
        if current is not None:
            log.info("stage %s: up to date (ran %s, same inputs and settings), skipped", name, current.started_at)
            current.skipped = True
            reports.append(current)
            continue
        following = registry[names[position + 1]] if position + 1 < len(names) else None
        if following is not None and following.start_ahead is not None and spark is not None:
            following.start_ahead(spark, cfg)  # this stage's run changes the next one's input: it will run too
        reports.append(run_stage(name, spark, cfg, registry))
    last = registry[reports[-1].stage] if reports else None
    if last is not None and last.ends_pipeline is not None:
        last.ends_pipeline(cfg, reports[-1])
    return reports


def run_stages(
    names: list[str], spark: SparkSession | None, cfg: PipelineConfig, registry: Registry = STAGES
) -> list[StageReport]:
    """Run each stage of `names` in order, whether or not it is up to date."""
    return [run_stage(name, spark, cfg, registry) for name in names]
