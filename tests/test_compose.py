"""The docker-compose demo as users run it, for real: the image built from the Dockerfile, then the pages' compose
commands as written: a master and two workers, the pipeline service (demo data, every stage, barrier training on the
two workers), a daily run, one scheduler pass, the report service, whose page is opened in headless Chromium. The
services are docker-compose.yml's, on the host's network (host_network) so that all traffic stays on loopback.
Everything started is removed at the end, whatever happened; logs, the screenshot and the figures are kept in
test-artifacts/compose/."""

from __future__ import annotations

import json
import os
import re
import shlex
import time
import urllib.request
from pathlib import Path

import browser
import dockerhost
import pytest
import yaml
from dockerhost import ARTIFACTS, check, run

import docs
from conftest import LINES, REPO, free_port, limit
from dlspark.stages import STAGES as REGISTRY

STAGES = list(REGISTRY.names)
# The user's docker-compose.yml, changed in its network part alone: published ports become the host's network on
# loopback (no traffic reaches the Docker bridge), with the addresses and ports the test picks. A host name is
# refused beside host networking, so it goes too; the workers get addresses of their own (127.0.0.2, 127.0.0.3): on
# one address Spark would read shuffle files "host-locally", from another container's disk.
NETWORK_KEYS = {"ports", "hostname", "network_mode"}
NETWORK_ENV = {"SPARK_MASTER_URL", "SPARK_DRIVER_HOST", "SPARK_LOCAL_IP", "SPARK_UI_PORT", "SPARK_MASTER_HOST"}
NETWORK_ENV |= {"SPARK_MASTER_PORT", "SPARK_MASTER_WEBUI_PORT", "SPARK_WORKER_HOST", "SPARK_WORKER_WEBUI_PORT"}
NETWORK_ENV |= {"REPORT_BIND", "REPORT_PORT"}
USERS_MASTER = "spark://spark-master:7077"


def host_network(user: dict, ports: dict[str, int]) -> dict:
    """docker-compose.yml with its services on the host's network, on loopback addresses and the given ports."""
    master = f"spark://127.0.0.1:{ports['MASTER']}"
    common = {"SPARK_MASTER_URL": master, "SPARK_DRIVER_HOST": "127.0.0.1", "SPARK_LOCAL_IP": "127.0.0.1"}
    common["SPARK_UI_PORT"] = str(ports["UI"])
    own = {
        "spark-master": {"SPARK_MASTER_HOST": "127.0.0.1", "SPARK_MASTER_PORT": str(ports["MASTER"])},
        "spark-worker-1": {"SPARK_LOCAL_IP": "127.0.0.2", "SPARK_WORKER_HOST": "127.0.0.2"},
        "spark-worker-2": {"SPARK_LOCAL_IP": "127.0.0.3", "SPARK_WORKER_HOST": "127.0.0.3"},
        "report": {"REPORT_BIND": "127.0.0.1", "REPORT_PORT": str(ports["REPORT"])},
    }
    own["spark-master"]["SPARK_MASTER_WEBUI_PORT"] = str(ports["MASTER_UI"])
    own["spark-worker-1"]["SPARK_WORKER_WEBUI_PORT"] = str(ports["WORKER1_UI"])
    own["spark-worker-2"]["SPARK_WORKER_WEBUI_PORT"] = str(ports["WORKER2_UI"])
    services = {}
    for name, service in user["services"].items():
        changed = {key: value for key, value in service.items() if key not in NETWORK_KEYS}
        changed["network_mode"] = "host"
        changed["environment"] = {**service.get("environment", {}), **common, **own.get(name, {})}
        if "command" in changed:
            changed["command"] = [master if arg == USERS_MASTER else arg for arg in changed["command"]]
        services[name] = changed
    return {**user, "services": services}


