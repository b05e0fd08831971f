"""Daily incremental runs: one day's partitions replaced, the scheduler catching up, promotion and the run lock."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, REPO, SMALL, copy_of, make_config, mtimes
from dlspark.errors import InputError
from dlspark.pipeline import run_pipeline
from dlspark.runlock import RunLockedError, run_lock
from dlspark.schedule import for_day, run_due
from dlspark.stages import STAGES

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]


def runner(spark):
    return lambda names, cfg: run_pipeline(names, spark, cfg)


def day_files(root: Path, day: str) -> dict[str, float]:
    return {k: v for k, v in mtimes(root).items() if f"date={day}" in k}


def state(root: Path) -> dict[str, float]:
    """Every file's time but the raw files' and the run lock's (which a command takes, and leaves in place)."""
    return {k: v for k, v in mtimes(root).items() if not k.endswith("/_lock")}


def without_lineage(frame):
    return frame.drop("source_file")  # the raw file's path names the data root, which differs between the two


@pytest.fixture(scope="module")
def daily(spark, tmp_path_factory):
    """Four generated days run by the scheduler, as cron would after an outage: (config, days it ran)."""
    from dlspark.demo.generate import generate

    root = tmp_path_factory.mktemp("daily")
    cfg = make_config(root, "generate.orders=900", "generate.days=4", "generate.seed=3", *SMALL)
    generate(spark, cfg.generate, cfg.data.root)
    return cfg, run_due(cfg, runner(spark), None, DAYS[-1])


def test_the_scheduler_catches_up_every_day_in_order_and_trains_once_for_the_last(daily):
    cfg, ran = daily
    root = Path(cfg.data.root)
    assert ran == DAYS
    state = json.loads((root / "schedule.json").read_text())
    assert [state[day]["status"] for day in DAYS] == ["done"] * 4
    for dataset in ("clean", "events", "quarantine/stage=clean"):
        assert sorted(p.name for p in (root / dataset).glob("date=*")) == [f"date={d}" for d in DAYS]
    assert json.loads((root / "events" / "date=2026-01-02" / "_report.json").read_text())["stage"] == "dedup"
    assert json.loads((root / "mining" / "_report.json").read_text())["details"]["window"][1] == DAYS[-1]
    history = json.loads((root / "models" / "history.json").read_text())
    assert [(h["version"], h["date"], h["promoted"]) for h in history] == [("v0001", DAYS[-1], True)]
    assert (root / "models" / "current").read_text().strip() == "v0001"
    assert (root / "models" / "v0001" / "model.keras").exists() and not (
        root / "models" / "v0001" / "checkpoint"
    ).exists()


def test_a_second_pass_finds_nothing_due(spark, daily):
    cfg, _ = daily
    assert run_due(cfg, runner(spark), None, DAYS[-1]) == []


def test_days_run_one_by_one_equal_one_run_over_all_of_them(spark, daily, tmp_path):
    from pyspark.testing import assertDataFrameEqual

    from dlspark.datasets import published_events

    cfg, _ = daily
    shutil.copytree(Path(cfg.data.root) / "raw", tmp_path / "raw")
    full = make_config(tmp_path, *SMALL)
    run_pipeline(STAGES.daily(), spark, full)
    for dataset in ("clean", "quarantine", "products"):
        daily_rows, full_rows = (spark.read.parquet(f"{c.data.root}/{dataset}") for c in (cfg, full))
        assertDataFrameEqual(without_lineage(daily_rows), without_lineage(full_rows))
    assertDataFrameEqual(
        without_lineage(published_events(spark, cfg.data.layout)),
        without_lineage(published_events(spark, full.data.layout)),
    )


def test_rerunning_a_day_replaces_only_its_partitions_with_the_same_rows(spark, daily, tmp_path):
    from pyspark.testing import assertDataFrameEqual

    from dlspark.datasets import published_events

    cfg = copy_of(daily[0], tmp_path / "copy")
    root = Path(cfg.data.root)
    day = for_day(cfg, DAYS[1])

    def day_rows():
        # events as every reader sees them: canonical ids through the current products/ (a day run of its own time
        # stores the ids known then; products/ is resolved again over all days whenever one is run)
        datasets = [spark.read.parquet(str(root / d)) for d in ("ingested", "clean", "quarantine")]
        return [d.where(f"date = '{DAYS[1]}'") for d in [*datasets, published_events(spark, cfg.data.layout)]]

    before = [rows.localCheckpoint() for rows in day_rows()]
    others = {d: day_files(root, d) for d in DAYS if d != DAYS[1]}
    assert all(r.skipped for r in run_pipeline(STAGES.daily(), spark, day))  # same files, same settings: nothing to do
    reports = run_pipeline(STAGES.daily(), spark, day, force=True)
    assert not any(r.skipped for r in reports) and all(r.balanced() for r in reports)
    for again, rows in zip(day_rows(), before, strict=True):  # the copy's files have another path: drop it
        assert rows.count() > 0
        assertDataFrameEqual(without_lineage(again), without_lineage(rows))
    assert {d: day_files(root, d) for d in others} == others  # not a file of another day was rewritten


