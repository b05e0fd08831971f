"""Clean on inline DataFrames: one test per rule, the typed values of a good row, and name normalisation."""

import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from conftest import make_config
from dlspark.cleaning import clean, normalise_name, once_per_value
from dlspark.quarantine import REASON
from dlspark.schemas import INGESTED

CFG = make_config("/unused", "clean.max_quantity=100", "clean.max_unit_price=500")
GOOD = {
    "event_id": "E1",
    "order_id": "O1",
    "customer_id": "C1",
    "product_id": "T1",
    "product_name": " Whole Milk, 1 Litre ",
    "category": " DAIRY ",
    "quantity": "2",
    "unit_price": "1.25",
    "event_time": "05/01/2026 10:00:00",
    "feed": "tills",
    "source_file": "file:/raw/tills/date=2026-01-05/a.csv",
    "date": dt.date(2026, 1, 5),
}


def clean_one(spark, **changes):
    row = {**GOOD, **changes}
    frame = spark.createDataFrame([tuple(row[f] for f in INGESTED.fieldNames())], INGESTED)
    return clean(frame, CFG).first()


def test_a_good_row_gets_typed_and_normalised_values(spark):
    row = clean_one(spark)
    assert row[REASON] is None
    assert (row.quantity, row.unit_price) == (2, Decimal("1.25"))
    assert row.event_time == dt.datetime(2026, 1, 5, 10, 0)
    assert (row.product_name, row.product_name_norm, row.category) == ("Whole Milk, 1 Litre", "whole milk 1l", "dairy")


def test_each_feed_parses_time_with_its_own_format(spark):
    row = clean_one(spark, feed="web", event_time="2026-01-05T10:00:00Z")
    assert row[REASON] is None and row.event_time == dt.datetime(2026, 1, 5, 10, 0)
    assert clean_one(spark, feed="web")[REASON] == "unparseable_time"  # a tills-format time in the web feed


def test_blank_customer_is_kept_as_unknown(spark):
    row = clean_one(spark, customer_id="  ")
    assert row[REASON] is None and row.customer_id is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"event_id": " "}, "missing_event_id"),
        ({"order_id": None}, "missing_order_id"),
        ({"product_id": ""}, "missing_product_id"),
        ({"quantity": None}, "missing_quantity"),
        ({"quantity": "two"}, "non_numeric_quantity"),
        ({"quantity": "1.5"}, "non_integer_quantity"),
        ({"quantity": "0"}, "non_positive_quantity"),
        ({"quantity": "-3"}, "non_positive_quantity"),
        ({"quantity": "101"}, "quantity_too_large"),
        ({"unit_price": ""}, "missing_unit_price"),
        ({"unit_price": "N/A"}, "non_numeric_price"),
        ({"unit_price": "-1.25"}, "negative_price"),
        ({"unit_price": "500.01"}, "price_too_large"),
        ({"event_time": None}, "missing_event_time"),
        ({"event_time": "31/02/2026 25:61:00"}, "unparseable_time"),
        ({"event_time": "yesterday"}, "unparseable_time"),
        ({"order_id": None, "quantity": "two"}, "missing_order_id"),  # the first rule broken is the reason
    ],
)
def test_a_row_breaking_a_rule_is_tagged_with_that_rule(spark, changes, reason):
    row = clean_one(spark, **changes)
    assert row[REASON] == reason
    assert '"event_id"' in row._record  # the quarantine keeps the record's values


def test_a_free_item_is_valid(spark):
    assert clean_one(spark, unit_price="0.00")[REASON] is None


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        ("Greenfield whole milk, 1 litre", "greenfield whole milk 1l"),
        ("GREENFIELD WHOLE MILK 1 L", "greenfield whole milk 1l"),
        ("Greenfield Whole-Milk (1L)", "greenfield whole milk 1l"),
        ("Cola - 1,5 ltr", "cola 1.5l"),
        ("Shampoo, 250ML", "shampoo 250ml"),
        ("Bagels 6-pack", "bagels 6pk"),
        ("Cheddar 400 grams", "cheddar 400g"),
        ("Dog Food 2 kilo", "dog food 2kg"),
        ("Crème brûlée", "creme brulee"),
        ("Mr. Muscle", "mr muscle"),
        ("  ", None),
    ],
)
def test_names_are_normalised_to_one_spelling(spark, name, normalised):
    frame = spark.createDataFrame([(name,)], "name string")
    assert frame.select(normalise_name(F.col("name"))).first()[0] == normalised


@pytest.mark.parametrize("broadcast_limit", [0, 10])  # the distinct names joined back by a shuffle, and broadcast
def test_each_row_gets_the_normal_form_of_its_own_name(spark, broadcast_limit):
    names = ["Milk 1 Litre", "MILK 1L", None, "Crème brûlée", "Milk 1 Litre", "bread"]
    frame = spark.createDataFrame([(i, name) for i, name in enumerate(names)], "i int, name string")
    joined = once_per_value(frame, "name", normalise_name, "norm", broadcast_limit)
    assert joined.count() == len(names)
    assert {r.i: r.norm for r in joined.collect()} == {
        0: "milk 1l",
        1: "milk 1l",
        2: None,
        3: "creme brulee",
        4: "milk 1l",
        5: "bread",
    }
