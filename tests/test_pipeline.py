"""The whole pipeline: stages published atomically, skipped when up to date, resumable after a SIGKILL."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, make_config
from dlspark.cli import PIPELINE
from dlspark.layout import Layout
from dlspark.pipeline import recover, run_pipeline

BIN = Path(sys.executable).parent
SMALL = ["shards.test_days=1", "shards.val_days=1", "train.epochs=2", "shards.rows_per_row_group=1024"]


def mtimes(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file() and "raw" not in p.parts}


@pytest.fixture(scope="module")
def piped(spark, tmp_path_factory):
    """A small generated data set through every stage of the pipeline: (config, reports)."""
    from dlspark.generate import generate

    root = tmp_path_factory.mktemp("piped")
    cfg = make_config(root, "generate.orders=900", "generate.days=4", "generate.seed=3", *SMALL)
    generate(spark, cfg.generate, cfg.data.root)
    return cfg, run_pipeline(PIPELINE, spark, cfg)


def test_a_first_run_runs_and_publishes_every_stage_with_its_manifest(piped):
    cfg, reports = piped
    root = Path(cfg.data.root)
    assert [r.stage for r in reports] == PIPELINE and not any(r.skipped for r in reports)
    assert not any((root / "_staging").iterdir())  # everything published, nothing left half-way
    events = json.loads((root / "events" / "_report.json").read_text())
    assert events["output"] == str(root / "events")  # the published path, not the staging one
    assert set(events["inputs"]) == {"clean"} and len(events["settings_hash"]) == 16
    assert events["code_version"] and events["started_at"] and events["rows_out"] > 0
    assert (root / "products" / "_SUCCESS").exists() and (root / "model" / "evaluation.json").exists()
    assert "evaluation" not in reports[PIPELINE.index("train")].details  # left to the evaluate stage
    assert reports[-1].details["evaluation"]["examples"] > 0


def test_a_rerun_with_the_same_inputs_and_settings_skips_every_stage_and_writes_nothing(spark, piped):
    cfg, _ = piped
    before = mtimes(Path(cfg.data.root))
    reports = run_pipeline(PIPELINE, spark, cfg)
    assert all(r.skipped for r in reports)
    assert mtimes(Path(cfg.data.root)) == before


def test_a_changed_setting_reruns_its_stage_and_every_stage_after_it(spark, piped, tmp_path):
    cfg, _ = piped
    changed = make_config(cfg.data.root, *SMALL, "mining.min_support=0.02")
    reports = run_pipeline(PIPELINE, spark, changed)
    assert [r.stage for r in reports if r.skipped] == ["ingest", "clean", "dedup"]
    assert json.loads((Path(cfg.data.root) / "mining" / "_report.json").read_text())["details"]["min_count"] > 0
    reports = run_pipeline(PIPELINE, spark, cfg)  # back to the fixture's settings for the other tests
    assert [r.stage for r in reports if not r.skipped] == ["mine", "shards", "train", "evaluate"]


def test_force_reruns_a_stage_that_is_up_to_date(spark, piped):
    cfg, _ = piped
    (report,) = run_pipeline(["mine"], spark, cfg, force=True)
    assert not report.skipped and report.rows_out > 0


def test_the_run_report_is_a_page_with_every_stage_its_figures_and_the_evaluation(piped):
    from html.parser import HTMLParser

    from dlspark.runreport import write_run_report

    cfg, reports = piped
    page = Path(write_run_report(reports, Layout.at(cfg.data.root), notes="planted: 10 of 10"))
    assert page.parent.parent == Path(cfg.data.root) / "reports"
    text = page.read_text()
    images = []

    class Images(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img":
                images.append(dict(attrs)["src"])

    Images().feed(text)
    assert {"records.png", "quarantine.png", "training.png", "evaluation.png", "seconds.png"} <= set(images)
    for image in images:
        assert (page.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in PIPELINE:
        assert f'<td class="text">{stage}</td>' in text
    mined = next(r for r in reports if r.stage == "mine")
    top = mined.details["top_rules"][0]["consequent_names"][0]
    assert top.replace("&", "&amp;") in text  # the top rule, by name
    model = next(r for r in reports if r.stage == "evaluate").details["evaluation"]["metrics"]["model"]
    assert f"{model['mrr@10']:.4f}" in text and "planted: 10 of 10" in text
    quarantined = next(r for r in reports if r.stage == "clean").quarantined
    assert quarantined and all(f'<td class="text">{reason}</td>' in text for reason in quarantined)


def test_a_publish_cut_short_between_its_renames_is_finished_by_the_next_run(tmp_path):
    root = Layout.at(str(tmp_path))
    staging = tmp_path / "_staging" / "dedup"
    for output, text in [("events", "new events"), ("products", "new products")]:
        (staging / output).mkdir(parents=True)
        (staging / output / "part-0").write_text(text)
    (tmp_path / "products").mkdir()
    (tmp_path / "products" / "part-0").write_text("old products")
    (staging / "_publish.json").write_text(json.dumps({"stage": "dedup", "outputs": ["events", "products"]}))
    # The crash came after events/ was moved aside: it is missing, its new version still staged.
    recover(root, "dedup")
    assert (tmp_path / "events" / "part-0").read_text() == "new events"
    assert (tmp_path / "products" / "part-0").read_text() == "new products"
    assert not staging.exists()
    recover(root, "dedup")  # nothing left to do: idempotent
    assert (tmp_path / "events" / "part-0").read_text() == "new events"


def test_the_stage_order_is_checked_before_anything_runs(tmp_path):
    result = subprocess.run(
        [BIN / "dlspark", "pipeline", "--from", "train", "--to", "clean", "--set", f"data.root={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--from train comes after --to clean" in result.stderr


@pytest.mark.slow
def test_a_pipeline_killed_inside_a_stage_keeps_the_old_output_and_a_rerun_matches_an_uninterrupted_run(
    spark, piped, tmp_path
):
    """SIGKILL in the middle of dedup (a Spark stage with two outputs), rerun with --force on the fixture's data;
    the reference is the fixture's own, uninterrupted run with the same settings."""
    from pyspark.testing import assertDataFrameEqual  # imported here: it warns about pandas at import

    cfg, _ = piped
    root = Path(cfg.data.root)
    for dataset in ("events", "products"):
        shutil.copytree(root / dataset, tmp_path / dataset)
    command = [BIN / "dlspark", "pipeline", "--to", "dedup", "--set", f"data.root={root}"]
    command += ["--set", "spark.master=local[2]", *[a for s in SMALL for a in ("--set", s)]]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    running = subprocess.Popen(
        [*command, "--from", "dedup", "--force"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not (root / "_staging" / "dedup" / "events").exists() and time.monotonic() < deadline:
        assert running.poll() is None, "the run ended before dedup started writing"
        time.sleep(0.05)
    running.send_signal(signal.SIGKILL)
    running.wait()
    old_report = (tmp_path / "events" / "_report.json").read_text()
    assert (root / "events" / "_report.json").read_text() == old_report  # the published output is untouched

    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    skipped = [line.split()[0] for line in again.stdout.splitlines() if line.endswith(" skipped")]
    assert skipped == ["ingest", "clean"]  # what was up to date is not redone; the killed stage is
    assert (root / "events" / "_report.json").read_text() != old_report
    for dataset in ("events", "products"):
        assertDataFrameEqual(spark.read.parquet(str(root / dataset)), spark.read.parquet(str(tmp_path / dataset)))
    assert not (root / "_staging" / "dedup").exists()
