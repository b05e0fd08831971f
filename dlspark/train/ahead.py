"""Barrier workers started ahead: TensorFlow imported while the stage before train runs, then waiting for a task.

A barrier worker spends 10 to 14 s importing TensorFlow and Keras before it can do anything (docs/performance.md).
In a pipeline run that trains in barrier mode, the runner starts `train.workers` worker processes as the stage
before train starts, one from each task of a small Spark job (`spawn`). Each listens on a Unix socket in a folder
private to its user and Spark application (`folder`) and imports TensorFlow at the lowest CPU priority, so that
the import takes only the CPU the running stage leaves idle (`Waiting`). A barrier task claims one on its own host
by renaming its socket, so one task wins each worker (`claim`), preferring one that has finished its import; the
connection then carries the spec to the worker and the worker's output back, as a cold worker's pipes do. A task
that finds no worker waiting starts one cold, as before. A worker nobody claims leaves `train.start_ahead_s`
seconds after its import, or as soon as its executor is gone; a claimed one leaves when its task's connection
closes (`exit_with_task`).

Standard library only: this runs inside Spark tasks and in the worker before TensorFlow is imported.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

STARTING = ".starting"  # bound, not listening yet: never claimed
IMPORTING = ".importing"  # listening, importing TensorFlow: claimed when no worker is ready
READY = ".ready"  # listening, TensorFlow imported: claimed first
WAIT_TAIL_S = 10.0  # how long a worker whose wait ran out still waits for a task that claimed it at that moment


def folder(app_id: str) -> Path:
    """Where this Spark application's waiting workers listen on this host (a Unix socket's path must stay short)."""
    base = Path(tempfile.gettempdir())
    if len(str(base)) > 40:
        base = Path("/tmp")
    return base / f"dlspark-workers-{os.getuid()}" / re.sub(r"[^\w.-]", "_", app_id)


def worker_command() -> tuple[list[str], dict[str, str]]:
    """The worker process's command and environment: this Python, with the task's import path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return [sys.executable, "-m", "dlspark.train.worker"], env


def spawn(app_id: str, wait_s: float) -> int:
    """Start one worker that imports TensorFlow and waits to be claimed (run in a Spark task); return its pid.

    It outlives the Spark Python worker that started it, but stays in the process group of the executor's Python
    daemon, which hangs it up when it shuts down. Until it is claimed its output goes to a log file beside its
    socket (the place to look when a worker never got ready).
    """
    where = folder(app_id)
    where.parent.mkdir(mode=0o700, exist_ok=True)
    where.mkdir(mode=0o700, exist_ok=True)
    command, env = worker_command()
    log = where / f"spawned-{os.getpid()}-{time.time_ns()}.log"
    with open(log, "w") as output:
        child = subprocess.Popen(
            [*command, "--wait", str(where), str(wait_s), str(_executor_pid()), str(log)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return child.pid


def _executor_pid() -> int:
    """The JVM this task's Python runs under (its nearest `java` ancestor), or 0 where it cannot be found."""
    pid = os.getppid()
    for _ in range(4):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return 0
        name, parent = stat[stat.index("(") + 1 : stat.rindex(")")], int(stat[stat.rindex(")") + 2 :].split()[1])
        if name == "java":
            return pid
        pid = parent
    return 0


class Waiting:
    """A worker started ahead, in its own process (`args`: what `spawn` passed after --wait). It listens from its
    first moment, so a task can claim it while TensorFlow is still being imported: the task's spec waits in the
    connection until the worker accepts it."""

    def __init__(self, args: list[str]) -> None:
        self.where, self.wait_s, self.executor, self.log = Path(args[0]), float(args[1]), int(args[2]), Path(args[3])
        self.name = self.where / str(os.getpid())
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(f"{self.name}{STARTING}")
        self.listener.listen(1)
        os.rename(f"{self.name}{STARTING}", f"{self.name}{IMPORTING}")

    def import_quietly(self, load: Callable[[], object]) -> None:
        """Run `load` (TensorFlow's import) in a thread at the lowest CPU priority, so that it takes only what the
        running stage leaves idle. Only that thread is lowered: training runs at the process's own priority,
        which an unprivileged process could not raise back."""
        failed: list[BaseException] = []

        def run() -> None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            try:
                load()
            except BaseException as err:  # noqa: BLE001  (raised again in the main thread)
                failed.append(err)

        thread = threading.Thread(target=run, name="dlspark-import")
        thread.start()
        thread.join()
        if failed:
            raise failed[0]
        with contextlib.suppress(FileNotFoundError):  # else a task has claimed it meanwhile
            os.rename(f"{self.name}{IMPORTING}", f"{self.name}{READY}")

    def until_claimed(self) -> bool:
        """Wait for a task's connection, then make it this process's stdin, stdout and stderr and remove the log
        file. False when nobody claimed it within the wait or the executor is gone."""
        self.listener.settimeout(1.0)
        deadline = time.monotonic() + self.wait_s
        try:
            while True:
                try:
                    conn, _ = self.listener.accept()
                    break
                except TimeoutError:
                    if time.monotonic() < deadline and _alive(self.executor):
                        continue
                    try:
                        os.unlink(f"{self.name}{READY}")  # nobody can claim it from here on
                        _clear(self.where, self.log)
                        return False
                    except FileNotFoundError:  # a task renamed it just now: it is connecting
                        self.listener.settimeout(WAIT_TAIL_S)
                        deadline = float("inf")
        finally:
            self.listener.close()
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (0, 1, 2):
            os.dup2(conn.fileno(), fd)
        conn.close()
        _clear(self.where, self.log)
        return True


def _clear(where: Path, log: Path) -> None:
    """Remove the worker's log, and the application's folder if no other worker is left in it."""
    log.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: another worker waits there
        where.rmdir()


def exit_with_task() -> None:
    """In a claimed worker, after reading its spec: exit as soon as the task's end of the connection closes (the
    task finished, failed or was killed), so a worker never trains on for a task that is gone."""

    def watch() -> None:
        while os.read(0, 4096):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="dlspark-task-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and another user's
        pass
    return True


def claim(where: Path) -> socket.socket | None:
    """A connection to a worker waiting in `where` (this host, this application); None if there is none.

    Workers that have imported TensorFlow come first, then those still importing it. Renaming the socket is the
    claim: of two tasks that find one worker, one rename succeeds. A worker that died waiting leaves its socket
    behind; connecting to it fails and the next one is tried.
    """
    for ready in [*sorted(where.glob(f"*{READY}")), *sorted(where.glob(f"*{IMPORTING}"))]:
        taken = ready.with_name(f"{ready.stem}.taken-{os.getpid()}")
        try:
            os.rename(ready, taken)
        except OSError:
            continue
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(taken))
        except OSError:
            conn.close()
            continue
        finally:
            taken.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the last one out removes the folder (the worker may be first)
                where.rmdir()
        _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if uid != os.getuid():  # the folder is private; this only guards against a changed mode
            conn.close()
            continue
        return conn
    return None
