"""Deduplicate: drop replayed events, and resolve near-duplicate product records into canonical products.

Replays: one event id delivered more than once (also across feeds); the earliest delivery is kept.
Products: source ids whose normalised names are near-identical (MinHash LSH over character shingles, blocked
by category, confirmed by exact Jaccard similarity and equal sizes) become one canonical product.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import numpy as np
from pyspark import StorageLevel
from pyspark.ml.feature import HashingTF, MinHashLSH
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from scipy import sparse
from scipy.sparse import csgraph

from dlspark import fs, minhash
from dlspark.config import DedupConfig
from dlspark.datasets import DATASETS, read_parquet
from dlspark.errors import AccountingError
from dlspark.frames import Lookup, one_row, require_columns, small_lookup
from dlspark.layout import Layout
from dlspark.report import StageReport
from dlspark.schemas import CLEAN, EVENTS, PRODUCTS
from dlspark.stage import StageContext

log = logging.getLogger(__name__)

# The order in which deliveries of one event compare: the earliest day, then feed and file, wins.
DELIVERY_ORDER = ("date", "feed", "source_file")
# What must agree for two deliveries to be the same event, not a conflicting replay.
PAYLOAD = ("order_id", "customer_id", "product_id", "quantity", "unit_price", "event_time")
# Replayed event ids up to this many are broadcast to the tasks that drop their replays (about 50 bytes each).
BROADCAST_REPLAYED = 2_000_000
SIMILAR = "key_a string, key_b string, similarity double"


def replayed_events(clean: DataFrame, broadcast_limit: int = BROADCAST_REPLAYED) -> Lookup:
    """(event_id, deliveries, conflicting) of every event id delivered more than once, and whether the payloads of
    its deliveries differ: a narrow aggregation (event id, count, payload hash range), computed once and kept (a
    local checkpoint), broadcast to its joins when it has at most `broadcast_limit` rows."""
    require_columns(clean, ["event_id", *DELIVERY_ORDER, *PAYLOAD], "clean order lines")
    payload = F.xxhash64(*PAYLOAD)
    counted = clean.groupBy("event_id").agg(
        F.count(F.lit(1)).alias("deliveries"),
        (F.min(payload) != F.max(payload)).alias("conflicting"),  # one pass, unlike a distinct count
    )
    return small_lookup(counted.where(F.col("deliveries") > 1), broadcast_limit)


def drop_replayed_events(clean: DataFrame, replayed: Lookup) -> DataFrame:
    """One row per event id: its earliest delivery, how many deliveries it had, and whether their payloads differ.

    `replayed` is `replayed_events(clean)`. Most event ids are delivered once: their rows pass through without a
    shuffle; only the replayed ids' rows are grouped whole.
    """
    rest = [c for c in clean.columns if c not in ("event_id", *DELIVERY_ORDER)]
    once = clean.join(replayed.for_join().select("event_id"), "event_id", "left_anti").select(
        *clean.columns, F.lit(1).cast("long").alias("deliveries"), F.lit(False).alias("conflicting")
    )
    first = F.min(F.struct(*DELIVERY_ORDER, *rest)).alias("first")
    earliest = (
        clean.join(replayed.for_join(), "event_id")
        .groupBy("event_id", "deliveries", "conflicting")
        .agg(first)
        .select("event_id", "first.*", "deliveries", "conflicting")
        .select(*clean.columns, "deliveries", "conflicting")
    )
    return once.unionByName(earliest)


def source_products(events: DataFrame) -> DataFrame:
    """One row per source product id: the name and category it most often carries, and its event count."""
    counts = events.groupBy("product_id", "product_name", "product_name_norm", "category").agg(
        F.count(F.lit(1)).alias("n")
    )
    return (
        counts.groupBy("product_id")
        .agg(
            F.max(F.struct("n", "product_name_norm", "category", "product_name")).alias("top"),
            F.sum("n").alias("events"),
        )
        .select("product_id", "top.product_name", "top.product_name_norm", "top.category", "events")
    )


def name_key(cfg: DedupConfig) -> Column:
    """Ids whose normalised names are equal (in the same category, when blocking by category) match outright."""
    name = F.coalesce(F.col("product_name_norm"), F.concat(F.lit("#id:"), F.col("product_id")))
    block = F.coalesce(F.col("category"), F.lit("")) if cfg.same_category else F.lit("")
    return F.concat_ws("\u0001", block, name)


def shingles(name: Column, size: int) -> Column:
    """The distinct character `size`-grams of ^name$$ (padded so that even a one-letter name has one)."""
    padded = F.concat(F.lit("^"), name, F.lit("$" * (size - 1)))
    chars = F.split(padded, "")
    grams = F.transform(
        F.sequence(F.lit(0), F.size(chars) - size),
        lambda i: F.concat_ws("", F.slice(chars, i + 1, size)),
    )
    return F.array_distinct(grams)


def similar_names(names: DataFrame, cfg: DedupConfig) -> tuple[DataFrame, str]:
    """Pairs (key_a, key_b, similarity) of distinct names that LSH proposes and exact comparison confirms, and where
    they were found: on the driver (dlspark.minhash) when `names` has at most `cfg.driver_names` rows, else by Spark
    jobs (`similar_names_by_spark`). Both find the same pairs."""
    named = names.where(F.col("product_name_norm").isNotNull()).select("key", "block", "product_name_norm")
    rows = named.limit(cfg.driver_names + 1).collect()
    if len(rows) > cfg.driver_names:
        return similar_names_by_spark(names, cfg), "spark"
    pairs = minhash.similar_pairs(
        rows,
        shingle_size=cfg.shingle_size,
        bands=cfg.bands,
        rows_per_band=cfg.rows_per_band,
        seed=cfg.seed,
        min_similarity=cfg.min_similarity,
        max_word_edits=cfg.max_word_edits,
        same_sizes=cfg.same_sizes,
    )
    return names.sparkSession.createDataFrame(pairs, SIMILAR), "driver"


def similar_names_by_spark(names: DataFrame, cfg: DedupConfig) -> DataFrame:
    """Pairs (key_a, key_b, similarity) of distinct names that LSH proposes and exact comparison confirms.

    `names` has key, block, product_name_norm. Candidates share all `rows_per_band` MinHash values of one band
    inside one block; a band's values are hashed into one join key, so a join replaces the all-pairs compare.
    """
    signed = names.where(F.col("product_name_norm").isNotNull()).select(
        "key",
        "block",
        "product_name_norm",
        shingles(F.col("product_name_norm"), cfg.shingle_size).alias("sh"),
    )
    if signed.isEmpty():  # MinHashLSH cannot be fitted on no rows
        return names.sparkSession.createDataFrame([], SIMILAR)
    features = HashingTF(inputCol="sh", outputCol="features", numFeatures=1 << 20, binary=True).transform(signed)
    lsh = MinHashLSH(
        inputCol="features", outputCol="hashes", numHashTables=cfg.bands * cfg.rows_per_band, seed=cfg.seed
    )
    hashed = lsh.fit(features).transform(features).localCheckpoint()
    values = hashed.select("key", "block", F.posexplode("hashes").alias("pos", "h")).select(
        "key",
        "block",
        (F.col("pos") / cfg.rows_per_band).cast("int").alias("band"),
        F.col("pos"),
        vector_to_array(F.col("h"))[0].alias("value"),
    )
    buckets = values.groupBy("key", "block", "band").agg(
        F.xxhash64(F.array_sort(F.collect_list(F.struct("pos", "value")))).alias("bucket")
    )
    a, b = buckets.alias("a"), buckets.alias("b")
    candidates = (
        a.join(b, ["block", "band", "bucket"])
        .where(F.col("a.key") < F.col("b.key"))
        .select(F.col("a.key").alias("key_a"), F.col("b.key").alias("key_b"))
        .distinct()
    )
    sa = hashed.select(
        F.col("key").alias("key_a"), F.col("sh").alias("sh_a"), F.col("product_name_norm").alias("name_a")
    )
    sb = hashed.select(
        F.col("key").alias("key_b"), F.col("sh").alias("sh_b"), F.col("product_name_norm").alias("name_b")
    )
    jaccard = F.size(F.array_intersect("sh_a", "sh_b")) / F.size(F.array_union("sh_a", "sh_b"))
    pairs = candidates.join(sa, "key_a").join(sb, "key_b").withColumn("similarity", jaccard)
    # Shingles cannot tell a typo from an extra word ("organic"): the words the names do not share must pair up
    # and differ by a few letters at most.
    words_a, words_b = F.split("name_a", " "), F.split("name_b", " ")
    only_a, only_b = F.array_except(words_a, words_b), F.array_except(words_b, words_a)
    accepted = (
        (F.col("similarity") >= cfg.min_similarity)
        & (F.size(only_a) == F.size(only_b))
        & (F.levenshtein(F.concat_ws(" ", only_a), F.concat_ws(" ", only_b)) <= cfg.max_word_edits)
    )
    if cfg.same_sizes:
        accepted &= F.array_sort(F.regexp_extract_all("name_a", F.lit(minhash.SIZES.pattern), 1)) == F.array_sort(
            F.regexp_extract_all("name_b", F.lit(minhash.SIZES.pattern), 1)
        )
    return pairs.where(accepted).select("key_a", "key_b", "similarity")


def connected_components(vertices: DataFrame, edges: DataFrame, max_iterations: int) -> tuple[DataFrame, int, bool]:
    """Label every vertex `key` with the smallest key of its component, by min-label propagation.

    Returns (labels [key, component], rounds, converged). Each round is checkpointed to keep lineage short.
    """
    both = (
        edges.select(F.col("key_a").alias("src"), F.col("key_b").alias("dst"))
        .unionByName(edges.select(F.col("key_b").alias("src"), F.col("key_a").alias("dst")))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    labels = vertices.select("key", F.col("key").alias("component")).localCheckpoint()
    rounds, converged = 0, False
    while rounds < max_iterations:
        rounds += 1
        offered = both.join(labels, both.src == labels.key).groupBy("dst").agg(F.min("component").alias("offered"))
        updated = (
            labels.join(offered, labels.key == offered.dst, "left")
            .select(
                "key",
                F.least("component", F.coalesce("offered", "component")).alias("component"),
                (F.col("offered") < F.col("component")).alias("changed"),
            )
            .localCheckpoint()
        )
        changed = updated.where("changed").count()
        labels = updated.drop("changed")
        if changed == 0:
            converged = True
            break
    both.unpersist()
    return labels, rounds, converged


def components_on_driver(vertices: DataFrame, edges: DataFrame) -> DataFrame:
    """The labels of `connected_components` found in one pass on the driver (scipy.sparse.csgraph), for edges
    few enough to collect: a Spark round costs seconds of fixed cost however small the graph."""
    pairs = edges.select("key_a", "key_b").collect()
    keys, index = np.unique(np.array([p[0] for p in pairs] + [p[1] for p in pairs], dtype=object), return_inverse=True)
    graph = sparse.coo_matrix((np.ones(len(pairs)), (index[: len(pairs)], index[len(pairs) :])), (len(keys),) * 2)
    count, component = csgraph.connected_components(graph, directed=False)
    smallest = np.full(count, len(keys))
    np.minimum.at(smallest, component, np.arange(len(keys)))  # keys are sorted: the first index is the least key
    found = vertices.sparkSession.createDataFrame(
        list(zip(keys.tolist(), keys[smallest[component]].tolist(), strict=True)), "key string, found string"
    )
    return vertices.join(F.broadcast(found), "key", "left").select("key", F.coalesce("found", "key").alias("component"))


def resolve_products(products: DataFrame, cfg: DedupConfig) -> tuple[DataFrame, dict[str, Any]]:
    """Give every source product id a canonical product id (the smallest id it merged with) and name.

    The product-side frames are small (one row per source id or name) and are checkpointed locally: without it,
    every round of connected components re-plans the whole lineage back to the events, seconds a round.
    """
    keyed = (
        products.withColumn("key", name_key(cfg))
        .withColumn("block", F.coalesce(F.col("category"), F.lit("")) if cfg.same_category else F.lit(""))
        .localCheckpoint()
    )
    names = keyed.select("key", "block", "product_name_norm").distinct().localCheckpoint()
    pairs, found_on = similar_names(names, cfg)
    pairs = pairs.localCheckpoint()
    stats: dict[str, Any] = {"similar_name_pairs": pairs.count(), "similar_names_found_on": found_on}
    if stats["similar_name_pairs"] <= cfg.driver_components_pairs:
        labels = components_on_driver(names, pairs)
        stats["components_found_on"] = "driver"
    else:
        labels, rounds, converged = connected_components(names, pairs, cfg.max_iterations)
        stats.update(components_found_on="spark", component_rounds=rounds, components_converged=converged)
        if not converged:
            log.warning("product components did not converge in %d rounds (dedup.max_iterations)", rounds)
    members = keyed.join(labels, "key")
    per_component = members.groupBy("component").agg(
        F.min("product_id").alias("canonical_product_id"),
        F.max(F.struct("events", "product_name")).getField("product_name").alias("canonical_name"),
    )
    resolved = members.join(per_component, "component").select(*PRODUCTS.fieldNames()).localCheckpoint()
    return resolved, stats


def run(ctx: StageContext) -> StageReport:
    """clean/ -> events/ (one row per event, with its canonical product) + products/.

    With data.date (a daily run) only that day's clean rows become events: those delivered on an earlier day
    are replays of it and are removed; products/ is resolved again over the events of every day.
    """
    spark, cfg = ctx.spark, ctx.cfg
    events_path, products_path = ctx.output("events"), ctx.output("products")
    report = ctx.new_report()
    clean = read_parquet(spark, ctx.input("clean"), CLEAN, DATASETS["clean"])
    day = cfg.data.date
    if day is not None:
        earlier = clean.where(F.col("date") < F.lit(day)).select("event_id")
        clean = clean.where(F.col("date") == F.lit(day))
    report.rows_in = clean.count()
    replayed = replayed_events(clean)
    replays = one_row(
        replayed.frame.agg(
            F.sum(F.col("deliveries") - 1).alias("replays"),
            F.sum(F.col("conflicting").cast("int")).alias("conflicting"),
        )
    )
    unique = drop_replayed_events(clean, replayed).drop("deliveries", "conflicting")
    report.removed = {"replays": int(replays["replays"] or 0)}
    if day is not None:  # an event first delivered on an earlier day is a replay of that day's
        ids = clean.select("event_id").distinct().join(earlier, "event_id", "left_semi")
        seen = small_lookup(ids, BROADCAST_REPLAYED)  # the day's ids delivered on an earlier day
        report.removed["replays_of_earlier_days"] = seen.rows
        unique = unique.join(seen.for_join(), "event_id", "left_anti")
    # Not cached: the counts above come from the small replayed ids, and the two passes below over the events
    # (the product names, then the write) cost less than caching every event (that took 7.7 of 32 s on 1M lines).
    others = other_days(spark, ctx.layout, day) if day is not None else None
    sources = unique if others is None else unique.select(*CLEAN.fieldNames()).unionByName(others)
    products, product_stats = resolve_products(source_products(sources), cfg.dedup)
    products.write.mode("overwrite").parquet(products_path)
    mapping = products.select("product_id", "canonical_product_id")
    events = unique.join(mapping, "product_id").select(*EVENTS.fieldNames())
    events.write.mode("overwrite").partitionBy("date").parquet(events_path)

    report.rows_out = spark.read.schema(EVENTS).parquet(events_path).count()
    written_products = spark.read.schema(PRODUCTS).parquet(products_path)
    report.details = {
        "conflicting_replays": int(replays["conflicting"] or 0),
        "source_products": written_products.count(),
        "canonical_products": written_products.select("canonical_product_id").distinct().count(),
        **product_stats,
    }
    report.details["merged_product_ids"] = report.details["source_products"] - report.details["canonical_products"]
    if not report.balanced():  # every clean row is an event written, or a replay counted from the replayed ids
        raise AccountingError(
            f"dedup: {report.rows_in} clean rows, {report.rows_out} events written to {events_path}, "
            f"{sum(report.removed.values())} replays removed: {report.to_dict()}"
        )
    log.info(
        "dedup: %d events, %d replays removed, %d product ids -> %d products",
        report.rows_out,
        report.removed["replays"],
        report.details["source_products"],
        report.details["canonical_products"],
    )
    return report


def other_days(spark: SparkSession, layout: Layout, day: dt.date) -> DataFrame | None:
    """The clean fields of the published events of every day but `day` (None before any day is published)."""
    if not fs.exists(layout.events):
        return None
    events = read_parquet(spark, layout.events, EVENTS, DATASETS["events"])
    return events.where(F.col("date") != F.lit(day)).select(*CLEAN.fieldNames())
