"""Parallel FP-growth with a fast local miner: the scheme of Spark's FPGrowth (Li et al., PFP), another miner inside.

Spark's FPGrowth splits the frequent items into groups, sends each group the prefixes of the baskets that end in
one of its items, and grows FP-trees per group; that tree growth is where its time goes. Here the same conditional
transactions are cut from each batch of baskets by numpy (`conditional_transactions`) and travel packed, a few rows
per batch; each group is then mined by `mine_group`: a sparse matrix (scipy) of its transactions gives, for each of
its items, the transactions holding it and the counts of every item with it, and a depth-first search intersects
bitsets (Python integers, whose `&` and `bit_count` run in C) over those transactions. Every frequent itemset is
found exactly once, in the group of its least frequent item, and itemsets longer than the cap are never built.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import sparse

from dlspark.arrowtypes import spark_schema

Candidates = list[tuple[int, int, int]]  # (item rank, bitset of the transactions holding it, their count)
# one (part, group)'s transactions from one batch: int32 arrays as bytes
PACKED = pa.schema([("part", pa.int32()), ("group", pa.int32()), ("lengths", pa.binary()), ("ranks", pa.binary())])
SPREAD = 4  # mining tasks per (part, group)


def ranked_baskets(items: pa.ListArray, lookup: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(basket, rank) of every frequent item of a batch's baskets, sorted by basket, then rank (most frequent first).

    `lookup` holds the frequent items in rank order; other items are dropped.
    """
    lengths = pc.list_value_length(items).fill_null(0).to_numpy()
    owners = np.repeat(np.arange(len(items), dtype=np.int64), lengths)
    ranks = pc.index_in(pc.list_flatten(items), value_set=lookup).fill_null(-1).to_numpy(zero_copy_only=False)
    keep = ranks >= 0
    key = np.sort(owners[keep] * len(lookup) + ranks[keep])  # owners are ascending already
    return key // len(lookup), key % len(lookup)


