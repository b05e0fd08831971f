"""Benchmark: how evenly ingest's read tasks share the raw files, on clusters of several sizes.

    ./dev bench file_tasks
    ./dev bench file_tasks --cores 80 --files 100 320 1000

Ingest reads each file whole in one task, with as many tasks as files up to four per core. Two ways of giving files
to tasks are set side by side: Spark's hash partitioning of the listing by path (what ingest did before) and
`ingest.deal` (largest file first, to the task with the fewest bytes so far). The tasks of each are taken from the
real assignment (Spark's own partitioner, on a local session), then scheduled in task order on `--cores` free
cores, as Spark's scheduler runs them; the figure is the span of that schedule in files of equal size (1.0 is
one file's read), against the least possible, ceil(files / cores). Nothing is read: the point is the spread of
the work, which no timing on a 2-core machine would show.
"""

from __future__ import annotations

import argparse
import heapq
import math

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from dlspark.stages.ingest import LISTING, RawFile, deal


def span(tasks: list[int], cores: int) -> int:
    """The length of running `tasks` (their lengths, in order) on `cores` cores, each task on the first free one."""
    free = [0] * cores
    for length in tasks:
        heapq.heappush(free, heapq.heappop(free) + length)
    return max(free)


def hashed(spark: SparkSession, files: list[RawFile], tasks: int) -> list[int]:
    listing = spark.createDataFrame(files, LISTING).repartition(tasks, "path")
    counts = [0] * tasks
    for row in listing.groupBy(F.spark_partition_id().alias("task")).count().collect():
        counts[row.task] = row["count"]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, nargs="+", default=[8, 80])
    parser.add_argument("--files", type=int, nargs="+", default=[29, 100, 320, 1000])
    args = parser.parse_args()
    spark = SparkSession.builder.master("local[2]").config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    print(f"{'cores':>5} {'files':>6} {'tasks':>6} {'empty (hash)':>12} {'hash':>6} {'dealt':>6} {'least':>6}")
    for cores in args.cores:
        for count in args.files:
            days = 14
            files = [
                ("web", f"s3://bucket/raw/web/date=2026-01-{1 + i % days:02d}/part-{i // days:05d}.jsonl", 1, None)
                for i in range(count)
            ]
            tasks = min(count, cores * 4)
            by_hash = hashed(spark, files, tasks)
            dealt = [len(task) for task in deal(files, tasks)]
            print(
                f"{cores:>5} {count:>6} {tasks:>6} {by_hash.count(0):>12} {span(by_hash, cores):>6} "
                f"{span(dealt, cores):>6} {math.ceil(count / cores):>6}"
            )
    spark.stop()


if __name__ == "__main__":
    main()
