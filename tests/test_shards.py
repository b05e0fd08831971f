"""Training examples: one held-out product per order, split by time, vocabularies and rules from training days only."""

import datetime as dt
import json
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from conftest import make_config
from dlspark.errors import InputError
from dlspark.manifest import PAD, UNKNOWN
from dlspark.pipeline import run_stage
from dlspark.schemas import EVENTS
from dlspark.stages.shards import assign_splits, orders

DAY = dt.date(2026, 3, 1)


def event(order, product, day=0, customer="C1", second=0):
    when = dt.datetime.combine(DAY + dt.timedelta(days=day), dt.time(10, 0, second))
    values = {
        "event_id": f"{order}-{product}",
        "order_id": order,
        "customer_id": customer,
        "product_id": product,
        "canonical_product_id": product,
        "product_name": product,
        "category": "X",
        "quantity": 1,
        "unit_price": Decimal("1.00"),
        "event_time": when,
        "date": when.date(),
        "feed": "tills",
        "source_file": "f",
    }
    return tuple(values.get(field.name) for field in EVENTS.fields)


def test_the_label_is_one_of_the_products_and_does_not_depend_on_scan_order(spark):
    rows = [event("o1", p, second=i) for i, p in enumerate(["A", "B", "C", "D"])]
    reversed_rows = [event("o1", p, second=i) for i, p in enumerate(["D", "C", "B", "A"])]
    first = orders(spark.createDataFrame(rows, EVENTS), seed=3).first()
    second = orders(spark.createDataFrame(reversed_rows, EVENTS), seed=3).first()
    assert first.label == second.label and first.label in "ABCD"
    assert first.products == ["A", "B", "C", "D"] and second.products == ["D", "C", "B", "A"]  # scan order kept
    assert sorted([*first.inputs, first.label]) == ["A", "B", "C", "D"]
    labels = {orders(spark.createDataFrame(rows, EVENTS), seed=s).first().label for s in range(12)}
    assert len(labels) > 1  # the seed, not the product id, decides


def test_splits_take_the_last_days_for_test_and_the_days_before_for_validation():
    days = [DAY + dt.timedelta(days=i) for i in (4, 0, 2, 1, 3)]
    bounds = assign_splits(days, test_days=2, val_days=1)
    assert bounds == {
        "train": (DAY, DAY + dt.timedelta(days=1)),
        "val": (DAY + dt.timedelta(days=2),) * 2,
        "test": (DAY + dt.timedelta(days=3), DAY + dt.timedelta(days=4)),
    }
    with pytest.raises(InputError, match="shards.test_days"):
        assign_splits(days[:3], test_days=2, val_days=1)


@pytest.fixture(scope="module")
def small(spark, tmp_path_factory):
    """Five days of hand-made orders through the shards stage: A and B are bought together in training."""
    root = tmp_path_factory.mktemp("small")
    rows = []
    for day in range(3):  # training: A+B (+C) many times, plus single-product orders
        for n in range(12):
            rows += [event(f"t{day}-{n}", "A", day, f"C{n % 3}", 0), event(f"t{day}-{n}", "B", day, f"C{n % 3}", 1)]
            if n % 2:
                rows.append(event(f"t{day}-{n}", "C", day, f"C{n % 3}", 2))
        rows.append(event(f"single{day}", "C", day))
    rows += [event("v1", "A", 3), event("v1", "B", 3, second=1)]  # validation day
    rows += [event("x1", "A", 4), event("x1", "NEW", 4, second=1), event("x2", "B", 4, None), event("x2", "A", 4, None)]
    spark.createDataFrame(rows, EVENTS).write.partitionBy("date").parquet(str(root / "events"))
    spark.createDataFrame(
        [("A", "A", "Apples", "A", "a", "X", 1)],
        "product_id string, canonical_product_id string, "
        "canonical_name string, product_name string, product_name_norm string, category string, "
        "events long",
    ).write.parquet(str(root / "products"))
    cfg = make_config(
        root, "shards.test_days=1", "shards.val_days=1", "shards.max_items=3", "mining.min_support=0.2", "shards.seed=1"
    )
    report = run_stage("shards", spark, cfg)
    manifest = json.loads((root / "shards" / "manifest.json").read_text())
    return root, report, manifest


def test_every_order_is_an_example_or_counted_as_a_single_product_order(small):
    _, report, manifest = small
    assert report.rows_in == 36 + 3 + 1 + 2
    assert report.removed == {"single_product_orders": 3}
    assert report.balanced()
    assert {s: manifest["splits"][s]["rows"] for s in ("train", "val", "test")} == {"train": 36, "val": 1, "test": 2}


def test_vocabularies_and_rules_come_from_the_training_days_only(small, spark):
    root, _, manifest = small
    ids = manifest["products"]["ids"]
    assert ids[:2] == ["<pad>", "<unknown>"] and sorted(ids[2:]) == ["A", "B", "C"]  # NEW is only bought in test
    assert ids[2:4] in (["A", "B"], ["B", "A"])  # A and B: 36 orders each, C: 18 + 3
    assert manifest["products"]["names"][ids.index("A")] == "Apples"
    assert manifest["customers"]["ids"] == ["<anonymous>", "<unknown>", "C1", "C0", "C2"]  # C1 also bought singles
    assert manifest["rules"]["baskets"] == 39  # the training orders, single-product ones included
    mined_on = spark.read.parquet(str(root / "shards" / "rules")).where(F.array_contains("antecedent", "NEW")).count()
    assert mined_on == 0
    test = pq.read_table(root / "shards" / "test").to_pylist()
    by_inputs = {tuple(r[c] for c in manifest["columns"]["items"]): r for r in test}
    a, b = ids.index("A"), ids.index("B")
    with_new = next(r for r in test if UNKNOWN in (r["label"], r["item_00"]))  # x1: A + NEW, one of them held out
    assert with_new["customer"] == manifest["customers"]["ids"].index("C1")
    anonymous = next(r for k, r in by_inputs.items() if r["customer"] == 0)  # x2 has no customer id
    assert {anonymous["label"], anonymous["item_00"]} == {a, b}
    assert anonymous["rule_00"] in (a, b, ids.index("C")) and anonymous["rule_00"] != anonymous["item_00"]


