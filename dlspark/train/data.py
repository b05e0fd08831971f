"""Training data: shards streamed into tf.data (by Petastorm, or dlspark's arrow reader), and whole splits in memory.

Every path yields the same features: `items` and `rules` (int32 matrices, one column per position), `customer` and
`size` (int32, shape (n, 1)), and the `label` (int32, shape (n,)).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from dlspark import fs
from dlspark.config import ModelConfig
from dlspark.errors import ConfigError
from dlspark.manifest import Manifest

log = logging.getLogger(__name__)


FEATURES = ("items", "rules", "customer", "size")


def model_inputs(cfg: ModelConfig) -> list[str]:
    """The feature names the model built from `cfg` takes."""
    return ["items", "size", *(["customer"] if cfg.use_customer else []), *(["rules"] if cfg.use_rules else [])]


def assemble(
    column: Callable[[str], Any], manifest: Manifest, inputs: tuple[str, ...], xp: Any
) -> tuple[dict[str, Any], Any]:
    """(features, label) from one array per column; `xp` is numpy or tensorflow (same stack and reshape)."""
    build = {
        "items": lambda: xp.stack([column(c) for c in manifest.item_columns], axis=1),
        "rules": lambda: xp.stack([column(c) for c in manifest.rule_columns], axis=1),
        "customer": lambda: xp.reshape(column("customer"), (-1, 1)),
        "size": lambda: xp.reshape(column("size"), (-1, 1)),
    }
    return {name: build[name]() for name in inputs}, column("label")


def _shuffled(features: dict[str, Any], label: Any, seed: int) -> tuple[dict[str, Any], Any]:
    """The rows of one row group in a random order (both readers shuffle the order of row groups, not rows)."""
    import tensorflow as tf

    order = tf.random.shuffle(tf.range(tf.shape(label)[0]), seed=seed)
    return {k: tf.gather(v, order) for k, v in features.items()}, tf.gather(label, order)


def resolve_reader(choice: str) -> str:
    """The shard reader `train.reader` names: `auto` is Petastorm wherever it imports (the design's reader), else
    dlspark's arrow reader; `petastorm` where it does not import is a ConfigError that says why and what to do."""
    if choice == "arrow":
        return choice
    try:
        import petastorm.tf_utils  # noqa: F401
    except ImportError as err:
        if choice == "petastorm":
            raise ConfigError(
                f"train.reader is petastorm, but Petastorm does not import here ({err}): it needs pyarrow < 15, "
                "so Spark 3.5 or 4.0 (locks/spark-3.5.lock, locks/spark-4.0.lock). Set train.reader=arrow (or auto)."
            ) from err
        log.info("Petastorm does not import here (%s): shards are read by dlspark's arrow reader", err)
        return "arrow"
    return "petastorm"


@contextmanager
def _row_groups(
    reader: str,
    manifest: Manifest,
    split: str,
    *,
    epochs: int | None,
    shuffle: bool,
    seed: int,
    shard: tuple[int, int] | None,
    pool: str,
    workers: int,
) -> Iterator[Any]:
    """A tf.data.Dataset of a split's whole row groups (a dict of 1-D tensors per column) from the reader named."""
    if reader == "arrow":
        from dlspark.train.arrowreader import arrow_batches

        with arrow_batches(
            f"{manifest.root}/{split}",
            manifest.fields(),
            epochs=epochs,
            shuffle=shuffle,
            seed=seed,
            threads=workers,
            shard=shard,
        ) as batches:
            yield batches
        return
    from petastorm import make_batch_reader
    from petastorm.tf_utils import make_petastorm_dataset

    cur_shard, shard_count = shard if shard else (None, None)
    with make_batch_reader(
        manifest.url(split),
        schema_fields=manifest.fields(),
        num_epochs=epochs,
        shuffle_row_groups=shuffle,
        seed=seed,
        reader_pool_type=pool,
        workers_count=workers,
        cur_shard=cur_shard,
        shard_count=shard_count,
    ) as stream:
        yield make_petastorm_dataset(stream).map(lambda batch: batch._asdict())


@contextmanager
def shard_dataset(
    manifest: Manifest,
    split: str,
    batch_size: int,
    *,
    reader: str = "auto",
    epochs: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    pool: str = "thread",
    workers: int = 2,
    prefetch: int = 4,
    shard: tuple[int, int] | None = None,
    inputs: tuple[str, ...] = FEATURES,
) -> Iterator[Any]:
    """A tf.data.Dataset of (features, label) batches streamed from one split by Petastorm or the arrow reader.

    `epochs=None` repeats forever (pair it with steps_per_epoch). `shard=(index, count)` reads every count-th row
    group only (a distributed worker's part). `pool` is Petastorm's pool kind; `workers` the reader's threads. The
    reader is stopped and joined when the `with` block ends, on every path out.
    """
    import tensorflow as tf

    with _row_groups(
        resolve_reader(reader),
        manifest,
        split,
        pool=pool,
        workers=workers,
        epochs=epochs,
        shuffle=shuffle,
        seed=seed,
        shard=shard,
    ) as groups:
        dataset = groups.map(
            lambda batch: assemble(lambda name: batch[name], manifest, inputs, tf), num_parallel_calls=tf.data.AUTOTUNE
        )
        if shuffle:
            dataset = dataset.map(lambda x, y: _shuffled(x, y, seed))
        yield dataset.rebatch(batch_size).prefetch(prefetch)


def read_split(
    manifest: Manifest, split: str, inputs: tuple[str, ...] = FEATURES
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A whole split in memory as numpy (for validation during training, and the in-memory benchmark path)."""
    import pyarrow.parquet as pq

    filesystem, inner = fs.filesystem(f"{manifest.root}/{split}")
    table = pq.read_table(inner, filesystem=filesystem, columns=manifest.fields())
    return assemble(lambda name: table.column(name).to_numpy(), manifest, inputs, np)
