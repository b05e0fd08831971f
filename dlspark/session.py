"""The one place that builds a SparkSession: used by the CLI, the spark-submit jobs and the tests."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyspark
from pyspark.sql import SparkSession

from dlspark.config import SparkConfig

log = logging.getLogger(__name__)
LOG4J2 = Path(__file__).with_name("log4j2.properties").as_uri()

# Settings every dlspark session needs, whatever the environment; conf files may override them. ANSI SQL mode is
# left as the cluster sets it (on by default from Spark 4.0): dlspark's casts and parses are right either way.
DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.compression.codec": "snappy",
    # Barrier training: a task that dies before the others meet it must not hold them for Spark's default year.
    "spark.barrier.sync.timeout": "600s",
}
# Spark 4.0 made these the defaults; on 3.5 they are set. Times are parsed by the current (java.time) parser and
# stored as they are (proleptic Gregorian): no rebase to the Julian calendar, and no failure on an ancient time
# (clean quarantines times outside clean.min_date..max_date anyway).
SPARK_3_DEFAULTS = {
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
}


def spark_major(version: str = pyspark.__version__) -> int:
    """The major version of a Spark version string ("3.5.9" -> 3)."""
    return int(version.split(".")[0])


def defaults(version: str = pyspark.__version__) -> dict[str, str]:
    """dlspark's settings for a Spark version: only those that are not already Spark's own defaults there."""
    return {**DEFAULTS, **(SPARK_3_DEFAULTS if spark_major(version) < 4 else {})}


def under_spark_submit() -> bool:
    """True when spark-submit started this Python process (it hands over a running gateway)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(cfg: SparkConfig) -> SparkSession:
    """Build (or join) the SparkSession described by `cfg`.

    In local mode the executors run this very interpreter, so they import the same dlspark, numpy and pyarrow
    (otherwise they run `python3` from PATH and fail on a missing module). Under spark-submit its --master is kept.
    """
    is_local = cfg.master.startswith("local")
    python = cfg.executor_python or (sys.executable if is_local and not under_spark_submit() else None)
    builder = SparkSession.builder.appName(cfg.app_name)
    if not under_spark_submit():
        builder = builder.master(cfg.master)
    settings = {**defaults(), "spark.ui.showConsoleProgress": str(sys.stderr.isatty()).lower(), **cfg.conf}
    if python:
        settings["spark.pyspark.python"] = python
    if not under_spark_submit() and "spark.driver.extraJavaOptions" not in settings:
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={LOG4J2}"
    for key, value in settings.items():
        builder = builder.config(key, value)
    with _executor_python(python):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    if cfg.ship_package:
        spark.sparkContext.addPyFile(_zip_package())
    log.info("Spark %s, master %s, app %s", spark.version, spark.sparkContext.master, spark.sparkContext.appName)
    return spark


@contextmanager
def _executor_python(python: str | None) -> Iterator[None]:
    """PYSPARK_PYTHON set to `python` while the SparkContext starts, then as it was.

    PySpark 3.5 takes the executors' Python (SparkContext.pythonExec) from this variable alone, when the context
    starts; `spark.pyspark.python` is passed too, for the executors' side. The caller's environment is left as
    it was found.
    """
    if python is None:
        yield
        return
    before = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = python
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYSPARK_PYTHON", None)
        else:
            os.environ["PYSPARK_PYTHON"] = before


@contextmanager
def spark_session(cfg: SparkConfig) -> Iterator[SparkSession]:
    """A SparkSession that is stopped on every way out."""
    spark = build_session(cfg)
    try:
        yield spark
    finally:
        # Spark 4.0 made the barrier timer a daemon thread (SPARK-46895): the workaround is for 3.x only. The JVM
        # gateway is private, but no public API reaches that timer (see _cancel_barrier_timer).
        jvm = spark.sparkContext._jvm if spark_major(spark.version) < 4 and under_spark_submit() else None
        spark.stop()
        if jvm is not None:
            _cancel_barrier_timer(jvm)


def _cancel_barrier_timer(jvm: Any) -> None:
    """Let spark-submit's JVM exit after a barrier job in local mode, on Spark 3.x.

    Spark 3.5 keeps a non-daemon java.util.Timer in BarrierTaskContext's companion object; when the tasks ran in
    the driver's JVM (local mode), that thread keeps the JVM alive after the application ends (the same family
    of bug as SPARK-49479; fixed in 4.0 by SPARK-46895). Only called once the session has stopped, when no
    barrier task can need it again. No public API reaches that timer: the JVM gateway (`_jvm`) is the only way.
    """
    try:
        companion = getattr(getattr(jvm.org.apache.spark, "BarrierTaskContext$"), "MODULE$")
        getattr(companion, "org$apache$spark$BarrierTaskContext$$timer")().cancel()
    except Exception as err:  # noqa: BLE001  (another Spark version: nothing to cancel, or another name)
        log.debug("no barrier timer to cancel: %s", err)


def _zip_package() -> str:
    """Zip the dlspark package so executors without it installed can import it (spark.ship_package)."""
    package_dir = Path(__file__).resolve().parent
    target = Path(tempfile.mkdtemp(prefix="dlspark-pkg-")) / "dlspark"
    archive = shutil.make_archive(str(target), "zip", root_dir=package_dir.parent, base_dir="dlspark")
    log.info("shipping %s to the executors", archive)
    return archive
