"""The cleaning rules: normalise text, cast to the canonical types, and tag each row with the first rule it breaks.

A row's reason is the first rule it breaks, in the order of `rules()`; the rule names are listed in
docs/stages.md ("Quarantine reasons"). Nothing here throws on bad data, with ANSI mode on or off: casts and parses
are `try_` functions and fail into a rule. The clean stage applies them; ingest applies them too, to refuse a day
none of whose records would survive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from dlspark.config import CleanConfig, FeedConfig, PipelineConfig
from dlspark.frames import first_failing, small_lookup
from dlspark.quarantine import KEEP_NULLS, REASON, RECORD
from dlspark.schemas import CANONICAL_FIELDS, INSTANT_PATTERN, MONEY

# How feeds spell units, and the one spelling dlspark uses ("1 litre", "1ltr", "1 L" -> "1l").
UNIT_SPELLINGS = (
    ("ml", r"(?:ml|millilitres?|milliliters?)"),
    ("cl", r"(?:cl|centilitres?)"),
    ("l", r"(?:l|lt|ltr|ltrs|litres?|liters?)"),
    ("kg", r"(?:kg|kgs|kilos?|kilograms?)"),
    ("g", r"(?:g|gr|grs|grams?|grammes?)"),
    ("pk", r"(?:pk|pks|packs?)"),
)
# Distinct names (or categories) up to this many are broadcast to the rows that need their normal form.
BROADCAST_VALUES = 1_000_000
ACCENTED, PLAIN = "àáâäãåçèéêëìíîïñòóôöõùúûüýÿ", "aaaaaaceeeeiiiinooooouuuuyy"


def normalise_name(name: Column) -> Column:
    """Lower case, no accents or punctuation, one spelling per unit, single spaces: the key products match on."""
    text = F.translate(F.lower(F.trim(name)), ACCENTED, PLAIN)
    text = F.regexp_replace(text, r"(\d),(\d)", "$1.$2")  # decimal comma
    text = F.regexp_replace(text, r"[^\p{L}\p{N}.]+", " ")
    text = F.regexp_replace(text, r"(?<!\d)\.|\.(?!\d)", " ")  # dots that are not decimal points
    for unit, spellings in UNIT_SPELLINGS:
        text = F.regexp_replace(text, rf"(\d+(?:\.\d+)?)\s*{spellings}\b", f"$1{unit}")
    return F.nullif(F.trim(F.regexp_replace(text, r"\s+", " ")), F.lit(""))


def normalise_category(category: Column) -> Column:
    text = F.regexp_replace(F.lower(F.trim(category)), r"[^\p{L}\p{N}]+", " ")
    return F.nullif(F.trim(text), F.lit(""))


def once_per_value(
    frame: DataFrame,
    column: str,
    normalise: Callable[[Column], Column],
    out: str,
    broadcast_limit: int = BROADCAST_VALUES,
) -> DataFrame:
    """Add `out` = normalise(column), computed once per distinct value and joined back.

    Names and categories repeat across millions of lines; their regular expressions cost most of this stage
    when run on every row. The distinct values are computed here, once (a checkpoint), and broadcast to the join
    when there are at most `broadcast_limit` of them: Spark's own estimate stops broadcasting them past 10 MB of
    input, and its sort-merge join then shuffles every row (123 MB per million lines here).
    """
    values = frame.select(column).distinct().where(F.col(column).isNotNull())
    normalised = small_lookup(values.select(column, normalise(F.col(column)).alias(out)), broadcast_limit)
    return frame.join(normalised.for_join(), column, "left")


def parse_time(feeds: dict[str, FeedConfig]) -> Column:
    """event_time parsed with the format of the row's own feed (ISO 8601 where a feed sets none; a Parquet feed's
    time that its file holds as a timestamp, written by ingest as an ISO 8601 instant, whatever the format)."""
    parsed: Column | None = None
    time = F.col("event_time")
    for name, feed in feeds.items():
        value = F.try_to_timestamp(time, F.lit(feed.time_format)) if feed.time_format else F.try_to_timestamp(time)
        if feed.time_format and feed.format == "parquet":  # a timestamp column arrives as an ISO 8601 instant
            value = F.coalesce(value, F.when(time.rlike(INSTANT_PATTERN), F.try_to_timestamp(time)))
        parsed = F.when(F.col("feed") == name, value) if parsed is None else parsed.when(F.col("feed") == name, value)
    return parsed if parsed is not None else F.lit(None).cast("timestamp")


def try_cast(column: str, *types: str) -> Column:
    """`column` cast to each of `types` in turn, null wherever a step cannot be made (text that is no number, a
    number past the type's range or precision): the same on Spark 3.5 and 4.x, whether a cluster sets
    `spark.sql.ansi.enabled` or not (a plain cast raises there on overflow).
    PySpark's `Column.try_cast` exists from 4.0 only; SQL's `try_cast` from 3.2."""
    expression = column
    for type_ in types:
        expression = f"try_cast({expression} AS {type_})"
    return F.expr(expression)


def rules(cfg: CleanConfig) -> list[tuple[str, Column]]:
    """(reason, condition that breaks it), in the order they are checked; inputs are trimmed strings or null."""
    quantity = try_cast("quantity", "DOUBLE")
    price = try_cast("unit_price", "DOUBLE")
    start, end = (dt.datetime.combine(day, dt.time()) for day in (cfg.min_date, cfg.max_date))
    return [
        ("missing_event_id", F.col("event_id").isNull()),
        ("missing_order_id", F.col("order_id").isNull()),
        ("missing_product_id", F.col("product_id").isNull()),
        ("missing_quantity", F.col("quantity").isNull()),
        ("non_numeric_quantity", quantity.isNull() | F.isnan(quantity)),
        ("quantity_too_large", quantity > cfg.max_quantity),  # before the integer test: 1e308 is too large
        ("non_integer_quantity", quantity % 1 != 0),  # exact for any double (floor overflows a long)
        ("non_positive_quantity", quantity <= 0),
        ("missing_unit_price", F.col("unit_price").isNull()),
        ("non_numeric_price", price.isNull() | F.isnan(price)),
        ("negative_price", price < 0),
        ("price_too_large", price > cfg.max_unit_price),
        ("missing_event_time", F.col("event_time").isNull()),
        ("unparseable_time", F.col("_parsed_time").isNull()),
        ("time_out_of_range", (F.col("_parsed_time") < F.lit(start)) | (F.col("_parsed_time") >= F.lit(end))),
    ]


def clean(ingested: DataFrame, cfg: PipelineConfig) -> DataFrame:
    """Tag each ingested row with the first rule it breaks (or null) and add its typed, normalised values."""
    trimmed = ingested.select(
        *[F.nullif(F.trim(F.col(c)), F.lit("")).alias(c) for c in CANONICAL_FIELDS],
        "feed",
        "source_file",
        "date",
    ).withColumn("_parsed_time", parse_time(cfg.feeds))
    trimmed = once_per_value(trimmed, "product_name", normalise_name, "product_name_norm")
    trimmed = once_per_value(trimmed, "category", normalise_category, "_category_norm")
    reason = first_failing(rules(cfg.clean))
    return trimmed.select(
        "event_id",
        "order_id",
        "customer_id",
        "product_id",
        "product_name",
        "product_name_norm",
        F.col("_category_norm").alias("category"),
        try_cast("quantity", "DOUBLE", "INT").alias("quantity"),
        try_cast("unit_price", "DOUBLE", MONEY.simpleString()).alias("unit_price"),
        F.col("_parsed_time").alias("event_time"),
        "feed",
        "source_file",
        F.coalesce(F.col("date"), F.to_date("_parsed_time")).alias("date"),
        reason.alias(REASON),
        F.when(
            reason.isNotNull(),
            F.to_json(F.struct(*[F.col(c) for c in CANONICAL_FIELDS]), KEEP_NULLS),
        ).alias(RECORD),
    )
