"""Ingest: read every raw feed with its explicit schema and map it onto the canonical fields.

Every field is read as a string, so a bad value is left for `clean` to name precisely; what ingest itself
quarantines is what cannot be read at all: CSV lines with the wrong number of columns, lines that are not JSON,
and bytes that are not UTF-8.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from dlspark import fs
from dlspark.cleaning import clean
from dlspark.config import FeedConfig, PipelineConfig
from dlspark.errors import ConfigError, InputError
from dlspark.frames import first_failing
from dlspark.quarantine import KEEP_NULLS, REASON, RECORD, split_and_write
from dlspark.report import StageReport
from dlspark.schemas import CANONICAL_FIELDS, INGESTED
from dlspark.stage import StageContext

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
REPLACEMENT_CHAR = "\ufffd"  # what Spark decodes bytes that are not UTF-8 into
DATE_IN_PATH = r"/date=(\d{4}-\d{2}-\d{2})/"
PARSE_FAILURE = {"csv": "wrong_column_count", "json": "invalid_json", "parquet": "unreadable_record"}


def source_schema(feed: FeedConfig) -> StructType:
    """All the feed's source fields as strings, plus the column where Spark keeps a line it cannot parse."""
    names = feed.fields or list(dict.fromkeys(feed.columns.values()))
    return StructType([StructField(name, StringType()) for name in names] + [StructField(CORRUPT, StringType())])


def feed_folder(raw_root: str, feed: FeedConfig, day: dt.date | None = None) -> str:
    """A feed's folder under raw/, or its folder of one day."""
    base = f"{raw_root}/{feed.path.strip('/')}"
    return f"{base}/date={day.isoformat()}" if day else base


def raw_listing(cfg: PipelineConfig) -> list[list[tuple[str, int, int]]]:
    """Every raw file of every feed (of data.date's day, in a daily run) as (path, size, modification time in ns):
    what ingest's result rests on, fingerprinted in its manifest."""
    raw = cfg.data.layout.raw
    return [fs.walk_files(feed_folder(raw, feed, cfg.data.date)) for feed in cfg.feeds.values()]


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


def check_inputs(cfg: PipelineConfig) -> dict[str, FeedConfig]:
    """The feeds to read; fails before any Spark job when they are missing, naming the key or the day to fix.

    A daily run (data.date) reads the feeds that have a folder for the day (a feed may have none that day) and
    fails when none has.
    """
    raw, day = cfg.data.layout.raw, cfg.data.date
    if day is not None:
        present = {n: f for n, f in cfg.feeds.items() if fs.exists(feed_folder(raw, f, day))}
        if not present:
            folders = ", ".join(feed_folder(raw, f, day) for f in cfg.feeds.values())
            known = raw_days(cfg)
            span = f"{known[0]}..{known[-1]} ({len(known)} days)" if known else "none"
            raise InputError(f"no raw files for {day}: none of {folders} exists; days with raw files: {span}")
        for name in sorted(set(cfg.feeds) - set(present)):
            log.warning("feed %s has no files for %s; reading the other feeds", name, day)
        return present
    for name, feed in cfg.feeds.items():
        path = feed_folder(raw, feed)
        if not fs.exists(path):
            raise ConfigError(
                f"feeds.{name}.path: {path} does not exist (data.root={cfg.data.root!r}, path={feed.path!r}); "
                "point data.root at your data, or create demo data with `dlspark generate --out DIR`"
            )
    return dict(cfg.feeds)


def raw_days(cfg: PipelineConfig) -> list[str]:
    """Every day (YYYY-MM-DD) that has a date=YYYY-MM-DD folder in at least one feed, in order."""
    days = {
        name.removeprefix("date=")
        for feed in cfg.feeds.values()
        for name in fs.subdirectories(feed_folder(cfg.data.layout.raw, feed))
        if re.fullmatch(r"date=\d{4}-\d{2}-\d{2}", name)
    }
    return sorted(days)


def run(ctx: StageContext) -> StageReport:
    """raw/ -> ingested/ (canonical fields, all strings) + quarantine/stage=ingest/; with data.date, that day only.

    A daily run refuses a day none of whose records would survive `clean` before anything is published.
    """
    cfg, spark = ctx.cfg, ctx.spark
    feeds = check_inputs(cfg)
    day = cfg.data.date
    report = ctx.new_report()
    per_feed = []
    for name, feed in feeds.items():
        raw = read_feed(spark, feed, [feed_folder(ctx.layout.raw, feed, day)])
        rows = raw.count()  # counted on the input itself, so the split below is checked against it
        report.details[f"rows_in.{name}"] = rows
        report.rows_in += rows
        per_feed.append(to_canonical(raw, name, feed))
    if report.rows_in == 0:
        raise InputError(
            f"no records found under {ctx.layout.raw} for feeds {list(feeds)}" + (f" on {day}" if day else "")
        )
    tagged = reduce(DataFrame.unionByName, per_feed)
    ingested = ctx.output("ingested")
    split_and_write(tagged, INGESTED.fieldNames(), ingested, ctx.output("quarantine/stage=ingest"), report)
    if day:
        refuse_an_unusable_day(spark, cfg, ingested, report)
    return report


def refuse_an_unusable_day(spark: SparkSession, cfg: PipelineConfig, staged: str, report: StageReport) -> None:
    """Fail, before the day is published, when every one of its records is bad (here or by clean's rules)."""
    rows = spark.read.schema(INGESTED).parquet(staged)
    reasons = {
        row[REASON]: row["n"]
        for row in clean(rows, cfg).groupBy(REASON).count().withColumnRenamed("count", "n").collect()
    }
    if reasons.pop(None, 0):
        return
    found = {**report.quarantined, **reasons}
    listed = ", ".join(f"{reason} {n:,}" for reason, n in sorted(found.items(), key=lambda kv: -kv[1]))
    raise InputError(
        f"every one of the {report.rows_in:,} records of {cfg.data.date} is bad ({listed}); nothing was published. "
        f"Fix or replace the day's files under {cfg.data.layout.raw}/<feed>/date={cfg.data.date} and run "
        "the day again"
    )
