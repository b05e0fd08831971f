"""Training on the driver: Petastorm streams the training shards into Keras `model.fit`.

Each epoch is checkpointed (Keras's BackupAndRestore: weights, optimizer state and epoch), so a run killed midway
resumes from its last finished epoch when started again with the same shards and configuration. The model
directory then receives the model (`model.keras`), its vocabularies, a serving export and the training log.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from dataclasses import dataclass
from typing import Any

from dlspark import fs
from dlspark.config import PipelineConfig
from dlspark.digest import short_hash
from dlspark.manifest import Manifest
from dlspark.train.data import model_inputs, read_split, shard_dataset
from dlspark.train.determinism import make_deterministic, reader_workers
from dlspark.train.results import TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPaths:
    """Where one model's artifacts live (docs/training.md)."""

    root: str

    @property
    def model(self) -> str:
        return f"{self.root}/model.keras"

    @property
    def serving(self) -> str:
        return f"{self.root}/serving"

    @property
    def vocabulary(self) -> str:
        return f"{self.root}/vocabulary.json"

    @property
    def log(self) -> str:
        return f"{self.root}/training_log.csv"

    @property
    def backup(self) -> str:
        return f"{self.root}/checkpoint"

    @property
    def run(self) -> str:
        return f"{self.root}/checkpoint/run.json"

    @property
    def metadata(self) -> str:
        """The checkpoint's state: the epochs done and the weights file that holds them."""
        return f"{self.backup}/training_metadata.json"


def run_identity(cfg: PipelineConfig, manifest: Manifest) -> str:
    """What a checkpoint belongs to: the shards' fingerprint and the training configuration."""
    return short_hash(manifest.fingerprint + cfg.train.model_dump_json())


def prepare_resume(paths: ModelPaths, identity: str) -> int:
    """The epoch to resume from (0 for a fresh start); a checkpoint of other data or settings is discarded."""
    if fs.exists(paths.run):
        state = fs.read_json(paths.run)
        if state.get("identity") == identity and fs.exists(paths.metadata):
            epoch = int(fs.read_json(paths.metadata)["epoch"])
            _truncate_log(paths.log, epoch)
            return epoch
        log.warning("discarding a checkpoint of other shards or settings in %s", paths.backup)
    fs.delete(paths.backup)
    fs.write_json(paths.run, {"identity": identity})
    _truncate_log(paths.log, 0)
    return 0


def _truncate_log(path: str, epochs: int) -> None:
    """Keep the log rows of the first `epochs` epochs (a resumed run logs the rest again)."""
    if not fs.exists(path):
        return
    rows = list(csv.reader(io.StringIO(fs.read_bytes(path).decode())))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs] if epochs else []
    out = io.StringIO()
    csv.writer(out).writerows(kept)
    fs.replace_bytes(path, out.getvalue().encode())


def train(cfg: PipelineConfig, manifest: Manifest, paths: ModelPaths, warm_from: str | None) -> TrainResult:
    """Train the configured model on shards/train (validating on shards/val), writing to `paths`; start from the
    model version in `warm_from` where its vocabularies allow (unless resuming a checkpoint)."""
    import keras

    from dlspark.train.callbacks import Throughput
    from dlspark.train.models import model_for, saved_weights, warm_start

    tc = cfg.train
    if tc.deterministic:
        make_deterministic()
    keras.utils.set_random_seed(tc.seed)
    model = model_for(manifest, tc)
    inputs = tuple(model_inputs(tc.model))
    start = prepare_resume(paths, run_identity(cfg, manifest))
    warm = None
    if start:
        log.info("resuming from the checkpoint after epoch %d of %d", start, tc.epochs)
    elif warm_from and (saved := saved_weights(warm_from)):
        warm = warm_start(model, manifest, saved)
        log.info("warm start from %s: %s", warm_from, warm.describe())
    throughput = Throughput(tc.batch_size)
    callbacks: list[Any] = [  # Keras writes these files itself: a model directory must be on a local disk
        throughput,
        keras.callbacks.CSVLogger(paths.log, append=True),
        keras.callbacks.BackupAndRestore(paths.backup, double_checkpoint=True),
    ]
    if tc.patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=tc.patience, restore_best_weights=True)
        )
    steps = max(1, -(-manifest.rows("train") // tc.batch_size))
    validation = read_split(manifest, "val", inputs)
    with shard_dataset(
        manifest,
        "train",
        tc.batch_size,
        reader=tc.reader,
        shuffle=tc.shuffle_row_groups,
        seed=tc.seed,
        pool=tc.reader_pool,
        workers=reader_workers(tc),
        prefetch=tc.prefetch,
        inputs=inputs,
    ) as batches:
        model.fit(
            batches,
            epochs=tc.epochs,
            steps_per_epoch=steps,
            validation_data=validation,
            validation_batch_size=max(tc.batch_size, 1024),
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )
    save_artifacts(model, manifest, paths)
    return TrainResult(model, manifest, read_log(paths.log), throughput.rates, warm, throughput.first_step)


def save_artifacts(model: Any, manifest: Manifest, paths: ModelPaths) -> None:
    """model.keras, the vocabularies it was trained with, and a TensorFlow SavedModel for serving."""
    model.save(paths.model)
    fs.write_json(
        paths.vocabulary,
        {
            "fingerprint": manifest.fingerprint,
            "products": manifest.raw["products"],
            "customers": manifest.raw["customers"],
            "columns": manifest.raw["columns"],
        },
    )
    fs.delete(paths.serving)
    model.export(paths.serving, format="tf_saved_model", verbose=False)


def read_log(path: str) -> list[dict[str, float]]:
    """The CSV log as one dict per epoch."""
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(fs.read_bytes(path).decode()))]


def append_log(path: str, row: dict[str, float]) -> None:
    """One row of the training log, in the columns Keras's CSVLogger writes (the barrier workers' log)."""
    old = fs.read_bytes(path).decode() if fs.exists(path) else ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row))
    if not old:
        writer.writeheader()
    writer.writerow({k: int(v) if k == "epoch" else v for k, v in row.items()})
    fs.replace_bytes(path, (old + out.getvalue()).encode())
