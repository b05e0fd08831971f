"""Explicit schemas and column names shared by every stage (no schema inference anywhere)."""

from pyspark.sql.types import (
    BinaryType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# The canonical order-line fields every feed maps onto (docs/stages.md, "Canonical schema").
CANONICAL_FIELDS = (
    "event_id",
    "order_id",
    "customer_id",
    "product_id",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "event_time",
)
# A feed must map these; the others may be absent from a feed and are then null.
REQUIRED_FIELDS = ("event_id", "order_id", "product_id", "quantity", "unit_price", "event_time")
# How ingest writes a time that a Parquet file holds as a timestamp (not as text): an ISO 8601 instant in UTC,
# which clean reads whatever the feed's time_format (that format is for times written as text).
INSTANT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # pyarrow.compute.strftime; %S carries the fraction of the column's unit
INSTANT_PATTERN = r"^-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$"

# Where a record came from; carried by every row from ingest on.
LINEAGE = StructType(
    [
        StructField("feed", StringType(), False),
        StructField("source_file", StringType(), False),
        StructField("date", DateType(), True),
    ]
)

INGESTED = StructType([StructField(name, StringType(), True) for name in CANONICAL_FIELDS] + LINEAGE.fields)

MONEY = DecimalType(12, 2)

CLEAN = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("order_id", StringType(), False),
        StructField("customer_id", StringType(), True),
        StructField("product_id", StringType(), False),
        StructField("product_name", StringType(), True),
        StructField("product_name_norm", StringType(), True),
        StructField("category", StringType(), True),
        StructField("quantity", IntegerType(), False),
        StructField("unit_price", MONEY, False),
        StructField("event_time", TimestampType(), False),
        *LINEAGE.fields,
    ]
)

EVENTS = StructType(CLEAN.fields + [StructField("canonical_product_id", StringType(), False)])

PRODUCTS = StructType(
    [
        StructField("product_id", StringType(), False),
        StructField("canonical_product_id", StringType(), False),
        StructField("canonical_name", StringType(), True),
        StructField("product_name", StringType(), True),
        StructField("product_name_norm", StringType(), True),
        StructField("category", StringType(), True),
        StructField("events", LongType(), False),
    ]
)

QUARANTINE = StructType(
    [
        StructField("feed", StringType(), True),
        StructField("source_file", StringType(), True),
        StructField("date", DateType(), True),
        StructField("event_id", StringType(), True),
        StructField("reason", StringType(), False),
        StructField("record", StringType(), True),  # the record as text, always valid UTF-8
        StructField("raw", BinaryType(), True),  # ingest: the record's bytes exactly as they were in the file
    ]
)
