"""Ingest: read every raw feed from its files' bytes and map its records onto the canonical fields.

Each file is cut into records by dlspark.rawfiles (RFC 4180 CSV matched by header names, strict JSON lines, Parquet
rows), one Spark task a file. Every record is one row: good, or quarantined with the reason it cannot be read (its
raw bytes kept); a file that cannot be read at all is quarantined whole and listed in the report. Every field is
read as a string, so a bad value is left for `clean` to name precisely. The records counted in each file must
equal the rows written for it, or the stage fails (AccountingError, naming the file).
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import logging
import re

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from dlspark import fs
from dlspark.cleaning import clean
from dlspark.config import FeedConfig, PipelineConfig
from dlspark.errors import AccountingError, ConfigError, InputError
from dlspark.quarantine import REASON, split_and_write
from dlspark.rawfiles import OUTPUT_DDL, FeedSpec, FileSummary, read_files
from dlspark.report import StageReport, Timer
from dlspark.schemas import INGESTED
from dlspark.stage import StageContext

log = logging.getLogger(__name__)

DATE_IN_PATH = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")


def feed_folder(raw_root: str, feed: FeedConfig, day: dt.date | None = None) -> str:
    """A feed's folder under raw/, or its folder of one day."""
    base = f"{raw_root}/{feed.path.strip('/')}"
    return f"{base}/date={day.isoformat()}" if day else base


def raw_listing(cfg: PipelineConfig) -> list[list[tuple[str, int, int]]]:
    """Every raw file of every feed (of data.date's day, in a daily run) as (path, size, modification time in ns):
    what ingest's result rests on, fingerprinted in its manifest."""
    raw = cfg.data.layout.raw
    return [fs.walk_files(feed_folder(raw, feed, cfg.data.date)) for feed in cfg.feeds.values()]


def feed_spec(name: str, feed: FeedConfig) -> FeedSpec:
    return FeedSpec(name, feed.format, dict(feed.columns), feed.encoding, feed.delimiter, tuple(feed.fields or ()))


RawFile = tuple[str, str, int, str | None]  # feed, path, size, the day its folder names
LISTING = "feed string, path string, size long, date string"


def raw_files(raw_root: str, feeds: dict[str, FeedConfig], day: dt.date | None) -> list[RawFile]:
    """(feed, path, size, day) of every file of the feeds (of one day); hidden files (., _) are not data."""
    found = []
    for name, feed in feeds.items():
        folder = feed_folder(raw_root, feed, day)
        for relative, size, _ in fs.walk_files(folder):
            if any(part.startswith((".", "_")) for part in relative.split("/")):
                continue
            path = folder + relative
            in_path = DATE_IN_PATH.search(path)
            found.append((name, path, size, in_path.group(1) if in_path else None))
    return found


def read_raw(spark: SparkSession, files: list[RawFile], specs: dict[str, FeedSpec]) -> DataFrame:
    """Every record of `files` as a row (and one summary row per file), read by as many tasks as there are files,
    at most the session's default parallelism times four, each task given about the same bytes."""
    tasks = deal(files, max(1, min(len(files), spark.sparkContext.defaultParallelism * 4)))
    listing = spark.sparkContext.parallelize(tasks, len(tasks)).flatMap(lambda task: task)
    return spark.createDataFrame(listing, LISTING).mapInArrow(read_files(specs), OUTPUT_DDL)


