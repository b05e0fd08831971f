"""Benchmark: the shards stage with in-sample rule features (rule_folds=1) and out-of-fold ones (rule_folds=4).

    ./dev bench shards                      # 140,000 orders over 14 days (benchmarks/incremental.py's data)
    ./dev bench shards --orders 40000 --repeats 1

Generates the data and runs ingest, clean and dedup once, then times the shards stage alone (--force) with
shards.rule_folds=1 and =4, alternately, `--repeats` times each, in one Spark session after one untimed warm-up.
The ratio of the two is what the out-of-fold rule features cost: four more rule sets to mine and to recommend from.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from dlspark.config import SparkConfig, load_config
from dlspark.demo.generate import generate
from dlspark.pipeline import run_pipeline
from dlspark.session import spark_session
from dlspark.stages import STAGES as REGISTRY

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=140_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    root = Path(tempfile.mkdtemp(prefix="dlspark-bench-shards-"))
    settings = [f"data.root={root}", f"generate.orders={args.orders}", f"generate.days={args.days}"]
    cfg = load_config(REPO / "conf" / "local.yaml", [*settings, f"shards.window_days={args.days}"])
    spark_cfg = SparkConfig(**{**cfg.spark.model_dump(), "master": "local[*]"})
    seconds: dict[int, list[float]] = {1: [], 4: []}
    try:
        with spark_session(spark_cfg) as spark:
            summary = generate(spark, cfg.generate, cfg.data.root)
            run_pipeline(REGISTRY.between("ingest", "dedup"), spark, cfg)
            runs = [4] + [folds for _ in range(args.repeats) for folds in (1, 4)]
            for i, folds in enumerate(runs):
                folded = cfg.model_copy(update={"shards": cfg.shards.model_copy(update={"rule_folds": folds})})
                started = time.monotonic()
                (report,) = run_pipeline(["shards"], spark, folded, force=True)
                if i:  # the first run warms the session up
                    seconds[folds].append(time.monotonic() - started)
                print(f"rule_folds={folds}: {time.monotonic() - started:.1f} s{'' if i else ' (warm-up)'}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    one, four = (statistics.median(seconds[k]) for k in (1, 4))
    print(
        f"\n{summary['raw_records_total']:,} raw lines, {args.orders:,} orders over {args.days} days; "
        f"{report.details['train_rows']:,} training examples, {report.details['rules']:,} rules (all training days)"
    )
    print(
        f"shards, rule_folds=1: {one:.1f} s; rule_folds=4: {four:.1f} s (medians of {args.repeats}): {four / one:.2f}x"
    )


if __name__ == "__main__":
    main()
