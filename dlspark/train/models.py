"""The Keras models, built by one function from configuration (the driver and the barrier trainers share it)."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from dlspark.config import ModelConfig, TrainConfig
from dlspark.manifest import Manifest
from dlspark.train.results import WarmStart


@keras.saving.register_keras_serializable(package="dlspark")
class MaskedMean(layers.Layer):
    """Mean of the embeddings that are not padding; zeros for a row that is all padding.

    Keras's GlobalAveragePooling1D divides by the number of unmasked steps and gives NaN for an empty row (an
    order no rule applies to), hence this layer.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: Any, mask: Any = None) -> Any:
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None


@keras.saving.register_keras_serializable(package="dlspark")
class RuleScores(layers.Layer):
    """A learned score per rank of the rule recommender's list, added to the logit of the product at that rank.

    The wide part of a wide-and-deep model: with it the network starts from the rules' ranking (weights from 4 at
    the first rank down to 2 at the last) and learns how far to trust each rank, instead of having to rediscover
    the rules from embeddings. Built with a scatter, so
    its memory grows with batch x ranks, not with the catalogue.
    """

    def __init__(self, products: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.products = products

    def build(self, input_shape: Any) -> None:
        ranks = int(input_shape[-1])
        start = keras.initializers.Constant([4.0 - 2.0 * k / max(ranks - 1, 1) for k in range(ranks)])
        self.rank_weights = self.add_weight(shape=(ranks,), initializer=start, name="rank_weights")

    def call(self, rules: Any) -> Any:
        rows = ops.shape(rules)[0]
        ranks = ops.shape(rules)[1]
        row_ids = ops.repeat(ops.expand_dims(ops.arange(rows), 1), ranks, axis=1)
        indices = ops.reshape(ops.stack([row_ids, ops.cast(rules, row_ids.dtype)], axis=-1), (-1, 2))
        present = ops.cast(ops.not_equal(rules, 0), self.rank_weights.dtype)
        values = ops.reshape(present * ops.expand_dims(self.rank_weights, 0), (-1,))
        return ops.scatter(indices, values, (rows, self.products))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "products": self.products}


def build_model(
    cfg: ModelConfig,
    products: int,
    customers: int,
    width: int,
    rule_width: int,
    learning_rate: float,
) -> keras.Model:
    """A compiled model that scores every product of the vocabulary for a basket (logits, one per product).

    Inputs (all int32): `items` (width product indexes, 0 = padding), `customer`, `size` (the basket's products
    before truncation) and, with `use_rules`, `rules` (the rule recommender's products for the basket, 0-padded).
    """
    items = keras.Input((width,), dtype="int32", name="items")
    size = keras.Input((1,), dtype="int32", name="size")
    inputs = {"items": items, "size": size}
    embedded = layers.Embedding(products, cfg.embedding_dim, mask_zero=True, name="product_embedding")(items)
    if cfg.kind == "bag":
        basket = MaskedMean(name="basket_mean")(embedded)
    else:
        basket = layers.GRU(cfg.recurrent_units, name="basket_gru")(embedded)
    parts = [basket, layers.Rescaling(1.0 / width, name="size_scaled")(size)]
    if cfg.use_customer:
        customer = inputs["customer"] = keras.Input((1,), dtype="int32", name="customer")
        embedding = layers.Embedding(
            customers,
            cfg.customer_dim,
            embeddings_regularizer=keras.regularizers.L2(cfg.customer_l2) if cfg.customer_l2 else None,
            name="customer_embedding",
        )
        parts.append(layers.Flatten()(embedding(customer)))
    if cfg.use_rules:
        rules = inputs["rules"] = keras.Input((rule_width,), dtype="int32", name="rules")
        recommended = layers.Embedding(products, cfg.embedding_dim, mask_zero=True, name="rule_embedding")(rules)
        parts.append(MaskedMean(name="rules_mean")(recommended))
    hidden = layers.Concatenate()(parts)
    for i, units in enumerate(cfg.hidden_units):
        hidden = layers.Dense(units, activation="relu", name=f"hidden_{i}")(hidden)
        hidden = layers.Dropout(cfg.dropout)(hidden)
    logits = layers.Dense(products, name="logits")(hidden)
    if cfg.use_rules:
        logits = layers.Add(name="logits_with_rules")([logits, RuleScores(products, name="rule_scores")(rules)])
    model = keras.Model(inputs, logits, name=f"dlspark_{cfg.kind}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseTopKCategoricalAccuracy(k=10, name="top10")],
    )
    return model


