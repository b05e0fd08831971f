"""Training on the driver: Petastorm streams the training shards into Keras `model.fit`.

Each epoch is checkpointed (Keras's BackupAndRestore: weights, optimizer state and epoch), so a run killed midway
resumes from its last finished epoch when started again with the same shards and configuration. The model
directory then receives the model (`model.keras`), its vocabularies, a serving export and the training log.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

from dlspark import layout as io_
from dlspark.config import PipelineConfig
from dlspark.layout import Layout
from dlspark.train.data import Manifest, model_inputs, petastorm_dataset, read_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPaths:
    """Where one model's artifacts live (README, "Training")."""

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


def run_identity(cfg: PipelineConfig, manifest: Manifest) -> str:
    """What a checkpoint belongs to: the shards' fingerprint and the training configuration."""
    return hashlib.sha256((manifest.fingerprint + cfg.train.model_dump_json()).encode()).hexdigest()[:16]


def prepare_resume(paths: ModelPaths, identity: str) -> int:
    """The epoch to resume from (0 for a fresh start); a checkpoint of other data or settings is discarded."""
    if io_.exists(paths.run):
        state = io_.read_json(paths.run)
        if state.get("identity") == identity and io_.exists(f"{paths.backup}/training_metadata.json"):
            epoch = int(io_.read_json(f"{paths.backup}/training_metadata.json")["epoch"])
            _truncate_log(paths.log, epoch)
            return epoch
        log.warning("discarding a checkpoint of other shards or settings in %s", paths.backup)
    io_.delete_dir(paths.backup)
    io_.write_json(paths.run, {"identity": identity})
    _truncate_log(paths.log, 0)
    return 0


def _truncate_log(path: str, epochs: int) -> None:
    """Keep the log rows of the first `epochs` epochs (a resumed run logs the rest again)."""
    if not io_.exists(path):
        return
    with open(path, newline="") as src:
        rows = list(csv.reader(src))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs] if epochs else []
    with open(path, "w", newline="") as out:
        csv.writer(out).writerows(kept)


def train(cfg: PipelineConfig) -> dict[str, Any]:
    """Train the configured model on shards/train (validating on shards/val); return the history and paths."""
    import keras

    from dlspark.train.callbacks import Throughput
    from dlspark.train.models import model_for, saved_weights, warm_start

    root = Layout.of(cfg.data)
    manifest = Manifest.read(root.shards)
    paths = ModelPaths(root.model)
    tc = cfg.train
    keras.utils.set_random_seed(tc.seed)
    model = model_for(manifest, tc)
    inputs = tuple(model_inputs(tc.model))
    start = prepare_resume(paths, run_identity(cfg, manifest))
    warm = None
    if start:
        log.info("resuming from the checkpoint after epoch %d of %d", start, tc.epochs)
    elif (source := warm_start_source(cfg)) and (saved := saved_weights(source)):
        warm = warm_start(model, manifest, saved)
        log.info("warm start from %s: %s", source, describe_warm_start(warm))
    throughput = Throughput(tc.batch_size)
    callbacks: list[Any] = [
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
    with petastorm_dataset(
        manifest,
        "train",
        tc.batch_size,
        shuffle=tc.shuffle_row_groups,
        seed=tc.seed,
        pool=tc.reader_pool,
        workers=tc.reader_workers,
        prefetch=tc.prefetch,
        inputs=inputs,
    ) as batches:
        history = model.fit(
            batches,
            epochs=tc.epochs,
            steps_per_epoch=steps,
            validation_data=validation,
            validation_batch_size=max(tc.batch_size, 1024),
            callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2,
        )
    save_artifacts(model, manifest, paths)
    return {
        "model": model,
        "manifest": manifest,
        "history": read_log(paths.log),
        "epochs": len(history.epoch),
        "samples_per_s": throughput.rates,
        "first_step": throughput.first_step,
        "warm_start": warm,
    }


def warm_start_source(cfg: PipelineConfig) -> str | None:
    """The current model version to start from (train.warm_start), or None for a fresh start."""
    from dlspark.train.registry import current

    return current(Layout.at(cfg.data.root)) if cfg.train.warm_start else None


def describe_warm_start(warm: dict[str, Any]) -> str:
    return (
        f"{len(warm['layers'])} layers copied, {warm['products_kept']:,} products and "
        f"{warm['customers_kept']:,} customers of its vocabularies kept"
    )


def save_artifacts(model: Any, manifest: Manifest, paths: ModelPaths) -> None:
    """model.keras, the vocabularies it was trained with, and a TensorFlow SavedModel for serving."""
    model.save(paths.model)
    io_.write_json(
        paths.vocabulary,
        {
            "fingerprint": manifest.fingerprint,
            "products": manifest.raw["products"],
            "customers": manifest.raw["customers"],
            "columns": manifest.raw["columns"],
        },
    )
    io_.delete_dir(paths.serving)
    model.export(paths.serving, format="tf_saved_model", verbose=False)


def read_log(path: str) -> list[dict[str, float]]:
    """The CSV log as one dict per epoch."""
    with open(path, newline="") as src:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(src)]
