"""One local SparkSession for the whole suite, built by dlspark's own factory, and small shared demo data."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from dlspark.config import PipelineConfig, SparkConfig, load_config
from dlspark.session import build_session

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def spark():
    session = build_session(TEST_SPARK)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def demo(spark, tmp_path_factory):
    """Demo data generated once, with every ETL stage run over it: (config, {stage: report})."""
    from dlspark.generate import generate
    from dlspark.pipeline import run_stages

    root = tmp_path_factory.mktemp("demo")
    cfg = make_config(root, "generate.orders=2500", "generate.days=3", "generate.products=150", "generate.seed=11")
    generate(spark, cfg.generate, cfg.data.root)
    reports = run_stages(["ingest", "clean", "dedup", "mine"], spark, cfg)
    return cfg, {report.stage: report for report in reports}


@pytest.fixture(scope="session")
def trained(spark, tmp_path_factory):
    """Demo data of 6 days through the ETL stages, shards (3 training days, 1 val, 2 test) and driver training."""
    from dlspark.generate import generate
    from dlspark.pipeline import run_stage, run_stages

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
    reports.append(run_stage("train", None, cfg))
    return cfg, {report.stage: report for report in reports}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process, seconds: float = 60) -> None:
    """Wait until something listens on 127.0.0.1:port, failing if `process` exits first."""
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
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
