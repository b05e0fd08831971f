"""Barrier-mode training (train.mode: barrier): one TensorFlow worker per Spark barrier task.

The driver checks the cluster before anything starts, plans the steps per epoch from the shards' manifest, and
submits a barrier job of `train.workers` tasks. Each task starts a worker process (worker.py), gathers every
task's address with `BarrierTaskContext.allGather` to build TF_CONFIG, forwards the worker's log lines to the
driver, and returns its result. Spark does not retry a failed barrier result stage, so the driver does: it
resubmits the job (up to `train.attempts` times) and the workers resume from the chief's last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import socketserver
import threading
import time
from typing import Any

from pyspark.sql import SparkSession

from dlspark import fs
from dlspark.config import PipelineConfig
from dlspark.errors import DlsparkError
from dlspark.manifest import Manifest
from dlspark.train.ahead import spawn
from dlspark.train.driver import ModelPaths, prepare_resume, read_log, run_identity, save_artifacts
from dlspark.train.results import TrainResult, WorkerFailure, WorkerResult
from dlspark.train.task import FAILURE_PREFIX, barrier_task, probe

log = logging.getLogger(__name__)
worker_log = logging.getLogger("dlspark.train.worker")
MAX_BARRIER_TIMEOUT_S = 3600


class ClusterError(DlsparkError):
    """The cluster cannot run barrier training as configured; the message names the Spark setting to change."""


class TrainingError(DlsparkError):
    """Barrier training failed on every attempt."""


def plan_steps(manifest: Manifest, batch_size: int, workers: int) -> dict[str, Any]:
    """Steps per epoch, the same on every worker, from the rows of each worker's Petastorm shard.

    Petastorm gives worker i the row groups whose index (files in name order, row groups in file order) is i
    modulo the worker count, so shards can be uneven. Each worker's reader repeats its shard without end and
    every worker runs ceil(rows / global batch) steps, as many as the driver trainer runs: a worker with a small
    shard starts its next pass early instead of running out and hanging the others' collective ops.
    """
    files = sorted(manifest.raw["splits"]["train"]["files"], key=lambda f: f["path"])
    groups = [rows for f in files for rows in f["row_groups"]]
    if len(groups) < workers:
        raise ClusterError(
            f"shards/train has {len(groups)} row group(s), fewer than train.workers={workers}: each worker reads whole "
            "row groups. Rerun `dlspark shards` (with shards.rows_per_row_group: auto, the default, it sizes them for "
            "train.workers; `dlspark pipeline` does so by itself when train.workers changed), or use fewer workers."
        )
    per_worker = max(1, batch_size // workers)
    if per_worker * workers != batch_size:
        log.warning(
            "train.batch_size %d is not a multiple of %d workers; using %d", batch_size, workers, per_worker * workers
        )
    shard_rows = [sum(groups[i::workers]) for i in range(workers)]
    return {
        "per_worker_batch": per_worker,
        "global_batch": per_worker * workers,
        "steps_per_epoch": max(1, -(-sum(groups) // (per_worker * workers))),
        "shard_rows": shard_rows,
    }


def train_barrier(
    spark: SparkSession, cfg: PipelineConfig, manifest: Manifest, paths: ModelPaths, warm_from: str | None
) -> TrainResult:
    """Train on `train.workers` barrier tasks, writing to `paths`; return what the driver trainer returns, plus the
    workers' results and the launch timings."""
    tc = cfg.train
    plan = plan_steps(manifest, tc.batch_size, tc.workers)
    threads = check_cluster(spark, cfg)
    identity = run_identity(cfg, manifest)
    log.info(
        "barrier training: %d workers, shards of %s rows, %d steps per epoch of %d examples",
        tc.workers,
        " / ".join(f"{rows:,}" for rows in plan["shard_rows"]),
        plan["steps_per_epoch"],
        plan["global_batch"],
    )
    with LogServer(spark.sparkContext.getConf().get("spark.driver.host") or socket.gethostname()) as server:
        last_failure: tuple[str, int] | None = None
        for attempt in range(1, tc.attempts + 1):
            start = prepare_resume(paths, identity)
            if start:
                log.info("resuming from the checkpoint after epoch %d of %d", start, tc.epochs)
            spec = {
                "config": cfg.model_dump(mode="json"),
                "shards": manifest.root,
                "model_dir": paths.root,
                "workers": tc.workers,
                "threads": threads,
                "start_epoch": start,
                "resume": fs.read_json(paths.metadata) if start else None,
                "warm_start": None if start else warm_from,
                "attempt": attempt,
                **{k: plan[k] for k in ("per_worker_batch", "steps_per_epoch")},
            }
            server.clear()
            submitted = time.time()
            try:
                label = f"attempt {attempt}/{tc.attempts}"
                results = run_barrier_job(spark, spec, server.address, label, ahead=tc.start_ahead_s > 0)
                break
            except Exception as err:  # noqa: BLE001  (Py4JJavaError: the barrier stage failed; see below)
                reason = failure_reason(err, server.reported_failures())
                repeated = (reason, start) == last_failure  # same failure, no epoch won since: not transient
                if attempt == tc.attempts or repeated:
                    raise TrainingError(
                        f"barrier training failed on attempt {attempt} of {tc.attempts} (train.attempts)"
                        f"{', as on the attempt before it' if repeated else ''}: {reason}"
                    ) from err
                last_failure = (reason, start)
                log.warning("attempt %d/%d failed: %s; resubmitting the barrier job", attempt, tc.attempts, reason)
    workers = sorted((WorkerResult.from_dict(json.loads(r)) for r in results), key=lambda r: r.rank)
    timings = launch_timings(submitted, workers)
    log.info(
        "launch: worker processes started %s s after the job's submission, TensorFlow imported at %s s, first step "
        "at %s s (%d of %d workers started ahead; 0 s: before the submission)",
        *(timings.get(k, "?") for k in ("started", "imported", "first_step")),
        sum(w.started_ahead for w in workers),
        len(workers),
    )
    import keras

    import dlspark.train.models  # noqa: F401  (registers the custom layers load_model needs)

    model = keras.models.load_model(paths.model)
    save_artifacts(model, manifest, paths)
    fs.delete(paths.backup)  # as BackupAndRestore does after a finished fit
    chief = workers[0]
    return TrainResult(
        model=model,
        manifest=manifest,
        history=read_log(paths.log),
        samples_per_s=chief.samples_per_s,
        warm_start=chief.warm_start,
        attempts=attempt,
        launch=timings,
        workers=workers,
    )


