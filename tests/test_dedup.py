"""Dedup on inline DataFrames: replay removal, product resolution and its connected components."""

import datetime as dt
import random
from decimal import Decimal

import pytest

from conftest import make_config
from dlspark.pipeline import run_stage
from dlspark.schemas import CLEAN
from dlspark.stages.dedup import (
    components_on_driver,
    connected_components,
    drop_replayed_events,
    replayed_events,
    resolve_products,
    similar_names,
    similar_names_by_spark,
)

DEDUP = make_config("/unused").dedup
T = dt.datetime(2026, 1, 5, 10, 0)


def line(event_id, date, feed="tills", source="a.csv", quantity=1, product="T1"):
    return (
        event_id,
        "O1",
        "C1",
        product,
        "Milk 1L",
        "milk 1l",
        "dairy",
        quantity,
        Decimal("1.00"),
        T,
        feed,
        source,
        date,
    )


@pytest.mark.parametrize("broadcast_limit", [0, 10])  # the replayed ids joined by a shuffle, and broadcast
def test_a_replay_keeps_its_earliest_delivery(spark, broadcast_limit):
    clean = spark.createDataFrame(
        [
            line("E1", dt.date(2026, 1, 6), feed="tills"),
            line("E1", dt.date(2026, 1, 5), feed="web", source="w.jsonl"),  # the earliest day wins
            line("E1", dt.date(2026, 1, 5), feed="tills", source="b.csv"),  # same day: feed, then file, decide
            line("E2", dt.date(2026, 1, 5)),
        ],
        CLEAN,
    )
    firsts = {r.event_id: r for r in drop_replayed_events(clean, replayed_events(clean, broadcast_limit)).collect()}
    assert set(firsts) == {"E1", "E2"}
    assert (firsts["E1"].feed, firsts["E1"].source_file, firsts["E1"].deliveries) == ("tills", "b.csv", 3)
    assert (firsts["E2"].deliveries, firsts["E1"].conflicting) == (1, False)


def test_a_replay_whose_copies_disagree_is_counted_as_conflicting(spark):
    clean = spark.createDataFrame(
        [line("E1", dt.date(2026, 1, 5), quantity=1), line("E1", dt.date(2026, 1, 5), source="z.csv", quantity=3)],
        CLEAN,
    )
    (only,) = drop_replayed_events(clean, replayed_events(clean)).collect()
    assert (only.quantity, only.deliveries, only.conflicting) == (1, 2, True)


def products(spark, rows):
    return spark.createDataFrame(
        [(pid, name, norm, category, events) for pid, name, norm, category, events in rows],
        "product_id string, product_name string, product_name_norm string, category string, events long",
    )


def canonical(resolved):
    return {r.product_id: r.canonical_product_id for r in resolved.collect()}


@pytest.mark.parametrize(("driver_pairs", "found_on"), [(1000, "driver"), (0, "spark")])
def test_spelling_variants_and_typos_merge_but_other_products_do_not(spark, driver_pairs, found_on):
    rows = [
        ("T1", "GREENFIELD WHOLE MILK 1 L", "greenfield whole milk 1l", "dairy", 10),
        ("W1", "Greenfield whole milk, 1 litre", "greenfield whole milk 1l", "dairy", 30),
        ("W2", "Greenfeild Whole Milk 1L", "greenfeild whole milk 1l", "dairy", 2),  # typo
        ("T2", "GREENFIELD WHOLE MILK 2 L", "greenfield whole milk 2l", "dairy", 5),  # another size
        ("T3", "GREENFIELD ORGANIC WHOLE MILK 1L", "greenfield organic whole milk 1l", "dairy", 5),  # another line
        ("T4", "NORTHWIND WHOLE MILK 1L", "northwind whole milk 1l", "dairy", 5),  # another brand
        ("T5", "GREENFIELD WHOLE MILK 1L", "greenfield whole milk 1l", "frozen", 1),  # another category
        ("T6", None, None, "dairy", 1),  # no name: stays alone
    ]
    cfg = DEDUP.model_copy(update={"driver_components_pairs": driver_pairs})
    resolved, stats = resolve_products(products(spark, rows), cfg)
    ids = canonical(resolved)
    assert ids == {"T1": "T1", "W1": "T1", "W2": "T1", "T2": "T2", "T3": "T3", "T4": "T4", "T5": "T5", "T6": "T6"}
    names = {r.product_id: r.canonical_name for r in resolved.collect()}
    assert names["W2"] == "Greenfield whole milk, 1 litre"  # the name of the best-selling member
    assert stats["components_found_on"] == found_on
    assert stats.get("components_converged", True) is True


def random_names(rng, count):
    """Product names built to collide: variants of a few names (typos, a word more, another size, accents, a letter
    outside the Basic Multilingual Plane, a Cyrillic look-alike), some in two blocks."""
    bases = ["greenfield whole milk", "brown bread", "café latte", "oat drink", "x", "𠀀 tea", "orgаnic eggs"]
    sizes = ["1l", "2l", "500g", "0.5kg", "1.5l", "12", ""]
    names = set()
    while len(names) < count:
        words = rng.choice(bases).split()
        if rng.random() < 0.5:  # a typo: two letters swapped
            w = rng.randrange(len(words))
            i = rng.randrange(max(1, len(words[w]) - 1))
            words[w] = words[w][:i] + words[w][i + 1 : i + 2] + words[w][i : i + 1] + words[w][i + 2 :]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(["organic", "fresh", "é"]))
        name = " ".join([*words, rng.choice(sizes)]).strip()
        names.add((rng.choice(["dairy", "bakery"]), name))
    return [(f"{block}\u0001{name}", block, name) for block, name in sorted(names)]


