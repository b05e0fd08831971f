"""The whole pipeline: stages published atomically, skipped when up to date, resumable after a SIGKILL."""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BIN, REPO, SMALL, copy_of, limit, make_config, mtimes
from dlspark.layout import Layout
from dlspark.pipeline import run_pipeline
from dlspark.publish import recover
from dlspark.stages import STAGES


@pytest.fixture(scope="module")
def piped(spark, tmp_path_factory):
    """A small generated data set through every stage of the pipeline: (config, reports)."""
    from dlspark.demo.generate import generate

    root = tmp_path_factory.mktemp("piped")
    cfg = make_config(root, "generate.orders=900", "generate.days=4", "generate.seed=3", *SMALL)
    generate(spark, cfg.generate, cfg.data.root)
    return cfg, run_pipeline(STAGES.names, spark, cfg)


def test_a_first_run_runs_and_publishes_every_stage_with_its_manifest(piped):
    cfg, reports = piped
    root = Path(cfg.data.root)
    assert [r.stage for r in reports] == STAGES.names and not any(r.skipped for r in reports)
    assert not any((root / "_staging").iterdir())  # everything published, nothing left half-way
    events = json.loads((root / "events" / "_report.json").read_text())
    assert events["output"] == str(root / "events")  # the published path, not the staging one
    assert set(events["inputs"]) == {"clean"} and len(events["settings_hash"]) == 16
    assert events["code_version"] and events["started_at"] and events["rows_out"] > 0
    assert (root / "products" / "_SUCCESS").exists() and (root / "model" / "evaluation.json").exists()
    assert "evaluation" not in reports[STAGES.names.index("train")].details  # left to the evaluate stage
    assert reports[-1].details["evaluation"]["examples"] > 0


def test_a_rerun_with_the_same_inputs_and_settings_skips_every_stage_and_writes_nothing(spark, piped):
    cfg, _ = piped
    before = mtimes(Path(cfg.data.root))
    reports = run_pipeline(STAGES.names, spark, cfg)
    assert all(r.skipped for r in reports)
    assert mtimes(Path(cfg.data.root)) == before


def test_a_changed_setting_reruns_its_stage_and_every_stage_after_it(spark, piped, tmp_path):
    cfg = copy_of(piped[0], tmp_path / "copy")
    assert all(r.skipped for r in run_pipeline(STAGES.names, spark, cfg))  # the copy is as up to date as the fixture
    changed = make_config(cfg.data.root, *SMALL, "mining.min_support=0.02")
    reports = run_pipeline(STAGES.names, spark, changed)
    assert [r.stage for r in reports if r.skipped] == ["ingest", "clean", "dedup"]
    assert json.loads((Path(cfg.data.root) / "mining" / "_report.json").read_text())["details"]["min_count"] > 0
    reports = run_pipeline(STAGES.names, spark, cfg)  # back to the first settings: those stages run again
    assert [r.stage for r in reports if not r.skipped] == ["mine", "shards", "train", "evaluate"]


def test_force_reruns_a_stage_that_is_up_to_date(spark, piped, tmp_path):
    cfg = copy_of(piped[0], tmp_path / "copy")
    (report,) = run_pipeline(["mine"], spark, cfg, force=True)
    assert not report.skipped and report.rows_out > 0
    published = json.loads((Path(cfg.data.root) / "mining" / "_report.json").read_text())
    assert published["started_at"] == report.started_at and published["rows_out"] == report.rows_out


def count_orders(ctx):
    """A stage that is not in dlspark: orders and lines per day, from the published events."""
    from pyspark.sql import functions as F

    from dlspark.datasets import published_events

    events = published_events(ctx.spark, ctx.layout)
    per_day = events.groupBy("date").agg(F.countDistinct("order_id").alias("orders"), F.count(F.lit(1)).alias("lines"))
    per_day.write.mode("overwrite").parquet(ctx.output("orders_per_day"))
    lines = events.count()
    return ctx.new_report(rows_in=lines, rows_out=lines, details={"days": per_day.count()})


def test_a_stage_added_to_the_registry_runs_through_the_pipeline(spark, piped, tmp_path):
    from dlspark.stage import Stage

    cfg = copy_of(piped[0], tmp_path / "copy")
    toy = Stage(
        "orders_per_day", count_orders, help="orders and lines per day", reads=("events",), writes=("orders_per_day",)
    )
    registry = STAGES.plus(toy, after="dedup")
    assert registry.names == ["ingest", "clean", "dedup", "orders_per_day", "mine", "shards", "train", "evaluate"]
    reports = run_pipeline(registry.names, spark, cfg, registry=registry)
    assert [r.stage for r in reports if not r.skipped] == ["orders_per_day"]  # the others are up to date
    root = Path(cfg.data.root)
    per_day = spark.read.parquet(str(root / "orders_per_day"))
    events = spark.read.parquet(str(root / "events"))
    assert per_day.count() == events.select("date").distinct().count() == 4
    assert per_day.groupBy().sum("lines").first()[0] == events.count() == reports[3].rows_out
    manifest = json.loads((root / "orders_per_day" / "_report.json").read_text())
    assert manifest["stage"] == "orders_per_day" and set(manifest["inputs"]) == {"events"}
    assert not any((root / "_staging").iterdir())  # published by rename, like every stage
    assert all(r.skipped for r in run_pipeline(registry.names, spark, cfg, registry=registry))


