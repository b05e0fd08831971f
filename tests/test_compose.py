"""The docker-compose demo as users run it, for real: the image built from the Dockerfile, a master and two workers,
the pipeline service (demo data, every stage, barrier training on the two workers), a daily run, one scheduler
pass and the report service, whose page is opened in headless Chromium. The services run on the host's network
(tests/compose-hostnet.yml) so that all traffic stays on loopback. Everything started is removed at the end,
whatever happened; logs, the screenshot and the figures are kept in test-artifacts/compose/."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path

import browser
import dockerhost
import pytest
import yaml
from dockerhost import ARTIFACTS, check, run

from conftest import LINES, REPO, free_port, limit
from dlspark.stages import STAGES as REGISTRY

STAGES = list(REGISTRY.names)
# small: the test is about the stack, not the model
SETTINGS = ["shards.test_days=1", "shards.val_days=1", "shards.rows_per_row_group=64", "train.epochs=2"]
SETTINGS += ["train.batch_size=128", "spark.conf.spark.sql.shuffle.partitions=2"]


def test_the_compose_file_follows_the_compose_spec_and_publishes_on_loopback_only():
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    assert set(services) == {"spark-master", "spark-worker-1", "spark-worker-2", "pipeline", "scheduler", "report"}
    for name, service in services.items():
        assert service["image"] == "dlspark:latest", name
        assert service["volumes"] in (["data:/data"], ["data:/data:ro"]), name
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), name
        program = (service.get("entrypoint") or service["command"])[0]
        assert (REPO / program).is_file() and os.access(REPO / program, os.X_OK), f"{name} runs {program}"
    assert services["report"]["volumes"] == ["data:/data:ro"]  # the page server cannot change the data
    tests = yaml.safe_load((REPO / "tests" / "compose-hostnet.yml").read_text())["services"]
    assert set(tests) == set(services)  # the test runs every service users run
    assert all(service["network_mode"] == "host" and "ports" not in service for service in tests.values())
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM ${BASE}" in dockerfile and "ARG BASE=debian:bookworm-slim" in dockerfile
    assert "USER dlspark" in dockerfile and "locks/spark-${SPARK_LINE}-runtime.lock" in dockerfile


def pins(lock: Path) -> dict[str, str]:
    lines = lock.read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


@pytest.mark.parametrize("line", LINES)
def test_each_lines_runtime_lock_pins_what_its_full_lock_pins(line):
    runtime, full = pins(REPO / "locks" / f"spark-{line}-runtime.lock"), pins(REPO / "locks" / f"spark-{line}.lock")
    assert runtime and {name: full.get(name) for name in runtime} == runtime
    assert not {"pytest", "mypy", "ruff", "mlxtend"} & set(runtime)  # the image holds no development tools
    assert full["pyspark"].startswith(f"{line}.")


def test_every_place_that_picks_a_spark_line_picks_the_same_default():
    dev = re.search(r"^DEFAULT_LINE=(\S+)", (REPO / "dev").read_text(), re.M)
    compose = re.fullmatch(
        r"\$\{SPARK_LINE:-(\S+)\}",
        yaml.safe_load((REPO / "docker-compose.yml").read_text())["x-dlspark"]["build"]["args"]["SPARK_LINE"],
    )
    wheelhouse = re.search(r"SPARK_LINE:-([0-9.]+)", (REPO / "docker" / "wheelhouse.sh").read_text())
    assert dev and compose and wheelhouse
    defaults = {dev.group(1), compose.group(1), wheelhouse.group(1), dockerhost.image_line()}
    assert len(defaults) == 1 and defaults <= set(LINES), defaults


@pytest.fixture(scope="module")
def docker_host():
    """The daemon and the project's image, made ready once (after a background `dockerhost.py prepare`, if one
    runs); the compose command. The daemon is stopped afterwards if it was started here."""
    try:
        with dockerhost.prepared("build") as daemon:
            try:
                yield dockerhost.compose_command()
            finally:
                dockerhost.stop_daemon(daemon)
    except dockerhost.Unavailable as reason:
        if os.environ.get("DLSPARK_REQUIRE_DOCKER") == "1":
            pytest.fail(f"{reason} (DLSPARK_REQUIRE_DOCKER=1: this machine must run the compose test)")
        pytest.skip(str(reason))


@pytest.mark.integration
@pytest.mark.docker
def test_the_compose_stack_runs_the_pipeline_a_day_and_the_scheduler_and_serves_the_report(docker_host):
    ports = {name: free_port() for name in ("MASTER", "MASTER_UI", "WORKER1_UI", "WORKER2_UI", "UI", "REPORT")}
    project = f"dlspark-test-{os.getpid()}"
    env = {**os.environ, **{f"TEST_{name}_PORT": str(port) for name, port in ports.items()}}
    compose = [*docker_host, "-p", project, "-f", str(REPO / "tests" / "compose-hostnet.yml")]
    log = ARTIFACTS / "compose.log"
    log.write_text("")
    master = f"http://127.0.0.1:{ports['MASTER_UI']}/json/"
    overrides = [arg for setting in SETTINGS for arg in ("--set", setting)]
    try:
        check([*compose, "up", "-d", "spark-master", "spark-worker-1", "spark-worker-2", "report"], log, env=env)
        _wait_for(lambda: _alive_workers(master) == 2, "two workers to register with the master", limit(180))

        first = _output(check([*compose, "run", "--rm", "-T", "pipeline", *overrides], log, env=env))
        assert f"master spark://127.0.0.1:{ports['MASTER']}" in first  # the cluster, not local mode
        assert _stage_rows(first) == STAGES and "[worker 1] worker 1/2" in first
        data = _volume(project)
        days = sorted({path.name.removeprefix("date=") for path in (data / "raw").glob("*/date=*")})
        reports = {
            stage: json.loads((data / REGISTRY[stage].writes[0] / "_report.json").read_text()) for stage in STAGES
        }
        assert all(report["stage"] == stage and report["balanced"] for stage, report in reports.items())
        truth = json.loads((data / "truth" / "summary.json").read_text())
        assert reports["dedup"]["rows_out"] == truth["good_events"]
        assert reports["dedup"]["removed"]["replays"] == truth["replay_copies"]
        trained = reports["train"]["details"]
        assert (trained["mode"], trained["workers"]) == ("barrier", 2)  # a TensorFlow worker on each Spark worker
        assert len({worker["digest"] for worker in trained["workers_results"]}) == 1  # the workers trained in step

        daily = _output(
            check([*compose, "run", "--rm", "-T", "pipeline", "--date", days[-1], *overrides], log, env=env)
        )
        assert days[-1] in daily
        once = ["--once", "--since", days[-1], *overrides]
        scheduler = _output(check([*compose, "run", "--rm", "-T", "scheduler", *once], log, env=env))
        schedule = json.loads((data / "schedule.json").read_text())
        assert schedule[days[-1]]["status"] == "done" and f"{days[-1]} (1 of 1 due)" in scheduler, scheduler[-3000:]

        assert (data / "models" / "current").read_text().strip().startswith("v")
        evaluation = json.loads((data / "model" / "evaluation.json").read_text())
        assert evaluation["examples"] > 0
        runs = sorted(path.name for path in (data / "reports").iterdir() if (path / "index.html").is_file())
        assert len(runs) >= 3  # the pipeline, the day and the scheduler's pass each wrote one

        state = _json(master)
        assert [w["state"] for w in state["workers"]] == ["ALIVE", "ALIVE"]
        assert state["activeapps"] == []
        apps = state["completedapps"]
        # generate, the pipeline, the day; the scheduler's pass found the day's stages up to date and started none
        assert len(apps) == 3 and {app["state"] for app in apps} == {"FINISHED"}, apps

        page = f"http://127.0.0.1:{ports['REPORT']}/{runs[-1]}/index.html"
        images = browser.look(page, ARTIFACTS / "report.png")
        assert len(images) >= 4 and all(loaded for _, loaded in images), images
        assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    finally:
        run([*compose, "logs", "--no-color"], log, env=env)
        run([*compose, "down", "--volumes", "--remove-orphans", "--timeout", "10"], log, env=env)
        _remove_leftovers(project, log)
    assert run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"]).stdout == ""
    assert project not in run(["docker", "volume", "ls", "-q"]).stdout


def _wait_for(condition, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}"
        time.sleep(1)


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def _alive_workers(url: str) -> int:
    try:
        return sum(worker["state"] == "ALIVE" for worker in _json(url)["workers"])
    except OSError:
        return 0  # the master's page is not up yet


def _output(result) -> str:
    return result.stdout + result.stderr  # spark-submit hands the Python driver's log to stdout, Compose to either


def _stage_rows(output: str) -> list[str]:
    """The stages named in the run's summary table, in order."""
    row = re.compile(rf"({'|'.join(STAGES)}) +[\d,]+ ")
    return [line.split()[0] for line in output.splitlines() if row.match(line)]


def _volume(project: str) -> Path:
    """The data volume's folder on this host (read as root), at its data root."""
    mountpoint = check(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", f"{project}_data"]).stdout
    return Path(mountpoint.strip()) / "dlspark"


def _remove_leftovers(project: str, log: Path) -> None:
    """Whatever `down` left (a one-off container of a run that was interrupted, say), removed by its label."""
    label = f"label=com.docker.compose.project={project}"
    leftovers = run(["docker", "ps", "-aq", "--filter", label]).stdout.split()
    if leftovers:
        run(["docker", "rm", "-f", *leftovers], log)
    for kind in ("network", "volume"):
        names = run(["docker", kind, "ls", "-q", "--filter", label]).stdout.split()
        if names:
            run(["docker", kind, "rm", "-f" if kind == "volume" else "--", *names], log)
