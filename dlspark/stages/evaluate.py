"""Evaluate: model/ + shards/test -> model/evaluation.json: the model against the rules and popularity."""

from __future__ import annotations

import logging

from dlspark import fs
from dlspark.config import PipelineConfig
from dlspark.errors import InputError
from dlspark.manifest import Manifest
from dlspark.report import StageReport
from dlspark.stage import StageContext

log = logging.getLogger(__name__)


def run(ctx: StageContext) -> StageReport:
    """Score the trained model, the rules and popularity on the test split (hit rate at k, MRR)."""
    import keras

    import dlspark.train.models  # noqa: F401  (registers the custom layers load_model needs)
    from dlspark.train.driver import ModelPaths
    from dlspark.train.evaluate import evaluate

    manifest = Manifest.read(ctx.input("shards"))
    paths = ModelPaths(ctx.input("model"))
    if not fs.exists(paths.model):
        raise InputError(f"no trained model at {paths.model}; run `dlspark train` first")
    vocabulary = fs.read_json(paths.vocabulary)
    if vocabulary["fingerprint"] != manifest.fingerprint:
        log.warning(
            "the model was trained on shards %s, the shards are now %s; evaluating anyway",
            vocabulary["fingerprint"],
            manifest.fingerprint,
        )
    model = keras.models.load_model(paths.model)
    evaluation = evaluate(model, manifest, ctx.cfg.train.top_k, reader=ctx.cfg.train.reader)
    fs.write_json(ctx.output("model/evaluation.json"), evaluation)
    rows = manifest.rows("test")
    return ctx.new_report(rows_in=rows, rows_out=rows, details={"evaluation": evaluation})


def promote_model(cfg: PipelineConfig, report: StageReport) -> None:
    """At the end of a pipeline: keep the evaluated model as a version, promoted if it is not worse."""
    from dlspark.train.versions import promote

    report.details["promotion"] = promote(cfg)
