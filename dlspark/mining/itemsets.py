"""Association mining: baskets, frequent itemsets with FP-growth, and association rules with full metrics.

Spark's FPGrowth gives itemsets and (if asked) rules with confidence, lift and support, but it computes the itemsets
again for the rules. Here the itemsets are mined once, kept, and the rules are derived from them with joins, adding
leverage and conviction. Before mining, an upper bound on the number of frequent itemsets guards against a support
so low that the run would never end.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from functools import reduce
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.ml.fpm import FPGrowth
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dlspark.config import MineConfig
from dlspark.errors import InputError
from dlspark.frames import one_row
from dlspark.mining import fpgrowth

log = logging.getLogger(__name__)

INFINITY = float("inf")


def select_window(
    events: DataFrame, window_days: int | None, end_date: dt.date | None = None
) -> tuple[DataFrame, dt.date | None, dt.date | None]:
    """The events of the last `window_days` days up to `end_date` (all, when both are empty): (events, first, last)."""
    end = end_date
    if end is None and window_days is not None:
        end = one_row(events.agg(F.max("date")))[0]
    if end is None:
        return events, None, None
    start = end - dt.timedelta(days=window_days - 1) if window_days else None
    window = F.col("date") <= F.lit(end)
    if start is not None:
        window &= F.col("date") >= F.lit(start)
    return events.where(window), start, end


def baskets(events: DataFrame) -> DataFrame:
    """One basket per order: the sorted set of its distinct canonical products (FP-growth rejects repeats)."""
    return events.groupBy("order_id").agg(
        F.array_sort(F.collect_set("canonical_product_id")).alias("items"),
        F.min("customer_id").alias("customer_id"),
        F.max("event_time").alias("event_time"),
    )


def min_count(cfg: MineConfig, n_baskets: int) -> int:
    """The baskets an itemset needs to be frequent: ceil(min_support x baskets), as Spark's FPGrowth counts it."""
    return max(1, math.ceil(cfg.min_support * n_baskets))


def item_counts(baskets_: DataFrame, by: Sequence[str] = ()) -> DataFrame:
    """How many baskets each product is in (one row per product: the bound, the miner and popularity share it).

    With `by` (say ["part"]), one count per product and value of those columns.
    """
    return baskets_.select(*by, F.explode("items").alias("item")).groupBy(*by, "item").count()