def test_a_day_whose_files_are_all_bad_is_refused_and_changes_nothing(spark, daily, tmp_path):
    cfg = copy_of(daily[0], tmp_path / "copy")
    root = Path(cfg.data.root)
    day = "2026-01-05"
    (root / "raw" / "tills" / f"date={day}").mkdir(parents=True)
    (root / "raw" / "tills" / f"date={day}" / "part-0000.csv").write_text(
        "line_id,receipt_no,store_id,loyalty_card,plu,description,dept,qty,price,sold_at\n"
        "E1,O1,S01,C1,T100,MILK,DAIRY,two,1.00,05/01/2026 10:00:00\n"
        "E2,O1,S01,C1,T100,MILK\n"
    )
    before = state(root)
    with pytest.raises(InputError, match=r"every one of the 2 records of 2026-01-05 is bad \(") as refused:
        run_pipeline(STAGES.names, spark, for_day(cfg, day))
    assert "non_numeric_quantity 1" in str(refused.value) and "wrong_column_count 1" in str(refused.value)
    assert state(root) == before
    assert not any((root / "_staging").iterdir())
    # the scheduler records the day as failed, goes on, and does not retry it until its files change
    assert run_due(cfg, runner(spark), day, day) == [day]
    assert json.loads((root / "schedule.json").read_text())[day]["status"] == "failed"
    assert run_due(cfg, runner(spark), day, day) == []


def test_a_day_with_no_raw_files_stops_with_a_message_and_changes_nothing(daily):
    cfg, _ = daily
    root = Path(cfg.data.root)
    before = state(root)
    result = subprocess.run(
        [BIN / "dlspark", "pipeline", "--date", "2026-02-01", "--set", f"data.root={root}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "no raw files for 2026-02-01" in result.stderr and "2026-01-01..2026-01-04 (4 days)" in result.stderr
    assert state(root) == before


def test_a_feed_path_outside_the_data_root_is_refused_before_anything_runs(daily):
    cfg, _ = daily
    root = Path(cfg.data.root)
    before = state(root)
    for path in ("../../etc", "/etc"):
        result = subprocess.run(
            [BIN / "dlspark", "pipeline", "--set", f"data.root={root}", "--set", f"feeds.tills.path={path}"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and "feeds.tills.path: must be a directory below data.root/raw/" in result.stderr
    assert state(root) == before


def test_a_worse_model_is_kept_as_a_version_but_not_promoted(spark, daily, tmp_path):
    cfg = copy_of(daily[0], tmp_path / "copy")
    root = Path(cfg.data.root)
    last = for_day(cfg, DAYS[-1])
    # no rules, no warm start, next to no learning: a model that ranks at random
    worse = last.model_copy(
        update={
            "train": last.train.model_copy(
                update={
                    "learning_rate": 1e-7,
                    "epochs": 1,
                    "warm_start": False,
                    "model": last.train.model.model_copy(update={"use_rules": False}),
                }
            )
        }
    )
    reports = run_pipeline(["train", "evaluate"], None, worse)
    entry = reports[-1].details["promotion"]
    assert (entry["version"], entry["promoted"], entry["current_before"]) == ("v0002", False, "v0001")
    comparison = entry["comparison"]  # both models on the same test examples
    assert comparison["challenger"]["hit@10"] < comparison["champion"]["hit@10"]
    assert comparison["interval"][1] < -cfg.train.promotion_margin
    assert (root / "models" / "current").read_text().strip() == "v0001"
    assert (root / "models" / "v0002" / "evaluation.json").exists()
    # the same trained model is not decided twice
    again = run_pipeline(["train", "evaluate"], None, worse)
    assert all(r.skipped for r in again) and again[-1].details["promotion"] == entry
    assert len(json.loads((root / "models" / "history.json").read_text())) == 2

    # back to the day's own settings: trained again from the current model's weights, and promoted
    reports = run_pipeline(["train", "evaluate"], None, last)
    warm = reports[0].details["warm_start"]
    assert warm["source"].endswith("models/v0001") and "product_embedding" in warm["layers"]
    assert (
        warm["products_kept"] == len(json.loads((root / "shards" / "manifest.json").read_text())["products"]["ids"]) - 2
    )
    assert reports[-1].details["promotion"]["version"] == "v0003"


def test_two_runs_on_one_data_root_never_overlap(spark, daily):
    cfg, _ = daily
    with run_lock(cfg.data.root):
        with pytest.raises(RunLockedError, match="another dlspark run is working on"):
            run_due(cfg, runner(spark), None, DAYS[-1])
        result = subprocess.run(
            [BIN / "dlspark", "clean", "--set", f"data.root={cfg.data.root}"], cwd=REPO, capture_output=True, text=True
        )
        assert result.returncode == 2 and f"pid {__import__('os').getpid()}" in result.stderr
    with run_lock(cfg.data.root):  # released with the block
        pass


def test_the_schedule_command_finds_nothing_due_on_days_already_run(daily):
    cfg, _ = daily
    result = subprocess.run(
        [BIN / "dlspark", "schedule", "--once", "--since", DAYS[1], "--until", DAYS[2]]
        + ["--set", f"data.root={cfg.data.root}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"nothing due (every day up to {DAYS[2]} has run on its current files)" in result.stderr
