"""Evaluation on the test split: hit rate at k and mean reciprocal rank for the model and two baselines.

Every recommender ranks products for the input basket and never recommends a product already in it:
- model: the Keras model's scores (padding, 'unknown' and the basket's own products excluded);
- rules: the association rules mined on the training days (the `rule_*` columns of the shards);
- popularity: the products most bought in the training days (vocabulary order: index 2 is the most bought).
A test example whose label is not in the training vocabulary counts as a miss for all three.
MRR is truncated at the largest k: a label ranked below it (or not ranked) adds 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlspark.manifest import PAD, UNKNOWN, Manifest
from dlspark.train.data import FEATURES, shard_dataset

log = logging.getLogger(__name__)


def rank_of(labels: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """The 1-based position of each row's label in its ranked list; 0 where it is absent."""
    found = ranked == labels[:, None]
    return np.where(found.any(axis=1), found.argmax(axis=1) + 1, 0)


def top_from_scores(scores: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """The k best product indexes per row, excluding padding, 'unknown' and the row's own items; equal scores go to
    the lower index (the more bought product), so the result does not depend on numpy's partition algorithm."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[:, [PAD, UNKNOWN]] = -np.inf
    np.put_along_axis(scores, items, -np.inf, axis=1)
    kth = np.partition(scores, -k, axis=1)[:, -k, None]  # each row's k-th best score
    above, tied = scores > kth, scores == kth
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= k - above.sum(axis=1, keepdims=True)))
    top = np.nonzero(chosen)[1].reshape(len(scores), k)  # exactly k per row, in index order
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def top_popular(items: np.ndarray, products: int, k: int) -> np.ndarray:
    """The k most bought products (indexes 2, 3, ...) that are not in each row's basket."""
    candidates = np.arange(2, min(products, 2 + k + items.shape[1]))
    in_basket = (candidates[None, :, None] == items[:, None, :]).any(axis=2)
    first = np.argsort(in_basket, axis=1, kind="stable")[:, :k]  # candidates not in the basket come first, in order
    picked = candidates[first]
    return np.where(np.take_along_axis(in_basket, first, axis=1), PAD, picked)


@dataclass(frozen=True)
class Translation:
    """How a model trained on other shards reads this manifest's examples: each product and customer index mapped
    to the model's own (UNKNOWN where it never saw the id), and the arrays cut or padded to the model's widths."""

    products: np.ndarray
    customers: np.ndarray
    items: int  # the model's item columns
    rules: int  # the model's rule columns

    @classmethod
    def between(cls, manifest: Manifest, vocabulary: dict[str, Any]) -> Translation:
        """From `manifest`'s indexes to those of a model's vocabulary.json (ids, then the reserved slots)."""

        def mapping(new: list[str], own: list[str]) -> np.ndarray:
            index = {key: i for i, key in enumerate(own)}
            return np.array([index.get(key, UNKNOWN) for key in new], dtype=np.int32)

        return cls(
            mapping(manifest.raw["products"]["ids"], vocabulary["products"]["ids"]),
            mapping(manifest.raw["customers"]["ids"], vocabulary["customers"]["ids"]),
            len(vocabulary["columns"]["items"]),
            len(vocabulary["columns"]["rules"]),
        )

    def apply(self, features: dict[str, np.ndarray], labels: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return {
            "items": _width(self.products[features["items"]], self.items),
            "rules": _width(self.products[features["rules"]], self.rules),
            "customer": self.customers[features["customer"]],
            "size": features["size"],
        }, self.products[labels]


def _width(matrix: np.ndarray, width: int) -> np.ndarray:
    """The first `width` columns of `matrix`, padded with PAD where it has fewer."""
    if matrix.shape[1] >= width:
        return matrix[:, :width]
    return np.pad(matrix, ((0, 0), (0, width - matrix.shape[1])), constant_values=PAD)


Ranker = Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray]


def model_ranker(model: Any, k: int, translation: Translation | None = None) -> Ranker:
    """Ranks by a Keras model's scores; `translation` when the model was trained on other vocabularies."""
    inputs = [i.name for i in model.inputs]

    def rank(features: dict[str, np.ndarray], labels: np.ndarray) -> np.ndarray:
        if translation is not None:
            features, labels = translation.apply(features, labels)
        logits = model.predict_on_batch({name: features[name] for name in inputs})
        return rank_of(labels, top_from_scores(np.asarray(logits), features["items"], k))

    return rank


def baseline_rankers(manifest: Manifest, k: int) -> dict[str, Ranker]:
    """The rules mined on the training days (the shards' rule columns) and the most bought products."""
    return {
        "rules": lambda features, labels: rank_of(labels, features["rules"][:, :k]),
        "popularity": lambda features, labels: rank_of(labels, top_popular(features["items"], manifest.products, k)),
    }


def score_test_split(
    manifest: Manifest, rankers: dict[str, Ranker], batch_size: int = 2048, reader: str = "auto"
) -> dict[str, np.ndarray]:
    """Every ranker's rank of each test example's label (1..k, 0: not in its top k), in one pass over the test
    split: the same examples in the same order for all, so their ranks pair up. A label outside the training
    vocabulary is a miss for every ranker."""
    ranks: dict[str, list[np.ndarray]] = {name: [] for name in rankers}
    with shard_dataset(manifest, "test", batch_size, reader=reader, epochs=1, inputs=FEATURES) as batches:
        for features, labels in batches.as_numpy_iterator():
            for name, rank in rankers.items():
                ranks[name].append(np.where(labels == UNKNOWN, 0, rank(features, labels)))
    joined = {name: np.concatenate(parts) if parts else np.zeros(0, np.int64) for name, parts in ranks.items()}
    examples = len(next(iter(joined.values()), []))
    if examples != manifest.rows("test"):
        log.warning("evaluated %d test examples, the manifest lists %d", examples, manifest.rows("test"))
    return joined


def per_example(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Each example's value of one metric: hit@K is 1 or 0, mrr@K is 1/rank or 0 (ranks are within max(top_k))."""
    name, k = metric.split("@")
    inside = (ranks >= 1) & (ranks <= int(k))
    if name == "hit":
        return inside.astype(np.float64)
    return np.where(inside, 1.0 / np.maximum(ranks, 1), 0.0)


def metrics(ranks: np.ndarray, ks: list[int]) -> dict[str, float]:
    """Hit rate at each k and MRR truncated at the largest, over all examples."""
    names = [f"hit@{k}" for k in sorted(ks)] + [f"mrr@{max(ks)}"]
    return {name: round(float(per_example(ranks, name).mean()) if len(ranks) else 0.0, 4) for name in names}


def evaluate(
    model: Any, manifest: Manifest, ks: list[int], batch_size: int = 2048, reader: str = "auto"
) -> dict[str, Any]:
    """Stream the test split once (train.reader's reader) and score the model, the rules and popularity on it."""
    k = max(ks)
    rankers = {"model": model_ranker(model, k), **baseline_rankers(manifest, k)}
    ranks = score_test_split(manifest, rankers, batch_size, reader)
    return {"examples": len(ranks["model"]), "metrics": {name: metrics(r, ks) for name, r in ranks.items()}}
