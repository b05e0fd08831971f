"""The train and evaluate stages: what `dlspark train` and `dlspark evaluate` run, with their reports."""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import SparkSession

from dlspark import layout as io_
from dlspark.config import PipelineConfig
from dlspark.errors import InputError
from dlspark.layout import Layout
from dlspark.report import StageReport
from dlspark.train.data import Manifest, model_inputs
from dlspark.train.driver import ModelPaths, train
from dlspark.train.evaluate import evaluate

log = logging.getLogger(__name__)


def run_train(cfg: PipelineConfig, spark: SparkSession | None = None, evaluate_after: bool = True) -> StageReport:
    """shards/ -> model/ (model.keras, serving/, vocabulary.json, training_log.csv) + reports/training_curve.png,
    then (unless the pipeline runs `evaluate` next) the evaluation on the test split. Barrier mode (train.mode)
    needs the SparkSession to run its tasks."""
    root = Layout.of(cfg.data)
    if cfg.train.mode == "barrier":
        if spark is None:
            raise ValueError("barrier training needs a SparkSession")
        from dlspark.train.distributed import train_barrier

        result = train_barrier(spark, cfg)
    else:
        result = train(cfg)
    manifest = result["manifest"]
    curve = plot_training(result["history"], f"{root.reports}/training_curve.png")
    evaluation = {}
    if evaluate_after:
        evaluation = evaluate(result["model"], manifest, model_inputs(cfg.train.model), cfg.train.top_k)
        io_.write_json(f"{root.model}/evaluation.json", evaluation)
    last = result["history"][-1] if result["history"] else {}
    return StageReport(
        "train",
        output=root.model,
        rows_in=manifest.rows("train"),
        rows_out=manifest.rows("train"),
        details={
            "model": cfg.train.model.kind,
            "mode": cfg.train.mode,
            **(
                {"workers": cfg.train.workers, "attempts": result["attempts"], "launch_seconds": result["launch"]}
                if cfg.train.mode == "barrier"
                else {}
            ),
            **({"warm_start": result["warm_start"]} if result.get("warm_start") else {}),
            "epochs": len(result["history"]),
            "final": {k: round(v, 4) for k, v in last.items() if k != "epoch"},
            "examples_per_s": [round(rate) for rate in result["samples_per_s"]],
            "shards_fingerprint": manifest.fingerprint,
            "training_curve": curve,
            **({"evaluation": evaluation} if evaluation else {}),
            **({"workers_results": result["workers"]} if cfg.train.mode == "barrier" else {}),
        },
    )


def run_evaluate(cfg: PipelineConfig, spark: SparkSession | None = None) -> StageReport:
    """model/model.keras + shards/test -> model/evaluation.json: the model against the rules and popularity."""
    import keras

    import dlspark.train.models  # noqa: F401  (registers the custom layers load_model needs)

    root = Layout.of(cfg.data)
    manifest = Manifest.read(root.shards)
    paths = ModelPaths(root.model)
    if not io_.exists(paths.model):
        raise InputError(f"no trained model at {paths.model}; run `dlspark train` first")
    vocabulary = io_.read_json(paths.vocabulary)
    if vocabulary["fingerprint"] != manifest.fingerprint:
        log.warning(
            "the model was trained on shards %s, the shards are now %s; evaluating anyway",
            vocabulary["fingerprint"],
            manifest.fingerprint,
        )
    model = keras.models.load_model(paths.model)
    evaluation = evaluate(model, manifest, [i.name for i in model.inputs], cfg.train.top_k)
    io_.write_json(root.path("model", "evaluation.json"), evaluation)
    rows = manifest.rows("test")
    return StageReport(
        "evaluate",
        output=root.path("model", "evaluation"),
        rows_in=rows,
        rows_out=rows,
        details={"evaluation": evaluation},
    )


def plot_training(history: list[dict[str, float]], path: str) -> str:
    """Loss and top-10 accuracy per epoch, training and validation, as a PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlspark.runreport import save_png

    epochs = [int(row["epoch"]) + 1 for row in history]
    figure, (loss, top10) = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric, title in [(loss, "loss", "loss (cross-entropy)"), (top10, "top10", "top-10 accuracy")]:
        for prefix, style in [("", "-o"), ("val_", "--s")]:
            values: list[Any] = [row.get(prefix + metric) for row in history]
            axis.plot(epochs, values, style, label=(prefix or "train_").rstrip("_"))
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    return save_png(figure, path)
