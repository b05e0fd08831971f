"""Mining against mlxtend as an independent oracle, the guard rails, the recommenders, and the planted groups."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlxtend.frequent_patterns import association_rules as mlx_rules
from mlxtend.frequent_patterns import fpgrowth as mlx_fpgrowth

from conftest import make_config
from dlspark.errors import InputError
from dlspark.mining.itemsets import (
    association_rules,
    check_minable,
    frequent_itemsets,
    frequent_itemsets_by_part,
    item_counts,
    itemset_bound,
)
from dlspark.mining.recommend import recommend_from_rules, recommend_popular

MINING = make_config("/unused").mining


def random_baskets(n=500, items=14, seed=5):
    """Baskets with skewed item popularity and two planted pairs, so rules of every strength exist."""
    rng = np.random.default_rng(seed)
    weights = 0.6 / (np.arange(items) + 1) ** 0.5
    baskets = []
    for _ in range(n):
        chosen = {f"p{j:02d}" for j in range(items) if rng.random() < weights[j]}
        if "p01" in chosen and rng.random() < 0.7:
            chosen.add("p09")
        if "p03" in chosen:
            chosen.add("p11")  # p03 -> p11 always: confidence 1, conviction infinite
        baskets.append(sorted(chosen))
    return baskets


def spark_baskets(spark, baskets):
    return spark.createDataFrame([(f"o{i}", b) for i, b in enumerate(baskets)], "order_id string, items array<string>")


def oracle(baskets, min_support, min_confidence):
    items = sorted({i for b in baskets for i in b})
    onehot = pd.DataFrame([[i in b for i in items] for b in baskets], columns=items)
    itemsets = mlx_fpgrowth(onehot, min_support=min_support, use_colnames=True)
    rules = mlx_rules(itemsets, metric="confidence", min_threshold=min_confidence)
    rules = rules[rules["consequents"].apply(len) == 1]  # Spark's rules have one-item consequents
    return itemsets, rules


@pytest.fixture(scope="module", params=["pfp", "spark"])
def mined(spark, request):
    baskets = random_baskets()
    cfg = MINING.model_copy(
        update={"engine": request.param, "min_support": 0.04, "min_confidence": 0.3, "max_itemset_length": 14}
    )
    frame = spark_baskets(spark, baskets)
    itemsets = frequent_itemsets(frame, item_counts(frame), cfg, len(baskets)).cache()
    rules = association_rules(itemsets, cfg.min_confidence)
    return baskets, cfg, itemsets.collect(), rules.collect()


def test_itemsets_and_supports_equal_mlxtend(mined):
    baskets, cfg, itemsets, _ = mined
    expected, _ = oracle(baskets, cfg.min_support, cfg.min_confidence)
    ours = {frozenset(r["items"]): r["support"] for r in itemsets}
    theirs = dict(zip(expected["itemsets"], expected["support"], strict=True))
    assert len(ours) > 50 and any(len(s) >= 3 for s in ours)
    assert ours.keys() == theirs.keys()
    for itemset, support in theirs.items():
        assert ours[itemset] == pytest.approx(support, abs=1e-12)
    assert all(r["count"] == round(r["support"] * len(baskets)) for r in itemsets)


def test_rules_and_all_their_metrics_equal_mlxtend(mined):
    baskets, cfg, _, rules = mined
    _, expected = oracle(baskets, cfg.min_support, cfg.min_confidence)
    ours = {(frozenset(r["antecedent"]), r["consequent"][0]): r for r in rules}
    theirs = {
        (a, next(iter(c))): row
        for a, c, row in zip(expected["antecedents"], expected["consequents"], expected.itertuples(), strict=True)
    }
    assert len(ours) > 30
    assert ours.keys() == theirs.keys()
    for key, row in theirs.items():
        rule = ours[key]
        for metric in ("support", "confidence", "lift", "leverage"):
            assert rule[metric] == pytest.approx(getattr(row, metric), rel=1e-9, abs=1e-12), (key, metric)
        if math.isinf(row.conviction):
            assert math.isinf(rule["conviction"]) and rule["confidence"] == 1.0
        else:
            assert rule["conviction"] == pytest.approx(row.conviction, rel=1e-9), key
    assert math.isinf(ours[(frozenset({"p03"}), "p11")]["conviction"])


def test_a_length_cap_keeps_the_supports_of_what_it_keeps(spark, mined):
    baskets, cfg, itemsets, _ = mined
    frame = spark_baskets(spark, baskets)
    capped = frequent_itemsets(
        frame, item_counts(frame), cfg.model_copy(update={"max_itemset_length": 2}), len(baskets)
    ).collect()
    full = {frozenset(r["items"]): r["count"] for r in itemsets}
    assert {frozenset(r["items"]): r["count"] for r in capped} == {s: c for s, c in full.items() if len(s) <= 2}


def test_the_itemset_bound_is_an_upper_bound(spark, mined):
    baskets, cfg, itemsets, _ = mined
    min_count = math.ceil(cfg.min_support * len(baskets))
    frame = spark_baskets(spark, baskets)
    bound, frequent, _ = itemset_bound(frame, item_counts(frame), min_count, cfg.max_itemset_length)
    assert bound >= len(itemsets)
    assert frequent == sum(1 for r in itemsets if len(r["items"]) == 1)


def test_an_exploding_support_is_refused_before_mining_with_what_to_change(spark):
    dense = spark_baskets(spark, [[f"p{j}" for j in range(12)] for _ in range(50)])
    cfg = MINING.model_copy(update={"min_support": 0.01, "max_itemsets": 1000})
    with pytest.raises(InputError, match=r"mining\.min_support=0\.01 could give up to [\d,]+ frequent itemsets") as err:
        check_minable(dense, item_counts(dense), cfg)
    assert "mining.max_itemsets" in str(err.value) and "mining.max_itemset_length" in str(err.value)


def test_no_baskets_or_only_single_item_baskets_are_refused(spark):
    empty = spark.createDataFrame([], "order_id string, items array<string>")
    with pytest.raises(InputError, match="no orders to mine"):
        check_minable(empty, item_counts(empty), MINING)
    with pytest.raises(InputError, match="all 3 baskets hold a single product"):
        singles = spark_baskets(spark, [["a"], ["b"], ["a"]])
        check_minable(singles, item_counts(singles), MINING)


@pytest.mark.parametrize("engine", ["pfp", "spark"])
def test_parts_mined_in_one_pass_equal_each_part_mined_alone(spark, engine):
    """Overlapping parts (a basket in several is a row in each), as the shards' out-of-fold rule sets are mined."""
    baskets = random_baskets(n=600, seed=11)
    cfg = MINING.model_copy(update={"engine": engine, "min_support": 0.05, "min_confidence": 0.3})
    parts = {0: baskets[:400], 1: baskets[200:], 2: baskets[::3]}  # different sizes, so different minimum counts
    rows = [(f"o{i}", part, b) for part, chosen in parts.items() for i, b in enumerate(chosen)]
    frame = spark.createDataFrame(rows, "order_id string, part int, items array<string>")
    sizes = {part: len(chosen) for part, chosen in parts.items()}
    together = frequent_itemsets_by_part(frame, item_counts(frame, by=["part"]), cfg, sizes).cache()
    rules_together = association_rules(together, cfg.min_confidence, by=["part"]).collect()
    for part, chosen in parts.items():
        alone = spark_baskets(spark, chosen)
        itemsets = frequent_itemsets(alone, item_counts(alone), cfg, len(chosen)).cache()
        expected = {(tuple(r["items"]), r["count"], r["support"]) for r in itemsets.collect()}
        got = {(tuple(r["items"]), r["count"], r["support"]) for r in together.where(f"part = {part}").collect()}
        assert len(expected) > 20 and got == expected, part
        rules = {rule_values(r) for r in rules_together if r.part == part}
        assert len(rules) > 10
        assert rules == {rule_values(r) for r in association_rules(itemsets, cfg.min_confidence).collect()}


