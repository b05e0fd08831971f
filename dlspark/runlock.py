"""One run at a time per data root: every dlspark command holds data.root/_lock while it works.

The lock is an advisory `flock` on a local (or mounted) file: the kernel releases it when its process ends, however
it ends, so a run killed with SIGKILL never leaves a stale lock behind. Roots on HDFS or object stores cannot be
locked this way; a warning says so and the scheduler (or Airflow) must keep runs apart.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dlspark.errors import DlsparkError

log = logging.getLogger(__name__)


class RunLockedError(DlsparkError):
    """Another dlspark run is working on the same data root."""


@contextmanager
def run_lock(root: str) -> Iterator[None]:
    """Hold the data root's lock for the `with` block, or fail at once naming the run that holds it."""
    if "://" in root and not root.startswith("file://"):
        log.warning("data.root %s is not a local path: runs on it are not locked against each other", root)
        yield
        return
    directory = root.removeprefix("file://")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "_lock")
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(
                f"another dlspark run is working on {directory} ({holder}); wait for it to end. Runs on one data "
                "root never overlap; the lock goes with its process, so there is nothing to clean up"
            ) from None
        handle.truncate(0)
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}: {' '.join(sys.argv)}\n")
        handle.flush()
        yield
