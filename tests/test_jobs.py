"""The command line and spark-submit entry points run the same code as the library."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BIN = Path(sys.executable).parent


def run(args, **kwargs):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, **kwargs)


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


@pytest.mark.slow
def test_the_jobs_run_under_spark_submit(tmp_path):
    common = [
        "--config",
        "conf/local.yaml",
        "--set",
        f"data.root={tmp_path}",
        "--set",
        "spark.conf.spark.sql.shuffle.partitions=4",
        "--set",
        "shards.test_days=1",
        "--set",
        "train.epochs=2",
        "-q",
    ]
    submit = [str(BIN / "spark-submit"), "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    generated = run([*submit, "jobs/generate.py", *common, "--out", str(tmp_path), "--orders", "800", "--days", "3"])
    assert generated.returncode == 0, generated.stderr[-3000:]
    for stage in ("ingest", "clean", "dedup", "mine", "shards", "train", "evaluate"):
        result = run([*submit, f"jobs/{stage}.py", *common])
        assert result.returncode == 0, result.stderr[-3000:]
        assert stage in result.stdout  # the summary table
    summary = json.loads((tmp_path / "truth" / "summary.json").read_text())
    report = json.loads((tmp_path / "events" / "_report.json").read_text())
    assert report["rows_out"] == summary["good_events"] and report["balanced"]
    assert report["removed"]["replays"] == summary["replay_copies"]
    mined = json.loads((tmp_path / "mining" / "_report.json").read_text())
    assert mined["rows_in"] == mined["details"]["baskets"] > 0 and mined["details"]["itemsets"] > 0
    trained = json.loads((tmp_path / "model" / "_report.json").read_text())
    assert trained["details"]["epochs"] == 2 and (tmp_path / "model" / "model.keras").is_file()
    evaluated = json.loads((tmp_path / "model" / "evaluation.json").read_text())
    assert evaluated["examples"] == trained["details"]["evaluation"]["examples"] > 0
