"""Benchmark: the whole pipeline at several sizes; seconds, rows and shuffle volume per stage, and how each grows.

    ./dev bench scale                                   # 0.25M, 1M and 4M raw lines (about 45 minutes here)
    ./dev bench scale --lines 100000 400000             # a quick look

For each size, demo data is generated into a fresh root (about 4.1 raw lines per order, 14 days) and every stage
runs as `dlspark pipeline` runs it (the Spark stages in one local session, training on the driver after it, one
epoch). Spark's event log gives the bytes each stage's jobs wrote to shuffles. The growth exponent of a stage
between two sizes is log(t2 / t1) / log(n2 / n1): 1 is linear, below 1 means fixed costs still weigh.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pyarrow as pa

from dlspark.config import SparkConfig, load_config
from dlspark.demo.generate import generate
from dlspark.pipeline import run_stage
from dlspark.session import spark_session
from dlspark.stages import STAGES

REPO = Path(__file__).resolve().parents[1]
LINES_PER_ORDER = 4.08  # what the generator makes, measured


def run_size(lines: int, days: int) -> dict:
    """Generate about `lines` raw lines and run every stage; per stage: seconds, rows in, shuffle bytes written."""
    root = Path(tempfile.mkdtemp(prefix="dlspark-bench-scale-"))
    events = root / "spark-events"
    events.mkdir()
    orders = round(lines / LINES_PER_ORDER)
    cfg = load_config(
        REPO / "conf" / "local.yaml",
        [f"data.root={root}", f"generate.orders={orders}", f"generate.days={days}", "train.epochs=1"]
        + ["train.patience=null", "spark.conf.spark.eventLog.enabled=true", f"spark.conf.spark.eventLog.dir={events}"]
        + ["spark.conf.spark.eventLog.compression.codec=zstd"],  # compressed from 4.0 on; zstd is what pyarrow reads
    )
    spark_cfg = SparkConfig(**{**cfg.spark.model_dump(), "master": "local[*]"})
    windows: dict[str, tuple[float, float]] = {}
    stages: dict[str, dict] = {}
    try:
        with spark_session(spark_cfg) as spark:
            summary = generate(spark, cfg.generate, cfg.data.root)
            for name in STAGES.names:
                if not STAGES[name].needs_spark(cfg):
                    continue
                started = time.time()
                report = run_stage(name, spark, cfg)
                windows[name] = (started * 1000, time.time() * 1000)
                stages[name] = {"seconds": report.seconds, "rows_in": report.rows_in}
        for name in STAGES.names:
            if name not in stages:
                report = run_stage(name, None, cfg)
                stages[name] = {"seconds": report.seconds, "rows_in": report.rows_in}
        for name, written in shuffle_bytes(events, windows).items():
            stages[name]["shuffle_bytes"] = written
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"lines": summary["raw_records_total"], "orders": orders, "stages": stages}


def event_files(events: Path) -> list[str]:
    """The event log files under `events`: one file per application (Spark 3.5's default), or the parts of a rolled
    log (`eventlog_v2_<app>/events_<n>_<app>[.zstd]`, the default from Spark 4.0), without its appstatus files."""
    logs = glob.glob(str(events / "*")) + glob.glob(str(events / "eventlog_v2_*" / "events_*"))
    return sorted(log for log in logs if Path(log).is_file() and not Path(log).name.startswith("appstatus_"))


@contextmanager
def log_lines(log: str) -> Iterator[TextIO]:
    """The lines of an event log file, decompressed where Spark compressed it (zstd, the default codec from 4.0;
    Spark's lz4 and snappy codecs write framings of their own, so the benchmark asks for zstd on every line)."""
    raw = pa.OSFile(log, "rb")
    stream = pa.CompressedInputStream(raw, "zstd") if log.endswith(".zstd") else raw
    try:
        yield io.TextIOWrapper(stream, encoding="utf-8")
    finally:
        stream.close()


def shuffle_bytes(events: Path, windows: dict[str, tuple[float, float]]) -> dict[str, int]:
    """Shuffle bytes written by the tasks that finished inside each stage's time window (from the event log)."""
    written = dict.fromkeys(windows, 0)
    for log in event_files(events):
        with log_lines(log) as lines:
            for line in lines:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                event = json.loads(line)
                finished = event["Task Info"]["Finish Time"]
                metrics = (event.get("Task Metrics") or {}).get("Shuffle Write Metrics") or {}
                for name, (start, end) in windows.items():
                    if start <= finished <= end:
                        written[name] += metrics.get("Shuffle Bytes Written", 0)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[250_000, 1_000_000, 4_000_000])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    runs = []
    for lines in args.lines:
        runs.append(run_size(lines, args.days))
        print(f"{runs[-1]['lines']:,} raw lines done", flush=True)
    names = list(runs[0]["stages"])
    header = "".join(f"{r['lines'] / 1e6:>11.2f}M" for r in runs)
    print("\nseconds per stage, by raw lines; then the growth exponent between sizes")
    print(f"{'stage':<10}{header}  exponents")
    for name in [*names, "total"]:
        seconds = [
            sum(s["seconds"] for s in r["stages"].values()) if name == "total" else r["stages"][name]["seconds"]
            for r in runs
        ]
        exponents = [
            math.log(seconds[i + 1] / seconds[i]) / math.log(runs[i + 1]["lines"] / runs[i]["lines"])
            if seconds[i] > 0 and seconds[i + 1] > 0
            else float("nan")
            for i in range(len(runs) - 1)
        ]
        print(f"{name:<10}" + "".join(f"{s:>12.1f}" for s in seconds) + "  " + " ".join(f"{e:.2f}" for e in exponents))
    print(f"\nshuffle MB written per stage\n{'stage':<10}{header}")
    for name in names:
        volumes = [r["stages"][name].get("shuffle_bytes") for r in runs]
        if any(volumes):
            print(f"{name:<10}" + "".join(f"{(v or 0) / 1e6:>12.1f}" for v in volumes))
    print(f"\nrows in per stage\n{'stage':<10}{header}")
    for name in names:
        print(f"{name:<10}" + "".join(f"{r['stages'][name]['rows_in']:>12,}" for r in runs))
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
