"""docker-compose's services, without Docker: the same scripts start a master and two workers on loopback and
submit the pipeline with conf/docker.yaml. This is also the suite's test of spark-submit (jobs/generate.py and
jobs/pipeline.py) and of barrier training on a standalone cluster."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, free_port, limit, stop_processes, wait_for_port

SCRIPTS = REPO / "docker"


def test_every_service_runs_a_script_of_the_image_shares_one_volume_and_publishes_on_loopback_only():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"spark-master", "spark-worker-1", "spark-worker-2", "pipeline", "scheduler"} <= set(services)
    for name, service in services.items():
        assert service["image"] == "dlspark:latest" and service["volumes"] == ["data:/data"], name
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", [])), name
        program = (service.get("entrypoint") or service["command"])[0]
        assert program == "dlspark" or (REPO / program).is_file(), f"{name} runs {program}, not in the image"
    assert "FROM apache/spark:3.5" in (REPO / "Dockerfile").read_text()
    assert "java17-python3" in (REPO / "Dockerfile").read_text()


@pytest.mark.integration
def test_the_compose_services_scripts_run_the_pipeline_on_a_master_and_two_workers(tmp_path):
    data = tmp_path / "data"
    master_port, master_ui = free_port(), free_port()
    env = {
        **os.environ,
        "DLSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_MASTER_HOST": "127.0.0.1",
        "SPARK_MASTER_PORT": str(master_port),
        "SPARK_MASTER_WEBUI_PORT": str(master_ui),
        "SPARK_WORKER_HOST": "127.0.0.1",
        "SPARK_WORKER_CORES": "1",
        "SPARK_WORKER_MEMORY": "2g",
        "SPARK_MASTER_URL": f"spark://127.0.0.1:{master_port}",
        "SPARK_DRIVER_HOST": "127.0.0.1",
        "SPARK_UI_PORT": str(free_port()),
        "SPARK_EXECUTOR_MEMORY": "1g",
        "DLSPARK_DATA": str(data),
        "DEMO_ORDERS": "800",
        "DEMO_DAYS": "3",
    }
    daemons = []
    try:
        with open(tmp_path / "master.log", "w") as out:
            daemons.append(subprocess.Popen([SCRIPTS / "start-master.sh"], env=env, stdout=out, stderr=out))
        wait_for_port(master_port, daemons[0])
        worker_ports = []
        for n in (1, 2):
            worker_ports.append(free_port())
            worker_env = {
                **env,
                "SPARK_WORKER_PORT": str(worker_ports[-1]),
                "SPARK_WORKER_WEBUI_PORT": str(free_port()),
                "SPARK_WORKER_DIR": str(tmp_path / f"work{n}"),
            }
            with open(tmp_path / f"worker{n}.log", "w") as out:
                daemons.append(
                    subprocess.Popen(
                        [SCRIPTS / "start-worker.sh", env["SPARK_MASTER_URL"]], env=worker_env, stdout=out, stderr=out
                    )
                )
            wait_for_port(worker_ports[-1], daemons[-1])
        deadline = time.monotonic() + 60
        while (tmp_path / "master.log").read_text().count("Registering worker") < 2:
            assert time.monotonic() < deadline, "the workers did not register with the master"
            time.sleep(0.2)
        overrides = ["shards.test_days=1", "shards.val_days=1", "shards.rows_per_row_group=64"]
        overrides += ["spark.conf.spark.sql.shuffle.partitions=2", "train.epochs=2", "train.batch_size=128"]
        overrides += ["train.mode=barrier", "train.workers=2"]  # a TensorFlow worker on each Spark worker
        result = subprocess.run(
            [SCRIPTS / "run-pipeline.sh", *[arg for setting in overrides for arg in ("--set", setting)]],
            cwd=tmp_path,  # the scripts find the repository themselves
            env=env,
            capture_output=True,
            text=True,
            timeout=limit(540),
        )
        (tmp_path / "submit.log").write_text(result.stderr + "\n=== stdout\n" + result.stdout)
        assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-2000:]
        # spark-submit hands the Python driver's stderr to its stdout
        assert f"master spark://127.0.0.1:{master_port}" in result.stdout  # the cluster, not local mode
        stages = ["ingest", "clean", "dedup", "mine", "shards", "train", "evaluate"]
        row = re.compile(rf"({'|'.join(stages)}) +[\d,]+ ")
        assert [line.split()[0] for line in result.stdout.splitlines() if row.match(line)] == stages  # the table
        assert "Run report:" in result.stdout and "[worker 1] worker 1/2" in result.stdout
        reports = {stage: json.loads((data / _output(stage) / "_report.json").read_text()) for stage in stages}
        assert all(report["stage"] == stage and report["balanced"] for stage, report in reports.items())
        truth = json.loads((data / "truth" / "summary.json").read_text())
        assert reports["dedup"]["rows_out"] == truth["good_events"]
        assert reports["dedup"]["removed"]["replays"] == truth["replay_copies"]
        trained = reports["train"]["details"]
        assert (trained["mode"], trained["workers"], trained["epochs"]) == ("barrier", 2, 2)
        assert len({worker["digest"] for worker in trained["workers_results"]}) == 1  # the workers trained in step
        assert reports["evaluate"]["details"]["evaluation"]["examples"] > 0
        assert (data / "models" / "current").read_text().strip() == "v0001"
        assert len(list((tmp_path / "work1").glob("app-*"))) == 2 and len(list((tmp_path / "work2").glob("app-*"))) == 2
    finally:
        stop_processes(daemons)
    assert all(daemon.poll() is not None for daemon in daemons)


def _output(stage: str) -> Path:
    from dlspark.stages import STAGES

    return Path(STAGES[stage].writes[0])
