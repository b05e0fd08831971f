"""Rows set aside with a reason: splitting tagged rows into kept and quarantined, writing both, checking counts."""

from __future__ import annotations

import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from dlspark.errors import AccountingError
from dlspark.report import StageReport

log = logging.getLogger(__name__)

REASON = "_reason"
RECORD = "_record"
RAW = "_raw"  # the raw bytes of a record, where a stage has them
KEEP_NULLS = {"ignoreNullFields": "false"}  # a quarantined record shows its missing fields as null


def split_and_write(
    classified: DataFrame,
    good_columns: list[str],
    good_path: str,
    quarantine_path: str,
    report: StageReport,
    partition_by: str = "date",
    cache: bool = True,
) -> dict[str, int]:
    """Write rows whose REASON is null to `good_path` and the rest to `quarantine_path`, then check the counts.

    `report.rows_in` must already hold the input's own count. `classified` is read once (persisted); the counts
    of what was written are then read back from the written files and must equal the counts seen before
    writing, so a lost or duplicated row fails the stage loudly. `cache=False` when `classified` is a cheap
    projection of a frame the caller has persisted already. Returns the rows written (kept plus quarantined) per
    source file, from the same read-back.
    """
    if cache:
        classified = classified.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        by_reason = {
            row[REASON]: row["n"] for row in classified.groupBy(REASON).agg(F.count(F.lit(1)).alias("n")).collect()
        }
        report.rows_out = by_reason.pop(None, 0)
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
            (F.col(RAW) if RAW in classified.columns else F.lit(None).cast("binary")).alias("raw"),
        )
        bad.write.mode("overwrite").partitionBy(partition_by).parquet(quarantine_path)
    finally:
        if cache:
            classified.unpersist()
    spark = classified.sparkSession
    # read back with the schemas just written: an output with no rows has no file to take a schema from
    per_file: dict[str, int] = {}
    written = []
    for path, schema in ((good_path, good.schema), (quarantine_path, bad.schema)):
        counts = spark.read.schema(schema).parquet(path).groupBy("source_file").count().collect()
        written.append(sum(row["count"] for row in counts))
        for row in counts:
            per_file[row.source_file] = per_file.get(row.source_file, 0) + row["count"]
    written_good, written_bad = written
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
    return per_file
