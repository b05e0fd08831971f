"""A Parquet dataset written from inside a Spark task, laid out as Spark's `partitionBy("date")` lays it out.

A stage can write its rows where they are made, in the task that makes them: ingest parses raw files in its
tasks, and ingest and clean both write two outputs (kept and quarantined rows), which Spark's writer would write
in two jobs, each computing the rows again (or from a cache of them all). Each task writes
one file per day it holds, `<root>/date=YYYY-MM-DD/part-<task>.parquet` (rows without a day under Spark's
`date=__HIVE_DEFAULT_PARTITION__`), so Spark reads the dataset back as if it had written it. A task that is run
again writes the same names over its first attempt's files.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark import SparkConf
from pyspark.sql import SparkSession
from pyspark.sql.types import StructType

from dlspark import fs
from dlspark.arrowtypes import arrow_schema
from dlspark.errors import ConfigError

NO_DAY = "__HIVE_DEFAULT_PARTITION__"  # Spark's folder for a null partition value
ROW_GROUP_ROWS = 128 * 1024  # rows a task buffers (over all its days) before it writes them as row groups


def refuse_speculation(conf: SparkConf, writer: str) -> None:
    """Files written from tasks are named by task, so two attempts of one task must never run at once: refuse
    Spark's speculative execution (a task run again after a failure is fine: it writes the same names over)."""
    if (conf.get("spark.speculation", "false") or "").strip().lower() == "true":
        raise ConfigError(
            f"spark.conf.spark.speculation is true, but {writer} writes its files from its tasks, one name per task, "
            "and two attempts of one task would write the same file at once; set spark.conf.spark.speculation=false"
        )


def prepare(spark: SparkSession, paths: list[str], writer: str) -> None:
    """Empty folders for tasks to write files into (an earlier attempt's files gone; there even if no task writes
    to one), refusing speculative execution (see refuse_speculation)."""
    refuse_speculation(spark.sparkContext.getConf(), writer)
    for path in paths:
        fs.delete(path)
        fs.make_dirs(path)


def file_schema(dataset: StructType) -> pa.Schema:
    """The columns of a dataset's files: all of its columns but `date`, which the folder names."""
    return arrow_schema(StructType([f for f in dataset.fields if f.name != "date"]))


def day_folder(day: object) -> str:
    """The folder of a day (a date, or text): `date=YYYY-MM-DD`, or Spark's null folder for a missing or impossible
    day (as Spark's `to_date` gives null for "2026-02-30")."""
    try:
        return f"date={dt.date.fromisoformat(str(day)).isoformat()}" if day is not None else f"date={NO_DAY}"
    except ValueError:
        return f"date={NO_DAY}"


class DayWriter:
    """Writes tables into `root` by their `date` column, one Parquet file of `schema` (which has no `date`: the
    folder says it) per day for this task; use as a context manager."""

    def __init__(self, root: str, schema: pa.Schema, task: int | None = None) -> None:
        if task is None:  # the running Spark task's
            from pyspark import TaskContext

            context = TaskContext.get()
            task = context.partitionId() if context else 0
        self.root, self.schema, self.name = root, schema, f"part-{task:05d}.parquet"
        self.buffered: dict[str, list[pa.Table]] = {}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.streams: list = []
        self.pending = 0  # rows buffered

    def write(self, table: pa.Table) -> None:
        days = table.column("date")
        for day in pc.unique(days).to_pylist():
            rows = table.filter(pc.is_null(days) if day is None else pc.equal(days, day))
            folder = day_folder(day)
            buffered = self.buffered.setdefault(folder, [])
            buffered.append(rows.select(self.schema.names).cast(self.schema))
            self.pending += rows.num_rows
        if self.pending >= ROW_GROUP_ROWS:  # bounded memory, however many days a task holds
            for folder in list(self.buffered):
                self._flush(folder)
            self.pending = 0

    def _flush(self, folder: str) -> None:
        tables = self.buffered.pop(folder, [])
        if not tables:
            return
        if folder not in self.writers:
            stream = fs.open_output(f"{self.root}/{folder}/{self.name}")
            self.streams.append(stream)
            self.writers[folder] = pq.ParquetWriter(stream, self.schema)
        self.writers[folder].write_table(pa.concat_tables(tables), row_group_size=ROW_GROUP_ROWS)

    def __enter__(self) -> DayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for folder in list(self.buffered):
                    self._flush(folder)
        finally:
            for writer in self.writers.values():
                writer.close()
            for stream in self.streams:
                stream.close()
