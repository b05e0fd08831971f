"""Shards (Petastorm or the arrow reader) -> tf.data -> Keras on the driver, the evaluation, the saved artifacts."""

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import READERS, REPO, copy_of, limit, petastorm_imports
from dlspark.config import ModelConfig
from dlspark.layout import Layout
from dlspark.manifest import Manifest
from dlspark.train.data import read_split, shard_dataset
from dlspark.train.evaluate import rank_of, top_from_scores, top_popular
from dlspark.train.models import build_model


def rows_of(features, labels):
    return sorted(map(tuple, np.column_stack([features["items"], features["rules"], features["customer"], labels])))


def streamed_rows(manifest, split, **reading):
    """Every example the reader streams, as sorted rows (a multiset)."""
    with shard_dataset(manifest, split, 1000, **reading) as batches:
        seen = list(batches.as_numpy_iterator())
    return rows_of(
        {k: np.concatenate([x[k] for x, _ in seen]) for k in seen[0][0]}, np.concatenate([y for _, y in seen])
    )


@pytest.mark.every_line
@pytest.mark.parametrize("reader", READERS)
def test_a_reader_streams_every_row_of_a_split_once_per_epoch(trained, reader):
    cfg, _ = trained
    manifest = Manifest.read(Layout.at(cfg.data.root).shards)
    assert len(manifest.raw["splits"]["train"]["files"][0]["row_groups"]) > 2  # several row groups to shuffle
    expected = rows_of(*read_split(manifest, "train"))
    with shard_dataset(manifest, "train", 100, reader=reader, epochs=1, shuffle=True, seed=3) as batches:
        seen = [(x, y) for x, y in batches.as_numpy_iterator()]
    assert all(len(y) == 100 for _, y in seen[:-1])
    streamed = rows_of(
        {k: np.concatenate([x[k] for x, _ in seen]) for k in seen[0][0]}, np.concatenate([y for _, y in seen])
    )
    assert streamed == expected and len(streamed) == manifest.rows("train")
    assert [y for _, y in seen][0].tolist() != read_split(manifest, "train")[1][:100].tolist()  # shuffled


@pytest.mark.every_line
@pytest.mark.skipif(not petastorm_imports(), reason="Petastorm does not import with this line's pyarrow")
@pytest.mark.parametrize("shard", [None, (0, 2), (1, 2), (1, 3)])
def test_the_arrow_reader_streams_what_petastorm_streams_per_epoch_and_per_worker(trained, shard):
    cfg, _ = trained
    manifest = Manifest.read(Layout.at(cfg.data.root).shards)
    for epoch in range(2):  # each epoch, shuffled by its own seed: the same examples, once each
        reading = {"epochs": 1, "shuffle": True, "seed": epoch, "shard": shard, "workers": 3}
        arrow = streamed_rows(manifest, "train", reader="arrow", **reading)
        assert arrow == streamed_rows(manifest, "train", reader="petastorm", **reading)
    reading = {"epochs": 3, "shuffle": True, "seed": 7, "shard": shard}
    arrow = streamed_rows(manifest, "train", reader="arrow", **reading)
    assert arrow == streamed_rows(manifest, "train", reader="petastorm", **reading)
    assert len(arrow) == 3 * len(streamed_rows(manifest, "train", reader="arrow", epochs=1, shard=shard))


@pytest.mark.every_line
@pytest.mark.parametrize("reader", READERS)
def test_shards_of_a_split_are_disjoint_and_cover_it(trained, reader):
    cfg, _ = trained
    manifest = Manifest.read(Layout.at(cfg.data.root).shards)
    parts = []
    for index in range(2):
        with shard_dataset(manifest, "train", 512, reader=reader, epochs=1, shard=(index, 2)) as batches:
            parts.append(np.concatenate([y for _, y in batches.as_numpy_iterator()]))
    assert len(parts[0]) > 0 and len(parts[1]) > 0
    assert len(parts[0]) + len(parts[1]) == manifest.rows("train")


@pytest.mark.every_line
@pytest.mark.parametrize("reader", READERS)
def test_the_reader_is_stopped_when_the_block_fails(trained, reader):
    cfg, _ = trained
    manifest = Manifest.read(Layout.at(cfg.data.root).shards)
    before = threading.active_count()
    reading = shard_dataset(manifest, "train", 64, reader=reader, workers=3)
    with pytest.raises(RuntimeError, match="boom"), reading as batches:
        next(iter(batches))
        assert threading.active_count() >= before + 3
        raise RuntimeError("boom")
    deadline = time.monotonic() + limit(10)
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= before


