"""The demo generator: reproducible bytes, and ground truth that describes what it wrote."""

import csv
import hashlib
import io
import json

import pytest

from conftest import make_config
from dlspark.demo.feeds import BAD_KINDS
from dlspark.demo.generate import generate
from dlspark.errors import InputError


def fingerprint(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def small(root, seed=3):
    return make_config(
        root,
        "generate.orders=600",
        "generate.days=2",
        "generate.products=80",
        f"generate.seed={seed}",
        "generate.orders_per_file=200",
        "generate.bad_rate=0.05",
    )


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(spark, tmp_path):
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        cfg = small(tmp_path / name, seed)
        generate(spark, cfg.generate, cfg.data.root)
    a, b, c = (fingerprint(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c
    assert "raw/tills/date=2026-01-01/part-0000.csv" in a
    assert "raw/web/date=2026-01-02/part-0001.jsonl" in a  # 300 orders a day, 200 a file


def test_the_truth_says_where_each_bad_record_is(spark, tmp_path):
    cfg = small(tmp_path)
    summary = generate(spark, cfg.generate, cfg.data.root)
    rows = [
        row for f in sorted((tmp_path / "truth" / "bad_records").rglob("*.csv")) for row in csv.DictReader(f.open())
    ]
    assert len(rows) == summary["bad_records"] > 0
    assert len({row["kind"] for row in rows}) >= 8
    assert {row["kind"] for row in rows} <= set(BAD_KINDS)
    for row in rows:
        records = raw_records(tmp_path / row["file"])
        assert row["event_id"] in records[int(row["record"]) - 1]  # records count from 1, a CSV header included
    files = [p for p in (tmp_path / "raw").rglob("*.*") if p.suffix in (".csv", ".jsonl")]
    headers = len([p for p in files if p.suffix == ".csv"])
    assert sum(len(raw_records(p)) for p in files) - headers + summary["bad_files"] == summary["raw_records_total"]
    assert summary["raw_records_total"] == (
        summary["good_events"] + summary["replay_copies"] + summary["bad_records"] + summary["bad_files"]
    )
    assert summary["bad_files"] == 1 and summary["quoted_newlines"] > 0 and summary["reordered_files"] > 0


def raw_records(path):
    """The records of a generated file as text: CSV records by Python's csv module (a quoted field may hold a line
    break), JSON lines by line; bytes that are not UTF-8 read as Latin-1."""
    text = path.read_bytes().decode("latin-1")
    if path.suffix == ".csv":
        return [",".join(fields) for fields in csv.reader(io.StringIO(text, newline=""))]
    return text.splitlines()


def test_the_truth_lists_product_variants_groups_and_segments(spark, tmp_path):
    cfg = small(tmp_path)
    generate(spark, cfg.generate, cfg.data.root)
    products = list(csv.DictReader((tmp_path / "truth" / "products.csv").open()))
    by_true = {}
    for row in products:
        by_true.setdefault(row["true_product_id"], []).append(row)
    assert len(by_true) == 80
    assert sum(len(ids) > 1 for ids in by_true.values()) > 60  # most products have several ids
    assert any(len({r["feed"] for r in ids}) == 2 for ids in by_true.values())
    planted = json.loads((tmp_path / "truth" / "planted.json").read_text())
    assert all(2 <= len(g["true_product_ids"]) <= 5 for g in planted["groups"])
    customers = list(csv.DictReader((tmp_path / "truth" / "customers.csv").open()))
    assert {c["segment"] for c in customers} == set(planted["segments"])


def test_generate_refuses_to_overwrite_raw_data_it_did_not_write(spark, tmp_path):
    (tmp_path / "raw" / "tills").mkdir(parents=True)
    cfg = small(tmp_path)
    with pytest.raises(InputError, match="did not write"):
        generate(spark, cfg.generate, cfg.data.root)
