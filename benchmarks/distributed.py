"""Benchmark: barrier-mode training (1 and 2 workers) against the driver trainer, on the same shards.

    .venv/bin/python benchmarks/distributed.py                        # 600k rows, global batch 1024, 3 epochs
    .venv/bin/python benchmarks/distributed.py --rows 200000 --epochs 2

Spark runs in local mode with 2 task slots (local[2], spark.task.cpus=1: each worker's TensorFlow gets one
thread); the driver trainer runs in this process with TensorFlow's default threads. The shards are synthetic,
in the layout the shards stage writes (see training.py), with a manifest, so the real trainers read them.

Printed: seconds from the barrier job's submission to the moment the slowest worker started its process,
imported TensorFlow, had its MultiWorkerMirroredStrategy, had its model and data ready, and ran its first
step (and the first step counted from the trainer's call, so with the checks before launch), for workers started
with the job and, last, for two workers started ahead (as a pipeline run starts them with the stage before
train), once both have imported TensorFlow (a milestone passed before the submission shows as 0);
training examples per second over the epochs after the first (validation left out); the time of one step; and
the collective-op cost per step, estimated as t(2 workers) - t(1 worker) / 2: two workers that each compute half
the batch on their own core would take half the time without communication.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from training import CUSTOMERS, PRODUCTS, RULES, WIDTH, synthetic, write_shards

from dlspark import fs
from dlspark.config import load_config
from dlspark.manifest import Manifest, columns, manifest_path
from dlspark.train.ahead import READY, folder

REPO = Path(__file__).resolve().parents[1]


def write_dataset(root: Path, rows: int, val_rows: int, files: int, row_group: int) -> None:
    """Synthetic train and val splits under root/shards, with the manifest the trainers read."""
    shards = root / "shards"
    write_shards(synthetic(rows, seed=1), shards / "train", files, row_group, lists=False)
    write_shards(synthetic(val_rows, seed=2), shards / "val", 1, row_group, lists=False)
    listing = [
        {"path": p.name, "rows": pq.ParquetFile(p).metadata.num_rows, "row_groups": _row_groups(p)}
        for p in sorted((shards / "train").glob("*.parquet"))
    ]
    fs.write_json(
        manifest_path(str(shards)),
        {
            "columns": {"items": columns("item", WIDTH), "rules": columns("rule", RULES)},
            "products": {"ids": [str(i) for i in range(PRODUCTS)], "names": [str(i) for i in range(PRODUCTS)]},
            "customers": {"ids": [str(i) for i in range(CUSTOMERS)]},
            "splits": {"train": {"rows": rows, "files": listing}, "val": {"rows": val_rows}, "test": {"rows": 0}},
            "fingerprint": f"bench-{rows}",
        },
    )


def _row_groups(path: Path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def run_driver(root: Path, settings: list[str]) -> dict[str, Any]:
    from dlspark.train.driver import ModelPaths, train

    cfg = load_config(REPO / "conf" / "local.yaml", [f"data.root={root}", *settings])
    called = time.time()
    result = train(cfg, Manifest.read(f"{root}/shards"), ModelPaths(f"{root}/model"), None)
    return {"rates": result.samples_per_s, "first_from_call": (result.first_step or called) - called, "launch": {}}


def run_barrier(spark: Any, root: Path, settings: list[str], workers: int, ahead: bool = False) -> dict[str, Any]:
    from dlspark.train.distributed import start_workers_ahead, train_barrier
    from dlspark.train.driver import ModelPaths

    cfg = load_config(
        REPO / "conf" / "local.yaml",
        [f"data.root={root}", *settings, "train.mode=barrier", f"train.workers={workers}"],
    )
    if ahead:  # as a pipeline run does when the stage before train starts; here nothing else runs meanwhile
        started = time.time()
        start_workers_ahead(spark, cfg)
        waiting = folder(spark.sparkContext.applicationId)
        while len(list(waiting.glob(f"*{READY}"))) < workers:
            time.sleep(0.1)
        print(f"{workers} workers started ahead were ready (TensorFlow imported) {time.time() - started:.1f} s later")
    called = time.time()
    result = train_barrier(spark, cfg, Manifest.read(f"{root}/shards"), ModelPaths(f"{root}/model"), None)
    first = max(w.marks["first_step"] for w in result.workers)
    assert all(w.started_ahead == ahead for w in result.workers)
    return {"rates": result.samples_per_s, "first_from_call": first - called, "launch": result.launch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--val-rows", type=int, default=20_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--row-group", type=int, default=65_536)
    parser.add_argument("--batch", type=int, default=1024, help="global batch (split among the workers)")
    parser.add_argument("--epochs", type=int, default=3, help="rates are taken from the epochs after the first")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import keras  # noqa: F401  (imported before the driver run, as it is in a driver that has run Spark stages)

    from dlspark.config import SparkConfig
    from dlspark.session import build_session

    work = Path(tempfile.mkdtemp(prefix="dlspark-bench-dist-"))
    settings = [f"train.epochs={args.epochs}", f"train.batch_size={args.batch}", "train.patience=null"]
    spark = build_session(SparkConfig(master="local[2]", conf={"spark.ui.enabled": "false"}))
    results: dict[str, dict[str, Any]] = {}
    try:
        write_dataset(work, args.rows, args.val_rows, args.files, args.row_group)
        results["driver"] = run_driver(work, settings)
        for workers in (1, 2):
            shutil.rmtree(work / "model", ignore_errors=True)
            results[f"barrier, {workers} worker{'s' * (workers > 1)}"] = run_barrier(spark, work, settings, workers)
        shutil.rmtree(work / "model", ignore_errors=True)
        results["barrier, 2, ahead"] = run_barrier(spark, work, settings, 2, ahead=True)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.rows:,} training rows, global batch {args.batch}, {args.epochs} epochs, local[2]")
    header = (
        f"{'trainer':<20} {'started':>8} {'TF ready':>9} {'strategy':>9} {'data':>6} {'1st step':>9} "
        f"{'from call':>10} {'examples/s':>11} {'ms/step':>8} {'ratio':>6}"
    )
    print(header + "\n" + "-" * len(header))
    step_ms = {}
    base = None
    for name, r in results.items():
        later = r["rates"][1:] or r["rates"]
        rate = sum(later) / len(later)
        base = base or rate
        step_ms[name] = 1000 * args.batch / rate
        launch = r["launch"]
        cells = [
            f"{launch[k]:.1f}" if k in launch else "-"
            for k in ("started", "imported", "strategy", "data", "first_step")
        ]
        print(
            f"{name:<20} {cells[0]:>8} {cells[1]:>9} {cells[2]:>9} {cells[3]:>6} {cells[4]:>9} "
            f"{r['first_from_call']:>10.1f} "
            f"{rate:>11,.0f} {step_ms[name]:>8.1f} {rate / base:>6.2f}"
        )
    one, two = step_ms["barrier, 1 worker"], step_ms["barrier, 2 workers"]
    print(
        f"\ncollective cost per step (t2 - t1/2): {two - one / 2:.1f} ms of {two:.1f} ms; "
        "launch columns: seconds after the barrier job's submission (slowest worker)"
    )


if __name__ == "__main__":
    main()
