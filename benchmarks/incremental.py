"""Benchmark: one incremental day (`pipeline --date DAY`) against a full rerun of the same window of days.

    .venv/bin/python benchmarks/incremental.py                     # 140,000 orders over a 14-day window
    .venv/bin/python benchmarks/incremental.py --orders 40000 --days 7

Generates `--days` days of demo data (the window: mining.window_days = shards.window_days = days), brings every
day but the last up to date with daily runs (ingest, clean and dedup per day, as the scheduler catches up), runs
the last day once to warm the session up (Spark's Python workers start with the first mining job), then times,
one after the other in the same Spark session:
  1. the full pipeline over the window (--force): ingest, clean, dedup of every day, mine, shards;
  2. the last day again as a daily run (--force): its own ingest, clean, dedup, then mine and shards on the window.
Training and evaluation are left out of both (the same window of shards costs the same to train on).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import tempfile
import time
from pathlib import Path

from dlspark.cli.console import format_reports
from dlspark.config import SparkConfig, load_config
from dlspark.demo.generate import generate
from dlspark.pipeline import run_pipeline
from dlspark.schedule import for_day
from dlspark.session import spark_session
from dlspark.stages import STAGES as REGISTRY

REPO = Path(__file__).resolve().parents[1]
ETL = REGISTRY.daily()
STAGES = REGISTRY.between(ETL[0], "shards")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=140_000)
    parser.add_argument("--days", type=int, default=14, help="days of data: the window")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    root = Path(tempfile.mkdtemp(prefix="dlspark-bench-incremental-"))
    cfg = load_config(
        REPO / "conf" / "local.yaml",
        [f"data.root={root}", f"generate.orders={args.orders}", f"generate.days={args.days}"]
        + [f"mining.window_days={args.days}", f"shards.window_days={args.days}"],
    )
    days = [(cfg.generate.start_date + dt.timedelta(days=d)).isoformat() for d in range(args.days)]
    spark_cfg = SparkConfig(**{**cfg.spark.model_dump(), "master": "local[*]"})
    try:
        with spark_session(spark_cfg) as spark:
            summary = generate(spark, cfg.generate, cfg.data.root)
            started = time.monotonic()
            for day in days[:-1]:
                run_pipeline(ETL, spark, for_day(cfg, day))
            catch_up = time.monotonic() - started

            last = for_day(cfg, days[-1])
            run_pipeline(STAGES, spark, last)  # warm-up: its figures are not reported

            started = time.monotonic()
            full = run_pipeline(STAGES, spark, last.model_copy(update={"data": cfg.data}), force=True)
            rerun = time.monotonic() - started

            started = time.monotonic()
            daily = run_pipeline(STAGES, spark, last, force=True)
            incremental = time.monotonic() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\n{summary['raw_records_total']:,} raw lines ({args.orders:,} orders over a window of {args.days} days); "
        f"the first {args.days - 1} days caught up day by day in {catch_up:.1f} s"
    )
    print(f"\n1. full rerun of the window's {args.days} days:")
    print(format_reports(full))
    print(f"\n2. daily run of {days[-1]} (mining and shards on the same window):")
    print(format_reports(daily))
    etl = [sum(r.seconds for r in reports if r.stage in ETL) for reports in (daily, full)]
    print(
        f"\nincremental day {incremental:.1f} s vs full rerun {rerun:.1f} s: {incremental / rerun:.2f} of the cost "
        f"(ingest+clean+dedup alone: {etl[0]:.1f} s vs {etl[1]:.1f} s, {etl[0] / etl[1]:.2f})"
    )


if __name__ == "__main__":
    main()