def as_the_test_runs(command: str, compose: list[str]) -> list[str]:
    """A page's `docker compose ...` command, run with the test's compose file and project (and `-T` on `run`:
    there is no terminal here); its words are the page's."""
    words = shlex.split(command)
    assert words[:2] == ["docker", "compose"], command
    rest = words[2:]
    return [*compose, *(["run", "-T", *rest[1:]] if rest[0] == "run" else rest)]


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
    ports = dict.fromkeys(("MASTER", "MASTER_UI", "WORKER1_UI", "WORKER2_UI", "UI", "REPORT"), 1)
    tests = host_network(yaml.safe_load((REPO / "docker-compose.yml").read_text()), ports)["services"]
    assert set(tests) == set(services)  # the test runs every service users run
    for name, service in services.items():  # and each as users run it, but for its network
        test = tests[name]
        assert test["network_mode"] == "host" and not {"ports", "hostname"} & set(test), name
        assert {k: v for k, v in test.items() if k not in NETWORK_KEYS | {"environment", "command"}} == {
            k: v for k, v in service.items() if k not in NETWORK_KEYS | {"environment", "command"}
        }, name
        changed = {
            k
            for k in {**service.get("environment", {}), **test["environment"]}
            if test["environment"].get(k) != service.get("environment", {}).get(k)
        }
        assert changed <= NETWORK_ENV, (name, changed - NETWORK_ENV)
        if "command" in service:
            assert [arg for arg in service["command"] if arg != USERS_MASTER] == [
                arg for arg in test["command"] if not arg.startswith("spark://127.0.0.1:")
            ], name
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
def test_the_compose_commands_of_the_readme_and_operations_run_as_written(docker_host):
    """docs/operations.md's docker-compose block (the README's, and two commands more), run command by command as
    written, on the user's compose file with its network part on loopback (host_network): demo data of the default
    size, every stage with barrier training on both workers, a daily run, a scheduler pass, the report page."""
    readme = docs.block("README.md", "docker compose build").commands
    commands = docs.block("docs/operations.md", "docker compose build").commands
    assert [command for command in commands if command in readme] == list(readme)  # the README's, in its order
    ports = {name: free_port() for name in ("MASTER", "MASTER_UI", "WORKER1_UI", "WORKER2_UI", "UI", "REPORT")}
    project = f"dlspark-test-{os.getpid()}"
    hostnet = ARTIFACTS / "compose-hostnet.yml"
    hostnet.write_text(yaml.safe_dump(host_network(yaml.safe_load((REPO / "docker-compose.yml").read_text()), ports)))
    compose = [*docker_host, "-p", project, "-f", str(hostnet), "--project-directory", str(REPO)]
    log = ARTIFACTS / "compose.log"
    log.write_text("")
    master = f"http://127.0.0.1:{ports['MASTER_UI']}/json/"
    outputs: dict[str, str] = {}
    try:
        for command in commands:
            if command == "docker compose up -d scheduler":  # each hour from now on: look at the stack before it
                _check_the_stack(project, master, ports)
            outputs[command] = _output(check(as_the_test_runs(command, compose), log))
            if command.startswith("docker compose up -d spark-master"):
                _wait_for(lambda: _alive_workers(master) == 2, "two workers to register with the master", limit(180))
            if command == "docker compose up -d scheduler":
                running = check([*compose, "ps", "--services", "--filter", "status=running"], log).stdout.split()
                assert "scheduler" in running
        first = outputs["docker compose run --rm pipeline"]
        assert f"master spark://127.0.0.1:{ports['MASTER']}" in first  # the cluster, not local mode
        assert _stage_rows(first) == STAGES and "[worker 1] worker 1/2" in first
        assert "2026-01-14" in outputs["docker compose run --rm pipeline --date 2026-01-14"]
    finally:
        run([*compose, "logs", "--no-color"], log)
        run([*compose, "down", "--volumes", "--remove-orphans", "--timeout", "10"], log)
        _remove_leftovers(project, log)
    assert "docker compose down -v" in outputs  # the page's last command ran, and removed what follows
    assert run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"]).stdout == ""
    assert project not in run(["docker", "volume", "ls", "-q"]).stdout


def _check_the_stack(project: str, master: str, ports: dict[str, int]) -> None:
    """What the pipeline, the day and the scheduler's pass left: reports that add up and match the demo's truth,
    barrier training in step on both workers, a promoted model, every day scheduled, the report page."""
    data = _volume(project)
    reports = {stage: json.loads((data / REGISTRY[stage].writes[0] / "_report.json").read_text()) for stage in STAGES}
    assert all(report["stage"] == stage and report["balanced"] for stage, report in reports.items())
    truth = json.loads((data / "truth" / "summary.json").read_text())
    assert truth["orders"] == 20_000 and truth["days"] == 14  # the demo's default size, as the page runs it
    trained = reports["train"]["details"]
    assert (trained["mode"], trained["workers"]) == ("barrier", 2)  # a TensorFlow worker on each Spark worker
    assert len({worker["digest"] for worker in trained["workers_results"]}) == 1  # the workers trained in step
    days = sorted({path.name.removeprefix("date=") for path in (data / "raw").glob("*/date=*")})
    schedule = json.loads((data / "schedule.json").read_text())
    assert {day: schedule[day]["status"] for day in days} == dict.fromkeys(days, "done"), schedule
    assert (data / "models" / "current").read_text().strip().startswith("v")
    assert json.loads((data / "model" / "evaluation.json").read_text())["examples"] > 0
    runs = sorted(path.name for path in (data / "reports").iterdir() if (path / "index.html").is_file())
    assert len(runs) >= 3  # the pipeline, the day and the scheduler's pass each wrote one
    state = _json(master)
    assert [w["state"] for w in state["workers"]] == ["ALIVE", "ALIVE"]
    assert state["activeapps"] == [] and {app["state"] for app in state["completedapps"]} == {"FINISHED"}
    page = f"http://127.0.0.1:{ports['REPORT']}/{runs[-1]}/index.html"
    images = browser.look(page, ARTIFACTS / "report.png")
    assert len(images) >= 4 and all(loaded for _, loaded in images), images
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


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
