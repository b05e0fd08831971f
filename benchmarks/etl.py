"""Benchmark: generate + ingest + clean + dedup on about a million order lines; seconds and rows/s per stage.

    ./dev dlspark --help >/dev/null   # builds .venv once
    .venv/bin/python benchmarks/etl.py --orders 240000 --root /tmp/dlspark-bench

About 4.1 raw records are generated per order, so the default of 240,000 orders gives about 1 million lines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dlspark.cli.console import format_reports  # noqa: E402
from dlspark.config import load_config  # noqa: E402
from dlspark.demo.generate import generate  # noqa: E402
from dlspark.pipeline import run_stage  # noqa: E402
from dlspark.report import Timer  # noqa: E402
from dlspark.session import spark_session  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=240_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--root", default="/tmp/dlspark-bench")
    parser.add_argument("--config", default=str(REPO / "conf" / "local.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    overrides = [
        f"data.root={args.root}",
        f"generate.orders={args.orders}",
        f"generate.days={args.days}",
        *args.overrides,
    ]
    cfg = load_config(args.config, overrides)
    rows = []
    with spark_session(cfg.spark) as spark:
        with Timer() as timer:
            summary = generate(spark, cfg.generate, cfg.data.root)
        rows.append(("generate", summary["raw_records_total"], timer.seconds))
        reports = [run_stage(stage, spark, cfg) for stage in ("ingest", "clean", "dedup")]
        rows += [(r.stage, r.rows_in, r.seconds) for r in reports]
        cores = spark.sparkContext.defaultParallelism

    print(
        f"\ndlspark ETL benchmark: {summary['orders']:,} orders, {summary['raw_records_total']:,} raw records, "
        f"master {cfg.spark.master} ({cores} task slots, {os.cpu_count()} cores), Python {platform.python_version()}"
    )
    print(f"{'stage':<10} {'rows in':>12} {'seconds':>9} {'rows/s':>10}")
    for stage, n, seconds in rows:
        print(f"{stage:<10} {n:>12,} {seconds:>9.1f} {n / seconds:>10,.0f}")
    total = sum(seconds for _, _, seconds in rows)
    print(f"{'total':<10} {'':>12} {total:>9.1f}")
    print()
    print(format_reports(reports))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
