"""The command line and spark-submit entry points run the same code as the library."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, limit

BIN = Path(sys.executable).parent


def run(args, **kwargs):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=limit(600), **kwargs)


def test_a_bad_config_key_fails_fast_with_its_name_and_no_traceback():
    result = run([str(BIN / "dlspark"), "ingest", "--set", "dedup.bandz=3"])
    assert result.returncode == 2
    assert "dedup.bandz: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_ingest_of_a_missing_data_root_says_what_to_do(tmp_path):
    result = run([str(BIN / "dlspark"), "ingest", "--set", f"data.root={tmp_path}/nothing"])
    assert result.returncode == 2
    assert "feeds.tills.path" in result.stderr and "dlspark generate" in result.stderr


@pytest.mark.parametrize(
    ("stage", "missing"),
    [("clean", "ingested"), ("dedup", "clean"), ("mine", "events"), ("shards", "events"), ("train", "shards")],
)
def test_a_stage_whose_input_is_missing_says_which_stage_to_run_without_starting_spark(tmp_path, stage, missing):
    result = run([str(BIN / "dlspark"), stage, "--set", f"data.root={tmp_path}"])
    assert result.returncode == 2
    assert f"not found at {tmp_path}/{missing}; run the stage that writes it first" in result.stderr
    assert "Spark" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("job", ["generate", "ingest", "clean", "dedup", "mine", "shards", "train", "evaluate"])
def test_each_job_file_runs_the_command_of_its_name(job):
    result = run([sys.executable, f"jobs/{job}.py", "--help"])
    assert result.returncode == 0 and result.stdout.startswith(f"usage: dlspark {job} ")
