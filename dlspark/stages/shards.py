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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from dlspark import fs
from dlspark.config import SHARDS_SETTINGS, PipelineConfig, row_group_rows, settings_hash
from dlspark.datasets import DATASETS, published_events, read_parquet
from dlspark.digest import short_hash
from dlspark.errors import AccountingError, InputError
from dlspark.manifest import ANONYMOUS, PAD, SPLITS, UNKNOWN, columns, manifest_path
from dlspark.mining.itemsets import (
    association_rules,
    check_minable,
    frequent_itemsets_by_part,
    item_counts,
    select_window,
)
from dlspark.mining.recommend import recommend_from_rules
from dlspark.partitioned import refuse_speculation
from dlspark.report import StageReport
from dlspark.schemas import PRODUCTS
from dlspark.stage import StageContext

log = logging.getLogger(__name__)

FILE_STATS = "file string, rows long, row_groups array<long>"
FIRST_INDEX = 2  # of known products (after PAD and UNKNOWN) and customers (after ANONYMOUS and UNKNOWN)


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


def fold_parts(train_days: list[dt.date], folds: int) -> tuple[Column, int]:
    """Each order's part (a column) for the rule features, and the part that holds every training order.

    With k >= 2 folds the training days are dealt into k folds (day i to fold i mod k): a training order's part is
    its fold, whose examples get the rules mined on the other folds' orders. Every other order (validation, test)
    gets part k, the rules of every training day. With fewer than two folds everything is part 0 and in-sample.
    """
    if folds < 2:
        return F.lit(0), 0
    fold = F.create_map(*[F.lit(v) for i, day in enumerate(train_days) for v in (day, i % folds)])[F.col("date")]
    return F.when(F.col("split") == "train", fold).otherwise(F.lit(folds)), folds


def rule_features(frame: DataFrame, rules: DataFrame, width: int) -> DataFrame:
    """(order_id, rules): what the rules of each example's part (see `fold_parts`) recommend for its inputs.

    Rule scores on training examples are then as good as rules are on days they never saw, which is what the model
    meets later.
    """
    items = frame.select("order_id", "part", F.col("inputs").alias("items"))
    return recommend_from_rules(items, rules, width, by=["part"]).withColumnRenamed("recommended", "rules")


def examples(
    split_orders: DataFrame,
    recommended: DataFrame,
    products: list[str],
    customers: list[str],
    width: int,
    rule_width: int,
) -> DataFrame:
    """The examples of orders with >= 2 products: indexes of inputs, rule recommendations, customer, size, label.

    Product and customer ids become vocabulary indexes (FIRST_INDEX on, in vocabulary order; UNKNOWN where not in
    it) in Arrow batches, against the vocabularies broadcast once: no shuffle beyond the join with the rules.
    """
    names = [*columns("item", width), *columns("rule", rule_width), "customer", "size", "label"]
    schema = "order_id string, date date, split string, " + ", ".join(f"{name} int" for name in names)
    vocabularies = split_orders.sparkSession.sparkContext.broadcast((products, customers))

    def encode(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        product_ids, customer_ids = (pa.array(ids, pa.string()) for ids in vocabularies.value)
        for batch in batches:
            inputs, rules = batch.column("inputs"), batch.column("rules")
            customer = indexes(batch.column("customer_id"), customer_ids)
            arrays = {
                **dict(zip(columns("item", width), positions(inputs, product_ids, width), strict=True)),
                **dict(zip(columns("rule", rule_width), positions(rules, product_ids, rule_width), strict=True)),
                "customer": np.where(
                    pc.is_null(batch.column("customer_id")).to_numpy(zero_copy_only=False), ANONYMOUS, customer
                ),
                "size": pc.list_value_length(inputs).to_numpy(zero_copy_only=False),
                "label": indexes(batch.column("label"), product_ids),
            }
            fixed = [batch.column(name) for name in ("order_id", "date", "split")]
            yield pa.RecordBatch.from_arrays(
                [*fixed, *(pa.array(arrays[name], pa.int32()) for name in names)], ["order_id", "date", "split", *names]
            )

    with_rules = split_orders.join(recommended, "order_id")
    return with_rules.select("order_id", "date", "split", "inputs", "rules", "customer_id", "label").mapInArrow(
        encode, schema
    )


def indexes(ids: pa.Array, vocabulary: pa.Array) -> np.ndarray:
    """The index of each id: FIRST_INDEX + its position in `vocabulary`, UNKNOWN where it is not in it (or null)."""
    found = pc.index_in(ids, value_set=vocabulary).fill_null(-1).to_numpy(zero_copy_only=False)
    return np.where(found < 0, UNKNOWN, found + FIRST_INDEX).astype(np.int32)


def positions(lists: pa.ListArray, vocabulary: pa.Array, width: int) -> list[np.ndarray]:
    """`width` arrays: the index (see `indexes`) of each list's first, second, ... id, PAD past its end."""
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False)
    values = indexes(pc.list_flatten(lists), vocabulary)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    at = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # each value's place in its list
    kept = at < width
    table = np.full((len(lengths), width), PAD, dtype=np.int32)
    table[rows[kept], at[kept]] = values[kept]
    return list(table.T)


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

        from dlspark.fs import open_output

        table = pa.Table.from_batches(list(batches))
        if table.num_rows == 0:
            return
        context = TaskContext.get()
        name = f"part-{context.partitionId() if context else 0:05d}.parquet"
        with open_output(f"{directory}/{name}") as out:
            pq.write_table(table, out, row_group_size=rows_per_row_group)
        groups = [min(rows_per_row_group, table.num_rows - i) for i in range(0, table.num_rows, rows_per_row_group)]
        yield pa.RecordBatch.from_pydict({"file": [name], "rows": [table.num_rows], "row_groups": [groups]})

    return write


