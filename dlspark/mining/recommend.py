"""Baseline recommenders over many baskets at once: association rules, and popularity.

Both take baskets (order_id, items) and return (order_id, recommended): up to k products, best first, never one
already in the basket. The rule recommender is a distributed join; rules are never collected to the driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dlspark.frames import one_row


def recommend_from_rules(baskets: DataFrame, rules: DataFrame, k: int, by: Sequence[str] = ()) -> DataFrame:
    """Consequents of the rules whose antecedent lies inside the basket, ranked by confidence, then lift.

    A rule is joined to a basket through the smallest item of its antecedent, so each basket meets only the rules
    that could apply to it; the subset test then keeps those whose whole antecedent is in the basket. With `by`
    (columns of both, say ["part"]), a basket meets only the rules of its own value of them.
    """
    keyed = rules.select(
        *by,
        F.array_min("antecedent").alias("key"),
        "antecedent",
        F.col("consequent")[0].alias("item"),
        "confidence",
        "lift",
    )
    matches = (
        baskets.select("order_id", *by, "items", F.explode("items").alias("key"))
        .join(keyed, [*by, "key"])
        .where((F.size(F.array_except("antecedent", "items")) == 0) & ~F.array_contains("items", F.col("item")))
    )
    best = matches.groupBy("order_id", "item").agg(F.max("confidence").alias("confidence"), F.max("lift").alias("lift"))
    ranked = best.groupBy("order_id").agg(  # ties on confidence and lift go to the larger product id
        F.sort_array(F.collect_list(F.struct("confidence", "lift", "item")), asc=False).alias("ranked")
    )
    recommended = F.slice(F.transform("ranked", lambda r: r["item"]), 1, k)
    return (
        baskets.select("order_id")
        .join(ranked.select("order_id", recommended.alias("recommended")), "order_id", "left")
        .select("order_id", F.coalesce("recommended", F.array().cast("array<string>")).alias("recommended"))
    )


def recommend_popular(baskets: DataFrame, popularity: DataFrame, k: int) -> DataFrame:
    """The most popular products not already in the basket.

    Only the top (k + largest basket) products can be needed, so just those travel to the executors.
    """
    needed = k + int(one_row(baskets.agg(F.max(F.size("items"))))[0] or 0)
    top = [row.item for row in popularity.orderBy(F.desc("count"), F.asc("item")).limit(needed).collect()]
    candidates = F.array(*[F.lit(item) for item in top]) if top else F.array().cast("array<string>")
    return baskets.select(
        "order_id",
        F.slice(F.filter(candidates, lambda item: ~F.array_contains("items", item)), 1, k).alias("recommended"),
    )
