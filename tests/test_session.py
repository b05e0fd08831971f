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


def test_spark_logging_config_ships_with_the_package():
    assert LOG4J2.startswith("file:") and LOG4J2.endswith("/dlspark/log4j2.properties")