def write_split(frame: DataFrame, directory: str, rows: int, rows_per_file: int, rows_per_row_group: int, seed: int):
    """Write one split as `ceil(rows / rows_per_file)` files in a seeded random order; returns their stats."""
    refuse_speculation(frame.sparkSession.sparkContext.getConf(), "shards")
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
    cached = [orders(events, sc.seed).persist(StorageLevel.MEMORY_AND_DISK)]  # and the rules of every part
    try:
        dates = sorted(row.date for row in cached[0].select("date").distinct().collect())
        bounds = assign_splits(dates, sc.test_days, sc.val_days)
        train_days = [day for day in dates if day <= bounds["train"][1]]
        part, full = fold_parts(train_days, min(sc.rule_folds, len(train_days)))
        all_orders = cached[0].withColumn("split", split_of(F.col("date"), bounds)).withColumn("part", part)
        report.rows_in = all_orders.count()
        train_orders = all_orders.where(F.col("split") == "train")
        rules, products, customers, mining = training_knowledge(spark, train_orders, full, cfg, out, cached)
        with_two = all_orders.where(F.size("products") >= 2)
        recommended = rule_features(with_two, rules, cfg.mining.recommendations)
        frame = examples(
            with_two,
            recommended,
            products,
            customers,
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
        "config_hash": settings_hash(cfg, SHARDS_SETTINGS),
        "inputs": {"events": fingerprint(ctx.layout.events)},
        "columns": {
            "items": columns("item", sc.max_items),
            "rules": columns("rule", cfg.mining.recommendations),
            "scalars": ["customer", "size"],
            "label": "label",
        },
        "rows_per_row_group": splits["train"]["rows_per_row_group"],
        "splits": splits,
        "products": {"ids": ["<pad>", "<unknown>", *products], "names": ["", "", *names]},
        "customers": {"ids": ["<anonymous>", "<unknown>", *customers]},
        "rules": {**mining, "rules": spark.read.parquet(f"{out}/rules").count(), "folds": max(full, 1)},
    }
    manifest["fingerprint"] = short_hash(f"{manifest['inputs']}{manifest['config_hash']}")
    fs.write_json(manifest_path(out), manifest)
    report.details = {
        **{f"{split}_rows": s["rows"] for split, s in splits.items()},
        **{f"{split}_days": f"{s['first_day']}..{s['last_day']}" for split, s in splits.items()},
        "products": len(products),
        "customers": len(customers),
        "rules": manifest["rules"]["rules"],
        "rule_folds": max(full, 1),
        "truncated_inputs": sum(s["truncated_inputs"] for s in splits.values()),
        "unknown_test_labels": splits["test"]["unknown_labels"],
        "fingerprint": manifest["fingerprint"],
    }
    return report


def training_knowledge(
    spark: SparkSession, train_orders: DataFrame, full: int, cfg: PipelineConfig, out: str, cached: list[DataFrame]
) -> tuple[DataFrame, list[str], list[str], dict[str, Any]]:
    """What may be learnt from the training days: rules and the vocabularies.

    Returns the rules of every part (`part`, see `fold_parts`), mined in one pass: part `full` from every training
    order (also written to shards/rules/), and each fold's from the training orders of the other folds. Every part
    is mined as `mine` would mine it alone (its own basket count, minimum count and item ranks). The rules are
    persisted and added to `cached`, for the caller to release.
    """
    parts = F.filter(F.array(*[F.lit(p) for p in range(full + 1)]), lambda p: (p != F.col("part")) | (p == full))
    baskets = train_orders.select(F.array_sort("products").alias("items"), F.explode(parts).alias("part")).persist(
        StorageLevel.MEMORY_AND_DISK
    )
    counts = item_counts(baskets, by=["part"]).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        whole = F.col("part") == full
        checks = check_minable(baskets.where(whole), counts.where(whole).drop("part"), cfg.mining)
        sizes = {row.part: row["count"] for row in baskets.groupBy("part").count().collect()}
        itemsets = frequent_itemsets_by_part(baskets, counts, cfg.mining, sizes).persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(itemsets)  # the rules read them three times
        rules = association_rules(itemsets, cfg.mining.min_confidence, by=["part"]).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        cached.append(rules)
        rules.where(whole).drop("part").write.mode("overwrite").parquet(f"{out}/rules")
        products = vocabulary([(r.item, r["count"]) for r in counts.where(whole).collect()], cfg.shards.max_products)
    finally:
        counts.unpersist()
        baskets.unpersist()
    customer_counts = train_orders.where(F.col("customer_id").isNotNull()).groupBy("customer_id").count().collect()
    customers = vocabulary([(r.customer_id, r["count"]) for r in customer_counts], cfg.shards.max_customers)
    return rules, products, customers, checks


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
    group_rows = row_group_rows(summary["train"].rows if "train" in summary else 0, cfg)
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
            group_rows,
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
            "rows_per_row_group": group_rows,
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
