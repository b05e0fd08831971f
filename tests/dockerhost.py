"""What tests/test_compose.py needs of the machine: Docker's daemon, Compose (v2 `docker compose` or v1.29
`docker-compose`), the base image, the project's image and Chromium. What is missing is installed when this runs
as root with apt (Debian's docker.io, docker-compose, debootstrap, chromium); otherwise the test skips with the
reason, and fails instead where DLSPARK_REQUIRE_DOCKER=1 (.ci/run sets it).

`python tests/dockerhost.py prepare` does the same work ahead of the test, in the background while the rest of
the suite runs (.ci/run); a lock makes the test wait for it, and then find everything built.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("DLSPARK_TEST_ARTIFACTS", REPO / "test-artifacts")) / "compose"
PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap", "chromium": "chromium"}
BASE = "debian:bookworm-slim"
IMAGE = "dlspark:latest"
FACTOR = float(os.environ.get("DLSPARK_TEST_TIMEOUT_FACTOR", "1"))


class Unavailable(Exception):
    """Docker cannot be had on this machine (not root, no apt): the reason, with what to install."""


def run(command: list, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a command to its end (no time limit: builds and pipelines wait on their own work); keep its output."""
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if log is not None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(map(str, command))}  (exit {result.returncode})\n{result.stdout}{result.stderr}\n")
    return result


def check(command: list, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    result = run(command, log, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed:\n{result.stderr[-4000:]}{result.stdout[-3000:]}"
    )
    return result


def install_missing(log: Path) -> None:
    """apt-get install the Debian packages of the commands that are missing (root with apt only)."""
    missing = [package for command, package in PACKAGES.items() if not shutil.which(command)]
    if not (shutil.which("docker-compose") or _compose_v2()):
        missing.append("docker-compose")
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(f"needs {', '.join(missing)}: install them (Debian: apt-get install {' '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=600"]  # another apt-get (./dev installing Java) finishes first
    check(["apt-get", *wait, "update", "-qq"], log, env=env)
    check(["apt-get", *wait, "install", "-y", "-qq", *missing], log, env=env)


def start_daemon(log: Path) -> subprocess.Popen | None:
    """Docker's daemon: the running one, else one started here (returned, to be stopped by the caller)."""
    if run(["docker", "info"]).returncode == 0:
        return None
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        raise Unavailable("Docker's daemon is not running and cannot be started here (needs root)")
    daemon = subprocess.Popen(["dockerd"], stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120 * FACTOR
    while run(["docker", "info"]).returncode != 0:
        assert daemon.poll() is None, f"dockerd exited with {daemon.returncode}; see {log}"
        assert time.monotonic() < deadline, f"dockerd did not answer; see {log}"
        time.sleep(0.5)
    return daemon


def compose_command() -> list[str]:
    return ["docker", "compose"] if _compose_v2() else ["docker-compose"]


def _compose_v2() -> bool:
    return shutil.which("docker") is not None and run(["docker", "compose", "version"]).returncode == 0


def build_image(log: Path) -> dict[str, float]:
    """The base image (made with debootstrap when absent), the wheelhouse and the project's image; seconds each."""
    seconds = {}
    started = time.monotonic()
    if run(["docker", "image", "inspect", BASE]).returncode != 0:
        check([REPO / "docker" / "base-image.sh", BASE], log)
        seconds["base image"] = time.monotonic() - started
    if not _wheelhouse_complete():
        started = time.monotonic()
        check([REPO / "docker" / "wheelhouse.sh"], log, env={**os.environ, "PYTHON": sys.executable})
        seconds["wheelhouse"] = time.monotonic() - started
    started = time.monotonic()
    build = ["docker", "build", "--network", "host", "--build-arg", f"SPARK_LINE={image_line()}", "-t", IMAGE]
    check([*build, str(REPO)], log)
    seconds["image"] = time.monotonic() - started
    return {step: round(value, 1) for step, value in seconds.items()}


def _wheelhouse_complete() -> bool:
    """Whether docker/wheelhouse/ holds a wheel of every pin of the image's runtime lock."""
    lines = runtime_lock().read_text().splitlines()
    pins = [line.split("==") for line in lines if "==" in line and not line.startswith("#")]
    wheels = {tuple(path.name.lower().split("-")[:2]) for path in (REPO / "docker" / "wheelhouse").glob("*.whl")}
    return all((re.sub(r"[-_.]+", "_", name).lower(), version) in wheels for name, version in pins)


def image_line() -> str:
    """The Spark line the image is built for: SPARK_LINE, as docker-compose.yml reads it, else the Dockerfile's."""
    default = re.search(r"^ARG SPARK_LINE=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    return os.environ.get("SPARK_LINE") or (default.group(1) if default else "")


def runtime_lock() -> Path:
    return REPO / "locks" / f"spark-{image_line()}-runtime.lock"


def image_size(image: str = IMAGE) -> int:
    return int(check(["docker", "image", "inspect", "--format", "{{.Size}}", image]).stdout)


@contextmanager
def prepared(name: str) -> Iterator[subprocess.Popen | None]:
    """Packages, daemon and image, made ready under a lock (a background `prepare` first, the test after it).
    Yields the daemon if it was started here; the figures go to ARTIFACTS/<name>.json, the output to <name>.log."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / f"{name}.log"
    log.write_text("")
    with open(ARTIFACTS / "prepare.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        install_missing(log)
        daemon = start_daemon(ARTIFACTS / f"dockerd-{name}.log")
        seconds = build_image(log)
        figures = {"seconds": seconds, "image_bytes": image_size()}
        (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2))
        print(f"\n{name}: image {figures['image_bytes'] / 1e9:.2f} GB; seconds {seconds}", file=sys.stderr)
    yield daemon


def stop_daemon(daemon: subprocess.Popen | None) -> None:
    if daemon is not None:
        daemon.terminate()
        daemon.wait(timeout=60 * FACTOR)


if __name__ == "__main__":
    # `prepare`: leave the daemon running for the test (.ci/run stops it by the pid in ARTIFACTS/dockerd.pid)
    if sys.argv[1:] != ["prepare"]:
        sys.exit("usage: python tests/dockerhost.py prepare")
    try:
        with prepared("prepare") as started:
            if started is not None:
                (ARTIFACTS / "dockerd.pid").write_text(str(started.pid))
    except (Unavailable, AssertionError) as err:
        sys.exit(f"dockerhost prepare: {err}")