def test_inputs_are_padded_and_truncated_to_the_width_and_files_hold_the_counted_rows(small):
    root, report, manifest = small
    train = pq.read_table(root / "shards" / "train").to_pylist()
    items = manifest["columns"]["items"]
    assert items == ["item_00", "item_01", "item_02"] and len(manifest["columns"]["rules"]) == 10
    for row in train:
        values = [row[c] for c in items]
        assert values[: row["size"]] == [v for v in values if v != PAD] and values[row["size"] :] == [PAD] * (
            3 - row["size"]
        )
    listed = sum(f["rows"] for f in manifest["splits"]["train"]["files"])
    assert listed == len(train) == sum(g for f in manifest["splits"]["train"]["files"] for g in f["row_groups"])
    assert report.details["fingerprint"] == manifest["fingerprint"]


def test_an_unchanged_input_and_configuration_give_the_same_fingerprint_and_bytes(small, spark):
    root, _, manifest = small
    before = {p.name: p.read_bytes() for p in (root / "shards" / "train").glob("*.parquet")}
    run_stage(
        "shards",
        spark,
        make_config(
            root,
            "shards.test_days=1",
            "shards.val_days=1",
            "shards.max_items=3",
            "mining.min_support=0.2",
            "shards.seed=1",
        ),
    )
    again = json.loads((root / "shards" / "manifest.json").read_text())
    assert again["fingerprint"] == manifest["fingerprint"]
    assert {p.name: p.read_bytes() for p in (root / "shards" / "train").glob("*.parquet")} == before


@pytest.fixture(scope="module")
def folded(spark, tmp_path_factory):
    """Three training days where D and E are bought together on the first day only, and A and B on every day; the
    shards built with in-sample rule features (rule_folds=1) and with the default folds (one per day here)."""
    rows = []
    for day in range(3):
        for n in range(12):
            rows += [event(f"ab{day}-{n}", "A", day), event(f"ab{day}-{n}", "B", day, second=1)]
    for n in range(10):
        rows += [event(f"de{n}", "D", 0), event(f"de{n}", "E", 0, second=1)]
    rows += [event("v1", "A", 3), event("v1", "B", 3, second=1), event("x1", "D", 4), event("x1", "E", 4, second=1)]
    built = {}
    for folds in (1, 4):
        root = tmp_path_factory.mktemp(f"folds{folds}")
        spark.createDataFrame(rows, EVENTS).write.partitionBy("date").parquet(str(root / "events"))
        spark.createDataFrame(
            [("A", "A", "Apples", "A", "a", "X", 1)],
            "product_id string, canonical_product_id string, canonical_name string, product_name string, "
            "product_name_norm string, category string, events long",
        ).write.parquet(str(root / "products"))
        settings = ["shards.test_days=1", "shards.val_days=1", "mining.min_support=0.1", f"shards.rule_folds={folds}"]
        run_stage("shards", spark, make_config(root, *settings))
        manifest = json.loads((root / "shards" / "manifest.json").read_text())
        splits = {split: pq.read_table(root / "shards" / split).to_pylist() for split in ("train", "val", "test")}
        built[folds] = manifest, splits
    return built


def test_training_examples_get_rule_features_mined_without_their_own_day(folded):
    (manifest1, in_sample), (manifest3, out_of_fold) = folded[1], folded[4]
    assert (manifest1["rules"]["folds"], manifest3["rules"]["folds"]) == (1, 3)  # at most one fold per training day
    ids = manifest1["products"]["ids"]
    assert ids == manifest3["products"]["ids"]  # the vocabularies do not depend on the folds
    d_and_e = {ids.index("D"), ids.index("E")}

    def first_rules(examples, day, items):
        return sorted(
            r["rule_00"] for r in examples if r["date"] == DAY + dt.timedelta(days=day) and r["item_00"] in items
        )

    # D -> E and E -> D hold on the first day only: in-sample, its examples are handed their own answer ...
    assert set(first_rules(in_sample["train"], 0, d_and_e)) <= d_and_e and PAD not in first_rules(
        in_sample["train"], 0, d_and_e
    )
    # ... out of fold, they get the rules of the other two days, which never saw D or E
    assert set(first_rules(out_of_fold["train"], 0, d_and_e)) == {PAD}
    # A -> B holds on every day: every day's examples keep it
    a_and_b = {ids.index("A"), ids.index("B")}
    for day in range(3):
        assert set(first_rules(out_of_fold["train"], day, a_and_b)) <= a_and_b
    # validation and test examples keep the rules of every training day, whatever the folds
    for split in ("val", "test"):
        assert out_of_fold[split] == in_sample[split]
    assert first_rules(out_of_fold["test"], 4, d_and_e) != [PAD]
