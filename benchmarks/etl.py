"""Benchmark: generate + ingest + clean + dedup on about a million order lines; seconds and rows/s per stage.

Side by side in the same Spark application: a plain Spark copy of the same raw files (Spark's CSV and JSON readers
with all-string schemas, written as Parquet: no accounting, no quarantine, no checks), and the share of ingest
spent checking every file's records against the rows written for it (`details.accounting_seconds`; the rows per
file come from the read-back that checks the totals, grouped by file, within `details.read_back_seconds`).

    ./dev dlspark --help >/dev/null   # builds .venv once
    .venv/bin/python benchmarks/etl.py --orders 240000 --root /tmp/dlspark-bench
    ./dev bench etl --warm-up         # every stage and the copy once untimed first: all timed warm

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
from typing import Any

from pyspark.sql import functions as F

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
    parser.add_argument(
        "--warm-up",
        action="store_true",
        help="run ingest, clean, dedup and the plain copy once untimed first, so that all are timed warm "
        "(the JVM's compiled code and the Python workers ready, as for every stage after the first in a pipeline)",
    )
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
        if args.warm_up:
            cold = [run_stage(stage, spark, cfg) for stage in ("ingest", "clean", "dedup")]
            with Timer() as cold_copy:
                plain_copy(spark, cfg, f"{args.root}/plain-copy")
            chained_copies(spark, f"{args.root}/plain-copy", args.days)
            print(
                "warm-up (cold) seconds: "
                + ", ".join(f"{r.stage} {r.seconds:.1f}" for r in cold)
                + f", plain copy {cold_copy.seconds:.1f}"
            )
        reports = [run_stage(stage, spark, cfg) for stage in ("ingest", "clean", "dedup")]
        rows += [(r.stage, r.rows_in, r.seconds) for r in reports]
        cores = spark.sparkContext.defaultParallelism
        with Timer() as plain:
            copied = plain_copy(spark, cfg, f"{args.root}/plain-copy")
        with Timer() as chained:
            chained_copies(spark, f"{args.root}/plain-copy", args.days)

    print(
        f"\ndlspark ETL benchmark: {summary['orders']:,} orders, {summary['raw_records_total']:,} raw records, "
        f"master {cfg.spark.master} ({cores} task slots, {os.cpu_count()} cores), Python {platform.python_version()}"
    )
    print(f"{'stage':<10} {'rows in':>12} {'seconds':>9} {'rows/s':>10}")
    for stage, n, seconds in rows:
        print(f"{stage:<10} {n:>12,} {seconds:>9.1f} {n / seconds:>10,.0f}")
    total = sum(seconds for _, _, seconds in rows)
    print(f"{'total':<10} {'':>12} {total:>9.1f}")
    ingest, etl = reports[0], sum(r.seconds for r in reports)
    accounting = ingest.details["accounting_seconds"]
    print(
        f"\nplain Spark copy of the raw files (read CSV/JSON as strings, write Parquet): {copied:,} rows in "
        f"{plain.seconds:.1f} s; ingest / plain copy {ingest.seconds / plain.seconds:.2f}; "
        f"ETL (ingest + clean + dedup) / plain copy {etl / plain.seconds:.2f}"
    )
    print(
        f"the ETL's three outputs with no work (the plain copy, then two more Parquet copies, each counted): "
        f"{plain.seconds + chained.seconds:.1f} s; ETL / these {etl / (plain.seconds + chained.seconds):.2f}"
    )
    print(
        f"ingest's per-file accounting (records counted while reading, checked against the rows written): "
        f"{accounting:.1f} s of {ingest.seconds:.1f} s ({accounting / ingest.seconds:.0%})"
    )
    print()
    print(format_reports(reports))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))


def plain_copy(spark: Any, cfg: Any, out: str) -> int:
    """What Spark alone does with the same files: read them with its own readers (every column a string), write
    them as one Parquet dataset, and count what was written."""
    from functools import reduce

    from pyspark.sql import DataFrame

    frames = []
    for name, feed in cfg.feeds.items():
        path = f"{cfg.data.layout.raw}/{feed.path}"
        if feed.format == "csv":
            schema = ", ".join(f"`{c}` string" for c in feed.fields or [])
            frame = spark.read.schema(schema).option("header", True).option("ignoreCorruptFiles", True).csv(path)
        else:
            schema = ", ".join(f"`{c}` string" for c in dict.fromkeys(feed.columns.values()))
            frame = spark.read.schema(schema).json(path)
        frames.append(
            frame.select(*[frame[c].alias(k) for k, c in feed.columns.items()]).withColumn("feed", F.lit(name))
        )
    reduce(DataFrame.unionByName, frames).write.mode("overwrite").parquet(out)
    return spark.read.parquet(out).count()


def chained_copies(spark: Any, first: str, days: int) -> None:
    """Two more copies after the plain one, each reading the last as Parquet, writing it in `days` parts (as the
    ETL's outputs are by day) and counting what it wrote: what the ETL's three outputs (ingested/, clean/, events/,
    each read back to prove its counts) cost with no work in between. A floor for the ETL's design, not a target:
    ingest parses and accounts for every record, clean checks each, dedup drops replays and resolves products."""
    source = first
    for hop in ("second", "third"):
        out = f"{first}-{hop}"
        frame = spark.read.parquet(source)
        by_day = frame.withColumn("day", F.pmod(F.xxhash64("event_id"), F.lit(days)))  # as many parts as days
        by_day.write.mode("overwrite").partitionBy("day").parquet(out)
        spark.read.parquet(out).count()
        source = out


if __name__ == "__main__":
    main()
