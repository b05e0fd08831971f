"""One worker of the barrier-mode trainer: a process of its own, started by a Spark barrier task.

The barrier task (distributed.py) starts `python -m dlspark.train.worker` first thing, so TensorFlow is imported
while the tasks gather their addresses; it then writes the worker's spec (configuration, rank, TF_CONFIG, steps
per epoch, where to resume) as one JSON line to the worker's stdin. The worker trains the same Keras 3 model the
driver trainer builds under `MultiWorkerMirroredStrategy`, with a custom loop: Keras 3's `fit` does not run under
that strategy (STACK.md; keras-team/keras issue 20585). It logs to stdout, which the barrier task forwards to the
driver, and ends with one line: RESULT_PREFIX + JSON (history, digest of its weights, timings).

A worker process per attempt, rather than training inside Spark's Python worker, gives every attempt a fresh
TensorFlow (its collectives can be configured once per process, STACK.md) and makes a dead worker an exit code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dlspark.train.task import RESULT_PREFIX

METRICS = ("loss", "top10")
log = logging.getLogger("dlspark.train.worker")


def main() -> None:
    marks = {"started": time.time()}
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(message)s")
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # one INFO line per collective op otherwise
    logging.getLogger("petastorm").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)  # Petastorm on pyarrow's legacy API (STACK.md)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401  (imported before the spec arrives: the slow part of the start)
    import tensorflow as tf  # noqa: F401

    marks["imported"] = time.time()
    spec = json.loads(sys.stdin.readline())
    result = train_worker(spec, marks)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip TensorFlow's and Petastorm's slow teardown: everything is written and flushed


def train_worker(spec: dict[str, Any], marks: dict[str, float]) -> dict[str, Any]:
    """Train this worker's part; return its rank, the model's path (the chief), history, weights digest, examples
    per second and launch marks."""
    import keras
    import tensorflow as tf

    from dlspark.config import PipelineConfig
    from dlspark.layout import Layout
    from dlspark.train.data import Manifest, model_inputs, petastorm_dataset, read_split
    from dlspark.train.driver import ModelPaths
    from dlspark.train.models import model_for, saved_weights, warm_start

    cfg = PipelineConfig.model_validate(spec["config"])
    tc, rank, workers = cfg.train, int(spec["rank"]), int(spec["workers"])
    os.environ["TF_CONFIG"] = json.dumps(spec["tf_config"])
    tf.config.threading.set_intra_op_parallelism_threads(int(spec["threads"]))
    tf.config.threading.set_inter_op_parallelism_threads(int(spec["threads"]))
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING
        )
    )
    marks["strategy"] = time.time()
    root = Layout.of(cfg.data)
    manifest = Manifest.read(root.shards)
    paths = ModelPaths(root.model)
    inputs = tuple(model_inputs(tc.model))
    per_worker = int(spec["per_worker_batch"])
    global_batch = per_worker * workers
    saved = saved_weights(spec["warm_start"]) if spec.get("warm_start") else None  # loaded outside the strategy
    warm = None
    keras.utils.set_random_seed(tc.seed)  # the same initial weights on every worker
    with strategy.scope():
        model = model_for(manifest, tc)
        optimizer = model.optimizer
        optimizer.build(model.trainable_variables)
        if spec["resume"]:
            model.load_weights(f"{paths.backup}/{spec['resume']['weights']}")
        elif saved is not None:
            warm = warm_start(model, manifest, saved)
            if rank == 0:
                log.info("warm start from %s: %d layers copied", warm["from"], len(warm["layers"]))
    keras.utils.set_random_seed(tc.seed + 1000 * rank + int(spec["start_epoch"]))  # dropout differs per worker
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)

    def sums(labels: Any, logits: Any, weights: Any) -> Any:
        per_example = loss_fn(labels, logits) * weights
        hits = tf.cast(tf.math.in_top_k(labels, logits, 10), tf.float32) * weights
        return tf.stack([tf.reduce_sum(per_example), tf.reduce_sum(hits), tf.reduce_sum(weights)])

    def regularization() -> Any:
        return tf.add_n([tf.cast(x, tf.float32) for x in model.losses]) if model.losses else tf.constant(0.0)

    def train_step(features: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = model(features, training=True)
            per_example = loss_fn(labels, logits)
            penalty = regularization()
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            loss += tf.nn.scale_regularization_loss(penalty)
        variables = model.trainable_variables
        gradients = [_packable(g, v) for g, v in zip(tape.gradient(loss, variables), variables, strict=True)]
        optimizer.apply(gradients, variables)
        return tf.concat([sums(labels, logits, tf.ones_like(per_example)), [penalty]], axis=0)

    def eval_step(features: Any, labels: Any, weights: Any) -> Any:
        logits = model(features, training=False)
        return tf.concat([sums(labels, logits, weights), [regularization()]], axis=0)

    @tf.function
    def distributed_train(iterator: Any) -> Any:
        """One step; returns this worker's own sums (summed over workers once per epoch, not every step)."""
        return strategy.experimental_local_results(strategy.run(train_step, args=next(iterator)))[0]

    @tf.function
    def sum_over_workers(local: Any) -> Any:
        return strategy.reduce("SUM", strategy.run(tf.identity, args=(local,)), axis=None)

    @tf.function(reduce_retracing=True)
    def distributed_eval(features: Any, labels: Any, weights: Any) -> Any:
        return strategy.reduce("SUM", strategy.run(eval_step, args=(features, labels, weights)), axis=None)

    validation = _validation_part(read_split(manifest, "val", inputs), rank, workers, max(per_worker, 1024))
    steps, epochs = int(spec["steps_per_epoch"]), tc.epochs
    stopper = _EarlyStopping(tc.patience, spec["resume"])
    history: list[dict[str, float]] = []
    rates: list[float] = []
    checkpoint_dir = paths.backup if rank == 0 else tempfile.mkdtemp(prefix=f"dlspark-worker{rank}-")
    with _distributed_batches(strategy, petastorm_dataset, manifest, tc, per_worker, rank, workers, inputs) as it:
        marks["data"] = time.time()
        log.info(
            "worker %d/%d (pid %d) ready: %d steps per epoch of %d examples (%d per worker), epochs %d to %d",
            rank,
            workers,
            os.getpid(),
            steps,
            global_batch,
            per_worker,
            int(spec["start_epoch"]) + 1,
            epochs,
        )
        for epoch in range(int(spec["start_epoch"]), epochs):
            started = time.monotonic()
            totals = tf.zeros(4)
            for step in range(steps):
                totals += distributed_train(it)
                if "first_step" not in marks:
                    marks["first_step"] = time.time()
                    log.info(
                        "worker %d: first step done, %.1f s after it started", rank, time.time() - marks["started"]
                    )
                _progress(rank, epoch, epochs, step + 1, steps, totals, started)
            seconds = time.monotonic() - started
            rates.append(steps * global_batch / seconds)
            row = {"epoch": float(epoch), **_metrics(sum_over_workers(totals).numpy(), workers)}
            row.update({f"val_{k}": v for k, v in _evaluate(distributed_eval, validation, workers).items()})
            history.append(row)
            stop = stopper.update(epoch, row["val_loss"], model)
            _checkpoint(model, checkpoint_dir, epoch + 1, stopper, rank, paths)
            if rank == 0:
                _append_log(paths.log, row)
            (log.info if rank == 0 else log.debug)(
                "epoch %d/%d: %s (%.1f s, %.0f examples/s)",
                epoch + 1,
                epochs,
                " ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"),
                seconds,
                rates[-1],
            )
            if stop:
                log.info(
                    "early stopping after epoch %d: val_loss has not improved for %d epochs", epoch + 1, tc.patience
                )
                break
    stopper.restore(model, paths.backup)
    if rank == 0:
        model.save(paths.model)
    else:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return {
        "rank": rank,
        "model": paths.model if rank == 0 else None,
        "history": history,
        "digest": weights_digest(model.get_weights()),
        "samples_per_s": rates,
        "marks": marks,
        "warm_start": warm,
    }


