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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlspark.manifest import PAD, UNKNOWN, Manifest
from dlspark.train.data import FEATURES, petastorm_dataset

log = logging.getLogger(__name__)

RECOMMENDERS = ("model", "rules", "popularity")


def rank_of(labels: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """The 1-based position of each row's label in its ranked list; 0 where it is absent."""
    found = ranked == labels[:, None]
    return np.where(found.any(axis=1), found.argmax(axis=1) + 1, 0)


def top_from_scores(scores: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """The k best product indexes per row, excluding padding, 'unknown' and the row's own items."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    scores[:, [PAD, UNKNOWN]] = -np.inf
    np.put_along_axis(scores, items, -np.inf, axis=1)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def top_popular(items: np.ndarray, products: int, k: int) -> np.ndarray:
    """The k most bought products (indexes 2, 3, ...) that are not in each row's basket."""
    candidates = np.arange(2, min(products, 2 + k + items.shape[1]))
    in_basket = (candidates[None, :, None] == items[:, None, :]).any(axis=2)
    first = np.argsort(in_basket, axis=1, kind="stable")[:, :k]  # candidates not in the basket come first, in order
    picked = candidates[first]
    return np.where(np.take_along_axis(in_basket, first, axis=1), PAD, picked)


@dataclass
class Scores:
    """Running hit counts and reciprocal ranks of one recommender."""

    ks: list[int]
    hits: dict[int, int] = field(default_factory=dict)
    reciprocal: float = 0.0
    examples: int = 0

    def add(self, ranks: np.ndarray, labels: np.ndarray) -> None:
        ranks = np.where(labels == UNKNOWN, 0, ranks)
        for k in self.ks:
            self.hits[k] = self.hits.get(k, 0) + int(((ranks >= 1) & (ranks <= k)).sum())
        kept = (ranks >= 1) & (ranks <= max(self.ks))
        self.reciprocal += float((1.0 / ranks[kept]).sum())
        self.examples += len(labels)

    def table(self) -> dict[str, float]:
        n = max(self.examples, 1)
        return {
            **{f"hit@{k}": round(self.hits.get(k, 0) / n, 4) for k in self.ks},
            f"mrr@{max(self.ks)}": round(self.reciprocal / n, 4),
        }


def evaluate(
    model: Any, manifest: Manifest, inputs: list[str], ks: list[int], batch_size: int = 2048
) -> dict[str, Any]:
    """Stream the test split through Petastorm once and score the model, the rules and popularity on it."""
    k = max(ks)
    scores = {name: Scores(sorted(ks)) for name in RECOMMENDERS}
    with petastorm_dataset(manifest, "test", batch_size, epochs=1, inputs=FEATURES) as batches:
        for features, labels in batches.as_numpy_iterator():
            items = features["items"]
            logits = model.predict_on_batch({name: features[name] for name in inputs})
            scores["model"].add(rank_of(labels, top_from_scores(np.asarray(logits), items, k)), labels)
            scores["rules"].add(rank_of(labels, features["rules"][:, :k]), labels)
            scores["popularity"].add(rank_of(labels, top_popular(items, manifest.products, k)), labels)
    if scores["model"].examples != manifest.rows("test"):
        log.warning(
            "evaluated %d test examples, the manifest lists %d", scores["model"].examples, manifest.rows("test")
        )
    return {"examples": scores["model"].examples, "metrics": {name: s.table() for name, s in scores.items()}}
