"""The stages in order, run by name; what each produced is its StageReport."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from dlspark import layout as io_
from dlspark.config import PipelineConfig, config_hash
from dlspark.errors import InputError
from dlspark.layout import DATASETS, Layout
from dlspark.report import StageReport, Timer, report_path
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


def _driver_stages(in_pipeline: bool) -> dict[str, DriverStageFn]:
    from dlspark.train.stage import run_evaluate, run_train  # TensorFlow only where training is asked for

    # In a pipeline `evaluate` follows `train`; alone, `train` ends with the evaluation.
    return {"train": lambda cfg, spark: run_train(cfg, spark, not in_pipeline), "evaluate": run_evaluate}


DRIVER_STAGES = ("train", "evaluate")
# What each stage reads (checked before Spark starts, and fingerprinted in its manifest), writes (published
# together), and which configuration sections decide its result (a change to another section does not make
# it stale).
READS = {
    "ingest": ["raw"],
    "clean": ["ingested"],
    "dedup": ["clean"],
    "mine": ["events"],
    "shards": ["events"],
    "train": ["shards"],
    "evaluate": ["model", "shards"],
}
OUTPUTS = {
    "ingest": ["ingested", "quarantine/stage=ingest"],
    "clean": ["clean", "quarantine/stage=clean"],
    "dedup": ["events", "products"],
    "mine": ["mining"],
    "shards": ["shards"],
    "train": ["model"],
    "evaluate": ["model/evaluation", "model/evaluation.json"],
}
# Outputs partitioned by day: a daily run (data.date) replaces only that day's partition of each.
BY_DAY = ("ingested", "quarantine/stage=ingest", "clean", "quarantine/stage=clean", "events")
SETTINGS = {
    "ingest": ["feeds"],
    "clean": ["feeds", "clean"],
    "dedup": ["dedup"],
    "mine": ["mining"],
    "shards": ["shards", "mining"],
    "train": ["train"],
    "evaluate": ["train"],
}


def check_inputs(name: str, cfg: PipelineConfig) -> None:
    """Fail fast, without Spark, when the data a stage reads is not there."""
    root = Layout.at(cfg.data.root)
    if name == "ingest":
        ingest.check_inputs(cfg, root)
    for dataset in READS[name]:
        if dataset in DATASETS:  # the model is checked by evaluate itself, with its own message
            require_dataset(root.path(dataset), DATASETS[dataset])


def run_stage(name: str, spark: SparkSession | None, cfg: PipelineConfig, *, in_pipeline: bool = False) -> StageReport:
    """Run one stage atomically, time it, and return its report.

    The stage writes its outputs under data.root/_staging/<stage>/ (data.staging redirects them); its report,
    with the fingerprints of what it read, goes inside the staged output; then `recover` renames the staged
    outputs into place. A reader never sees half an output, and a stage that dies leaves the previous output
    as it was. A staging directory a killed stage left is reused by the next run (Spark overwrites it; the
    trainer resumes from the checkpoint in it).
    """
    root = Layout.at(cfg.data.root)
    recover(root, name)
    inputs = input_fingerprints(name, cfg)
    staging = {output: root.path("_staging", name, output) for output in OUTPUTS[name]}
    staged_cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"staging": staging})})
    log.info("stage %s: starting%s", name, f" for {cfg.data.date}" if cfg.data.date else "")
    with Timer() as timer:
        try:
            if name in DRIVER_STAGES:
                report = _driver_stages(in_pipeline)[name](staged_cfg, spark)
            elif spark is None:
                raise ValueError(f"stage {name} needs a SparkSession")
            else:
                report = STAGES[name](spark, staged_cfg)
        except InputError:
            io_.delete(root.path("_staging", name))  # refused input: nothing to resume, nothing published
            raise
    staged_output = report.output
    report.output = Layout.of(staged_cfg.data).unstaged(staged_output)
    report.seconds = timer.seconds
    report.config_hash = config_hash(cfg)
    report.settings_hash = settings_hash(name, cfg)
    report.inputs = inputs
    report.write(report_path(staged_output))
    merged = day_outputs(name, cfg)
    for output in merged:  # each day partition gets the report too, so a rerun of the day can check it
        report.write(report_path(f"{staging[output]}/{day_partition(cfg)}"))
    io_.write_json(root.path("_staging", name, JOURNAL), {"stage": name, "outputs": OUTPUTS[name], "merge": merged})
    recover(root, name)  # publishes: the same code finishes a publish that a crash interrupted
    log.info("stage %s: done in %.1f s", name, report.seconds)
    return report


def day_outputs(name: str, cfg: PipelineConfig) -> list[str]:
    """The outputs of `name` a daily run merges into (replacing one day's partition) instead of replacing."""
    return [output for output in OUTPUTS[name] if output in BY_DAY] if cfg.data.date else []


def day_partition(cfg: PipelineConfig) -> str:
    return f"date={cfg.data.date}"


JOURNAL = "_publish.json"


def recover(root: Layout, name: str) -> None:
    """Publish what a finished stage staged, or finish a publish a crash interrupted; idempotent.

    The journal is written only once every output is complete in staging. Each output then moves into place:
    the old one first to _staging/<stage>/_old/, then the staged one to its place. An output a daily run merges
    into moves entry by entry instead (its day partition, its report), so the other days stay as they are: that
    is dynamic partition overwrite, through the same journal. A crash between two moves leaves an entry missing
    for a moment, never half written; the next run finishes the job.
    """
    staging = root.path("_staging", name)
    if not io_.exists(f"{staging}/{JOURNAL}"):
        return
    journal = io_.read_json(f"{staging}/{JOURNAL}")
    for output in journal["outputs"]:
        staged, target = f"{staging}/{output}", root.path(output)
        entries = io_.listdir(staged) if output in journal.get("merge", []) else [""]
        for entry in entries:
            source, place = f"{staged}/{entry}".rstrip("/"), f"{target}/{entry}".rstrip("/")
            if io_.exists(source):
                if io_.exists(place):
                    io_.move(place, f"{staging}/_old/{output}/{entry}".rstrip("/"))
                io_.move(source, place)
    io_.delete(staging)


def input_fingerprints(name: str, cfg: PipelineConfig) -> dict[str, str]:
    """What a stage reads, as fingerprints: the raw files' names, sizes and times (of the day, in a daily run), or
    the report (manifest) of the stage that wrote the input (of its day partition, where the stage reads only the
    day), which changes with every run of that stage."""
    root = Layout.at(cfg.data.root)
    found = {}
    for dataset in READS[name]:
        if dataset == "raw":
            listing = [ingest.feed_listing(root, feed, cfg.data.date) for feed in cfg.feeds.values()]
            found[dataset] = _digest(json.dumps(listing, sort_keys=True).encode())
        else:
            by_day = dataset in BY_DAY and bool(day_outputs(name, cfg))  # a daily stage reads its day
            report = report_path(root.path(dataset, day_partition(cfg)) if by_day else root.path(dataset))
            found[dataset] = _digest(io_.read_bytes(report)) if io_.exists(report) else "missing"
    return found


def settings_hash(name: str, cfg: PipelineConfig) -> str:
    """A hash of the configuration sections the stage's result depends on."""
    sections = cfg.model_dump(mode="json", include=set(SETTINGS[name]))
    return _digest(json.dumps(sections, sort_keys=True).encode())


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def is_current(name: str, cfg: PipelineConfig) -> StageReport | None:
    """The published report of a stage whose inputs and settings are unchanged since it ran, else None."""
    root = Layout.at(cfg.data.root)
    main = root.path(OUTPUTS[name][0])
    if day_outputs(name, cfg):
        main = f"{main}/{day_partition(cfg)}"
    if not io_.exists(report_path(main)) or io_.exists(root.path("_staging", name)):
        return None
    report = StageReport.read(report_path(main))
    if report.settings_hash != settings_hash(name, cfg) or report.inputs != input_fingerprints(name, cfg):
        return None
    if not all(io_.exists(root.path(output)) for output in OUTPUTS[name]):
        return None
    return report


def run_pipeline(
    names: list[str],
    spark: SparkSession | None,
    cfg: PipelineConfig,
    force: bool = False,
    until_stale: bool = False,
) -> list[StageReport]:
    """Run `names` in order; a stage whose published output is current is skipped (unless `force`).

    With `until_stale`, stop at the first stage that would have to run (so a caller can skip the stages that are
    up to date before it starts Spark).
    """
    reports = []
    for name in names:
        current = None if force else is_current(name, cfg)
        if current is None and until_stale:
            break
        if current is not None:
            log.info("stage %s: up to date (ran %s, same inputs and settings), skipped", name, current.started_at)
            current.skipped = True
            reports.append(current)
            continue
        reports.append(run_stage(name, spark, cfg, in_pipeline=True))
    if reports and reports[-1].stage == "evaluate":  # a fresh evaluation decides whether the model is promoted
        from dlspark.train.registry import promote

        reports[-1].details["promotion"] = promote(cfg)
    return reports


def run_stages(names: list[str], spark: SparkSession | None, cfg: PipelineConfig) -> list[StageReport]:
    return [run_stage(name, spark, cfg) for name in names]


def format_reports(reports: list[StageReport]) -> str:
    """A small table a person can read: rows in and out of each stage, and why rows were set aside."""
    header = f"{'stage':<8} {'rows in':>11} {'rows out':>11} {'quarantined':>12} {'removed':>9} {'seconds':>8}"
    lines = [header, "-" * len(header)]
    for r in reports:
        seconds = "skipped" if r.skipped else f"{r.seconds:.1f}"
        lines.append(
            f"{r.stage:<8} {r.rows_in:>11,} {r.rows_out:>11,} {r.quarantined_total:>12,} "
            f"{sum(r.removed.values()):>9,} {seconds:>8}"
        )
    if any(r.skipped for r in reports):
        lines.append("  skipped: up to date (same inputs and settings); the figures are from its last run")
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