def rule_values(rule):
    return tuple(tuple(v) if isinstance(v, list) else v for k, v in rule.asDict().items() if k != "part")


def test_the_rule_recommender_keeps_each_basket_to_the_rules_of_its_part(spark):
    rules = spark.createDataFrame(
        [(0, ["a"], ["x"], 0.5, 2.0), (1, ["a"], ["y"], 0.6, 2.0), (1, ["b"], ["z"], 0.6, 2.0)],
        "part int, antecedent array<string>, consequent array<string>, confidence double, lift double",
    )
    baskets = spark.createDataFrame(
        [("o0", 0, ["a", "b"]), ("o1", 1, ["a", "b"]), ("o2", 2, ["a"])],
        "order_id string, part int, items array<string>",
    )
    got = {r.order_id: r.recommended for r in recommend_from_rules(baskets, rules, k=3, by=["part"]).collect()}
    assert got == {"o0": ["x"], "o1": ["z", "y"], "o2": []}


def test_the_rule_recommender_ranks_by_confidence_then_lift_and_skips_what_is_in_the_basket(spark):
    rules = spark.createDataFrame(
        [
            (["a"], ["x"], 0.5, 2.0),
            (["a"], ["y"], 0.5, 3.0),  # same confidence, higher lift: before x
            (["a", "b"], ["z"], 0.9, 1.5),  # needs a and b
            (["b"], ["a"], 0.95, 1.1),  # a is in the first basket already
            (["c"], ["x"], 0.7, 1.2),  # x offered twice to basket 2: its best confidence counts
        ],
        "antecedent array<string>, consequent array<string>, confidence double, lift double",
    )
    baskets = spark_baskets(spark, [["a", "b"], ["a", "c"], ["q"]])
    got = {r.order_id: r.recommended for r in recommend_from_rules(baskets, rules, k=3).collect()}
    assert got == {"o0": ["z", "y", "x"], "o1": ["x", "y"], "o2": []}