def deal(files: list[RawFile], tasks: int) -> list[list[RawFile]]:
    """The files dealt to `tasks` tasks, largest first, each to the task with the fewest bytes so far (so that no
    task waits on a pile of files another was spared); a task reads its files largest first."""
    dealt: list[list[RawFile]] = [[] for _ in range(tasks)]
    heap = [(0, task) for task in range(tasks)]
    for file in sorted(files, key=lambda f: (-f[2], f[1])):
        size, task = heapq.heappop(heap)
        dealt[task].append(file)
        heapq.heappush(heap, (size + file[2], task))
    return dealt


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
    files = raw_files(ctx.layout.raw, feeds, day)
    if not files:
        on_day = f" on {day}" if day else ""
        raise InputError(f"no files found under {ctx.layout.raw} for feeds {list(feeds)}{on_day}")
    parsed = read_raw(spark, files, {name: feed_spec(name, feed) for name, feed in feeds.items()})
    parsed = parsed.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        summaries = [FileSummary(**json.loads(row._file)) for row in parsed.where("_file IS NOT NULL").collect()]
        describe_files(report, summaries)
        if report.rows_in == 0:
            raise InputError(
                f"no records found in the {len(files)} files under {ctx.layout.raw} for feeds {list(feeds)}"
            )
        records = parsed.where("_file IS NULL").withColumn("date", F.to_date("date"))
        ingested, quarantine = ctx.output("ingested"), ctx.output("quarantine/stage=ingest")
        with Timer() as writing:
            written = split_and_write(records, INGESTED.fieldNames(), ingested, quarantine, report)
    finally:
        parsed.unpersist()
    with Timer() as accounting:
        check_every_file(summaries, written)
    report.details["writing_seconds"] = writing.seconds  # splitting, writing, and reading the counts back
    report.details["accounting_seconds"] = accounting.seconds  # the per-file comparison; counting itself is free
    if day:
        refuse_an_unusable_day(spark, cfg, ingested, report)
    return report


def describe_files(report: StageReport, summaries: list[FileSummary]) -> None:
    """The report's figures of the files read: records per feed, blank lines, quarantined files, extra columns."""
    for summary in sorted(summaries, key=lambda s: s.path):
        report.rows_in += summary.records
        key = f"rows_in.{summary.feed}"
        report.details[key] = report.details.get(key, 0) + summary.records
    report.details["files"] = len(summaries)
    report.details["blank_lines"] = sum(s.blank for s in summaries)
    bad = [s for s in summaries if s.reason]
    report.details["files_quarantined"] = [
        {"path": s.path, "size": s.size, "reason": s.reason, "detail": s.detail, "records": s.records} for s in bad
    ]
    extra = {s.path: s.extra_columns for s in summaries if s.extra_columns and not s.reason}
    if extra:
        report.details["extra_columns"] = extra
    for s in bad:
        log.warning("quarantined the whole file %s (%s: %s)", s.path, s.reason, s.detail)


def check_every_file(summaries: list[FileSummary], written: dict[str, int]) -> None:
    """Every file's records counted from its bytes must be the rows written for it (kept plus quarantined, as
    split_and_write read them back)."""
    wrong = [(s.path, s.records, written.get(s.path, 0)) for s in summaries if written.get(s.path, 0) != s.records]
    if wrong:
        listed = "; ".join(f"{path}: {counted} records, {rows} rows written" for path, counted, rows in wrong[:5])
        raise AccountingError(f"ingest: the rows written do not match the records in {len(wrong)} file(s): {listed}")


def refuse_an_unusable_day(spark: SparkSession, cfg: PipelineConfig, staged: str, report: StageReport) -> None:
    """Fail, before the day is published, when every one of its records is bad (here or by clean's rules)."""
    rows = spark.read.schema(INGESTED).parquet(staged)
    counts = clean(rows, cfg).groupBy(REASON).count().collect()
    reasons = {row[REASON]: row["count"] for row in counts}
    if reasons.pop(None, 0):
        return
    found = {**report.quarantined, **reasons}
    listed = ", ".join(f"{reason} {n:,}" for reason, n in sorted(found.items(), key=lambda kv: -kv[1]))
    raise InputError(
        f"every one of the {report.rows_in:,} records of {cfg.data.date} is bad ({listed}); nothing was published. "
        f"Fix or replace the day's files under {cfg.data.layout.raw}/<feed>/date={cfg.data.date} and run "
        "the day again"
    )