def run_barrier_job(
    spark: SparkSession, spec: dict[str, Any], log_address: tuple[str, int], label: str, ahead: bool = False
) -> list[str]:
    """One barrier job: a task per worker; each returns its worker's result as JSON. With `ahead`, each task
    claims a worker started ahead on its host (start_workers_ahead) where one waits."""
    sc = spark.sparkContext
    workers = int(spec["workers"])
    task = barrier_task(spec, log_address, sc.applicationId if ahead else None)
    sc.setJobDescription(f"dlspark barrier training ({workers} workers, {label})")
    try:
        return sc.parallelize(range(workers), workers).barrier().mapPartitions(task).collect()
    finally:
        sc.setJobDescription(None)  # type: ignore[arg-type]


def start_workers_ahead(spark: SparkSession, cfg: PipelineConfig) -> int:
    """Start `train.workers` worker processes now, one from each task of a small job, so that they import
    TensorFlow while other work runs (ahead.py); return how many started. They wait `train.start_ahead_s` for
    the barrier job. Failing to start them costs nothing but the time they would have saved: a warning."""
    tc, sc = cfg.train, spark.sparkContext
    app_id, wait_s = sc.applicationId, tc.start_ahead_s
    sc.setJobDescription(f"dlspark: {tc.workers} barrier workers started ahead, importing TensorFlow")
    try:
        pids = sc.parallelize(range(tc.workers), tc.workers).map(lambda _: spawn(app_id, wait_s)).collect()
    except Exception as err:  # noqa: BLE001  (py4j or the task's error: training starts its workers cold)
        log.warning("could not start the barrier workers ahead (%s); they will start with the barrier job", err)
        return 0
    finally:
        sc.setJobDescription(None)  # type: ignore[arg-type]
    log.info("started %d barrier workers ahead (pids %s); they wait up to %.0f s", len(pids), pids, wait_s)
    return len(pids)


