import os
import socket
import subprocess
import sys
import time
import zipfile

import pytest

from conftest import REPO, free_port, limit, stop_processes, wait_for_port
from dlspark.session import LOG4J2, _zip_package


def test_the_session_runs_executors_on_this_interpreter_in_local_mode(spark):
    assert spark.conf.get("spark.pyspark.python") == sys.executable
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    versions = spark.sparkContext.parallelize([0], 1).map(lambda _: __import__("sys").executable).collect()
    assert versions == [sys.executable]


def test_the_shipped_package_imports_from_the_zip_alone(tmp_path):
    archive = _zip_package()
    names = zipfile.ZipFile(archive).namelist()
    assert "dlspark/stages/dedup.py" in names and "dlspark/log4j2.properties" in names
    probe = "import dlspark.stages.clean as c; print(c.__file__)"
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {archive!r}); {probe}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert archive in result.stdout


def test_sessions_log_through_the_packaged_log4j2_config(spark):
    """The factory points the driver's JVM at the log4j2 file inside the installed package, and the file is there."""
    from pathlib import Path
    from urllib.parse import urlparse

    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions") or ""
    assert f"-Dlog4j2.configurationFile={LOG4J2}" in options
    config = Path(urlparse(LOG4J2).path)
    assert config.parent == Path(__import__("dlspark").__file__).parent
    assert "rootLogger.level" in config.read_text()


def test_the_executors_python_is_set_only_while_the_context_starts(spark, monkeypatch):
    """pyspark reads PYSPARK_PYTHON when the context starts; the factory puts the caller's value back after."""
    import os

    from dlspark.session import _executor_python

    assert spark.sparkContext.pythonExec == sys.executable
    monkeypatch.setenv("PYSPARK_PYTHON", "/callers/python")
    with _executor_python("/executors/python"):
        assert os.environ["PYSPARK_PYTHON"] == "/executors/python"
    assert os.environ["PYSPARK_PYTHON"] == "/callers/python"
    monkeypatch.delenv("PYSPARK_PYTHON")
    with _executor_python("/executors/python"):
        assert os.environ["PYSPARK_PYTHON"] == "/executors/python"
    assert "PYSPARK_PYTHON" not in os.environ


def test_settings_that_spark_has_as_defaults_are_not_set_again_but_hold_on_every_line(spark):
    """Spark 4.0 made the java.time parser and the Parquet calendar modes CORRECTED by default: dlspark sets them on
    3.5 only, and every line runs with the same values."""
    from dlspark.session import SPARK_3_DEFAULTS, defaults, spark_major

    assert set(SPARK_3_DEFAULTS) <= set(defaults("3.5.9")) and not set(SPARK_3_DEFAULTS) & set(defaults("4.0.5"))
    set_here = spark.sparkContext.getConf().getAll()
    assert bool(set(SPARK_3_DEFAULTS) & {key for key, _ in set_here}) == (spark_major(spark.version) < 4)
    for key, value in SPARK_3_DEFAULTS.items():
        assert spark.conf.get(key).upper() == value, key
    assert "spark.sql.ansi.enabled" not in dict(set_here)  # left as the cluster sets it


@pytest.mark.every_line
@pytest.mark.integration
def test_a_master_started_by_the_scripts_opens_no_rest_submission_port(tmp_path):
    """Spark 4.1 turned the master's unauthenticated REST submission server on by default: the scripts keep it off."""
    master, ui, rest = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DLSPARK_PYTHON": sys.executable,
        "SPARK_MASTER_HOST": "127.0.0.1",
        "SPARK_MASTER_PORT": str(master),
        "SPARK_MASTER_WEBUI_PORT": str(ui),
        "SPARK_MASTER_OPTS": f"-Dspark.master.rest.port={rest}",
    }
    log = tmp_path / "master.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([REPO / "docker" / "start-master.sh"], env=env, stdout=out, stderr=out)
    try:
        wait_for_port(master, process)
        deadline = time.monotonic() + limit(60)
        while "elected leader" not in log.read_text():  # once elected, the master has started all it starts
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", rest)) != 0, log.read_text()
        assert "REST server" not in log.read_text()
    finally:
        stop_processes([process])
