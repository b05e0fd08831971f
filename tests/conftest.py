"""One local SparkSession for the whole suite, built by dlspark's own factory, small shared demo data, and helpers.

Fixtures that build data (demo, trained) are read by tests, never changed: a test that changes data works on a copy.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dlspark.config import PipelineConfig, SparkConfig, load_config
from dlspark.session import build_session

REPO = Path(__file__).resolve().parents[1]
LINES = sorted(p.stem.removeprefix("spark-") for p in (REPO / "locks").glob("spark-*.in"))  # the Spark lines locked
BIN = Path(sys.executable).parent  # the environment's scripts: dlspark, spark-submit, spark-class
# A loaded machine makes everything slower: every time limit in the suite is multiplied by this factor.
TIMEOUT_FACTOR = float(os.environ.get("DLSPARK_TEST_TIMEOUT_FACTOR", "1"))
# Small shards and two epochs: the settings of the tests that run the whole pipeline. They test the runner, not the
# rule features: in-sample rules spare them the folds' minings (out-of-fold features: test_shards, `trained`).
SMALL = ["shards.test_days=1", "shards.val_days=1", "train.epochs=2", "shards.rows_per_row_group=1024"]
SMALL += ["shards.rule_folds=1"]


@contextmanager
def ansi_mode(spark, enabled: bool) -> Iterator[None]:
    """Spark's ANSI SQL mode on or off in the session while the block runs (a cluster may set either), then reset."""
    before = spark.conf.get("spark.sql.ansi.enabled")
    spark.conf.set("spark.sql.ansi.enabled", str(enabled).lower())
    try:
        yield
    finally:
        spark.conf.set("spark.sql.ansi.enabled", before)


def petastorm_imports() -> bool:
    """Whether Petastorm runs here: it needs pyarrow < 15, so the Spark 3.5 and 4.0 lines only."""
    try:
        import petastorm.tf_utils  # noqa: F401
    except ImportError:
        return False
    return True


# The shard readers a test of reading runs with: dlspark's arrow reader everywhere, Petastorm where it imports.
READERS = [
    "arrow",
    pytest.param(
        "petastorm",
        marks=pytest.mark.skipif(not petastorm_imports(), reason="Petastorm does not import with this line's pyarrow"),
    ),
]


def limit(seconds: float) -> float:
    """A time limit scaled by DLSPARK_TEST_TIMEOUT_FACTOR: a bound on waiting for a condition, never a wait."""
    return seconds * TIMEOUT_FACTOR


def mtimes(root: Path) -> dict[str, float]:
    """Modification times of every file below `root` but the raw feeds (to show that a run wrote nothing)."""
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file() and "raw" not in p.parts}


TEST_SPARK = SparkConfig(
    master="local[2]",
    app_name="dlspark-tests",
    conf={
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        "spark.ui.enabled": "false",
        "spark.driver.memory": "2g",
    },
)


def make_config(root: Path | str, *overrides: str) -> PipelineConfig:
    """The local configuration, pointed at `root`, with any extra `key=value` overrides."""
    return load_config(REPO / "conf" / "local.yaml", [f"data.root={root}", *overrides])


def copy_of(cfg: PipelineConfig, target: Path) -> PipelineConfig:
    """A copy of a fixture's data root at `target` (files keep their times, so its stages stay up to date), and
    the fixture's configuration pointed at it: for a test that changes data a shared fixture holds."""
    shutil.copytree(cfg.data.root, target)
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": str(target)})})


# Fixtures that run most of the pipeline (training included): a test that uses one is an integration test.
HEAVY_FIXTURES = {"trained", "piped", "daily", "barrier_root"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark as `integration` every test that uses a heavy fixture (the others are marked where they are written:
    those that start processes of their own); `./dev test --fast` leaves them out. The docker tests run last, so
    that the image .ci/run prepares in the background is built while the rest of the suite runs."""
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: item.get_closest_marker("docker") is not None)  # a stable sort: order kept otherwise


@pytest.fixture(scope="session")
def spark():
    session = build_session(TEST_SPARK)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def demo(spark, tmp_path_factory):
    """Demo data generated once, with every ETL stage run over it: (config, {stage: report})."""
    from dlspark.demo.generate import generate
    from dlspark.pipeline import run_stages

    root = tmp_path_factory.mktemp("demo")
    cfg = make_config(root, "generate.orders=2500", "generate.days=3", "generate.products=150", "generate.seed=11")
    generate(spark, cfg.generate, cfg.data.root)
    reports = run_stages(["ingest", "clean", "dedup", "mine"], spark, cfg)
    return cfg, {report.stage: report for report in reports}


@pytest.fixture(scope="session")
def trained(spark, tmp_path_factory):
    """Demo data of 6 days through the ETL stages, shards (3 training days, 1 val, 2 test) and driver training."""
    from dlspark.demo.generate import generate
    from dlspark.pipeline import run_stages

    root = tmp_path_factory.mktemp("trained")
    cfg = make_config(
        root,
        "generate.orders=6000",
        "generate.days=6",
        "generate.seed=5",
        "shards.rows_per_row_group=1024",
        "train.batch_size=128",
        "train.epochs=12",
    )
    generate(spark, cfg.generate, cfg.data.root)
    reports = run_stages(["ingest", "clean", "dedup", "shards"], spark, cfg)
    reports += run_stages(["train", "evaluate"], None, cfg)
    return cfg, {report.stage: report for report in reports}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process, seconds: float = 60) -> None:
    """Wait until something listens on 127.0.0.1:port, failing if `process` exits first."""
    seconds = limit(seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "a Spark daemon exited during start-up"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def stop_processes(processes) -> None:
    """Terminate what a test started (last first), killing what does not stop within 30 s."""
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=limit(30))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
