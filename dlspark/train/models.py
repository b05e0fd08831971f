"""The Keras models, built by one function from configuration (the driver and the barrier trainers share it)."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from dlspark.config import ModelConfig, TrainConfig
from dlspark.train.data import Manifest


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
