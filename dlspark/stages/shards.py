"""Shards: basket-completion training examples from events/, split by time, written as Parquet for Petastorm.

One example per order with at least two products: one product (chosen by a seeded hash, so the same every run) is
the label, the others are the input. The last `test_days` days are the test split and the `val_days` before them
the validation split, so evaluation looks like production. Vocabularies, popularity and the association rules used
as a feature and as a baseline all come from the training days only, so nothing about the test days leaks in.

Fixed-width arrays are written as one int32 column per position (`item_00`, `item_01`, ...): Petastorm converts
scalar columns a whole column at a time but list columns row by row (benchmarks/training.py measures both).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from functools import reduce
from typing import Any

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from dlspark import fs
from dlspark.config import PipelineConfig, settings_hash
from dlspark.datasets import DATASETS, published_events, read_parquet
from dlspark.digest import short_hash
from dlspark.errors import AccountingError, InputError
from dlspark.manifest import ANONYMOUS, PAD, SPLITS, UNKNOWN, columns, manifest_path
from dlspark.mining.itemsets import association_rules, check_minable, frequent_itemsets, item_counts, select_window
from dlspark.mining.recommend import recommend_from_rules
from dlspark.report import StageReport
from dlspark.schemas import PRODUCTS
from dlspark.stage import StageContext

log = logging.getLogger(__name__)

FILE_STATS = "file string, rows long, row_groups array<long>"


def assign_splits(dates: list[dt.date], test_days: int, val_days: int) -> dict[str, tuple[dt.date, dt.date]]:
    """The first and last day of each split: the last `test_days` days test, the `val_days` before them val."""
    dates = sorted(dates)
    if len(dates) < test_days + val_days + 1:
        raise InputError(
            f"events/ holds {len(dates)} day(s) of orders; shards need shards.test_days ({test_days}) + "
            f"shards.val_days ({val_days}) + at least one training day. Lower them or add days"
        )
    train, val, test = dates[: -test_days - val_days], dates[-test_days - val_days : -test_days], dates[-test_days:]
    return {"train": (train[0], train[-1]), "val": (val[0], val[-1]), "test": (test[0], test[-1])}


def split_of(day: Column, bounds: dict[str, tuple[dt.date, dt.date]]) -> Column:
    return (
        F.when(day >= F.lit(bounds["test"][0]), "test").when(day >= F.lit(bounds["val"][0]), "val").otherwise("train")
    )


def orders(events: DataFrame, seed: int) -> DataFrame:
    """One row per order: its distinct products in the order they were scanned, the held-out label, customer, day.

    The label is the product with the smallest seeded hash of (order, product): deterministic, and independent of
    scan order, popularity and product id.
    """
    scanned = F.transform(
        F.array_sort(F.collect_list(F.struct("event_time", "canonical_product_id"))),
        lambda line: line["canonical_product_id"],
    )
    grouped = events.groupBy("order_id").agg(
        F.array_distinct(scanned).alias("products"),
        F.min("customer_id").alias("customer_id"),
        F.min("date").alias("date"),
    )
    label = F.array_min(
        F.transform(
            "products", lambda p: F.struct(F.xxhash64(F.col("order_id"), p, F.lit(seed)).alias("h"), p.alias("p"))
        )
    )["p"]
    return grouped.withColumn("label", label).withColumn("inputs", F.filter("products", lambda p: p != F.col("label")))


def vocabulary(keys_and_counts: list[tuple[str, int]], cap: int | None) -> list[str]:
    """Keys by count (descending), then key, at most `cap` of them: the order of their indexes."""
    ranked = sorted(keys_and_counts, key=lambda kv: (-kv[1], kv[0]))
    return [key for key, _ in ranked[:cap]]


def index_frame(spark: SparkSession, keys: list[str], first_index: int) -> DataFrame:
    return spark.createDataFrame([(key, first_index + i) for i, key in enumerate(keys)], "key string, index int")


def index_array(frame: DataFrame, column: str, vocab: DataFrame) -> DataFrame:
    """Replace an array of ids by the array of their vocabulary indexes (UNKNOWN where not in it), order kept."""
    exploded = frame.select("order_id", F.posexplode(column).alias("pos", "key"))
    indexed = (
        exploded.join(F.broadcast(vocab), "key", "left")
        .groupBy("order_id")
        .agg(F.array_sort(F.collect_list(F.struct("pos", F.coalesce("index", F.lit(UNKNOWN)).alias("i")))).alias("s"))
        .select("order_id", F.transform("s", lambda s: s["i"]).alias(column))
    )
    empty = F.array().cast("array<int>")
    return frame.drop(column).join(indexed, "order_id", "left").withColumn(column, F.coalesce(F.col(column), empty))


def padded(array: Column, width: int) -> list[Column]:
    """`width` scalar columns from an int array: its first `width` values, then PAD."""
    return [F.coalesce(array[i], F.lit(PAD)).cast("int") for i in range(width)]


def rule_features(
    split_orders: DataFrame,
    train_orders: DataFrame,
    rules: DataFrame,
    train_days: list[dt.date],
    cfg: PipelineConfig,
    cached: list[DataFrame],
) -> tuple[DataFrame, int]:
    """What the rules recommend for each example's inputs (order_id, rules), and the folds it took.

    Validation and test examples get the rules of every training day. With shards.rule_folds k >= 2, a training
    example gets rules mined without its own day: the training days are dealt into k folds (day i to fold i mod k)
    and each fold's examples get the rules mined, as `rules` were (every training order, the same settings), on
    the other folds' orders. Rule scores
    on training examples are then as good as rules are on days they never saw, which is what the model meets later.
    The folds' counts and rules are persisted and added to `cached`, for the caller to release.
    """
    width = cfg.mining.recommendations
    k = min(cfg.shards.rule_folds, len(train_days))

    def recommended(frame: DataFrame, with_rules: DataFrame) -> DataFrame:
        items = frame.select("order_id", F.col("inputs").alias("items"))
        return recommend_from_rules(items, with_rules, width).withColumnRenamed("recommended", "rules")

    if k < 2:
        return recommended(split_orders, rules), 1
    parts = [recommended(split_orders.where(F.col("split") != "train"), rules)]
    for fold in range(k):
        days = train_days[fold::k]
        others = train_orders.where(~F.col("date").isin(days))
        parts.append(recommended(split_orders.where(F.col("date").isin(days)), _mined(others, cfg, cached)))
    return reduce(DataFrame.unionByName, parts), k


def _mined(train_orders: DataFrame, cfg: PipelineConfig, cached: list[DataFrame]) -> DataFrame:
    """The rules of some training orders, mined with the mining settings."""
    baskets = train_orders.select("order_id", F.array_sort("products").alias("items"))
    counts = item_counts(baskets).persist(StorageLevel.MEMORY_AND_DISK)
    itemsets = frequent_itemsets(baskets, counts, cfg.mining, baskets.count())
    rules = association_rules(itemsets, cfg.mining.min_confidence).persist(StorageLevel.MEMORY_AND_DISK)
    cached += [counts, rules]
    return rules


def examples(
    split_orders: DataFrame,
    recommended: DataFrame,
    products: DataFrame,
    customers: DataFrame,
    width: int,
    rule_width: int,
) -> DataFrame:
    """The examples of orders with >= 2 products: indexes of inputs, rule recommendations, customer, size, label."""
    with_rules = split_orders.join(recommended, "order_id")
    indexed = index_array(index_array(with_rules, "inputs", products), "rules", products)
    labelled = indexed.join(
        F.broadcast(products.withColumnRenamed("key", "label").withColumnRenamed("index", "label_index")),
        "label",
        "left",
    ).join(F.broadcast(customers.withColumnRenamed("key", "customer_id")), "customer_id", "left")
    customer = F.when(F.col("customer_id").isNull(), F.lit(ANONYMOUS)).otherwise(F.coalesce("index", F.lit(UNKNOWN)))
    return labelled.select(
        "order_id",
        "date",
        "split",
        *[c.alias(name) for c, name in zip(padded(F.col("inputs"), width), columns("item", width), strict=True)],
        *[
            c.alias(name)
            for c, name in zip(padded(F.col("rules"), rule_width), columns("rule", rule_width), strict=True)
        ],
        customer.cast("int").alias("customer"),
        F.size("inputs").cast("int").alias("size"),
        F.coalesce("label_index", F.lit(UNKNOWN)).cast("int").alias("label"),
    )


def write_files(
    directory: str, rows_per_row_group: int
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A mapInArrow function: each task writes its partition as one Parquet file with row groups of a fixed size.

    Spark's own writer sizes row groups in bytes; Petastorm reads whole row groups, so they are sized in rows here.
    The file is written through pyarrow's filesystem layer, so any root Spark can reach works.
    """

    def write(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq
        from pyspark import TaskContext

        from dlspark.fs import filesystem

        table = pa.Table.from_batches(list(batches))
        if table.num_rows == 0:
            return
        context = TaskContext.get()
        name = f"part-{context.partitionId() if context else 0:05d}.parquet"
        fs, inner = filesystem(f"{directory}/{name}")
        fs.create_dir(inner.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(inner) as out:
            pq.write_table(table, out, row_group_size=rows_per_row_group)
        groups = [min(rows_per_row_group, table.num_rows - i) for i in range(0, table.num_rows, rows_per_row_group)]
        yield pa.RecordBatch.from_pydict({"file": [name], "rows": [table.num_rows], "row_groups": [groups]})

    return write


def write_split(frame: DataFrame, directory: str, rows: int, rows_per_file: int, rows_per_row_group: int, seed: int):
    """Write one split as `ceil(rows / rows_per_file)` files in a seeded random order; returns their stats."""
    files = max(1, math.ceil(rows / rows_per_file))
    shuffled = (
        frame.drop("split")
        .repartition(files, F.xxhash64("order_id", F.lit(seed)))
        .sortWithinPartitions(F.xxhash64("order_id", F.lit(seed + 1)), "order_id")
    )
    stats = shuffled.mapInArrow(write_files(directory, rows_per_row_group), FILE_STATS).collect()
    return sorted(({"path": r.file, "rows": r.rows, "row_groups": list(r.row_groups)} for r in stats), key=str)


def fingerprint(path: str) -> str:
    """A hash of the names and sizes of the files under `path` (an input's identity without reading it)."""
    return short_hash(repr([(name, size) for name, size, _ in fs.walk_files(path)]))


def run(ctx: StageContext) -> StageReport:
    """events/ -> shards/{train,val,test}/, shards/rules/ (mined on the training days) and shards/manifest.json."""
    spark, cfg = ctx.spark, ctx.cfg
    out = ctx.output("shards")
    report = ctx.new_report()
    sc = cfg.shards
    events = select_window(published_events(spark, ctx.layout), sc.window_days, sc.end_date)[0]
    cached = [orders(events, sc.seed).persist(StorageLevel.MEMORY_AND_DISK)]  # and the rule folds' counts and rules
    try:
        dates = sorted(row.date for row in cached[0].select("date").distinct().collect())
        bounds = assign_splits(dates, sc.test_days, sc.val_days)
        all_orders = cached[0].withColumn("split", split_of(F.col("date"), bounds))
        report.rows_in = all_orders.count()
        train_orders = all_orders.where(F.col("split") == "train")
        rules, products, customers, mining = training_knowledge(spark, train_orders, cfg, out)
        train_days = [day for day in dates if day <= bounds["train"][1]]
        with_two = all_orders.where(F.size("products") >= 2)
        recommended, folds = rule_features(with_two, train_orders, rules, train_days, cfg, cached)
        frame = examples(
            with_two,
            recommended,
            index_frame(spark, products, 2),
            index_frame(spark, customers, 2),
            sc.max_items,
            cfg.mining.recommendations,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            splits = write_splits(frame, bounds, out, cfg)
        finally:
            frame.unpersist()
    finally:
        for persisted in cached:
            persisted.unpersist()
    report.rows_out = sum(s["rows"] for s in splits.values())
    report.removed = {"single_product_orders": report.rows_in - report.rows_out}
    names = product_names(spark, ctx.layout.products, products)
    manifest: dict[str, Any] = {
        "format": 1,
        "created_at": report.started_at,
        "code_version": report.code_version,
        "config_hash": settings_hash(cfg, ["shards", "mining"]),
        "inputs": {"events": fingerprint(ctx.layout.events)},
        "columns": {
            "items": columns("item", sc.max_items),
            "rules": columns("rule", cfg.mining.recommendations),
            "scalars": ["customer", "size"],
            "label": "label",
        },
        "rows_per_row_group": sc.rows_per_row_group,
        "splits": splits,
        "products": {"ids": ["<pad>", "<unknown>", *products], "names": ["", "", *names]},
        "customers": {"ids": ["<anonymous>", "<unknown>", *customers]},
        "rules": {**mining, "rules": rules.count(), "folds": folds},
    }
    manifest["fingerprint"] = short_hash(f"{manifest['inputs']}{manifest['config_hash']}")
    fs.write_json(manifest_path(out), manifest)
    report.details = {
        **{f"{split}_rows": s["rows"] for split, s in splits.items()},
        **{f"{split}_days": f"{s['first_day']}..{s['last_day']}" for split, s in splits.items()},
        "products": len(products),
        "customers": len(customers),
        "rules": manifest["rules"]["rules"],
        "rule_folds": folds,
        "truncated_inputs": sum(s["truncated_inputs"] for s in splits.values()),
        "unknown_test_labels": splits["test"]["unknown_labels"],
        "fingerprint": manifest["fingerprint"],
    }
    return report


def training_knowledge(
    spark: SparkSession, train_orders: DataFrame, cfg: PipelineConfig, out: str
) -> tuple[DataFrame, list[str], list[str], dict[str, Any]]:
    """What may be learnt from the training days: rules (written to shards/rules/) and the vocabularies."""
    baskets = train_orders.select("order_id", F.array_sort("products").alias("items")).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    counts = item_counts(baskets).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        checks = check_minable(baskets, counts, cfg.mining)
        itemsets = frequent_itemsets(baskets, counts, cfg.mining, checks["baskets"])
        association_rules(itemsets, cfg.mining.min_confidence).write.mode("overwrite").parquet(f"{out}/rules")
        products = vocabulary([(r.item, r["count"]) for r in counts.collect()], cfg.shards.max_products)
    finally:
        counts.unpersist()
        baskets.unpersist()
    customer_counts = train_orders.where(F.col("customer_id").isNotNull()).groupBy("customer_id").count().collect()
    customers = vocabulary([(r.customer_id, r["count"]) for r in customer_counts], cfg.shards.max_customers)
    return spark.read.parquet(f"{out}/rules"), products, customers, checks


def write_splits(
    frame: DataFrame, bounds: dict[str, tuple[dt.date, dt.date]], out: str, cfg: PipelineConfig
) -> dict[str, Any]:
    """Write each split's shards and check that the files hold exactly the rows counted before writing."""
    sc = cfg.shards
    summary = {
        row.split: row
        for row in frame.groupBy("split")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum((F.col("size") > sc.max_items).cast("int")).alias("truncated"),
            F.sum((F.col("label") == UNKNOWN).cast("int")).alias("unknown_labels"),
        )
        .collect()
    }
    splits: dict[str, Any] = {}
    for split in SPLITS:
        first, last = bounds[split]
        if split not in summary:
            raise InputError(f"the {split} split ({first} to {last}) has no order with two or more products")
        rows = summary[split].rows
        fs.delete(f"{out}/{split}")
        files = write_split(
            frame.where(F.col("split") == split),
            f"{out}/{split}",
            rows,
            sc.rows_per_file,
            sc.rows_per_row_group,
            sc.seed,
        )
        written = sum(f["rows"] for f in files)
        if written != rows:
            raise AccountingError(f"shards/{split}: counted {rows:,} examples but the files hold {written:,}")
        splits[split] = {
            "first_day": str(first),
            "last_day": str(last),
            "rows": rows,
            "truncated_inputs": summary[split].truncated,
            "unknown_labels": summary[split].unknown_labels,
            "files": files,
        }
    return splits


def product_names(spark: SparkSession, products_path: str, ids: list[str]) -> list[str]:
    """The canonical name of each product id (from products/), in vocabulary order."""
    names = {
        row.canonical_product_id: row.canonical_name
        for row in read_parquet(spark, products_path, PRODUCTS, DATASETS["products"])
        .select("canonical_product_id", "canonical_name")
        .distinct()
        .collect()
    }
    return [names.get(i) or i for i in ids]
