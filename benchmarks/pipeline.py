"""Benchmark: the whole pipeline on about a million raw order lines, seconds per stage, and a rerun that skips.

    .venv/bin/python benchmarks/pipeline.py                        # 250,000 orders (about 1M lines), 30 days
    .venv/bin/python benchmarks/pipeline.py --orders 50000 --days 14

Generates demo data into a temporary root, runs every stage of `dlspark pipeline` (Spark stages in one local
session, driver-mode training after it stops, as the command does), prints the stage table, then runs the
pipeline again with nothing changed: every stage is skipped, and the figure shows what that check costs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

from dlspark.cli.console import format_reports
from dlspark.config import SparkConfig, load_config
from dlspark.demo.generate import generate
from dlspark.pipeline import run_pipeline
from dlspark.session import spark_session
from dlspark.stages import STAGES

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=250_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the data root (its path is printed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    root = Path(tempfile.mkdtemp(prefix="dlspark-bench-pipeline-"))
    cfg = load_config(
        REPO / "conf" / "local.yaml",
        [f"data.root={root}", f"generate.orders={args.orders}", f"generate.days={args.days}"]
        + [f"train.epochs={args.epochs}", "train.patience=null"],
    )
    spark_cfg = SparkConfig(**{**cfg.spark.model_dump(), "master": "local[*]"})
    spark_stages = [n for n in STAGES.names if STAGES[n].needs_spark(cfg)]
    driver_stages = [n for n in STAGES.names if n not in spark_stages]
    try:
        with spark_session(spark_cfg) as spark:
            started = time.monotonic()
            summary = generate(spark, cfg.generate, cfg.data.root)
            generated = time.monotonic() - started
            started = time.monotonic()
            reports = run_pipeline(spark_stages, spark, cfg)
        reports += run_pipeline(driver_stages, None, cfg)
        total = time.monotonic() - started
        started = time.monotonic()
        again = run_pipeline(STAGES.names, None, cfg)
        rerun = time.monotonic() - started
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    print(
        f"\n{summary['raw_records_total']:,} raw lines ({args.orders:,} orders, {args.days} days), generated in "
        f"{generated:.1f} s; data root {root}{' (kept)' if args.keep else ' (deleted)'}"
    )
    print(format_reports(reports))
    print(
        f"\nwhole pipeline: {total:.1f} s; the same pipeline again, every stage up to date: {rerun:.2f} s "
        f"({sum(r.skipped for r in again)} of {len(again)} stages skipped)"
    )


if __name__ == "__main__":
    main()