def test_a_stage_that_runs_starts_the_work_the_next_stage_wants_started_ahead(spark, tmp_path):
    from dlspark.stage import Registry, Stage

    done = []

    def step(ctx):
        done.append(f"ran {ctx.stage}")
        return ctx.new_report(rows_in=0, rows_out=0)

    def ahead(session, cfg):
        assert session is spark
        done.append("started ahead of second")

    registry = Registry(
        (
            Stage("first", step, help="", writes=("first",)),
            Stage("second", step, help="", reads=("first",), writes=("second",), start_ahead=ahead),
        )
    )
    cfg = make_config(tmp_path)
    run_pipeline(registry.names, spark, cfg, registry=registry)
    assert done == ["started ahead of second", "ran first", "ran second"]
    done.clear()
    assert all(r.skipped for r in run_pipeline(registry.names, spark, cfg, registry=registry))
    assert done == []  # nothing runs, nothing starts ahead
    run_pipeline(["second"], spark, cfg, force=True, registry=registry)
    assert done == ["ran second"]  # no stage ran before it in this run


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
    for stage in STAGES.names:
        assert f'<td class="text">{stage}</td>' in text
    mined = next(r for r in reports if r.stage == "mine")
    top = mined.details["top_rules"][0]["consequent_names"][0]
    assert top.replace("&", "&amp;") in text  # the top rule, by name
    model = next(r for r in reports if r.stage == "evaluate").details["evaluation"]["metrics"]["model"]
    assert f"{model['mrr@10']:.4f}" in text and "planted: 10 of 10" in text
    assert "Model v0001: promoted to current (the first version; hit@10" in text
    assert "<h2>Files quarantined whole</h2>" in text and "part-9999-export.csv.gz" in text
    assert '<td class="text">corrupt_archive</td>' in text
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


@pytest.mark.integration
def test_a_run_killed_inside_each_stage_in_turn_ends_with_the_outputs_of_an_uninterrupted_run(spark, piped, tmp_path):
    """SIGKILL (the driver's whole process group: Python, the JVM, Spark's workers) inside ingest, then inside clean
    in the rerun, and so on through evaluate; a last rerun finishes. The reference is the fixture's uninterrupted run
    of the same raw files with the same settings."""
    from pyspark.testing import assertDataFrameEqual  # imported here: it warns about pandas at import

    cfg, _ = piped
    reference, root = Path(cfg.data.root), tmp_path / "killed"
    shutil.copytree(reference / "raw", root / "raw")
    command = [BIN / "dlspark", "pipeline", "--set", f"data.root={root}", "--set", "spark.master=local[2]"]
    command += [a for s in SMALL for a in ("--set", s)]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    for stage in STAGES.names:
        running = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        wait_for_output(running, f"stage {stage}: starting")
        if stage == "train":  # after its first epoch's checkpoint, so that the rerun resumes from it
            wait_for_file(root / "_staging" / "train" / "model" / "checkpoint" / "training_metadata.json", running)
        elif stage != "evaluate":  # into the stage's work: it has begun to write its staged output
            wait_for_file(root / "_staging" / stage / pipeline_output(stage), running)
        # (evaluate is killed as it starts: it loads the model, then writes one small file at its very end)
        assert running.poll() is None, f"the run ended before it could be killed inside {stage}"
        assert not (root / "_staging" / stage / "_publish.json").exists(), f"{stage} had finished its work"
        os.killpg(running.pid, signal.SIGKILL)
        running.wait()
        running.stderr.close()
        published = root / pipeline_output(stage) / "_report.json"
        assert not published.exists(), f"{stage} was published although it was killed"

    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert not any((root / "_staging").iterdir())
    for dataset in ("ingested", "clean", "quarantine", "events", "products", *MINED, *SPLITS):
        killed, uninterrupted = (spark.read.parquet(str(r / dataset)) for r in (root, reference))
        assertDataFrameEqual(killed.drop("source_file"), uninterrupted.drop("source_file"))
    vocabularies = [json.loads((r / "model" / "vocabulary.json").read_text()) for r in (root, reference)]
    assert vocabularies[0]["products"] == vocabularies[1]["products"]
    assert vocabularies[0]["customers"] == vocabularies[1]["customers"]
    trained = json.loads((root / "model" / "_report.json").read_text())["details"]
    assert trained["epochs"] == 2  # every configured epoch, once (a resumed run does not repeat or skip one)
    evaluated = [json.loads((r / "model" / "evaluation.json").read_text())["examples"] for r in (root, reference)]
    assert evaluated[0] == evaluated[1] > 0


def wait_for_output(process, text, seconds=240):
    """Read the process's stderr until `text` appears in it."""
    seconds = limit(seconds)
    seen, deadline = b"", time.monotonic() + seconds
    while text.encode() not in seen:
        assert time.monotonic() < deadline, f"no {text!r} after {seconds} s: {seen[-2000:]!r}"
        if select.select([process.stderr], [], [], 0.5)[0]:
            chunk = os.read(process.stderr.fileno(), 65536)
            assert chunk, f"the run ended before {text!r}: {seen[-3000:]!r}"
            seen += chunk


def wait_for_file(path, process, seconds=240):
    """Wait until `path` exists, reading the process's stderr meanwhile; fail if the process ends first (the
    polling interval is 50 ms: far shorter than any stage's writing)."""
    deadline = time.monotonic() + limit(seconds)
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, f"{path} did not appear"
        if select.select([process.stderr], [], [], 0.05)[0]:
            os.read(process.stderr.fileno(), 65536)  # keep the pipe from filling up and blocking the run


MINED = ("mining/itemsets", "mining/rules", "mining/popularity")
SPLITS = ("shards/train", "shards/val", "shards/test")


def pipeline_output(stage: str) -> str:

    return STAGES[stage].writes[0]
