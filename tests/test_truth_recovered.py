"""End to end on generated data: the pipeline recovers the planted truth, and every count adds up.

These checks read truth/ and the outputs directly (small data), independently of dlspark.truth.
"""

import csv
import itertools
import json
import re
from pathlib import Path

import pytest

from dlspark.demo import truth
from dlspark.layout import Layout
from dlspark.rawfiles import FILE_REASONS

EVENT_ID = re.compile(r"E\d{9}-\d{2}")


def truth_dir(cfg):
    return Path(cfg.data.root) / "truth"


def planted_bad(cfg):
    return {
        row["event_id"]: row["kind"]
        for f in (truth_dir(cfg) / "bad_records").rglob("*.csv")
        for row in csv.DictReader(f.open())
    }


def test_every_planted_bad_record_is_quarantined_with_its_reason_and_no_good_one_is(spark, demo):
    cfg, _ = demo
    quarantined, whole_files = {}, {}
    for row in spark.read.parquet(f"{cfg.data.root}/quarantine").collect():
        if row.reason in FILE_REASONS:  # a file quarantined whole: checked against truth/files
            whole_files[row.source_file.split("/raw/")[-1]] = row.reason
            continue
        event_id = row.event_id or EVENT_ID.search(row.record).group(0)
        assert event_id not in quarantined
        quarantined[event_id] = row.reason
    assert quarantined == planted_bad(cfg)
    planted_files = {
        row["file"].removeprefix("raw/"): row["kind"]
        for f in (truth_dir(cfg) / "files").rglob("*.csv")
        for row in csv.DictReader(f.open())
        if row["kind"] != "reordered_header"
    }
    assert whole_files == planted_files and planted_files


def test_every_replay_is_removed_and_every_good_event_kept(spark, demo):
    cfg, reports = demo
    summary = json.loads((truth_dir(cfg) / "summary.json").read_text())
    events = [r.event_id for r in spark.read.parquet(f"{cfg.data.root}/events").select("event_id").collect()]
    assert len(events) == len(set(events)) == summary["good_events"]
    assert not set(events) & set(planted_bad(cfg))
    replayed = {
        row["event_id"] for f in (truth_dir(cfg) / "replays").rglob("*.csv") for row in csv.DictReader(f.open())
    }
    assert replayed and replayed <= set(events)
    assert reports["dedup"].removed["replays"] == summary["replay_copies"]


def test_product_merges_match_the_truth(spark, demo):
    cfg, _ = demo
    true_product = {
        row["product_id"]: row["true_product_id"] for row in csv.DictReader((truth_dir(cfg) / "products.csv").open())
    }
    found = {r.product_id: r.canonical_product_id for r in spark.read.parquet(f"{cfg.data.root}/products").collect()}
    pairs = list(itertools.combinations(sorted(found), 2))
    merged = {(a, b) for a, b in pairs if found[a] == found[b]}
    same = {(a, b) for a, b in pairs if true_product[a] == true_product[b]}
    precision = len(merged & same) / len(merged)
    recall = len(merged & same) / len(same)
    assert len(same) > 100
    assert precision >= 0.95, precision
    assert recall >= 0.90, recall


def test_the_accounting_is_exact(demo):
    cfg, reports = demo
    summary = json.loads((truth_dir(cfg) / "summary.json").read_text())
    ingest, clean, dedup = reports["ingest"], reports["clean"], reports["dedup"]
    assert ingest.rows_in == summary["raw_records_total"]
    assert clean.rows_in == ingest.rows_out
    assert dedup.rows_in == clean.rows_out
    assert ingest.rows_in == clean.rows_out + ingest.quarantined_total + clean.quarantined_total  # raw = clean + q
    assert clean.rows_out == dedup.rows_out + dedup.removed["replays"]  # clean = events + replays
    for report, dataset in ((ingest, "ingested"), (clean, "clean"), (dedup, "events")):
        written = json.loads(Path(cfg.data.root, dataset, "_report.json").read_text())
        assert written["balanced"] is True
        assert len(written["config_hash"]) == 16 and written["output"].endswith(dataset)
        assert written["rows_in"] == report.rows_in and written["rows_out"] == report.rows_out


def test_the_demo_scorer_agrees(spark, demo):
    cfg, _ = demo
    score = truth.score(spark, Layout.at(cfg.data.root))
    assert score.bad_caught_with_right_reason == score.planted_bad == score.quarantined
    assert score.bad_missed == score.good_quarantined == score.bad_caught_with_wrong_reason == 0
    assert score.events == score.expected_events and score.replays_removed == score.expected_replays_removed
    assert score.merge_precision >= 0.95 and score.merge_recall >= 0.90
    assert score.planted_groups_found == score.planted_groups > 0
    assert score.bad_files_quarantined == score.bad_files == 1
    assert score.reordered_records_kept == score.reordered_records_expected > 0 and score.reordered_files > 0
    assert score.quoted_newlines_kept == score.quoted_newlines > 0


@pytest.mark.parametrize("stage", ["ingest", "clean"])
def test_quarantine_rows_say_where_they_came_from(spark, demo, stage):
    cfg, _ = demo
    rows = spark.read.parquet(f"{cfg.data.root}/quarantine/stage={stage}").collect()
    assert rows
    for row in rows:
        assert row.reason and row.feed in ("tills", "web")
        assert "/raw/" in row.source_file and row.date is not None
        if row.reason in FILE_REASONS:  # a file that could not be read: the file itself is the record
            assert row.record is None and row.raw is None
        elif stage == "ingest":  # the record as it was in the file, and as valid UTF-8 text
            assert row.raw and row.record == row.raw.decode("utf-8", "replace")
        else:
            assert row.record and row.raw is None
