"""Fair promotion: champion and challenger scored on the same test examples, through their own vocabularies, and a
gate that reads a paired bootstrap interval of their difference instead of two figures from different days."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_of
from dlspark.manifest import PAD, UNKNOWN, Manifest
from dlspark.pipeline import run_stages
from dlspark.runreport import _promotion
from dlspark.train.compare import compare, paired_interval
from dlspark.train.evaluate import Translation
from dlspark.train.versions import describe, promote


def test_the_paired_interval_holds_the_mean_difference_and_is_reproducible():
    rng = np.random.default_rng(3)
    better = (rng.random(4000) < 0.30).astype(float) - (rng.random(4000) < 0.20).astype(float)  # mean about +0.1
    low, high = paired_interval(better, 0.95, 1000)
    assert low < better.mean() < high and low > 0.05 and high < 0.15
    assert paired_interval(better, 0.95, 1000) == (low, high)  # seeded: the same interval for the same examples
    assert paired_interval(np.zeros(500), 0.95, 200) == (0.0, 0.0)  # the same model twice: nothing to choose
    narrow = paired_interval(better, 0.5, 1000)
    assert low < narrow[0] < narrow[1] < high


def test_a_translation_maps_products_and_customers_to_the_models_own_indexes_and_widths():
    manifest = Manifest(
        "unused",
        {
            "products": {"ids": ["<pad>", "<unknown>", "a", "b", "c"]},
            "customers": {"ids": ["<anonymous>", "<unknown>", "x", "y"]},
        },
    )
    vocabulary = {
        "products": {"ids": ["<pad>", "<unknown>", "c", "a"]},  # another order; b never seen
        "customers": {"ids": ["<anonymous>", "<unknown>", "y"]},
        "columns": {"items": ["item_00", "item_01"], "rules": ["rule_00", "rule_01", "rule_02"]},
    }
    translation = Translation.between(manifest, vocabulary)
    features = {
        "items": np.array([[2, 3, 4], [4, PAD, PAD]]),
        "rules": np.array([[4, 2], [3, PAD]]),
        "customer": np.array([[2], [3]]),
        "size": np.array([[3], [1]]),
    }
    translated, labels = translation.apply(features, np.array([3, 4]))
    assert translated["items"].tolist() == [[3, UNKNOWN], [2, PAD]]  # cut to the model's two item columns
    assert translated["rules"].tolist() == [[2, 3, PAD], [UNKNOWN, PAD, PAD]]  # padded to its three
    assert translated["customer"].tolist() == [[UNKNOWN], [2]] and translated["size"].tolist() == [[3], [1]]
    assert labels.tolist() == [UNKNOWN, 2]  # b: a label the model never saw, a miss for it


@pytest.fixture(scope="module")
def contenders(trained, tmp_path_factory):
    """Models trained on purpose on the trained fixture's shards, each kept with its evaluation: the fixture's own
    (12 epochs with the rule feature: a strong champion), one that barely learnt (1 epoch at a learning rate of
    1e-7, no rule feature: a weak champion), and challengers retrained with another seed (seed 2): the strong
    model's settings, and a model without the rule feature trained for one epoch."""
    cfg = copy_of(trained[0], tmp_path_factory.mktemp("contenders") / "root")
    root = Path(cfg.data.root)
    settings = {
        "weak": {"epochs": 1, "learning_rate": 1e-7, "rules": False},
        "retrained": {"seed": 2},
        "plain": {"seed": 2, "epochs": 1, "rules": False},
    }
    models = {"strong": root / "strong"}
    shutil.copytree(root / "model", models["strong"], ignore=shutil.ignore_patterns("checkpoint"))
    for name, changes in settings.items():
        rules = changes.pop("rules", True)
        train = cfg.train.model_copy(
            update={**changes, "warm_start": False, "model": cfg.train.model.model_copy(update={"use_rules": rules})}
        )
        run_stages(["train", "evaluate"], None, cfg.model_copy(update={"train": train}))
        models[name] = root / name
        shutil.copytree(root / "model", models[name], ignore=shutil.ignore_patterns("checkpoint"))
    return cfg, {name: str(path) for name, path in models.items()}


def _evaluation(model_dir: str) -> dict:
    return json.loads((Path(model_dir) / "evaluation.json").read_text())


