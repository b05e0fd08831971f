"""What runs inside a Spark barrier task: start the worker process, meet the other tasks, relay the logs.

Only the standard library and pyspark are imported here, so a task starts in a fraction of a second; the worker
process (worker.py) imports TensorFlow while the tasks gather their addresses.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from typing import Any

from dlspark.errors import DlsparkError
from dlspark.train.results import WorkerFailure

RESULT_PREFIX = "@dlspark-result "  # the worker's last line: its WorkerResult as JSON
FAILURE_PREFIX = "@dlspark-failure "  # a task's message to the driver's log server: a WorkerFailure as JSON
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b")  # a Python exception's last line, in the worker's output
# Lines not worth the driver's log: TensorFlow's C++ INFO lines (printed before absl's logging is set up, so
# TF_CPP_MIN_LOG_LEVEL does not hold them back) and Petastorm's print when a reader closes.
NOISE = re.compile(r"^(I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|Cache cleanup complete\.$)")


class WorkerFailedError(DlsparkError):
    """A barrier worker process failed; its WorkerFailure has gone to the driver as structured data."""


def barrier_task(spec: dict[str, Any], log_address: tuple[str, int]) -> Callable[[Iterable[int]], Iterator[str]]:
    """The function each barrier task runs (no TensorFlow here: the worker process imports it)."""

    def run(_: Iterable[int]) -> Iterator[str]:
        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        rank = context.partitionId()
        worker = subprocess.Popen(  # started first, so TensorFlow's import overlaps the gathering below
            [sys.executable, "-m", "dlspark.train.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            preexec_fn=_die_with_parent,
        )
        sender = LineSender(log_address, rank)
        tail: deque[str] = deque(maxlen=40)
        result = None
        try:
            host = context.getTaskInfos()[rank].address.rsplit(":", 1)[0]
            addresses = context.allGather(f"{host}:{_free_port()}")
            tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}}
            stdin, stdout = worker.stdin, worker.stdout
            if stdin is None or stdout is None:  # Popen gives both with PIPE; this keeps the types honest
                raise WorkerFailedError(f"dlspark training worker {rank} started without pipes")
            stdin.write(json.dumps({**spec, "rank": rank, "tf_config": tf_config}) + "\n")
            stdin.close()
            for line in stdout:
                if line.startswith(RESULT_PREFIX):
                    result = line[len(RESULT_PREFIX) :].strip()
                elif not NOISE.match(line):
                    tail.append(line)
                    sender.send(line.rstrip("\n"))
            code = worker.wait()
            if code != 0 or result is None:
                error = next((line.strip() for line in reversed(tail) if ERROR_LINE.match(line)), "")
                failure = WorkerFailure(rank, code, _exit_text(code), error, "".join(tail)[-4000:])
                sender.send(FAILURE_PREFIX + json.dumps(asdict(failure)))
                raise WorkerFailedError(f"{failure.reason()}; its last lines:\n{failure.last_lines}")
        finally:
            if worker.poll() is None:
                worker.kill()
            sender.close()
        yield result

    return run


def _die_with_parent() -> None:
    """Linux: the worker process is killed with its parent (a Spark Python worker Spark may kill)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        import signal

        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}" if code else "exited without a result"


def probe(_: Any) -> tuple[str, str, list[str]]:
    import importlib.util

    import dlspark  # noqa: F401

    gone = [name for name in ("tensorflow", "keras", "petastorm") if importlib.util.find_spec(name) is None]
    return socket.gethostname(), sys.executable, gone


class LineSender:
    """Sends a worker's lines to the driver's LogServer; if the driver cannot be reached they go to the task's
    stderr (the executor's log) instead, and training goes on."""

    def __init__(self, address: tuple[str, int], rank: int) -> None:
        self.rank = rank
        try:
            self.sock: socket.socket | None = socket.create_connection(address, timeout=10)
        except OSError as err:
            self.sock = None
            print(f"dlspark worker {rank}: cannot reach the driver's log server at {address}: {err}", file=sys.stderr)

    def send(self, line: str) -> None:
        if self.sock is not None:
            try:
                self.sock.sendall(f"{self.rank}\t{line}\n".encode())
                return
            except OSError:
                self.sock = None
        print(f"[worker {self.rank}] {line}", file=sys.stderr)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
