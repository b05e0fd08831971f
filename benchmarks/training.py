"""Benchmark: the shard readers (dlspark's arrow reader, and Petastorm where it imports) against a plain pyarrow read,
and Keras training fed by each reader against from memory.

    ./dev bench training                                  # 2M rows, 16 files
    ./dev bench training --rows 500000 --row-groups 16384 65536 131072
    ./dev --spark 4.3 bench training                      # a line without Petastorm: the arrow reader alone

Shards are synthetic but in the exact layout the shards stage writes (int32 scalar columns item_00..item_15,
rule_00..rule_09, customer, size, label; row groups of a fixed number of rows). The same rows are also written
with the arrays as list columns, the layout Petastorm converts row by row, to show what the layout is worth.
Every figure of one run is measured on the same files in one process; the readers take turns, `--repeats` times,
and each figure is the median of its turns.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dlspark.config import ModelConfig
from dlspark.manifest import Manifest, columns
from dlspark.train.data import FEATURES, model_inputs, read_split, resolve_reader, shard_dataset
from dlspark.train.models import build_model

WIDTH, RULES, PRODUCTS, CUSTOMERS = 16, 10, 302, 2000
warnings.filterwarnings("ignore", category=FutureWarning, module=r"petastorm\.")
logging.getLogger("petastorm").setLevel(logging.WARNING)


def synthetic(rows: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Basket-completion examples with Zipf-like product popularity and baskets of 1 to 16 products."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / (np.arange(PRODUCTS - 2) + 5.0)
    draw = lambda shape: 2 + np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(shape))  # noqa: E731
    sizes = np.clip(rng.poisson(3, rows), 1, WIDTH)
    items = np.where(np.arange(WIDTH)[None, :] < sizes[:, None], draw((rows, WIDTH)), 0).astype(np.int32)
    n_rules = rng.integers(0, RULES + 1, rows)
    rules = np.where(np.arange(RULES)[None, :] < n_rules[:, None], draw((rows, RULES)), 0).astype(np.int32)
    return {
        **{c: items[:, i] for i, c in enumerate(columns("item", WIDTH))},
        **{c: rules[:, i] for i, c in enumerate(columns("rule", RULES))},
        "customer": rng.integers(0, CUSTOMERS, rows).astype(np.int32),
        "size": sizes.astype(np.int32),
        "label": draw(rows).astype(np.int32),
    }


def write_shards(data: dict[str, np.ndarray], directory: Path, files: int, row_group: int, lists: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True)
    rows = len(data["label"])
    for f, part in enumerate(np.array_split(np.arange(rows), files)):
        if lists:
            items = np.stack([data[c][part] for c in columns("item", WIDTH)], axis=1)
            rules = np.stack([data[c][part] for c in columns("rule", RULES)], axis=1)
            table = pa.table(
                {
                    "items": pa.FixedSizeListArray.from_arrays(pa.array(items.ravel()), WIDTH).cast(
                        pa.list_(pa.int32())
                    ),
                    "rules": pa.FixedSizeListArray.from_arrays(pa.array(rules.ravel()), RULES).cast(
                        pa.list_(pa.int32())
                    ),
                    **{name: data[name][part] for name in ("customer", "size", "label")},
                }
            )
        else:
            table = pa.table({name: values[part] for name, values in data.items()})
        pq.write_table(table, directory / f"part-{f:05d}.parquet", row_group_size=row_group)


def manifest_for(root: Path, rows: int) -> Manifest:
    return Manifest(
        str(root),
        {
            "columns": {"items": columns("item", WIDTH), "rules": columns("rule", RULES)},
            "products": {"ids": [str(i) for i in range(PRODUCTS)]},
            "customers": {"ids": [str(i) for i in range(CUSTOMERS)]},
            "splits": {"train": {"rows": rows}},
            "fingerprint": "bench",
        },
    )


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def pyarrow_rate(manifest: Manifest, rows: int) -> float:
    seconds, (features, _) = timed(lambda: read_split(manifest, "train"))
    assert len(features["items"]) == rows
    return rows / seconds


def reader_rate(manifest: Manifest, rows: int, batch: int, reader: str, pool: str, workers: int) -> float:
    def run() -> int:
        seen = 0
        with shard_dataset(manifest, "train", batch, reader=reader, epochs=1, pool=pool, workers=workers) as batches:
            for _, labels in batches:
                seen += int(labels.shape[0])
        return seen

    seconds, seen = timed(run)
    assert seen == rows, (seen, rows)
    return rows / seconds


def petastorm_list_rate(root: Path, rows: int, batch: int, workers: int) -> float:
    """The same rows with list columns, read the way docs/decisions.md describes (reshape, rebatch)."""
    import tensorflow as tf
    from petastorm import make_batch_reader
    from petastorm.tf_utils import make_petastorm_dataset

    def run() -> int:
        seen = 0
        with make_batch_reader(f"file://{root}/train", num_epochs=1, workers_count=workers) as reader:
            dataset = make_petastorm_dataset(reader).map(
                lambda b: (
                    {
                        "items": tf.reshape(b.items, (-1, WIDTH)),
                        "rules": tf.reshape(b.rules, (-1, RULES)),
                        "customer": tf.reshape(b.customer, (-1, 1)),
                        "size": tf.reshape(b.size, (-1, 1)),
                    },
                    b.label,
                )
            )
            for _, labels in dataset.rebatch(batch).prefetch(4):
                seen += int(labels.shape[0])
        return seen

    seconds, seen = timed(run)
    assert seen == rows
    return rows / seconds


class StepClock:
    """Seconds spent on the training steps after the first `skip` (compilation and warm-up left out)."""

    def __init__(self, skip: int) -> None:
        import keras

        clock = self

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
                if batch == skip:
                    clock.start = time.perf_counter()

            def on_train_end(self, logs: Any = None) -> None:
                clock.end = time.perf_counter()

        self.callback = Callback()
        self.start = self.end = 0.0


def training_rate(dataset: Any, steps: int, skip: int, batch: int, seed: int = 1) -> float:
    import keras

    keras.utils.set_random_seed(seed)
    cfg = ModelConfig()
    model = build_model(cfg, PRODUCTS, CUSTOMERS, WIDTH, RULES, 0.001)
    clock = StepClock(skip)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[clock.callback], verbose=0)
    return (steps - skip) * batch / (clock.end - clock.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--row-groups", type=int, nargs="+", default=[65_536], help="rows per row group to compare")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2, help="reader threads (Petastorm's workers)")
    parser.add_argument("--steps", type=int, default=400, help="training steps timed per feed (after 50 untimed)")
    parser.add_argument("--repeats", type=int, default=3, help="turns of each reader; figures are medians")
    args = parser.parse_args()

    import tensorflow as tf

    petastorm = resolve_reader("auto") == "petastorm"
    feeds = [("arrow", "thread"), *([("petastorm", "thread"), ("petastorm", "process")] if petastorm else [])]
    data = synthetic(args.rows)
    work = Path(tempfile.mkdtemp(prefix="dlspark-bench-"))
    results: list[tuple[str, float, str]] = []
    try:
        for row_group in args.row_groups:
            root = work / f"columns-{row_group}"
            write_shards(data, root / "train", args.files, row_group, lists=False)
            manifest = manifest_for(root, args.rows)
            base = pyarrow_rate(manifest, args.rows)
            results.append((f"pyarrow read into numpy (row groups {row_group:,})", base, "1.00"))
            turns: dict[tuple[str, str], list[float]] = {feed: [] for feed in feeds}
            for _ in range(args.repeats):
                for reader, pool in feeds:
                    turns[reader, pool].append(reader_rate(manifest, args.rows, args.batch, reader, pool, args.workers))
            rates = {feed: statistics.median(values) for feed, values in turns.items()}
            for (reader, pool), rate in rates.items():
                name = "arrow reader (threads)" if reader == "arrow" else f"Petastorm make_batch_reader, {pool} pool"
                results.append((f"{name} -> tf.data, scalar columns", rate, f"{rate / base:.2f}"))
            if petastorm:
                arrow, thread = rates["arrow", "thread"], rates["petastorm", "thread"]
                results.append(("arrow reader / Petastorm thread pool", arrow, f"{arrow / thread:.2f}"))
                lists = work / f"lists-{row_group}"
                write_shards(data, lists / "train", args.files, row_group, lists=True)
                rate = petastorm_list_rate(lists, args.rows, args.batch, args.workers)
                results.append(("Petastorm thread pool -> tf.data, list columns", rate, f"{rate / base:.2f}"))

        root = work / f"columns-{args.row_groups[0]}"
        manifest = manifest_for(root, args.rows)
        inputs = tuple(model_inputs(ModelConfig()))
        features, labels = read_split(manifest, "train", inputs)
        memory = tf.data.Dataset.from_tensor_slices((features, labels)).batch(args.batch).repeat().prefetch(4)
        steps = args.steps + 50
        in_memory = training_rate(memory, steps, 50, args.batch)
        results.append(("Keras fit, default model, fed from memory (samples/s)", in_memory, "1.00"))
        for reader in ("arrow", *(["petastorm"] if petastorm else [])):
            with shard_dataset(manifest, "train", args.batch, reader=reader, shuffle=True, inputs=inputs) as streamed:
                fed = training_rate(streamed, steps, 50, args.batch)
            results.append((f"Keras fit, default model, fed by the {reader} reader", fed, f"{fed / in_memory:.2f}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{args.rows:,} rows, {args.files} files, batch {args.batch}, {args.workers} reader threads, {FEATURES}")
    print(f"{'path':<66} {'rows/s':>12} {'ratio':>6}")
    for name, rate, ratio in results:
        print(f"{name:<66} {rate:>12,.0f} {ratio:>6}")


if __name__ == "__main__":
    main()
