"""Parallel FP-growth with a fast local miner: the scheme of Spark's FPGrowth (Li et al., PFP), another miner inside.

Spark's FPGrowth splits the frequent items into groups, sends each group the prefixes of the baskets that end in
one of its items, and grows FP-trees per group; that tree growth is where its time goes. Here the same conditional
transactions are built in Spark SQL, and each group is mined by `mine_group`: a depth-first search over bitsets
(Python integers, whose `&` and `bit_count` run in C) of the transactions that contain each of the group's items.
Every frequent itemset is found exactly once, in the group of its least frequent item, and itemsets longer than
the cap are never built.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

Candidates = list[tuple[int, int, int]]  # (item rank, bitset of the transactions holding it, their count)


def mine_group(
    transactions: list[np.ndarray], group: int, groups: int, min_count: int, max_length: int
) -> Iterator[tuple[list[int], int]]:
    """Frequent itemsets (of item ranks) whose least frequent item (highest rank) belongs to `group`.

    `transactions` are ascending rank arrays (most frequent item first), each ending in an item of the group.
    """
    if not transactions:
        return
    lengths = np.fromiter((len(t) for t in transactions), dtype=np.int64, count=len(transactions))
    items = np.concatenate(transactions).astype(np.int64)
    owners = np.repeat(np.arange(len(transactions)), lengths)
    order = np.argsort(items, kind="stable")  # transactions stay in order within each item
    sorted_items, sorted_owners = items[order], owners[order]
    present, starts = np.unique(sorted_items, return_index=True)
    ends = np.append(starts[1:], len(sorted_items))
    indptr = np.concatenate(([0], np.cumsum(lengths)))

    for item, start, end in zip(present, starts, ends, strict=True):
        if item % groups != group or end - start < min_count:
            continue
        rows = sorted_owners[start:end]  # the transactions that hold `item`
        yield [int(item)], int(end - start)
        if max_length > 1:
            candidates = _candidates(rows, indptr, items, int(item), min_count)
            yield from _extend([int(item)], candidates, min_count, max_length)


def _candidates(rows: np.ndarray, indptr: np.ndarray, items: np.ndarray, item: int, min_count: int) -> Candidates:
    """The items more frequent than `item` that occur with it in at least `min_count` of `rows`, as bitsets."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    gathered = items[offsets + np.arange(lengths.sum())]
    positions = np.repeat(np.arange(len(rows)), lengths)
    keep = gathered < item
    gathered, positions = gathered[keep], positions[keep]
    if len(gathered) == 0:
        return []
    order = np.argsort(gathered, kind="stable")
    gathered, positions = gathered[order], positions[order]
    others, first = np.unique(gathered, return_index=True)
    last = np.append(first[1:], len(gathered))
    found = []
    for other, a, b in zip(others, first, last, strict=True):
        if b - a >= min_count:
            bits = np.zeros(len(rows), dtype=bool)
            bits[positions[a:b]] = True
            found.append(
                (int(other), int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little"), int(b - a))
            )
    return found


def _extend(
    prefix: list[int], candidates: Candidates, min_count: int, max_length: int
) -> Iterator[tuple[list[int], int]]:
    """Depth-first: each candidate joins the prefix; the candidates after it, intersected, may extend it further."""
    for k, (item, bits, count) in enumerate(candidates):
        itemset = [item, *prefix]
        yield itemset, count
        if len(itemset) < max_length:
            deeper = []
            for other, other_bits, _ in candidates[k + 1 :]:
                both = bits & other_bits
                n = both.bit_count()
                if n >= min_count:
                    deeper.append((other, both, n))
            if deeper:
                yield from _extend(itemset, deeper, min_count, max_length)


def frequent_itemsets(baskets: DataFrame, counts: DataFrame, min_count: int, max_length: int, groups: int) -> DataFrame:
    """(items, count) of every itemset in at least `min_count` baskets and of at most `max_length` items.

    `baskets` has `order_id` (unique) and `items`: arrays of distinct items (strings); `counts` has each item's
    basket count (`item`, `count`). Items are ranked by count on
    the driver (only the frequent ones: the same collect Spark's FPGrowth makes), conditional transactions are built
    per group in Spark SQL, and groups are mined in parallel with `mine_group`.
    """
    spark = baskets.sparkSession
    frequent = counts.where(F.col("count") >= min_count).orderBy(F.desc("count"), F.asc("item")).collect()
    if not frequent:
        return spark.createDataFrame([], "items array<string>, count long")
    ranks = spark.createDataFrame([(row.item, rank) for rank, row in enumerate(frequent)], "item string, rank int")
    ranked = (  # keyed by order id: a generated id beside explode() would be drawn once per item, not per basket
        baskets.select("order_id", F.explode("items").alias("item"))
        .join(F.broadcast(ranks), "item")
        .groupBy("order_id")
        .agg(F.array_sort(F.collect_list("rank")).alias("ranks"))
    )
    conditional = ranked.select(F.posexplode("ranks").alias("pos", "rank"), "ranks").select(
        F.pmod("rank", F.lit(groups)).alias("group"),
        F.slice("ranks", 1, F.col("pos") + 1).alias("prefix"),
        F.exists(  # a later item of the same group gives this group a longer prefix
            F.slice("ranks", F.col("pos") + 2, F.size("ranks")), lambda r: F.pmod(r, F.lit(groups)) == F.col("group")
        ).alias("superseded"),
    )
    conditional = conditional.where(~F.col("superseded")).select("group", "prefix")

    def mine(frame: pd.DataFrame) -> pd.DataFrame:
        group = int(frame["group"].iloc[0])
        found = list(mine_group(list(frame["prefix"]), group, groups, min_count, max_length))
        return pd.DataFrame({"ranks": [sorted(items) for items, _ in found], "count": [c for _, c in found]})

    mined = conditional.groupBy("group").applyInPandas(mine, "ranks array<int>, count long")
    return _decode(mined, ranks)


def _decode(mined: DataFrame, ranks: DataFrame) -> DataFrame:
    """Rank arrays back to item arrays (sorted), with a join: the dictionary never has to fit in a plan.

    Each itemset is mined once, so its rank array identifies it.
    """
    return (
        mined.select("ranks", "count", F.explode("ranks").alias("rank"))
        .join(F.broadcast(ranks), "rank")
        .groupBy("ranks", "count")
        .agg(F.array_sort(F.collect_list("item")).alias("items"))
        .select("items", "count")
    )


def default_groups(spark: SparkSession) -> int:
    """As many groups as task slots, at least two."""
    return max(2, spark.sparkContext.defaultParallelism)
