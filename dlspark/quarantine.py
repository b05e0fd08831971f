"""Rows set aside with a reason: splitting tagged rows into kept and quarantined, writing both, checking counts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from dlspark.errors import AccountingError
from dlspark.partitioned import DayWriter, file_schema, prepare
from dlspark.report import StageReport
from dlspark.schemas import QUARANTINE

log = logging.getLogger(__name__)

REASON = "_reason"
RECORD = "_record"
RAW = "_raw"  # the raw bytes of a record, where a stage has them
KEEP_NULLS = {"ignoreNullFields": "false"}  # a quarantined record shows its missing fields as null
RENAMED = {REASON: "reason", RECORD: "record", RAW: "raw"}  # a stage's row fields -> the quarantine's columns
QUARANTINE_FILE = file_schema(QUARANTINE)


def split_and_write(
    classified: DataFrame, good: StructType, good_path: str, quarantine_path: str, report: StageReport
) -> dict[str, int]:
    """Write rows whose REASON is null to `good_path` (the columns of `good`) and the rest to `quarantine_path`,
    both by `date`, in one pass: each task writes both sides of its rows (dlspark.partitioned), so the rows are
    classified once. Then `count_written` reads the counts back and checks them against `report.rows_in`, which
    must already hold the input's own count, taken independently of `classified`."""
    spark = classified.sparkSession
    prepare(spark, [good_path, quarantine_path], report.stage)
    kept = file_schema(good)
    columns = [*good.fieldNames(), REASON, RECORD, *([RAW] if RAW in classified.columns else [])]
    classified.select(*columns).mapInArrow(write_sides(good_path, kept, quarantine_path), "rows long").collect()
    return count_written(spark, good_path, good, quarantine_path, QUARANTINE, report)


def write_sides(
    good_path: str, kept: pa.Schema, quarantine_path: str
) -> Callable[[Iterable[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A mapInArrow function: the task's rows, good ones to `good_path` (columns of `kept`), the rest to
    `quarantine_path`; out comes the number of rows it wrote."""

    def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = 0
        with DayWriter(good_path, kept) as good, DayWriter(quarantine_path, QUARANTINE_FILE) as bad:
            for batch in batches:
                table = pa.Table.from_batches([batch])
                quarantined = pc.is_valid(table.column(REASON))
                good.write(table.filter(pc.invert(quarantined)))
                bad.write(set_aside(table.filter(quarantined)))
                rows += table.num_rows
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    return run


def set_aside(table: pa.Table) -> pa.Table:
    """Quarantined rows in the quarantine's columns (no raw bytes where the stage has none)."""
    if RAW not in table.column_names:
        table = table.append_column(RAW, pa.nulls(table.num_rows, pa.binary()))
    return table.rename_columns([RENAMED.get(name, name) for name in table.column_names])


def count_written(
    spark: SparkSession,
    good_path: str,
    good_schema: StructType,
    quarantine_path: str,
    quarantine_schema: StructType,
    report: StageReport,
) -> dict[str, int]:
    """Read back what a stage wrote (the kept rows and the quarantined ones) and check it against `report.rows_in`:
    sets rows out and the quarantined rows by reason, fails with AccountingError when they do not add up, and
    returns the rows written (kept plus quarantined) per source file."""
    # read back with the schemas written: an output with no rows has no file to take a schema from
    per_file: dict[str, int] = {}
    kept = spark.read.schema(good_schema).parquet(good_path).groupBy("source_file").count().collect()
    quarantined = (
        spark.read.schema(quarantine_schema).parquet(quarantine_path).groupBy("source_file", "reason").count().collect()
    )
    by_reason: dict[str, int] = {}
    for row in kept + quarantined:
        per_file[row.source_file] = per_file.get(row.source_file, 0) + row["count"]
    for row in quarantined:
        by_reason[row.reason] = by_reason.get(row.reason, 0) + row["count"]
    report.rows_out = sum(row["count"] for row in kept)
    report.quarantined = dict(sorted(by_reason.items()))
    if not report.balanced():
        raise AccountingError(
            f"{report.stage}: {report.rows_in:,} rows in, but {report.rows_out:,} written to {good_path} and "
            f"{report.quarantined_total:,} to {quarantine_path}"
            + (f" and {sum(report.removed.values()):,} removed" if report.removed else "")
            + ": a row was lost or duplicated while writing"
        )
    log.info(
        "%s: %d rows in, %d out, %d quarantined",
        report.stage,
        report.rows_in,
        report.rows_out,
        report.quarantined_total,
    )
    return per_file