def itemset_bound(baskets_: DataFrame, counts: DataFrame, threshold: int, max_length: int) -> tuple[int, int, int]:
    """An upper bound on the number of frequent itemsets of at most `max_length` items.

    A basket with k frequent items contains sum_{j<=L} C(k, j) candidate itemsets, and every frequent itemset needs
    `threshold` baskets, so there are at most (sum over baskets) / threshold of them. Returns (bound, frequent
    items, incidences); one pass over the baskets (no shuffle), nothing mined.
    """
    frequent = [row.item for row in counts.where(F.col("count") >= threshold).select("item").collect()]
    if not frequent:
        return 0, 0, 0
    lookup = baskets_.sparkSession.sparkContext.broadcast(frequent)

    def histogram(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        value_set = pa.array(lookup.value, pa.string())
        for batch in batches:
            owners, _ = fpgrowth.ranked_baskets(batch.column(0), value_set)
            per_k = np.bincount(np.bincount(owners, minlength=batch.num_rows))  # baskets with k frequent items
            yield pa.RecordBatch.from_pydict({"k": np.arange(len(per_k)), "n": per_k})

    ks = baskets_.select("items").mapInArrow(histogram, "k long, n long").groupBy("k").agg(F.sum("n")).collect()
    incidences = sum(n * sum(math.comb(k, j) for j in range(1, max_length + 1)) for k, n in ks)
    return incidences // threshold, len(frequent), incidences


def check_minable(baskets_: DataFrame, counts: DataFrame, cfg: MineConfig) -> dict[str, Any]:
    """Refuse, with what to change, an empty input, single-item baskets, or a support that would explode."""
    stats = one_row(
        baskets_.agg(
            F.count(F.lit(1)).alias("baskets"),
            F.sum((F.size("items") >= 2).cast("int")).alias("multi"),
            F.max(F.size("items")).alias("largest"),
        )
    )
    n = int(stats["baskets"])
    if n == 0:
        raise InputError("no orders to mine: events/ is empty for the chosen window (mining.window_days, end_date)")
    if not stats["multi"]:
        raise InputError(
            f"all {n:,} baskets hold a single product, so no rule can be found; widen the window "
            "(mining.window_days) or check that orders group their lines (order_id)"
        )
    needed = min_count(cfg, n)
    bound, n_frequent, incidences = itemset_bound(baskets_, counts, needed, cfg.max_itemset_length)
    if bound > cfg.max_itemsets:
        safe = incidences / (cfg.max_itemsets * n)
        raise InputError(
            f"mining.min_support={cfg.min_support} could give up to {bound:,} frequent itemsets of up to "
            f"{cfg.max_itemset_length} items ({n_frequent:,} frequent products in {n:,} baskets), more than "
            f"mining.max_itemsets={cfg.max_itemsets:,}. Raise mining.min_support (at {safe:.6f} the bound is within "
            "the limit), lower mining.max_itemset_length, or raise mining.max_itemsets if the cluster can hold them"
        )
    return {
        "baskets": n,
        "multi_item_baskets": int(stats["multi"]),
        "largest_basket": int(stats["largest"]),
        "min_count": needed,
        "frequent_products": n_frequent,
        "itemset_bound": bound,
    }


def frequent_itemsets(baskets_: DataFrame, counts: DataFrame, cfg: MineConfig, n_baskets: int) -> DataFrame:
    """Frequent itemsets (sorted items, count, support) of at most `max_itemset_length` items.

    Both engines count an itemset frequent from ceil(min_support * baskets) baskets on. Spark's FPGrowth has no
    length limit, so its longer itemsets are dropped after mining; the supports of those kept are unchanged.
    """
    one = F.lit(0).alias("part")
    found = frequent_itemsets_by_part(
        baskets_.select(one, "items"), counts.select(one, "item", "count"), cfg, {0: n_baskets}
    )
    return found.drop("part")


def frequent_itemsets_by_part(
    baskets_: DataFrame, counts: DataFrame, cfg: MineConfig, sizes: dict[int, int]
) -> DataFrame:
    """`frequent_itemsets` of several sets of baskets at once: (part, items, count, support).

    `baskets_` has `part` and `items`, a basket in several parts being a row in each; `counts` is `item_counts` by
    part; `sizes` the number of baskets of each part. The pfp engine mines every part in one pass; Spark's
    FPGrowth is run once per part.
    """
    if cfg.engine == "pfp":
        groups = cfg.num_partitions or fpgrowth.default_groups(baskets_.sparkSession)
        needed = {part: min_count(cfg, n) for part, n in sizes.items()}
        found = fpgrowth.frequent_itemsets(baskets_, counts, needed, cfg.max_itemset_length, groups)
    else:
        fp = FPGrowth(itemsCol="items", minSupport=cfg.min_support, minConfidence=cfg.min_confidence)
        if cfg.num_partitions:
            fp = fp.setNumPartitions(cfg.num_partitions)
        found = reduce(
            DataFrame.unionByName,
            [
                fp.fit(baskets_.where(F.col("part") == part).select("items")).freqItemsets.select(
                    F.lit(part).alias("part"), "items", F.col("freq").alias("count")
                )
                for part in sizes
            ],
        )
    size = F.create_map(*[F.lit(v) for part, n in sizes.items() for v in (part, n)])[F.col("part")]
    return found.where(F.size("items") <= cfg.max_itemset_length).select(
        "part",
        F.array_sort("items").alias("items"),
        "count",
        (F.col("count") / size).alias("support"),
    )


def association_rules(itemsets: DataFrame, min_confidence: float, by: Sequence[str] = ()) -> DataFrame:
    """Rules A -> {c} from every itemset I = A + {c} (|I| >= 2), with support, confidence, lift, leverage, conviction.

    Every antecedent is a subset of a frequent itemset, so it is frequent too and found by the join. Conviction is
    infinite exactly where count(I) == count(A) (confidence 1). With `by` (say ["part"]), the itemsets of each value
    of those columns give their own rules, which keep the columns.
    """
    whole = itemsets.where(F.size("items") >= 2).select(
        *by, "items", F.col("count").alias("n_rule"), F.col("support").alias("support"), F.explode("items").alias("c")
    )
    with_antecedent = whole.withColumn("antecedent", F.array_except("items", F.array("c")))
    antecedents = itemsets.select(
        *by,
        F.col("items").alias("antecedent"),
        F.col("count").alias("n_antecedent"),
        F.col("support").alias("antecedent_support"),
    )
    singles = itemsets.where(F.size("items") == 1).select(
        *by, F.col("items")[0].alias("c"), F.col("support").alias("consequent_support")
    )
    confidence = F.col("n_rule") / F.col("n_antecedent")
    rules = (
        with_antecedent.join(antecedents, [*by, "antecedent"])
        .join(singles, [*by, "c"])
        .withColumn("confidence", confidence)
        .where(F.col("confidence") >= min_confidence)
    )
    return rules.select(
        *by,
        "antecedent",
        F.array("c").alias("consequent"),
        "support",
        "confidence",
        (F.col("confidence") / F.col("consequent_support")).alias("lift"),
        (F.col("support") - F.col("antecedent_support") * F.col("consequent_support")).alias("leverage"),
        F.when(F.col("n_rule") == F.col("n_antecedent"), F.lit(INFINITY))
        .otherwise((1 - F.col("consequent_support")) / (1 - F.col("confidence")))
        .alias("conviction"),
        "antecedent_support",
        "consequent_support",
    )


def popularity(counts: DataFrame, n_baskets: int) -> DataFrame:
    """Every product with the number and share of baskets it is in (the popularity baseline's table)."""
    return counts.select("item", "count", (F.col("count") / F.lit(n_baskets)).alias("support"))


def top_rules(rules: DataFrame, products: DataFrame, k: int) -> list[dict[str, Any]]:
    """The `k` rules of highest lift (then confidence), with product names, as plain values for the report."""
    best = rules.orderBy(F.desc("lift"), F.desc("confidence"), F.asc("antecedent")).limit(k).collect()
    ids = sorted({i for r in best for i in [*r.antecedent, *r.consequent]})
    names: dict[str, str] = {
        row.canonical_product_id: row.canonical_name
        for row in products.where(F.col("canonical_product_id").isin(ids))
        .select("canonical_product_id", "canonical_name")
        .distinct()
        .collect()
    }
    return [
        {
            "antecedent": list(r.antecedent),
            "consequent": list(r.consequent),
            "antecedent_names": [names.get(i, i) for i in r.antecedent],
            "consequent_names": [names.get(i, i) for i in r.consequent],
            "support": round(r.support, 6),
            "confidence": round(r.confidence, 4),
            "lift": round(r.lift, 3),
            "leverage": round(r.leverage, 6),
            "conviction": "inf" if math.isinf(r.conviction) else round(r.conviction, 3),
        }
        for r in best
    ]