def test_a_retrained_challenger_loses_to_a_clearly_better_champion_and_wins_over_a_clearly_worse_one(contenders):
    cfg, models = contenders
    manifest = Manifest.read(cfg.data.layout.shards)
    over_strong = compare(manifest, models["plain"], models["strong"], cfg.train)
    over_weak = compare(manifest, models["plain"], models["weak"], cfg.train)
    assert over_strong["interval"][1] < -cfg.train.promotion_margin and not over_strong["promoted"]
    assert over_weak["interval"][0] > 0 and over_weak["promoted"]
    # the strong model's settings with another seed: a difference inside the noise, promoted
    same = compare(manifest, models["retrained"], models["strong"], cfg.train)
    assert same["interval"][0] < 0.02 and same["interval"][1] > -0.02 and same["promoted"]
    # and the same model against itself: no difference at all
    itself = compare(manifest, models["strong"], models["strong"], cfg.train)
    assert itself["difference"] == 0 and itself["interval"] == [0, 0] and itself["promoted"]


def test_two_models_scored_on_one_split_get_the_metrics_their_own_evaluation_gave(contenders):
    cfg, models = contenders
    manifest = Manifest.read(cfg.data.layout.shards)
    both = compare(manifest, models["plain"], models["strong"], cfg.train)
    assert both["challenger"] == _evaluation(models["plain"])["metrics"]["model"]
    assert both["champion"] == _evaluation(models["strong"])["metrics"]["model"]
    assert both["examples"] == _evaluation(models["strong"])["examples"] == manifest.rows("test")
    assert both["champion_unseen_labels"] == 0  # the same shards: one vocabulary


def test_a_champion_that_never_saw_a_product_misses_its_examples_and_they_are_counted(contenders, tmp_path):
    cfg, models = contenders
    manifest = Manifest.read(cfg.data.layout.shards)
    champion = tmp_path / "champion"
    shutil.copytree(models["strong"], champion)
    vocabulary = json.loads((champion / "vocabulary.json").read_text())
    ids = vocabulary["products"]["ids"]
    forgotten = set(ids[2:12])  # the ten most bought products: renamed, so the champion has never seen them
    vocabulary["products"]["ids"] = [f"<forgotten {i}>" if key in forgotten else key for i, key in enumerate(ids)]
    (champion / "vocabulary.json").write_text(json.dumps(vocabulary))
    labels = _test_labels(manifest)
    expected = int(np.isin(labels, [ids.index(key) for key in forgotten]).sum())
    result = compare(manifest, models["strong"], str(champion), cfg.train)
    assert expected > 0 and result["champion_unseen_labels"] == expected
    assert result["champion"]["hit@10"] < result["challenger"]["hit@10"]  # those examples are misses for it


def test_the_history_records_both_models_on_the_same_examples_and_the_interval(contenders, tmp_path):
    cfg = copy_of(contenders[0], tmp_path / "root")
    root = Path(cfg.data.root)
    shutil.rmtree(root / "model")
    shutil.copytree(root / "strong", root / "model")
    first = promote(cfg)
    assert first["promoted"] and first["comparison"] is None and "the first version" in describe(first)
    shutil.rmtree(root / "model")
    shutil.copytree(root / "plain", root / "model")  # a weaker model, evaluated on the same shards
    entry = promote(cfg)
    comparison = entry["comparison"]
    assert (entry["version"], entry["current_before"], entry["promoted"]) == ("v0002", "v0001", False)
    assert comparison["examples"] == Manifest.read(str(root / "shards")).rows("test")
    assert comparison["challenger"] == entry["metrics"] and comparison["champion"] == first["metrics"]
    low, high = comparison["interval"]
    assert low <= comparison["difference"] <= high < -cfg.train.promotion_margin
    history = json.loads((root / "models" / "history.json").read_text())
    assert history[-1] == entry and (root / "models" / "current").read_text().strip() == "v0001"
    assert f"interval [{low:+.4f}, {high:+.4f}]" in describe(entry) and "same" in describe(entry)
    page = _promotion(entry)  # the run report's section
    assert f"95% paired bootstrap interval [{low:+.4f}, {high:+.4f}]" in page and "v0001 (current before)" in page


def _test_labels(manifest: Manifest) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(f"{manifest.root}/test", columns=["label"]).column("label").to_numpy()


def test_deterministic_training_gives_the_same_weights_twice(trained, tmp_path):
    from dlspark.train.driver import ModelPaths, train
    from dlspark.train.worker import weights_digest

    cfg = trained[0]
    settings = cfg.train.model_copy(update={"deterministic": True, "epochs": 2, "warm_start": False})
    deterministic = cfg.model_copy(update={"train": settings})
    manifest = Manifest.read(cfg.data.layout.shards)
    digests = [
        weights_digest(train(deterministic, manifest, ModelPaths(str(tmp_path / run)), None).model.get_weights())
        for run in ("first", "second")
    ]
    assert digests[0] == digests[1]