@pytest.mark.parametrize(
    ("seed", "settings"),
    [
        (1, {}),
        (2, {"shingle_size": 2, "rows_per_band": 1, "bands": 8}),
        (3, {"shingle_size": 4, "rows_per_band": 3, "same_sizes": False, "max_word_edits": 1, "bands": 24}),
        (4, {"min_similarity": 0.3, "seed": 99}),
    ],
)
def test_similar_names_found_on_the_driver_equal_the_spark_jobs(spark, seed, settings):
    cfg = DEDUP.model_copy(update=settings)
    rows = random_names(random.Random(seed), 200)
    names = spark.createDataFrame(rows, "key string, block string, product_name_norm string")
    by_spark = {(r.key_a, r.key_b): r.similarity for r in similar_names_by_spark(names, cfg).collect()}
    on_driver, found_on = similar_names(names, cfg)
    assert found_on == "driver"
    assert {(r.key_a, r.key_b): r.similarity for r in on_driver.collect()} == by_spark
    assert len(by_spark) >= 10  # the names were built to collide: the comparison is not of two empty sets
    too_many = similar_names(names, cfg.model_copy(update={"driver_names": len(rows) - 1}))
    assert too_many[1] == "spark"


def test_blocking_by_category_can_be_switched_off(spark):
    rows = [
        ("T1", "Milk 1L", "greenfield whole milk 1l", "dairy", 1),
        ("T5", "Milk 1L", "greenfield whole milk 1l", "frozen", 1),
    ]
    off = DEDUP.model_copy(update={"same_category": False})
    assert canonical(resolve_products(products(spark, rows), off)[0]) == {"T1": "T1", "T5": "T1"}


def test_connected_components_label_each_vertex_with_its_smallest_member(spark):
    vertices = spark.createDataFrame([(k,) for k in "abcdefg"], "key string")
    edges = spark.createDataFrame(
        [("d", "e"), ("c", "d"), ("b", "c"), ("a", "b"), ("f", "g")], "key_a string, key_b string"
    )
    labels, rounds, converged = connected_components(vertices, edges, max_iterations=20)
    assert {r.key: r.component for r in labels.collect()} == {
        "a": "a",
        "b": "a",
        "c": "a",
        "d": "a",
        "e": "a",
        "f": "f",
        "g": "f",
    }
    assert converged and rounds >= 4  # a chain of five needs several rounds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_components_found_on_the_driver_equal_the_spark_rounds(spark, seed):
    rng = random.Random(seed)
    blocks, names = ["dairy", "bakery", ""], ["milk", "Milk", "é", "z"]
    keys = [f"{rng.choice(blocks)}\u0001{rng.choice(names)}{i}" for i in range(60)]
    edges = {tuple(sorted(rng.sample(keys, 2))) for _ in range(rng.randint(0, 70))}
    vertices = spark.createDataFrame([(k,) for k in keys], "key string")
    edge_frame = spark.createDataFrame(sorted(edges), "key_a string, key_b string")
    on_driver = {r.key: r.component for r in components_on_driver(vertices, edge_frame).collect()}
    by_rounds, _, converged = connected_components(vertices, edge_frame, max_iterations=100)
    assert converged
    assert on_driver == {r.key: r.component for r in by_rounds.collect()}
    assert len(on_driver) == len(keys)


def test_components_on_the_driver_without_edges_leave_every_vertex_alone(spark):
    vertices = spark.createDataFrame([("b",), ("a",)], "key string")
    edges = spark.createDataFrame([], "key_a string, key_b string")
    assert {r.key: r.component for r in components_on_driver(vertices, edges).collect()} == {"a": "a", "b": "b"}


def test_connected_components_report_when_they_stop_before_converging(spark):
    vertices = spark.createDataFrame([(k,) for k in "abcde"], "key string")
    edges = spark.createDataFrame([("d", "e"), ("c", "d"), ("b", "c"), ("a", "b")], "key_a string, key_b string")
    _, rounds, converged = connected_components(vertices, edges, max_iterations=1)
    assert (rounds, converged) == (1, False)


def test_a_daily_run_removes_an_event_first_delivered_on_an_earlier_day(spark, tmp_path):
    """Day 2 holds a new event, a replay of day 1's event, and a same-day replay of that replay: one event out,
    two replays removed, one of them counted as a replay of an earlier day."""
    day1, day2 = dt.date(2026, 1, 5), dt.date(2026, 1, 6)
    rows = [line("E1", day1), line("E1", day2, source="b.csv"), line("E1", day2, source="c.csv"), line("E2", day2)]
    spark.createDataFrame(rows, CLEAN).write.partitionBy("date").parquet(str(tmp_path / "clean"))
    run_stage("dedup", spark, make_config(tmp_path, f"data.date={day1}"))
    report = run_stage("dedup", spark, make_config(tmp_path, f"data.date={day2}"))
    assert (report.rows_in, report.rows_out) == (3, 1)
    assert report.removed == {"replays": 1, "replays_of_earlier_days": 1}
    events = spark.read.parquet(str(tmp_path / "events")).select("event_id", "date").collect()
    assert sorted((r.event_id, r.date) for r in events) == [("E1", day1), ("E2", day2)]
