"""Clean: ingested/ -> clean/ (typed, normalised) + quarantine/stage=clean/, by the rules in dlspark.cleaning."""

from __future__ import annotations

from pyspark.sql import functions as F

from dlspark.cleaning import clean
from dlspark.datasets import DATASETS, read_parquet, require_dataset
from dlspark.quarantine import split_and_write
from dlspark.report import StageReport
from dlspark.schemas import CLEAN, INGESTED
from dlspark.stage import StageContext


def run(ctx: StageContext) -> StageReport:
    """ingested/ -> clean/ + quarantine/stage=clean/; with data.date, that day only."""
    cfg = ctx.cfg
    report = ctx.new_report()
    ingested = read_parquet(ctx.spark, ctx.input("ingested"), INGESTED, DATASETS["ingested"])
    if cfg.data.date is not None:  # a daily run: that day's partition only
        require_dataset(f"{ctx.input('ingested')}/date={cfg.data.date}", f"ingested order lines of {cfg.data.date}")
        ingested = ingested.where(F.col("date") == F.lit(cfg.data.date))
    report.rows_in = ingested.count()
    split_and_write(clean(ingested, cfg), CLEAN, ctx.output("clean"), ctx.output("quarantine/stage=clean"), report)
    return report
