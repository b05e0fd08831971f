"""Benchmark: out-of-fold rule features against in-sample ones, and what train.deterministic costs.

    .venv/bin/python benchmarks/promotion.py                        # the demo: 20,000 orders over 14 days
    .venv/bin/python benchmarks/promotion.py --orders 6000 --days 6 --seeds 1 2

Generates demo data once and runs the ETL stages once. Then, on copies of that data root side by side, builds the
shards with `shards.rule_folds=1` (rule features of training examples mined on their own orders, as before) and
with the default folds, trains the same model with each seed on each (no warm start) and prints every test figure
with the means: the effect of out-of-fold rule features on hit@10 and MRR. Last, on the out-of-fold shards, trains
twice with `train.deterministic=true` and once without, each in a process of its own (one-thread TensorFlow must
be set before TensorFlow starts), and prints their seconds and whether the two deterministic models are the same
bit for bit.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dlspark.config import PipelineConfig, load_config
from dlspark.demo.generate import generate
from dlspark.pipeline import run_stages
from dlspark.session import spark_session

REPO = Path(__file__).resolve().parents[1]
ETL = ["ingest", "clean", "dedup"]


def config(root: Path, args: argparse.Namespace, *extra: str) -> PipelineConfig:
    settings = [f"data.root={root}", f"generate.orders={args.orders}", f"generate.days={args.days}"]
    settings += [f"train.epochs={args.epochs}", "train.warm_start=false", *extra]
    return load_config(REPO / "conf" / "local.yaml", settings)


def trained_in_process(root: Path, args: argparse.Namespace, *extra: str) -> tuple[float, str]:
    """`dlspark train` (train, then evaluate) in a process of its own: its seconds and its weights' digest."""
    command = [
        str(Path(sys.executable).parent / "dlspark"),
        "train",
        "--config",
        str(REPO / "conf" / "local.yaml"),
        "-q",
    ]
    for setting in [f"data.root={root}", f"train.epochs={args.epochs}", "train.warm_start=false", *extra]:
        command += ["--set", setting]
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.monotonic() - started
    digest = subprocess.run(
        [sys.executable, "-c", DIGEST, str(root / "model" / "model.keras")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return seconds, digest


DIGEST = """
import sys, keras
import dlspark.train.models
from dlspark.train.worker import weights_digest
print(weights_digest(keras.models.load_model(sys.argv[1]).get_weights()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--folds", type=int, default=4, help="shards.rule_folds of the out-of-fold shards")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    base = Path(tempfile.mkdtemp(prefix="dlspark-bench-promotion-"))
    roots = {1: base / "in-sample", args.folds: base / "out-of-fold"}
    shards_seconds = {}
    try:
        with spark_session(config(base, args).spark) as spark:
            generate(spark, config(roots[1], args).generate, str(roots[1]))
            run_stages(ETL, spark, config(roots[1], args))
            shutil.copytree(roots[1], roots[args.folds])
            for folds, root in roots.items():
                started = time.monotonic()
                run_stages(["shards"], spark, config(root, args, f"shards.rule_folds={folds}"))
                shards_seconds[folds] = time.monotonic() - started
        figures: dict[int, list[dict[str, float]]] = {folds: [] for folds in roots}
        for seed in args.seeds:
            for folds, root in roots.items():
                run_stages(["train", "evaluate"], None, config(root, args, f"train.seed={seed}"))
                evaluation = json.loads((root / "model" / "evaluation.json").read_text())
                figures[folds].append(evaluation["metrics"]["model"])
                print(f"seed {seed}, rule_folds {folds}: {evaluation['metrics']['model']}", flush=True)
        rules = json.loads((roots[1] / "model" / "evaluation.json").read_text())["metrics"]["rules"]
        fold_root = roots[args.folds]
        deterministic = [trained_in_process(fold_root, args, "train.deterministic=true") for _ in range(2)]
        free = trained_in_process(fold_root, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(f"\n{args.orders:,} orders over {args.days} days; {args.epochs} epochs at most (early stopping on)")
    print(f"shards: {shards_seconds[1]:.1f} s in-sample, {shards_seconds[args.folds]:.1f} s with {args.folds} folds")
    print(f"{'rule features':<16}{'hit@10 mean':>12}{'sd':>8}{'mrr@10 mean':>13}{'sd':>8}   per seed (hit@10)")
    for folds, runs in figures.items():
        hits, mrrs = [r["hit@10"] for r in runs], [r["mrr@10"] for r in runs]
        spread = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
        label = "in-sample" if folds == 1 else f"{folds} folds"
        print(
            f"{label:<16}{statistics.mean(hits):>12.4f}{spread(hits):>8.4f}{statistics.mean(mrrs):>13.4f}"
            f"{spread(mrrs):>8.4f}   {', '.join(f'{h:.4f}' for h in hits)}"
        )
    print(f"(the rules baseline on the same test split: hit@10 {rules['hit@10']:.4f}, mrr@10 {rules['mrr@10']:.4f})")
    (first, digest_a), (second, digest_b) = deterministic
    print(
        f"\ntrain + evaluate, each in its own process: deterministic {first:.1f} s and {second:.1f} s "
        f"({'the same weights' if digest_a == digest_b else 'DIFFERENT weights'}: {digest_a} {digest_b}); "
        f"default {free[0]:.1f} s (weights {free[1]}); cost {statistics.mean([first, second]) / free[0]:.2f}x"
    )


if __name__ == "__main__":
    main()
