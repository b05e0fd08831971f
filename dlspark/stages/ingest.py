"""Ingest: read every raw feed with its explicit schema and map it onto the canonical fields.

Every field is read as a string, so a bad value is left for `clean` to name precisely; what ingest itself
quarantines is what cannot be read at all: CSV lines with the wrong number of columns, lines that are not JSON,
and bytes that are not UTF-8.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from dlspark import layout as io_
from dlspark.config import FeedConfig, PipelineConfig
from dlspark.errors import ConfigError, InputError
from dlspark.layout import Layout
from dlspark.report import StageReport
from dlspark.schemas import CANONICAL_FIELDS, INGESTED
from dlspark.stages.common import KEEP_NULLS, REASON, RECORD, first_failing, split_and_write

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
REPLACEMENT_CHAR = "\ufffd"  # what Spark decodes bytes that are not UTF-8 into
DATE_IN_PATH = r"/date=(\d{4}-\d{2}-\d{2})/"
PARSE_FAILURE = {"csv": "wrong_column_count", "json": "invalid_json", "parquet": "unreadable_record"}


def source_schema(feed: FeedConfig) -> StructType:
    """All the feed's source fields as strings, plus the column where Spark keeps a line it cannot parse."""
    names = feed.fields or list(dict.fromkeys(feed.columns.values()))
    return StructType([StructField(name, StringType()) for name in names] + [StructField(CORRUPT, StringType())])


def feed_path(raw_root: str, feed: FeedConfig, dates: list[str] | None = None) -> list[str]:
    base = f"{raw_root}/{feed.path.strip('/')}"
    return [f"{base}/date={d}" for d in dates] if dates else [base]


def feed_listing(root: Layout, feed: FeedConfig) -> list[tuple[str, int, int]]:
    """Every file of a feed as (path under raw/, size, modification time in ns): what ingest's result rests on."""
    from pyarrow import fs as pafs

    fs, inner = io_.filesystem(feed_path(root.raw, feed)[0])
    if fs.get_file_info(inner).type == pafs.FileType.NotFound:
        return []
    files = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
    return sorted((f.path[len(inner) :], f.size or 0, f.mtime_ns or 0) for f in files if f.type == pafs.FileType.File)


def read_feed(spark: SparkSession, feed: FeedConfig, paths: list[str]) -> DataFrame:
    """Read one feed with its explicit schema (never inferred), keeping unparseable lines in _corrupt_record."""
    reader = (
        spark.read.schema(source_schema(feed))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("recursiveFileLookup", "true")
    )
    if feed.format == "csv":
        reader = reader.option("header", "true").option("enforceSchema", "true")
    reader = reader.options(**feed.options)
    return reader.format(feed.format).load(paths)


def not_utf8_text(text: Column) -> Column:
    """True where a string came from bytes that are not UTF-8.

    Readers that decode (CSV) leave U+FFFD in place of the bad bytes; readers that keep the bytes (JSON's corrupt
    record) leave them as they were, so re-encoding the text changes it.
    """
    return F.coalesce(text.contains(REPLACEMENT_CHAR) | (text.cast("binary") != F.encode(text, "UTF-8")), F.lit(False))


def to_canonical(raw: DataFrame, feed_name: str, feed: FeedConfig) -> DataFrame:
    """Rename source fields to canonical ones, add lineage, and tag each row with an ingest reason (or null)."""
    source = [c for c in raw.columns if c != CORRUPT]
    corrupt = F.col(CORRUPT) if CORRUPT in raw.columns else F.lit(None).cast("string")
    not_utf8 = not_utf8_text(F.concat_ws("\n", corrupt, *[F.col(f"`{c}`") for c in source]))  # one check a row
    reason = first_failing([("invalid_utf8", not_utf8), (PARSE_FAILURE[feed.format], corrupt.isNotNull())])
    canonical = [
        (F.col(f"`{feed.columns[name]}`") if name in feed.columns else F.lit(None)).cast("string").alias(name)
        for name in CANONICAL_FIELDS
    ]
    file_name = F.input_file_name()
    return raw.select(
        *canonical,
        F.lit(feed_name).alias("feed"),
        file_name.alias("source_file"),
        F.to_date(F.regexp_extract(file_name, DATE_IN_PATH, 1), "yyyy-MM-dd").alias("date"),
        reason.alias(REASON),
        F.when(
            reason.isNotNull(), F.coalesce(corrupt, F.to_json(F.struct(*[F.col(f"`{c}`") for c in source]), KEEP_NULLS))
        ).alias(RECORD),
    ).withColumn("event_id", F.when(F.col(REASON).isNull(), F.col("event_id")))


def check_inputs(cfg: PipelineConfig, root: Layout, dates: list[str] | None = None) -> None:
    """Fail before any Spark job when a feed's directory is missing, naming the config key to fix."""
    for name, feed in cfg.feeds.items():
        for path in feed_path(root.raw, feed, dates):
            if not io_.exists(path):
                raise ConfigError(
                    f"feeds.{name}.path: {path} does not exist (data.root={cfg.data.root!r}, path={feed.path!r}); "
                    "point data.root at your data, or create demo data with `dlspark generate --out DIR`"
                )


def run(spark: SparkSession, cfg: PipelineConfig, dates: list[str] | None = None) -> StageReport:
    """raw/ -> ingested/ (canonical fields, all strings) + quarantine/stage=ingest/."""
    root = Layout.of(cfg.data)
    check_inputs(cfg, root, dates)
    report = StageReport("ingest", output=root.ingested)
    per_feed = []
    for name, feed in cfg.feeds.items():
        raw = read_feed(spark, feed, feed_path(root.raw, feed, dates))
        rows = raw.count()  # counted on the input itself, so the split below is checked against it
        report.details[f"rows_in.{name}"] = rows
        report.rows_in += rows
        per_feed.append(to_canonical(raw, name, feed))
    if report.rows_in == 0:
        raise InputError(f"no records found under {root.raw} for feeds {list(cfg.feeds)}")
    tagged = reduce(DataFrame.unionByName, per_feed)
    split_and_write(tagged, INGESTED.fieldNames(), root, report)
    return report