@contextmanager
def _distributed_batches(
    strategy: Any,
    dataset_of: Callable[..., Any],
    manifest: Any,
    tc: Any,
    per_worker: int,
    rank: int,
    workers: int,
    inputs: tuple[str, ...],
) -> Iterator[Any]:
    """An iterator over this worker's Petastorm shard, repeated forever (the steps per epoch bound each epoch)."""
    import tensorflow as tf

    with dataset_of(
        manifest,
        "train",
        per_worker,
        shuffle=tc.shuffle_row_groups,
        seed=tc.seed + rank,
        pool=tc.reader_pool,
        workers=tc.reader_workers,
        prefetch=tc.prefetch,
        shard=(rank, workers),
        inputs=inputs,
    ) as batches:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        batches = batches.with_options(options)  # each worker already reads its own shard
        yield iter(strategy.distribute_datasets_from_function(lambda _: batches))


DENSE_GRADIENT_LIMIT = 1 << 22  # elements (16 MB of float32)


def _packable(gradient: Any, variable: Any) -> Any:
    """An embedding's sparse gradient as a dense tensor when the table is small.

    The strategy all-reduces dense gradients packed together in one collective op, but gathers each sparse
    gradient (indices and values) in collectives of its own; for tables of a few thousand rows the dense
    form costs fewer round trips. Large tables keep the sparse form, whose size follows the batch.
    """
    import math

    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices) and math.prod(variable.shape) <= DENSE_GRADIENT_LIMIT:
        return tf.convert_to_tensor(gradient)
    return gradient