def failure_reason(err: Exception, failures: list[WorkerFailure]) -> str:
    """The useful line of a failed barrier job: the report of the first worker that failed (structured data its
    task sent to the log server), else the last error line of the JVM's message (an executor lost, say)."""
    if failures:
        return failures[0].reason()
    text = str(err)
    lines = [line for line in text.splitlines() if "Error" in line or "Exception" in line]
    return (lines[-1] if lines else text.splitlines()[0] if text else repr(err)).strip()[:500]


def launch_timings(submitted: float, results: list[WorkerResult]) -> dict[str, float]:
    """Seconds from the barrier job's submission to each milestone of the slowest worker; 0 for one every worker
    had passed before it (workers started ahead)."""
    names = ("started", "imported", "strategy", "data", "first_step")
    return {
        name: round(max(0.0, max(r.marks[name] for r in results) - submitted), 2)
        for name in names
        if all(name in r.marks for r in results)
    }


def check_cluster(spark: SparkSession, cfg: PipelineConfig) -> int:
    """Everything barrier training needs, checked before any task starts; returns TensorFlow threads per worker."""
    sc = spark.sparkContext
    conf = dict(sc.getConf().getAll())
    check_settings(conf)
    _wait_for_slots(sc, cfg.train.workers, cfg.train.slots_wait_s)
    _probe_executors(sc, cfg.train.workers, cfg.train.reader)
    return int(conf.get("spark.task.cpus") or "1")


def check_settings(conf: dict[str, str]) -> None:
    """The Spark settings barrier training cannot run with."""
    if (conf.get("spark.dynamicAllocation.enabled") or "false").lower() == "true":
        raise ClusterError(
            "barrier training cannot run with dynamic allocation (Spark's barrier mode refuses it): set "
            "spark.dynamicAllocation.enabled=false, with a fixed spark.executor.instances"
        )
    timeout = conf.get("spark.barrier.sync.timeout")
    if timeout is None or spark_seconds(timeout) > MAX_BARRIER_TIMEOUT_S:
        raise ClusterError(
            f"spark.barrier.sync.timeout is {timeout or 'unset (Spark default: 365 days)'}: a worker that dies before "
            f"the tasks meet would hold the others that long. Set it to at most {MAX_BARRIER_TIMEOUT_S} s, e.g. "
            "--conf spark.barrier.sync.timeout=600s (dlspark's sessions set 600s)"
        )