def model_for(manifest: Manifest, cfg: TrainConfig) -> keras.Model:
    """The configured model, sized by the shards' vocabularies and columns (both trainers build it so)."""
    return build_model(
        cfg.model,
        manifest.products,
        manifest.customers,
        len(manifest.item_columns),
        len(manifest.rule_columns),
        cfg.learning_rate,
    )


# The layers whose weights have a vocabulary axis: which vocabulary, and the axis in each of their weights.
VOCABULARY_AXES = {
    "product_embedding": ("products", (0,)),
    "rule_embedding": ("products", (0,)),
    "logits": ("products", (1, 0)),  # kernel (hidden, products), bias (products,)
    "customer_embedding": ("customers", (0,)),
}


def saved_weights(model_dir: str) -> dict[str, Any] | None:
    """The weights of the model saved in `model_dir`, by layer name, with the vocabularies it was trained on; None
    (and a warning: training starts fresh) when it cannot be read."""
    import logging

    from dlspark import fs

    try:
        saved = keras.models.load_model(f"{model_dir}/model.keras")
        vocabulary = fs.read_json(f"{model_dir}/vocabulary.json")
    except Exception as err:  # noqa: BLE001  (any unreadable model: a warm start is an optimisation)
        logging.getLogger(__name__).warning("no warm start: cannot read the model in %s (%s)", model_dir, err)
        return None
    return {
        "from": model_dir,
        "layers": {layer.name: layer.get_weights() for layer in saved.layers if layer.weights},
        "ids": {kind: vocabulary[kind]["ids"] for kind in ("products", "customers")},
    }


def warm_start(model: keras.Model, manifest: Manifest, saved: dict[str, Any]) -> WarmStart:
    """Copy `saved` weights into `model` where they fit: layers of the same name and shapes, and on a vocabulary
    axis the rows (columns) of the ids both vocabularies hold; the rest keeps its fresh initialisation."""
    import numpy as np

    shared: dict[str, tuple[Any, Any]] = {}  # vocabulary -> (positions in the new one, in the saved one)
    for vocabulary in ("products", "customers"):
        old = {key: i for i, key in enumerate(saved["ids"][vocabulary])}
        pairs = [(i, old[key]) for i, key in enumerate(manifest.raw[vocabulary]["ids"]) if key in old]
        shared[vocabulary] = (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    copied = []
    for layer in model.layers:
        old_weights, new_weights = saved["layers"].get(layer.name), layer.get_weights()
        if not new_weights or old_weights is None or len(old_weights) != len(new_weights):
            continue
        kind: str | None = None
        axes: tuple[int | None, ...] = (None,) * len(new_weights)
        if layer.name in VOCABULARY_AXES:
            kind, axes = VOCABULARY_AXES[layer.name]
        merged = []
        for new, old, axis in zip(new_weights, old_weights, axes, strict=True):
            if axis is None or kind is None:
                merged.append(old if old.shape == new.shape else None)
            elif np.delete(new.shape, axis).tolist() == np.delete(old.shape, axis).tolist():
                at, source = shared[kind]
                rows = new.copy()
                np.moveaxis(rows, axis, 0)[at] = np.moveaxis(old, axis, 0)[source]
                merged.append(rows)
            else:
                merged.append(None)
        if all(w is not None for w in merged):
            layer.set_weights(merged)
            copied.append(layer.name)
    return WarmStart(
        source=saved["from"],
        layers=copied,
        products_kept=len(shared["products"][0]) - 2,  # less the two reserved rows (padding, unknown)
        customers_kept=len(shared["customers"][0]) - 2,
    )
