"""dlspark's own shard reader: Parquet row groups through `pyarrow.dataset` fragments into tf.data.

Petastorm 0.13.1 cannot run on pyarrow 15 and newer, which Spark 4.1 and newer need. This reader keeps the semantics
dlspark relies on from Petastorm's `make_batch_reader`: a split's row groups are taken in file-name order, then in
row-group order; worker i of n reads those whose index is i modulo n; each epoch visits a worker's row groups once,
in a new random order when shuffling (rows within a row group are shuffled by the caller, as they are for
Petastorm); `threads` reader threads read row groups ahead; every batch is one whole row group.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow.dataset as ds

from dlspark import fs


def row_groups(directory: str, shard: tuple[int, int] | None = None) -> list[ds.ParquetFileFragment]:
    """The row groups of the Parquet files in `directory` (file-name order, then row-group order); with
    `shard=(index, count)`, every count-th one from index (the row groups a distributed worker reads)."""
    filesystem, inner = fs.filesystem(directory)
    dataset = ds.dataset(inner, filesystem=filesystem, format="parquet", exclude_invalid_files=False)
    files = sorted(dataset.get_fragments(), key=lambda fragment: fragment.path)
    groups = [group for fragment in files for group in fragment.split_by_row_group()]
    index, count = shard if shard else (0, 1)
    return groups[index::count]


def read_group(group: ds.ParquetFileFragment, columns: list[str]) -> dict[str, np.ndarray]:
    """One row group's columns as numpy arrays."""
    table = group.to_table(columns=columns, use_threads=False)
    return {name: table.column(name).to_numpy() for name in columns}


class RowGroupReader:
    """Row groups read ahead by a pool of threads, epoch after epoch; `close()` stops it.

    The threads start here, in the caller's thread: tf.data runs the iterator in threads of its own, where starting
    a Python thread would leave a record of that foreign thread behind in `threading`.
    """

    def __init__(
        self,
        groups: list[ds.ParquetFileFragment],
        columns: list[str],
        *,
        epochs: int | None,
        shuffle: bool,
        seed: int,
        threads: int,
    ) -> None:
        self.groups, self.columns, self.epochs, self.shuffle = groups, columns, epochs, shuffle
        self.random = np.random.default_rng(seed)
        self.stopped = threading.Event()
        self.tasks: queue.Queue[tuple[Future, ds.ParquetFileFragment] | None] = queue.Queue()
        self.threads = [
            threading.Thread(target=self.work, name=f"dlspark-reader-{i}", daemon=True) for i in range(max(1, threads))
        ]
        for thread in self.threads:
            thread.start()

    def work(self) -> None:
        while (task := self.tasks.get()) is not None:
            future, group = task
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(read_group(group, self.columns))
                except BaseException as err:  # noqa: BLE001  (handed to the reader's consumer)
                    future.set_exception(err)

    def order(self) -> Iterator[ds.ParquetFileFragment]:
        """The row groups to read, epoch after epoch (none at all when there are none, even for endless epochs)."""
        epoch = 0
        while self.groups and (self.epochs is None or epoch < self.epochs) and not self.stopped.is_set():
            indexes = self.random.permutation(len(self.groups)) if self.shuffle else range(len(self.groups))
            yield from (self.groups[i] for i in indexes)
            epoch += 1

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        pending: deque[Future] = deque()
        try:
            for group in self.order():
                pending.append(Future())
                self.tasks.put((pending[-1], group))
                if len(pending) > len(self.threads):
                    yield pending.popleft().result()
            while pending and not self.stopped.is_set():
                yield pending.popleft().result()
        except CancelledError:  # closed while a read was waiting: the dataset is no longer read
            return

    def close(self) -> None:
        """Stop reading: reads not yet begun are cancelled, and the threads are joined."""
        self.stopped.set()
        while True:
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                task[0].cancel()
        for _ in self.threads:
            self.tasks.put(None)
        for thread in self.threads:
            thread.join()


@contextmanager
def arrow_batches(
    directory: str,
    columns: list[str],
    *,
    epochs: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
    threads: int = 2,
    shard: tuple[int, int] | None = None,
) -> Iterator[Any]:
    """A tf.data.Dataset of row groups (dicts of 1-D tensors, one per column), stopped when the block ends."""
    import tensorflow as tf

    groups = row_groups(directory, shard)
    schema = groups[0].physical_schema if groups else None
    signature = {
        name: tf.TensorSpec((None,), tf.as_dtype(schema.field(name).type.to_pandas_dtype()) if schema else tf.int32)
        for name in columns
    }
    reader = RowGroupReader(groups, columns, epochs=epochs, shuffle=shuffle, seed=seed, threads=threads)
    try:
        yield tf.data.Dataset.from_generator(lambda: iter(reader), output_signature=signature)
    finally:
        reader.close()
