import subprocess
import sys
import zipfile

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
