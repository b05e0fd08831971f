"""Train: shards/ -> model/ (model.keras, serving/, vocabulary.json, training_log.csv) + reports/training_curve.png.

The driver trainer (Keras fed by Petastorm) or, with train.mode: barrier, one TensorFlow worker per Spark barrier
task. Both start from the current model version (models/current) where its vocabularies allow.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from dlspark.config import PipelineConfig
from dlspark.manifest import Manifest
from dlspark.plots import plot_training
from dlspark.report import StageReport
from dlspark.stage import StageContext

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def needs_spark(cfg: PipelineConfig) -> bool:
    """Barrier training runs its workers as Spark tasks; the driver trainer needs no Spark."""
    return cfg.train.mode == "barrier"


def start_ahead(spark: SparkSession, cfg: PipelineConfig) -> None:
    """In a pipeline run, as the stage before train starts: barrier workers start importing TensorFlow."""
    if cfg.train.mode == "barrier" and cfg.train.start_ahead_s > 0:
        from dlspark.train.distributed import start_workers_ahead

        start_workers_ahead(spark, cfg)


def run(ctx: StageContext) -> StageReport:
    """shards/ -> model/, trained on the driver or on barrier tasks (train.mode)."""
    from dlspark.train.driver import ModelPaths, train
    from dlspark.train.versions import current

    cfg, tc = ctx.cfg, ctx.cfg.train
    manifest = Manifest.read(ctx.input("shards"))
    paths = ModelPaths(ctx.output("model"))
    warm_from = current(ctx.layout) if tc.warm_start else None
    if tc.mode == "barrier":
        from dlspark.train.distributed import train_barrier

        result = train_barrier(ctx.spark, cfg, manifest, paths, warm_from)
    else:
        result = train(cfg, manifest, paths, warm_from)
    curve = plot_training(result.history, f"{ctx.layout.reports}/training_curve.png")
    last = result.history[-1] if result.history else {}
    details: dict[str, Any] = {
        "model": tc.model.kind,
        "mode": tc.mode,
        "epochs": len(result.history),
        "final": {k: round(v, 4) for k, v in last.items() if k != "epoch"},
        "examples_per_s": [round(rate) for rate in result.samples_per_s],
        "shards_fingerprint": manifest.fingerprint,
        "training_curve": curve,
    }
    if result.warm_start:
        details["warm_start"] = asdict(result.warm_start)
    if tc.mode == "barrier":
        details |= {"workers": tc.workers, "attempts": result.attempts, "launch_seconds": result.launch}
        details["workers_results"] = [worker.to_dict() for worker in result.workers]
    rows = manifest.rows("train")
    return ctx.new_report(rows_in=rows, rows_out=rows, details=details)