@pytest.mark.parametrize("kind", ["bag", "gru"])
def test_both_models_score_every_product_and_survive_a_basket_no_rule_applies_to(kind):
    model = build_model(ModelConfig(kind=kind), products=30, customers=5, width=4, rule_width=3, learning_rate=0.01)
    batch = {
        "items": np.array([[5, 6, 0, 0], [7, 0, 0, 0]], dtype=np.int32),
        "rules": np.array([[9, 8, 0], [0, 0, 0]], dtype=np.int32),
        "customer": np.array([[2], [0]], dtype=np.int32),
        "size": np.array([[2], [1]], dtype=np.int32),
    }
    logits = np.asarray(model.predict_on_batch(batch))
    assert logits.shape == (2, 30) and np.isfinite(logits).all()
    assert logits[0, 9] > logits[0, 8] > logits[0, 10] - 1  # the rules' ranking is where the model starts
    history = model.fit(batch, np.array([9, 3]), epochs=30, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_ranks_of_the_three_recommenders_exclude_the_basket():
    labels = np.array([4, 3, 7, 1])
    items = np.array([[2, 0], [5, 6], [2, 3], [4, 0]])
    scores = np.zeros((4, 8))
    scores[:, 2] = 9  # the best score is for a product already in rows 0 and 2's baskets
    scores[:, 4], scores[:, 3], scores[:, 1] = 5, 4, 99  # index 1 is 'unknown': never recommended
    top = top_from_scores(scores, items, 3)
    assert top[0].tolist()[:2] == [4, 3] and top[1].tolist()[:3] == [2, 4, 3]
    assert rank_of(labels, top).tolist() == [1, 3, 0, 0]
    assert top_popular(items, products=8, k=3).tolist() == [[3, 4, 5], [2, 3, 4], [4, 5, 6], [2, 3, 5]]


def test_the_model_beats_the_rules_which_beat_popularity_on_the_test_days(trained):
    _, reports = trained
    metrics = reports["evaluate"].details["evaluation"]["metrics"]
    for metric in ("hit@1", "hit@5", "hit@10", "mrr@10"):
        assert metrics["model"][metric] > metrics["rules"][metric], metric
    assert metrics["rules"]["mrr@10"] > metrics["popularity"]["mrr@10"]  # the ranking metric the docs lead with
    assert metrics["rules"]["hit@1"] > metrics["popularity"]["hit@1"]
    assert reports["evaluate"].details["evaluation"]["examples"] == reports["shards"].details["test_rows"]


def test_training_logs_every_epoch_and_the_loss_goes_down(trained):
    cfg, reports = trained
    root = Layout.at(cfg.data.root)
    with open(f"{root.model}/training_log.csv") as src:
        log = list(csv.DictReader(src))
    assert [int(r["epoch"]) for r in log] == list(range(reports["train"].details["epochs"]))
    assert float(log[-1]["loss"]) < float(log[0]["loss"])
    assert Path(f"{root.reports}/training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Path(f"{root.model}/checkpoint").exists()  # a finished run leaves no checkpoint to resume


def test_the_saved_model_and_the_serving_export_predict_what_the_trained_model_does(trained):
    import keras
    import tensorflow as tf

    cfg, _ = trained
    root = Layout.at(cfg.data.root)
    manifest = Manifest.read(root.shards)
    features, _ = read_split(manifest, "test")
    batch = {k: v[:64] for k, v in features.items()}
    loaded = keras.models.load_model(f"{root.model}/model.keras")
    expected = np.asarray(loaded.predict_on_batch(batch))
    serving = tf.saved_model.load(f"{root.model}/serving")  # held: its variables die with it
    served = serving.serve(batch)
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-4, atol=1e-4)
    vocabulary = __import__("json").loads(Path(f"{root.model}/vocabulary.json").read_text())
    assert vocabulary["products"]["ids"] == manifest.raw["products"]["ids"]
    assert expected.shape == (64, len(vocabulary["products"]["ids"]))


@pytest.mark.integration
def test_a_training_run_killed_midway_resumes_from_its_last_epoch(trained, tmp_path):
    root = Layout.at(copy_of(trained[0], tmp_path / "copy").data.root)
    kept = (Path(root.model) / "model.keras").read_bytes()
    command = [
        str(Path(sys.executable).parent / "dlspark"),
        "train",
        "--set",
        f"data.root={root.root}",
        "--set",
        "train.epochs=8",
        "--set",
        "train.patience=null",
        "--set",
        "train.batch_size=32",
    ]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    # The run trains in data.root/_staging/train/model and publishes to data.root/model at the end.
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staged_log = Path(root.root) / "_staging" / "train" / "model" / "training_log.csv"
    deadline = time.monotonic() + limit(300)
    while time.monotonic() < deadline and first.poll() is None:  # polls a condition: two epochs logged
        if staged_log.exists() and len(staged_log.read_text().splitlines()) >= 3:  # header + two epochs
            break
        time.sleep(0.05)
    assert first.poll() is None, "training finished (or failed) before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (Path(root.model) / "model.keras").read_bytes() == kept  # the published model is untouched
    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit(600))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from the checkpoint after epoch" in second.stderr
    epochs = [int(r["epoch"]) for r in csv.DictReader((Path(root.model) / "training_log.csv").open())]
    assert epochs == list(range(8))