def test_the_popularity_baseline_recommends_the_most_popular_products_not_in_the_basket(spark):
    popularity = spark.createDataFrame([("a", 9), ("b", 7), ("c", 5), ("d", 1)], "item string, count long")
    baskets = spark_baskets(spark, [["a"], ["b", "c"], []])
    got = {r.order_id: r.recommended for r in recommend_popular(baskets, popularity, k=2).collect()}
    assert got == {"o0": ["b", "c"], "o1": ["a", "d"], "o2": ["a", "b"]}


def test_the_planted_groups_are_found_as_frequent_itemsets(spark, demo):
    cfg, reports = demo
    root = Path(cfg.data.root)
    true_of = {
        row["product_id"]: row["true_product_id"] for row in csv.DictReader((root / "truth/products.csv").open())
    }
    canonical_of_true = {}
    for row in spark.read.parquet(str(root / "products")).collect():  # each true product's canonical id
        canonical_of_true.setdefault(true_of[row.product_id], set()).add(row.canonical_product_id)
    itemsets = {frozenset(r["items"]) for r in spark.read.parquet(str(root / "mining" / "itemsets")).collect()}
    groups = json.loads((root / "truth" / "planted.json").read_text())["groups"]
    assert groups
    for group in groups:
        members = [canonical_of_true[p] for p in group["true_product_ids"]]
        assert all(len(ids) == 1 for ids in members), group  # each product resolved to one canonical id
        assert frozenset(next(iter(ids)) for ids in members) in itemsets, group["names"]
    assert reports["mine"].details["top_rules"][0]["lift"] > 5


def test_the_window_keeps_the_last_days_up_to_the_end_date(spark):
    import datetime as dt

    from dlspark.mining.itemsets import select_window

    events = spark.createDataFrame([(dt.date(2026, 1, d),) for d in range(1, 11)], "date date")
    kept, start, end = select_window(events, 3)
    assert (start, end) == (dt.date(2026, 1, 8), dt.date(2026, 1, 10))
    assert sorted(r.date.day for r in kept.collect()) == [8, 9, 10]
    kept, start, end = select_window(events, 3, dt.date(2026, 1, 5))
    assert sorted(r.date.day for r in kept.collect()) == [3, 4, 5]
    assert select_window(events, None)[0].count() == 10
