"""Champion against challenger on one test set: the current model and the new one scored on the same examples of
the new run's test split, and a paired bootstrap interval of their difference, which the promotion gate reads.

The current model reads the examples through its own vocabularies (`Translation`): a product or customer it never
saw is unknown to it, and a test label it never saw is a miss for it (counted in `champion_unseen_labels`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from dlspark import fs
from dlspark.config import TrainConfig
from dlspark.manifest import UNKNOWN, Manifest
from dlspark.train.evaluate import Translation, metrics, model_ranker, per_example, score_test_split

log = logging.getLogger(__name__)


def paired_interval(differences: np.ndarray, confidence: float, resamples: int, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval of the mean of paired differences: the examples resampled with replacement,
    both models' values moving together (so what they share, an easy or a hard example, cancels out)."""
    n = len(differences)
    if n == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 4_000_000 // n)  # resamples drawn a few million indexes at a time
    for start in range(0, resamples, chunk):
        picks = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        means[start : start + len(picks)] = differences[picks].mean(axis=1)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def compare(manifest: Manifest, challenger_dir: str, champion_dir: str, tc: TrainConfig) -> dict[str, Any]:
    """Both models' metrics on the same test examples, the difference in `tc.promotion_metric` with its interval,
    and the gate's decision: promote unless the challenger is worse by more than the margin at that confidence."""
    import keras

    import dlspark.train.models  # noqa: F401  (registers the custom layers load_model needs)
    from dlspark.train.driver import ModelPaths

    k = max(tc.top_k)
    champion_paths = ModelPaths(champion_dir)
    translation = Translation.between(manifest, fs.read_json(champion_paths.vocabulary))
    ranks = score_test_split(
        manifest,
        {
            "challenger": model_ranker(keras.models.load_model(ModelPaths(challenger_dir).model), k),
            "champion": model_ranker(keras.models.load_model(champion_paths.model), k, translation),
            "unseen": lambda features, labels: (translation.products[labels] == UNKNOWN).astype(np.int64),
        },
        reader=tc.reader,
    )
    metric = tc.promotion_metric
    differences = per_example(ranks["challenger"], metric) - per_example(ranks["champion"], metric)
    low, high = paired_interval(differences, tc.promotion_confidence, tc.promotion_resamples, tc.seed)
    challenger, champion = metrics(ranks["challenger"], tc.top_k), metrics(ranks["champion"], tc.top_k)
    difference = float(differences.mean()) if len(differences) else 0.0
    log.info(
        "%s on the same %d test examples: challenger %.4f, champion %.4f, difference %+.4f, %.0f%% interval "
        "[%+.4f, %+.4f], margin %s",
        metric,
        len(differences),
        challenger[metric],
        champion[metric],
        difference,
        100 * tc.promotion_confidence,
        low,
        high,
        tc.promotion_margin,
    )
    return {
        "examples": len(differences),
        "metric": metric,
        "challenger": challenger,
        "champion": champion,
        "difference": round(difference, 4),
        "interval": [round(low, 4), round(high, 4)],
        "confidence": tc.promotion_confidence,
        "margin": tc.promotion_margin,
        "champion_unseen_labels": int(ranks["unseen"].sum()),
        "promoted": bool(high >= -tc.promotion_margin),
    }
