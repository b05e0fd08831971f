"""Mine: events/ -> mining/itemsets/, mining/rules/, mining/popularity/ (dlspark.mining does the mining)."""

from __future__ import annotations

from pyspark import StorageLevel

from dlspark.datasets import published_events
from dlspark.mining.itemsets import (
    association_rules,
    baskets,
    check_minable,
    frequent_itemsets,
    item_counts,
    popularity,
    select_window,
    top_rules,
)
from dlspark.report import StageReport
from dlspark.stage import StageContext


def run(ctx: StageContext) -> StageReport:
    """events/ -> mining/itemsets/, mining/rules/, mining/popularity/."""
    spark, cfg = ctx.spark, ctx.cfg
    report = ctx.new_report()
    events = published_events(spark, ctx.layout)
    windowed, start, end = select_window(events, cfg.mining.window_days, cfg.mining.end_date)
    order_baskets = baskets(windowed).persist(StorageLevel.MEMORY_AND_DISK)
    counts = item_counts(order_baskets).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        checks = check_minable(order_baskets, counts, cfg.mining)
        n = checks["baskets"]
        report.rows_in = n
        itemsets = frequent_itemsets(order_baskets, counts, cfg.mining, n).persist(StorageLevel.MEMORY_AND_DISK)
        itemsets.write.mode("overwrite").parquet(ctx.output("mining/itemsets"))
        rules = association_rules(itemsets, cfg.mining.min_confidence)
        rules.write.mode("overwrite").parquet(ctx.output("mining/rules"))
        popularity(counts, n).write.mode("overwrite").parquet(ctx.output("mining/popularity"))
        itemsets.unpersist()
    finally:
        counts.unpersist()
        order_baskets.unpersist()
    written_rules = spark.read.parquet(ctx.output("mining/rules"))
    report.rows_out = n
    report.details = {
        **checks,
        "window": [str(start) if start else None, str(end) if end else None],
        "itemsets": spark.read.parquet(ctx.output("mining/itemsets")).count(),
        "rules": written_rules.count(),
        "top_rules": top_rules(written_rules, spark.read.parquet(ctx.input("products")), cfg.mining.top_rules),
    }
    return report
