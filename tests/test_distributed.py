"""Barrier-mode training: real Spark barrier tasks, real TensorFlow workers, a real standalone cluster."""

import csv
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import READERS, REPO, limit, make_config
from dlspark.errors import DlsparkError
from dlspark.layout import Layout
from dlspark.manifest import Manifest
from dlspark.train.data import shard_dataset
from dlspark.train.distributed import ClusterError, check_settings, plan_steps, spark_seconds

BIN = Path(sys.executable).parent
# The driver-trained fixture's settings, in barrier mode on the two cores of local[2].
BARRIER = ["train.mode=barrier", "train.workers=2", "train.batch_size=128", "train.epochs=12"]


@pytest.fixture
def barrier_root(trained, tmp_path):
    """A data root of its own (for model/) that shares the trained fixture's shards."""
    cfg, _ = trained
    (tmp_path / "shards").symlink_to(Layout.at(cfg.data.root).shards)
    return tmp_path


class WorkerLines(logging.Handler):
    """Collects the workers' log lines as the driver logs them."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("dlspark.train.worker").addHandler(self)
        logging.getLogger("dlspark.train.worker").setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        logging.getLogger("dlspark.train.worker").removeHandler(self)


@pytest.mark.every_line
@pytest.mark.parametrize("reader", READERS)
def test_every_worker_gets_the_same_steps_and_the_shard_rows_its_reader_streams(trained, reader):
    cfg, _ = trained
    manifest = Manifest.read(Layout.at(cfg.data.root).shards)
    groups = [rows for f in manifest.raw["splits"]["train"]["files"] for rows in f["row_groups"]]
    assert len(groups) >= 3 and len(groups) % 2 == 1  # odd: the two shards are uneven
    plan = plan_steps(manifest, batch_size=128, workers=2)
    assert plan["shard_rows"][0] > plan["shard_rows"][1] and sum(plan["shard_rows"]) == manifest.rows("train")
    assert plan["steps_per_epoch"] == -(-manifest.rows("train") // 128) and plan["per_worker_batch"] == 64
    for index in range(2):
        with shard_dataset(manifest, "train", 500, reader=reader, epochs=1, shard=(index, 2)) as batches:
            streamed = sum(len(y) for _, y in batches.as_numpy_iterator())
        assert streamed == plan["shard_rows"][index]
    with pytest.raises(ClusterError, match="fewer than train.workers=99.*shards.rows_per_row_group"):
        plan_steps(manifest, batch_size=128, workers=99)


def test_settings_barrier_mode_cannot_run_with_are_named():
    good = {"spark.barrier.sync.timeout": "600s"}
    check_settings(good)
    with pytest.raises(ClusterError, match="spark.dynamicAllocation.enabled=false"):
        check_settings({**good, "spark.dynamicAllocation.enabled": "true"})
    with pytest.raises(ClusterError, match="spark.barrier.sync.timeout is unset"):
        check_settings({})
    with pytest.raises(ClusterError, match="spark.barrier.sync.timeout is 2h"):
        check_settings({"spark.barrier.sync.timeout": "2h"})
    assert [spark_seconds(v) for v in ("600s", "10min", "1h", "90", "1500ms")] == [600, 600, 3600, 90, 1.5]
    with pytest.raises(ClusterError, match="cannot read the Spark duration"):
        spark_seconds("ten minutes")


@pytest.mark.every_line
def test_too_few_task_slots_fail_before_any_task_starts(spark, barrier_root):
    from dlspark.pipeline import run_stage

    cfg = make_config(barrier_root, *BARRIER, "train.workers=3", "train.slots_wait_s=0")
    started = time.monotonic()
    with pytest.raises(ClusterError, match=r"needs 3 free task slots at once and the cluster has 2.*local\[N\]"):
        run_stage("train", spark, cfg)
    assert time.monotonic() - started < limit(10) and not (barrier_root / "model").exists()


@pytest.mark.every_line
def test_two_workers_train_in_step_and_match_the_driver_trainer(spark, trained, barrier_root):
    """One of the two workers was started ahead (it imported TensorFlow before the job), the other starts cold."""
    from dlspark.pipeline import run_stages
    from dlspark.train import ahead
    from dlspark.train.distributed import start_workers_ahead

    _, driver_reports = trained
    cfg = make_config(barrier_root, *BARRIER)
    assert start_workers_ahead(spark, make_config(barrier_root, *BARRIER, "train.workers=1")) == 1
    waiting = ahead.folder(spark.sparkContext.applicationId)
    wait_until(lambda: any(waiting.glob(f"*{ahead.READY}")), limit(180), "the worker started ahead never got ready")
    with WorkerLines() as lines:
        report, evaluated = run_stages(["train", "evaluate"], spark, cfg)
    workers = report.details["workers_results"]
    assert [w["rank"] for w in workers] == [0, 1]
    assert sorted(w["started_ahead"] for w in workers) == [False, True]
    assert not waiting.exists()  # claimed: its socket and log are gone, and the folder with them
    assert workers[0]["model"] == str(barrier_root / "_staging" / "train" / "model" / "model.keras")  # then published
    assert workers[1]["model"] is None and (barrier_root / "model" / "model.keras").is_file()
    assert workers[0]["digest"] == workers[1]["digest"]  # identical weights on both workers
    history = workers[0]["history"]
    assert [int(row["epoch"]) for row in history] == list(range(report.details["epochs"]))
    assert history[-1]["loss"] < history[0]["loss"]
    assert any(line.startswith("[worker 1] worker 1/2") for line in lines.lines)  # worker logs reach the driver
    assert any(line.startswith("[worker 0] epoch 1/12") for line in lines.lines)
    with open(barrier_root / "model" / "training_log.csv") as src:
        assert [int(row["epoch"]) for row in csv.DictReader(src)] == list(range(len(history)))
    assert (barrier_root / "model" / "serving" / "saved_model.pb").is_file()
    assert not (barrier_root / "model" / "checkpoint").exists()
    barrier = evaluated.details["evaluation"]["metrics"]
    driver = driver_reports["evaluate"].details["evaluation"]["metrics"]
    for metric in ("hit@1", "hit@10", "mrr@10"):
        assert abs(barrier["model"][metric] - driver["model"][metric]) < 0.03, metric
    assert barrier["model"]["mrr@10"] > barrier["rules"]["mrr@10"]
    assert report.details["launch_seconds"]["first_step"] > report.details["launch_seconds"]["started"] > 0


@pytest.mark.every_line
@pytest.mark.integration
def test_a_worker_killed_mid_epoch_is_resubmitted_and_the_run_ends_with_every_epoch(spark, barrier_root, caplog):
    from dlspark.pipeline import run_stage

    cfg = make_config(barrier_root, *BARRIER, "train.epochs=6", "train.patience=null", "train.batch_size=16")

    class Killer(WorkerLines):
        pid, killed = None, False

        def emit(self, record):
            text = record.getMessage()
            if found := re.search(r"worker 1/2 \(pid (\d+)\) ready", text):
                self.pid = int(found.group(1))
            if text.startswith("[worker 0] epoch 2/6:") and self.pid and not self.killed:
                self.killed = True  # epoch 3 has just begun: kill worker 1 in its middle
                threading.Timer(0.4, os.kill, (self.pid, signal.SIGKILL)).start()

    with Killer() as killer, caplog.at_level(logging.INFO, logger="dlspark.train.distributed"):
        report = run_stage("train", spark, cfg)
    assert killer.killed
    assert report.details["attempts"] == 2
    assert "worker 1 was killed by SIGKILL" in caplog.text
    assert "resuming from the checkpoint after epoch 2 of 6" in caplog.text  # killed inside epoch 3
    with open(barrier_root / "model" / "training_log.csv") as src:
        assert [int(row["epoch"]) for row in csv.DictReader(src)] == list(range(6))
    workers = report.details["workers_results"]
    assert workers[0]["digest"] == workers[1]["digest"]
    assert [int(row["epoch"]) for row in workers[0]["history"]] == [2, 3, 4, 5]  # the resubmitted job's epochs


def test_workers_started_ahead_leave_when_nobody_claims_them_or_their_executor_is_gone():
    from dlspark.train import ahead

    app = f"test-{os.getpid()}-{time.time_ns()}"
    unclaimed = ahead.spawn(app, 0.5)  # this process stands in for the Spark task: no JVM above it to watch
    executor = subprocess.Popen(["sleep", "600"])  # stands in for the executor's JVM
    command, env = ahead.worker_command()
    where = ahead.folder(app)
    log = where / "orphan.log"
    log.touch()
    orphan = subprocess.Popen([*command, "--wait", str(where), "600", str(executor.pid), str(log)], env=env)
    stale = socket.socket(socket.AF_UNIX)  # a worker that died waiting leaves its socket behind
    stale.bind(str(where / "1.ready"))
    stale.close()
    wait_until(lambda: (where / f"{orphan.pid}{ahead.READY}").exists(), limit(180), "the worker never got ready")
    executor.kill()
    executor.wait()
    assert orphan.wait(timeout=limit(60)) == 0
    deadline = time.monotonic() + limit(180)
    while (status := os.waitpid(unclaimed, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status[0] == unclaimed and os.waitstatus_to_exitcode(status[1]) == 0
    assert sorted(p.name for p in where.iterdir()) == ["1.ready"]  # both left cleanly: no socket, no log
    assert ahead.claim(where) is None
    assert not where.exists()  # the dead worker's socket was passed over and removed, and the folder with it


def wait_until(condition, seconds, message):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def test_barrier_mode_without_dlspark_on_the_executors_says_which_python_to_fix(barrier_root, tmp_path):
    result = subprocess.run(  # run outside the repository, so the executors cannot find dlspark in their cwd
        [BIN / "dlspark", "train", "--config", REPO / "conf" / "local.yaml", "--set", f"data.root={barrier_root}"]
        + ["--set", "spark.master=local[2]", "--set", "spark.executor_python=/usr/bin/python3"]
        + [arg for setting in BARRIER for arg in ("--set", setting)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=limit(300),
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "the executors' Python cannot import dlspark" in result.stderr
    assert "spark.pyspark.python" in result.stderr and "/usr/bin/python3" in result.stderr
    assert not (barrier_root / "model").exists()


def test_digests_differ_when_weights_do():
    from dlspark.train.worker import weights_digest

    weights = [np.zeros((2, 3), np.float32), np.ones(4, np.float32)]
    changed = [weights[0], np.array([1, 1, 1, 1.0001], np.float32)]
    assert weights_digest(weights) == weights_digest([w.copy() for w in weights]) != weights_digest(changed)


def test_a_failed_barrier_job_is_reported_by_the_first_failed_workers_own_words():
    from dlspark.train.distributed import failure_reason
    from dlspark.train.results import WorkerFailure

    java = (
        "An error occurred while calling o123.collect.\n: org.apache.spark.SparkException: Job aborted\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        "dlspark.train.task.WorkerFailedError: dlspark training worker 1 was killed by SIGKILL; its last lines:\n"
        "INFO epoch 1/3"
    )
    killed = WorkerFailure(1, -9, "was killed by SIGKILL", "", "INFO epoch 1/3\n")
    broken = WorkerFailure(0, 1, "exited with code 1", "InternalError: collective ops failed", "")
    assert failure_reason(RuntimeError(java), [killed, broken]) == "dlspark training worker 1 was killed by SIGKILL"
    assert failure_reason(RuntimeError(java), [broken]) == (
        "dlspark training worker 0 exited with code 1: InternalError: collective ops failed"
    )
    lost = "Job aborted due to stage failure\norg.apache.spark.SparkException: Executor lost (heartbeat timed out)"
    assert (
        failure_reason(RuntimeError(lost), []) == "org.apache.spark.SparkException: Executor lost (heartbeat timed out)"
    )
    assert isinstance(ClusterError("x"), DlsparkError)


@pytest.mark.integration
@pytest.mark.every_line
def test_the_demo_trains_in_barrier_mode_on_a_local_cluster_of_two_executors(tmp_path):
    """`dlspark demo` as a user runs it, on Spark's local-cluster master (two executor JVMs of one core each, as a
    standalone cluster has them): every stage, then one barrier TensorFlow worker per executor, reading shards whose
    row groups were sized for two workers (shards.rows_per_row_group: auto)."""
    settings = [f"data.root={tmp_path}", "spark.master=local-cluster[2,1,1536]", "train.mode=barrier"]
    settings += ["train.epochs=3"]  # and no shards setting: their row groups are sized for the two workers
    command = [BIN / "dlspark", "demo", "--orders", "3000", "--days", "5", *[f"--set={s}" for s in settings]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=limit(900), cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    truth = re.search(r"bad records: (\d+) planted, (\d+) quarantined with the right reason", result.stdout)
    assert truth and truth.group(1) == truth.group(2), result.stdout
    train = json.loads((tmp_path / "model" / "_report.json").read_text())["details"]
    assert (train["mode"], train["workers"]) == ("barrier", 2)
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert sum(len(f["row_groups"]) for f in manifest["splits"]["train"]["files"]) >= 2  # at least one per worker
    workers = train["workers_results"]
    assert [w["rank"] for w in workers] == [0, 1] and workers[0]["digest"] == workers[1]["digest"]
    evaluation = json.loads((tmp_path / "model" / "evaluation" / "_report.json").read_text())["details"]["evaluation"]
    assert evaluation["metrics"]["model"]["hit@10"] > evaluation["metrics"]["popularity"]["hit@1"]
