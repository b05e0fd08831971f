"""What every stage shares: splitting rows into kept and quarantined, writing both, and checking the counts."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from dlspark import layout as io_
from dlspark.errors import AccountingError, InputError
from dlspark.layout import Layout
from dlspark.report import StageReport

log = logging.getLogger(__name__)

REASON = "_reason"
RECORD = "_record"
KEEP_NULLS = {"ignoreNullFields": "false"}  # a quarantined record shows its missing fields as null


def first_failing(rules: Iterable[tuple[str, Column]]) -> Column:
    """The name of the first rule whose condition holds, or null when none does (the row is good)."""
    reason: Column | None = None
    for name, failed in rules:
        reason = F.when(failed, F.lit(name)) if reason is None else reason.when(failed, F.lit(name))
    return reason if reason is not None else F.lit(None).cast("string")


def one_row(frame: DataFrame) -> Row:
    """The single row of a global aggregation (which always has exactly one)."""
    row = frame.first()
    if row is None:
        raise AccountingError("an aggregation returned no row")
    return row


def require_columns(frame: DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}; it has {frame.columns}")


def require_dataset(path: str, what: str) -> None:
    """Fail with what is missing and what to run when an earlier stage's output is not there."""
    if not io_.exists(path):
        raise InputError(f"{what} not found at {path}; run the stage that writes it first")


def read_parquet(spark: SparkSession, path: str, schema: StructType, what: str) -> DataFrame:
    """Read a dataset an earlier stage wrote, with a clear message when that stage has not run."""
    require_dataset(path, what)
    return spark.read.schema(schema).parquet(path)


def split_and_write(
    classified: DataFrame,
    good_columns: list[str],
    root: Layout,
    report: StageReport,
    partition_by: str = "date",
) -> None:
    """Write rows whose REASON is null to `report.output` and the rest to quarantine/stage=<stage>, then check counts.

    `report.rows_in` must already hold the input's own count. `classified` is read once (persisted); the counts
    of what was written are then read back from the written files and must equal
    the counts seen before writing, so a lost or duplicated row fails the stage loudly.
    """
    good_path = report.output
    classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        by_reason = {
            row[REASON]: row["n"] for row in classified.groupBy(REASON).agg(F.count(F.lit(1)).alias("n")).collect()
        }
        good_rows = by_reason.pop(None, 0)
        report.rows_out = good_rows
        report.quarantined = dict(sorted(by_reason.items()))
        good = classified.where(F.col(REASON).isNull()).select(*good_columns)
        good.write.mode("overwrite").partitionBy(partition_by).parquet(good_path)
        bad = classified.where(F.col(REASON).isNotNull()).select(
            "feed",
            "source_file",
            "date",
            "event_id",
            F.col(REASON).alias("reason"),
            F.col(RECORD).alias("record"),
        )
        quarantine_path = root.quarantine(report.stage)
        bad.write.mode("overwrite").partitionBy(partition_by).parquet(quarantine_path)
    finally:
        classified.unpersist()
    spark = classified.sparkSession
    # read back with the schemas just written: an output with no rows has no file to take a schema from
    written_good = spark.read.schema(good.schema).parquet(good_path).count()
    written_bad = spark.read.schema(bad.schema).parquet(quarantine_path).count()
    if written_good != report.rows_out or written_bad != report.quarantined_total:
        raise AccountingError(
            f"{report.stage}: counted {report.rows_out} good and {report.quarantined_total} quarantined rows, "
            f"but {written_good} and {written_bad} were written to {good_path} and {quarantine_path}"
        )
    if not report.balanced():
        raise AccountingError(f"{report.stage}: rows do not add up: {report.to_dict()}")
    log.info(
        "%s: %d rows in, %d out, %d quarantined",
        report.stage,
        report.rows_in,
        report.rows_out,
        report.quarantined_total,
    )