def _validation_part(split: tuple[dict[str, Any], Any], rank: int, workers: int, batch: int) -> list[tuple[Any, ...]]:
    """This worker's rows of the validation split (every workers-th row), padded with zero-weight rows so that
    every worker runs the same number of evaluation batches."""
    import numpy as np

    features, labels = split
    per_worker = -(-len(labels) // workers)
    mine = np.arange(rank, len(labels), workers)
    index = np.concatenate([mine, np.zeros(per_worker - len(mine), dtype=mine.dtype)])
    weights = (np.arange(per_worker) < len(mine)).astype(np.float32)
    return [
        (
            {k: v[index[i : i + batch]] for k, v in features.items()},
            labels[index[i : i + batch]],
            weights[i : i + batch],
        )
        for i in range(0, per_worker, batch)
    ]


def _evaluate(step: Callable[..., Any], batches: list[tuple[Any, ...]], workers: int) -> dict[str, float]:
    import numpy as np

    totals = sum((step(*batch).numpy() for batch in batches), np.zeros(4))
    return _metrics(totals, workers)


def _metrics(totals: Any, workers: int) -> dict[str, float]:
    """loss (cross-entropy plus the regularization penalty, as Keras reports it) and top-10 accuracy."""
    loss_sum, hits, count, penalty = (float(x) for x in totals)
    count = max(count, 1.0)
    return {"loss": loss_sum / count + penalty / workers, "top10": hits / count}


_last_progress = [0.0]


def _progress(rank: int, epoch: int, epochs: int, step: int, steps: int, totals: Any, started: float) -> None:
    """A progress line from the chief every 10 seconds of a long epoch (its own shard's running figures)."""
    now = time.monotonic()
    if rank != 0 or step == steps or now - max(_last_progress[0], started) < 10:
        return
    _last_progress[0] = now
    loss_sum, hits, count, _ = (float(x) for x in totals.numpy())
    log.info(
        "epoch %d/%d step %d/%d: loss %.4f top10 %.4f",
        epoch + 1,
        epochs,
        step,
        steps,
        loss_sum / max(count, 1),
        hits / max(count, 1),
    )


class _EarlyStopping:
    """Keras's EarlyStopping(monitor=val_loss, restore_best_weights=True), with its state kept in the checkpoint
    so that a resumed run stops where an uninterrupted one would."""

    def __init__(self, patience: int | None, resume: dict[str, Any] | None) -> None:
        self.patience = patience
        self.best = float((resume or {}).get("best_val_loss", float("inf")))
        self.best_weights: str | None = (resume or {}).get("best_weights")
        self.wait = int((resume or {}).get("wait", 0))
        self.best_in_memory: list[Any] | None = None

    def update(self, epoch: int, val_loss: float, model: Any) -> bool:
        if not self.patience:
            return False
        self.wait += 1
        if val_loss < self.best:
            self.best, self.wait = val_loss, 0
            self.best_in_memory = model.get_weights()
            self.best_weights = f"best-{epoch + 1:04d}.weights.h5"
            return False
        return self.wait >= self.patience and epoch > 0

    def state(self) -> dict[str, Any]:
        return {"best_val_loss": self.best, "wait": self.wait, "best_weights": self.best_weights}

    def restore(self, model: Any, checkpoint_dir: str) -> None:
        if not self.patience:
            return
        if self.best_in_memory is not None:
            model.set_weights(self.best_in_memory)
        elif self.best_weights:
            model.load_weights(f"{checkpoint_dir}/{self.best_weights}")


def _checkpoint(model: Any, directory: str, epochs_done: int, stopper: _EarlyStopping, rank: int, paths: Any) -> None:
    """Weights and optimizer state after `epochs_done` epochs; training_metadata.json names them (written last,
    by a rename, so a worker killed while saving leaves the previous checkpoint whole)."""
    from dlspark import layout as io_

    name = f"epoch-{epochs_done:04d}.weights.h5"
    model.save_weights(f"{directory}/{name}")
    if stopper.best_weights == f"best-{epochs_done:04d}.weights.h5":  # this epoch is the best so far
        shutil.copyfile(f"{directory}/{name}", f"{directory}/{stopper.best_weights}")
    metadata = {"epoch": epochs_done, "weights": name, **stopper.state()}
    io_.write_json(f"{directory}/training_metadata.json.tmp", metadata)
    os.replace(f"{directory}/training_metadata.json.tmp", f"{directory}/training_metadata.json")
    keep = {name, stopper.best_weights}
    for old in os.listdir(directory):
        if old.endswith(".weights.h5") and old not in keep:
            os.remove(f"{directory}/{old}")


def _append_log(path: str, row: dict[str, float]) -> None:
    """One row of the training log, in the columns Keras's CSVLogger writes for the driver trainer."""
    import csv

    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow({k: int(v) if k == "epoch" else v for k, v in row.items()})


def weights_digest(weights: list[Any]) -> str:
    """A short digest of a model's weights: equal on every worker when they trained in step."""
    digest = hashlib.sha256()
    for array in weights:
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    main()