def spark_seconds(value: str) -> float:
    """A Spark duration ("600s", "10min", "1h", "365d", or plain seconds) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", value.lower())
    if not found or found.group(2) not in {**units, "": 1}:
        raise ClusterError(f"cannot read the Spark duration {value!r} (expected e.g. 600s, 10min, 1h)")
    return float(found.group(1)) * units.get(found.group(2), 1)


def _free_slots(sc: Any) -> int:
    """Task slots of the executors registered now, less the tasks running.

    PySpark has no public call for the slots: SparkContext.maxNumConcurrentTasks (the JVM's, reached through
    py4j) is what Spark's own barrier scheduling checks before it launches a barrier stage, so it is the figure
    that decides whether the job can start. Where that private call is missing (another Spark version), the
    default parallelism (the cores of the registered executors in local and standalone mode) stands in.
    """
    try:
        jsc = sc._jsc.sc()  # private (py4j): no public PySpark call gives the slots; see the docstring
        total = int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))
    except Exception as err:  # noqa: BLE001  (py4j errors of a Spark without this method)
        log.debug("maxNumConcurrentTasks unavailable (%s); using the default parallelism", err)
        total = int(sc.defaultParallelism)
    tracker = sc.statusTracker()
    running = 0
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        running += info.numActiveTasks if info else 0
    return total - running


def _wait_for_slots(sc: Any, workers: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    free = _free_slots(sc)
    while free < workers and time.monotonic() < deadline:
        time.sleep(1)
        free = _free_slots(sc)
    if free < workers:
        cpus = sc.getConf().get("spark.task.cpus") or "1"
        raise ClusterError(
            f"barrier training needs {workers} free task slots at once and the cluster has {free} "
            f"(master {sc.master}, spark.task.cpus={cpus}, waited {wait_s:.0f} s: train.slots_wait_s). Add executors "
            "or cores (spark.executor.instances, spark.executor.cores, spark.cores.max; local[N] in local mode), "
            "or lower train.workers"
        )


def _probe_executors(sc: Any, workers: int, reader: str) -> None:
    """Run a task per worker that imports dlspark and finds TensorFlow and Keras (and Petastorm, where train.reader
    names it), as training will."""
    modules = ["tensorflow", "keras", *(["petastorm"] if reader == "petastorm" else [])]
    try:
        found = sc.parallelize(range(workers), workers).map(lambda _: probe(modules)).collect()
    except Exception as err:  # noqa: BLE001  (the executors' Python could not even load the task)
        raise ClusterError(
            f"the executors' Python cannot import dlspark ({failure_reason(err, [])}). Install dlspark and its "
            "dependencies in the Python the executors run (spark.pyspark.python / PYSPARK_PYTHON, here "
            f"{sc.getConf().get('spark.pyspark.python') or os.environ.get('PYSPARK_PYTHON') or 'python3'}); "
            "spark.ship_package: true ships dlspark itself but not TensorFlow"
        ) from err
    missing = sorted({f"{host} ({python}): {', '.join(gone)}" for host, python, gone in found if gone})
    if missing:
        raise ClusterError(
            "the executors' Python lacks packages training needs: "
            + "; ".join(missing)
            + ". Install them there or point spark.pyspark.python at a Python that has them"
        )


class LogServer:
    """Receives the workers' log lines on the driver and logs each with its worker's rank; keeps the failures
    the tasks report (`failures`)."""

    def __init__(self, host: str) -> None:
        self.failures: list[WorkerFailure] = []
        self.reported = threading.Event()
        self.server = _Server((host, 0), _LineHandler)
        self.server.failures, self.server.reported = self.failures, self.reported
        self.server.daemon_threads = True
        self.address: tuple[str, int] = (host, int(self.server.server_address[1]))
        self.thread = threading.Thread(target=self.server.serve_forever, name="dlspark-log-server", daemon=True)

    def __enter__(self) -> LogServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        self.failures.clear()
        self.reported.clear()

    def reported_failures(self, grace_s: float = 2.0) -> list[WorkerFailure]:
        """The failures the tasks reported; a failed job may reach the driver a moment before its task's report
        does, so wait up to `grace_s` for the first one."""
        self.reported.wait(grace_s)
        return list(self.failures)


class _Server(socketserver.ThreadingTCPServer):
    failures: list[WorkerFailure]
    reported: threading.Event


class _LineHandler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        for raw in self.rfile:
            rank, _, line = raw.decode("utf-8", "replace").rstrip("\n").partition("\t")
            if line.startswith(FAILURE_PREFIX):
                self.server.failures.append(WorkerFailure(**json.loads(line[len(FAILURE_PREFIX) :])))
                self.server.reported.set()
                continue
            level, _, message = line.partition(" ")
            if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                level, message = "INFO", line
            worker_log.log(getattr(logging, level), "[worker %s] %s", rank, message)