def conditional_transactions(
    owners: np.ndarray, ranks: np.ndarray, groups: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """PFP's conditional transactions: for each group, each basket's prefix up to its last item of that group.

    Takes `ranked_baskets`' output; yields (group, lengths, ranks) with the prefixes of one group concatenated.
    """
    if len(ranks) == 0:
        return
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])  # each basket's first position
    first = np.repeat(starts, np.diff(np.r_[starts, len(owners)]))
    key = owners * groups + ranks % groups  # (basket, group) of each item
    last = len(key) - 1 - np.unique(key[::-1], return_index=True)[1]  # each key's last item, by basket then group
    ends = last[np.argsort(ranks[last] % groups, kind="stable")]  # grouped by group, baskets in order within
    lengths = ends - first[ends] + 1
    offsets = np.repeat(first[ends] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    prefixes = ranks[offsets + np.arange(lengths.sum())]
    group_of_end = ranks[ends] % groups
    bounds = np.flatnonzero(np.r_[True, group_of_end[1:] != group_of_end[:-1], True])
    cuts = np.r_[0, np.cumsum(lengths)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        yield int(group_of_end[a]), lengths[a:b], prefixes[cuts[a] : cuts[b]]


def mine_group(
    lengths: np.ndarray, ranks: np.ndarray, group: int, groups: int, min_count: int, max_length: int
) -> Iterator[tuple[list[int], int]]:
    """Frequent itemsets (of item ranks) whose least frequent item (highest rank) belongs to `group`.

    The transactions are `ranks` cut by `lengths`; each holds distinct ranks. For each of the group's items, the
    transactions holding it are sliced out of a sparse matrix, which counts every item with it at once and gives
    the bitsets (over those transactions) of the items frequent with it; a depth-first search intersects them.
    """
    if len(lengths) == 0 or len(ranks) == 0:
        return
    width = int(ranks.max()) + 1
    onehot = sparse.csr_matrix(
        (np.ones(len(ranks), dtype=np.int8), ranks.astype(np.int32), np.r_[0, np.cumsum(lengths)]),
        shape=(len(lengths), width),
    )
    by_item = onehot.T.tocsr()  # each item's transactions
    for item in range(group, width, groups):
        rows = by_item.indices[by_item.indptr[item] : by_item.indptr[item + 1]]
        if len(rows) < min_count:
            continue
        yield [item], len(rows)
        if max_length == 1:
            continue
        with_item = onehot[rows][:, :item].tocsc()  # the transactions holding `item`, by the items before it
        counts = np.diff(with_item.indptr)
        candidates = []
        for other in np.flatnonzero(counts >= min_count):
            bits = np.zeros(len(rows), dtype=bool)
            bits[with_item.indices[with_item.indptr[other] : with_item.indptr[other + 1]]] = True
            bitset = int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")
            candidates.append((int(other), bitset, int(counts[other])))
        yield from _extend([item], candidates, min_count, max_length)


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


def frequent_itemsets(
    baskets: DataFrame, counts: DataFrame, min_counts: dict[int, int], max_length: int, groups: int
) -> DataFrame:
    """(part, items, count) of every itemset in >= `min_counts[part]` of its part's baskets, of <= `max_length` items.

    `baskets` has `part` and `items` (arrays of distinct items, strings): each part is a set of baskets mined on its
    own, and a basket in several parts is a row in each, so several minings (the out-of-fold rule sets of the
    shards) share one pass and one job. `counts` has each item's basket count per part (`part`, `item`, `count`).
    Items are ranked by count on the driver (only the frequent ones: the same collect Spark's FPGrowth makes), each
    batch of baskets is cut into its groups' conditional transactions in one pass (no shuffle by basket), and the
    (part, group)s are mined in parallel with `mine_group`.
    """
    spark = baskets.sparkSession
    frequent = F.lit(False)
    for part, needed in min_counts.items():
        frequent |= (F.col("part") == part) & (F.col("count") >= needed)
    ranked: dict[int, list[str]] = {part: [] for part in min_counts}
    for row in counts.where(frequent).orderBy("part", F.desc("count"), F.asc("item")).collect():
        ranked[row.part].append(row.item)
    if not any(ranked.values()):
        return spark.createDataFrame([], "part int, items array<string>, count long")
    lookup = spark.sparkContext.broadcast(ranked)

    def cut(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        value_sets = {part: pa.array(items, pa.string()) for part, items in lookup.value.items() if items}
        for batch in batches:
            parts = batch.column(0).to_numpy(zero_copy_only=False)
            for part in np.unique(parts):
                if int(part) not in value_sets:
                    continue
                items = batch.column(1).filter(pa.array(parts == part))
                owners, ranks = ranked_baskets(items, value_sets[int(part)])
                rows = [
                    (int(part), g, lengths.astype(np.int32).tobytes(), prefixes.astype(np.int32).tobytes())
                    for g, lengths, prefixes in conditional_transactions(owners, ranks, groups)
                ]
                if rows:
                    columns = zip(*rows, strict=True)
                    arrays = [pa.array(column, field.type) for column, field in zip(columns, PACKED, strict=True)]
                    yield pa.RecordBatch.from_arrays(arrays, schema=PACKED)

    def mine(frame: pd.DataFrame) -> pd.DataFrame:
        part, group = int(frame["part"].iloc[0]), int(frame["group"].iloc[0])
        lengths = np.concatenate([np.frombuffer(b, dtype=np.int32) for b in frame["lengths"]])
        ranks = np.concatenate([np.frombuffer(b, dtype=np.int32) for b in frame["ranks"]])
        found = list(mine_group(lengths, ranks, group, groups, min_counts[part], max_length))
        return pd.DataFrame(
            {"part": part, "ranks": [sorted(items) for items, _ in found], "count": [c for _, c in found]}
        )

    # As many tasks as (part, group)s, times SPREAD against hash collisions: adaptive execution would otherwise
    # coalesce the few, small rows of conditional transactions into one task and mine every group in it, one by one.
    tasks = SPREAD * groups * sum(1 for items in ranked.values() if items)
    conditional = (
        baskets.select("part", "items").mapInArrow(cut, spark_schema(PACKED)).repartition(tasks, "part", "group")
    )
    mined = conditional.groupBy("part", "group").applyInPandas(mine, "part int, ranks array<int>, count long")
    ranks = [(part, item, rank) for part, items in ranked.items() for rank, item in enumerate(items)]
    return _decode(mined, spark.createDataFrame(ranks, "part int, item string, rank int"))


def _decode(mined: DataFrame, ranks: DataFrame) -> DataFrame:
    """Rank arrays back to item arrays (sorted), with a join: the dictionary never has to fit in a plan.

    Each itemset is mined once per part, so (part, rank array) identifies it.
    """
    return (
        mined.select("part", "ranks", "count", F.explode("ranks").alias("rank"))
        .join(F.broadcast(ranks), ["part", "rank"])
        .groupBy("part", "ranks", "count")
        .agg(F.array_sort(F.collect_list("item")).alias("items"))
        .select("part", "items", "count")
    )


def default_groups(spark: SparkSession) -> int:
    """As many groups as task slots, at least two."""
    return max(2, spark.sparkContext.defaultParallelism)
