"""What runs inside a Spark barrier task: start the worker process, meet the other tasks, relay the logs.

Only the standard library and pyspark are imported here, so a task starts in a fraction of a second; the worker
process (worker.py) imports TensorFlow while the tasks gather their addresses, unless the task finds one that was
started ahead and has imported it already (ahead.py).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from typing import Any

from dlspark.errors import DlsparkError
from dlspark.train import ahead
from dlspark.train.results import WorkerFailure

RESULT_PREFIX = "@dlspark-result "  # the worker's last line: its WorkerResult as JSON
FAILURE_PREFIX = "@dlspark-failure "  # a task's message to the driver's log server: a WorkerFailure as JSON
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b")  # a Python exception's last line, in the worker's output
# Lines not worth the driver's log: TensorFlow's C++ INFO lines (printed before absl's logging is set up, so
# TF_CPP_MIN_LOG_LEVEL does not hold them back) and Petastorm's print when a reader closes.
NOISE = re.compile(r"^(I\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl|Cache cleanup complete\.$)")


class WorkerFailedError(DlsparkError):
    """A barrier worker process failed; its WorkerFailure has gone to the driver as structured data."""


def barrier_task(
    spec: dict[str, Any], log_address: tuple[str, int], app_id: str | None = None
) -> Callable[[Iterable[int]], Iterator[str]]:
    """The function each barrier task runs (no TensorFlow here: the worker process imports it). With `app_id`,
    a worker this application started ahead on the task's host is claimed if one is waiting."""

    def run(_: Iterable[int]) -> Iterator[str]:
        from pyspark import BarrierTaskContext

        context = BarrierTaskContext.get()
        rank = context.partitionId()
        worker = WorkerProcess.claim_or_start(app_id)  # first thing, so TensorFlow's import overlaps the gathering
        sender = LineSender(log_address, rank)
        tail: deque[str] = deque(maxlen=40)
        result = None
        try:
            host = context.getTaskInfos()[rank].address.rsplit(":", 1)[0]
            addresses = context.allGather(f"{host}:{_free_port()}")
            tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": rank}}
            for line in worker.run(json.dumps({**spec, "rank": rank, "tf_config": tf_config})):
                if line.startswith(RESULT_PREFIX):
                    result = line[len(RESULT_PREFIX) :].strip()
                elif not NOISE.match(line):
                    tail.append(line)
                    sender.send(line.rstrip("\n"))
            code = worker.wait()
            if code or result is None:
                error = next((line.strip() for line in reversed(tail) if ERROR_LINE.match(line)), "")
                failure = WorkerFailure(rank, code, _exit_text(code), error, "".join(tail)[-4000:])
                sender.send(FAILURE_PREFIX + json.dumps(asdict(failure)))
                raise WorkerFailedError(f"{failure.reason()}; its last lines:\n{failure.last_lines}")
        finally:
            worker.kill()
            sender.close()
        yield result

    return run


class WorkerProcess:
    """The worker process as its barrier task sees it: started now (its pipes), or started ahead and claimed (a
    Unix socket, ahead.py). The spec goes in as one line; the output comes back line by line."""

    def __init__(self, popen: subprocess.Popen[str] | None = None, conn: socket.socket | None = None):
        self.popen, self.conn = popen, conn

    @classmethod
    def claim_or_start(cls, app_id: str | None) -> WorkerProcess:
        claimed = ahead.claim(ahead.folder(app_id)) if app_id else None
        if claimed is not None:
            return cls(conn=claimed)
        command, env = ahead.worker_command()
        popen = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            preexec_fn=_die_with_parent,
        )
        return cls(popen=popen)

    def run(self, spec_line: str) -> Iterator[str]:
        """Send the spec; yield the worker's lines until it closes its output. A claimed worker keeps the
        connection open to the end: it exits when the task's end closes (ahead.exit_with_task)."""
        if self.conn is not None:
            self.conn.sendall((spec_line + "\n").encode())
            yield from self.conn.makefile("r", encoding="utf-8", errors="replace")
            return
        assert self.popen is not None and self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.write(spec_line + "\n")
        self.popen.stdin.close()
        yield from self.popen.stdout

    def wait(self) -> int | None:
        """The exit code; None for a claimed worker (not this task's child), which has closed its output."""
        return self.popen.wait() if self.popen is not None else None

    def kill(self) -> None:
        """Stop the worker if it still runs (this task failed): a child is killed; a claimed worker exits when
        the connection closes."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
        if self.conn is not None:
            self.conn.close()


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


def probe(modules: list[str]) -> tuple[str, str, list[str]]:
    """(host, Python, which of `modules` it cannot find): run in a task, before training."""
    import importlib.util

    import dlspark  # noqa: F401

    gone = [name for name in modules if importlib.util.find_spec(name) is None]
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
