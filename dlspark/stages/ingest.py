"""Ingest: read every raw feed from its files' bytes and map its records onto the canonical fields.

Each file is cut into records by dlspark.rawfiles (RFC 4180 CSV matched by header names, strict JSON lines, Parquet
rows), one Spark task a file. Every record is one row: good, or quarantined with the reason it cannot be read (its
raw bytes kept); a file that cannot be read at all is quarantined whole and listed in the report. Every field is
read as a string, so a bad value is left for `clean` to name precisely. The task that reads a file writes its
rows too (dlspark.partitioned), good ones to ingested/ and the rest to the quarantine: one pass, nothing cached.
The records counted in each file must equal the rows read back from what was written for it, or the stage fails
(AccountingError, naming the file).
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession

from dlspark import fs
from dlspark.cleaning import clean
from dlspark.config import FeedConfig, PipelineConfig
from dlspark.errors import AccountingError, ConfigError, InputError
from dlspark.partitioned import DayWriter, file_schema, prepare
from dlspark.quarantine import QUARANTINE_FILE, REASON, count_written, set_aside
from dlspark.rawfiles import FeedSpec, FileSummary, read_file
from dlspark.report import StageReport, Timer
from dlspark.schemas import INGESTED, QUARANTINE
from dlspark.stage import StageContext

log = logging.getLogger(__name__)

DATE_IN_PATH = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/")
KEPT = file_schema(INGESTED)


def feed_folder(raw_root: str, feed: FeedConfig, day: dt.date | None = None) -> str:
    """A feed's folder under raw/, or its folder of one day."""
    base = f"{raw_root}/{feed.path.strip('/')}"
    return f"{base}/date={day.isoformat()}" if day else base


def raw_listing(cfg: PipelineConfig) -> list[list[tuple[str, int, int]]]:
    """Every raw file of every feed (of data.date's day, in a daily run) as (path, size, modification time in ns):
    what ingest's result rests on, fingerprinted in its manifest."""
    raw = cfg.data.layout.raw
    return [fs.walk_files(feed_folder(raw, feed, cfg.data.date)) for feed in cfg.feeds.values()]


def feed_spec(name: str, feed: FeedConfig, max_file_mb: int | None = None) -> FeedSpec:
    max_bytes = None if max_file_mb is None else max_file_mb * 2**20
    fields = tuple(feed.fields or ())
    return FeedSpec(name, feed.format, dict(feed.columns), feed.encoding, feed.delimiter, fields, max_bytes)


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


def read_and_write(
    spark: SparkSession, files: list[RawFile], specs: dict[str, FeedSpec], ingested: str, quarantine: str
) -> list[FileSummary]:
    """Read every record of `files` and write it where it is read, in one pass: good rows to `ingested`, the rest
    to `quarantine` (both by day, as Spark's partitioned writer lays them out). Returns each file's summary.

    The files are read by as many tasks as there are files, at most the session's default parallelism times four,
    each task given about the same bytes.
    """
    prepare(spark, [ingested, quarantine], "ingest")
    tasks = deal(files, max(1, min(len(files), spark.sparkContext.defaultParallelism * 4)))
    listing = spark.sparkContext.parallelize(tasks, len(tasks)).flatMap(lambda task: task)
    read_and_write_files = read_and_write_task(specs, ingested, quarantine)
    rows = spark.createDataFrame(listing, LISTING).mapInArrow(read_and_write_files, "_file string").collect()
    return [FileSummary(**json.loads(row._file)) for row in rows]


def read_and_write_task(
    specs: dict[str, FeedSpec], ingested: str, quarantine: str
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A mapInArrow function: each input row (feed, path, size, date) is a file, read and written by this task;
    out comes its summary (one row, JSON)."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with DayWriter(ingested, KEPT) as kept, DayWriter(quarantine, QUARANTINE_FILE) as bad:
            for batch in batches:
                for feed, path, size, day in zip(*(batch.column(i).to_pylist() for i in range(4)), strict=True):
                    for rows in read_file(specs[feed], path, size, day):
                        summary, reason = pc.is_valid(rows.column("_file")), pc.is_valid(rows.column(REASON))
                        table = pa.Table.from_batches([rows])
                        kept.write(table.filter(pc.invert(pc.or_(summary, reason))))
                        bad.write(set_aside(table.filter(reason)))
                        yield pa.RecordBatch.from_arrays([rows.column("_file").filter(summary)], ["_file"])

    return run


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
    ingested, quarantine = ctx.output("ingested"), ctx.output("quarantine/stage=ingest")
    specs = {name: feed_spec(name, feed, cfg.ingest.max_file_mb) for name, feed in feeds.items()}
    with Timer() as reading:
        summaries = read_and_write(spark, files, specs, ingested, quarantine)
    describe_files(report, summaries)
    if report.rows_in == 0:
        raise InputError(f"no records found in the {len(files)} files under {ctx.layout.raw} for feeds {list(feeds)}")
    with Timer() as reading_back:
        written = count_written(spark, ingested, INGESTED, quarantine, QUARANTINE, report)
    with Timer() as accounting:
        check_every_file(summaries, written)
    report.details["reading_seconds"] = reading.seconds  # reading the files and writing their rows: one pass
    report.details["read_back_seconds"] = reading_back.seconds  # the rows written, counted from the files
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
    count_written read them back)."""
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
