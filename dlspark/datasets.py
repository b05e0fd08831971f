"""Reading what earlier stages published, with a clear message when a stage has not run yet."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from dlspark import fs
from dlspark.errors import InputError
from dlspark.layout import Layout
from dlspark.schemas import EVENTS, PRODUCTS

# What each stage output holds and which stage writes it, for messages about a missing input.
DATASETS = {
    "ingested": "ingested order lines (stage ingest)",
    "clean": "clean order lines (stage clean)",
    "events": "deduplicated events (stage dedup)",
    "products": "resolved products (stage dedup)",
    "shards": "training shards (stage shards)",
}


def require_dataset(path: str, what: str) -> None:
    """Fail with what is missing and what to run when an earlier stage's output is not there."""
    if not fs.exists(path):
        raise InputError(f"{what} not found at {path}; run the stage that writes it first")


def read_parquet(spark: SparkSession, path: str, schema: StructType, what: str) -> DataFrame:
    """Read a dataset an earlier stage wrote, with its explicit schema."""
    require_dataset(path, what)
    return spark.read.schema(schema).parquet(path)


def published_events(spark: SparkSession, layout: Layout) -> DataFrame:
    """The published events/, with every source product mapped by the current products/.

    Daily runs resolve products again each day, and a merge found on a later day may change the canonical id of
    an earlier day's product: reading through products/ keeps every day's events on the same ids.
    """
    events = read_parquet(spark, layout.events, EVENTS, DATASETS["events"])
    mapping = read_parquet(spark, layout.products, PRODUCTS, DATASETS["products"]).select(
        "product_id", F.col("canonical_product_id").alias("current_id")
    )
    return (
        events.join(F.broadcast(mapping), "product_id", "left")
        .withColumn("canonical_product_id", F.coalesce("current_id", "canonical_product_id"))
        .select(*EVENTS.fieldNames())
    )
