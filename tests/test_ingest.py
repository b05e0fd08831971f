"""Ingest on small raw files written inline: canonical mapping, lineage, and each kind of unreadable record."""

import datetime as dt
import json
import random

import pyarrow as pa
import pytest
from pyspark import SparkConf

from conftest import make_config
from dlspark.errors import ConfigError, InputError
from dlspark.partitioned import ROW_GROUP_ROWS, DayWriter, refuse_speculation
from dlspark.pipeline import run_stage
from dlspark.schemas import QUARANTINE
from dlspark.stages.ingest import deal

TILLS_HEADER = "line_id,receipt_no,store_id,loyalty_card,plu,description,dept,qty,price,sold_at\n"
GOOD_TILL = "E1,O1,S01,C1,T100,WHOLE MILK 1 L,DAIRY,2,1.20,05/01/2026 10:00:00\n"
GOOD_WEB = {
    "eventId": "E2",
    "orderRef": "O2",
    "customer": "C2",
    "sku": "W200",
    "title": "Bread",
    "category": "Bakery",
    "qty": 1,
    "price": 2.5,
    "ts": "2026-01-05T11:00:00Z",
}


def write_raw(root, tills_lines=(), web_lines=(), day="2026-01-05"):
    tills = root / "raw" / "tills" / f"date={day}"
    web = root / "raw" / "web" / f"date={day}"
    tills.mkdir(parents=True, exist_ok=True)
    web.mkdir(parents=True, exist_ok=True)
    (tills / "part-0000.csv").write_bytes(TILLS_HEADER.encode() + b"".join(tills_lines))
    (web / "part-0000.jsonl").write_bytes(b"".join(web_lines))


def run_ingest(spark, root):
    cfg = make_config(root)
    report = run_stage("ingest", spark, cfg)
    ingested = spark.read.parquet(str(root / "ingested"))
    # with its schema: a quarantine with no rows has no data file to take one from
    quarantine = spark.read.schema(QUARANTINE).parquet(str(root / "quarantine" / "stage=ingest"))
    return report, ingested, quarantine


def test_both_feeds_land_in_the_canonical_schema_with_their_lineage(spark, tmp_path):
    write_raw(tmp_path, [GOOD_TILL.encode()], [json.dumps(GOOD_WEB).encode() + b"\n"])
    report, ingested, quarantine = run_ingest(spark, tmp_path)
    rows = {r.event_id: r for r in ingested.collect()}
    assert set(rows) == {"E1", "E2"}
    till, web = rows["E1"], rows["E2"]
    assert (till.order_id, till.customer_id, till.product_id, till.product_name, till.category) == (
        "O1",
        "C1",
        "T100",
        "WHOLE MILK 1 L",
        "DAIRY",
    )
    assert (till.quantity, till.unit_price, till.event_time) == ("2", "1.20", "05/01/2026 10:00:00")
    assert (web.product_id, web.quantity, web.unit_price, web.event_time) == (
        "W200",
        "1",
        "2.5",
        "2026-01-05T11:00:00Z",
    )
    assert till.feed == "tills" and web.feed == "web"
    assert till.source_file.endswith("raw/tills/date=2026-01-05/part-0000.csv")
    assert str(till.date) == str(web.date) == "2026-01-05"
    assert quarantine.count() == 0
    assert (report.rows_in, report.rows_out, report.quarantined) == (2, 2, {})


@pytest.mark.parametrize(
    ("tills_line", "web_line", "reason"),
    [
        (b"E9,O9,S01,C1,T100,MILK,DAIRY,2,1.20\n", None, "wrong_column_count"),  # a column short
        (b"E9,O9,S01,C1,T100,MILK,DAIRY,2,1.20,05/01/2026 10:00:00,EXTRA\n", None, "wrong_column_count"),
        (b"E9,O9,S01,C1,T100,CR\xe8ME FRA\xeeCHE,DAIRY,2,1.20,05/01/2026 10:00:00\n", None, "invalid_utf8"),
        (None, b'{"eventId": "E9", "orderRef": "O9", "sku": "W1", "qty": 1, "price\n', "invalid_json"),
        (None, b'["E9", "O9"]\n', "not_an_object"),  # an array is JSON, but not one object
        (None, b'{"eventId": "E9", "orderRef": "O9", "sku": "W1", "title": "Cr\xe8me", "qty": 1}\n', "invalid_utf8"),
    ],
)
def test_an_unreadable_record_is_quarantined_with_its_reason_and_text(spark, tmp_path, tills_line, web_line, reason):
    good_web = json.dumps(GOOD_WEB).encode() + b"\n"
    write_raw(
        tmp_path,
        [GOOD_TILL.encode()] + ([tills_line] if tills_line else []),
        [good_web] + ([web_line] if web_line else []),
    )
    report, ingested, quarantine = run_ingest(spark, tmp_path)
    bad = quarantine.collect()
    assert [row.reason for row in bad] == [reason]
    assert "E9" in bad[0].record  # the raw text (or its fields) is kept
    assert bad[0].source_file.endswith(".csv" if tills_line else ".jsonl")
    assert sorted(r.event_id for r in ingested.collect()) == ["E1", "E2"]
    assert (report.rows_in, report.rows_out, report.quarantined_total) == (3, 2, 1)


def test_a_feed_added_by_configuration_alone_is_ingested(spark, tmp_path):
    write_raw(tmp_path, [GOOD_TILL.encode()], [json.dumps(GOOD_WEB).encode() + b"\n"])
    marketplace = tmp_path / "raw" / "marketplace" / "date=2026-01-06"
    marketplace.mkdir(parents=True)
    spark.createDataFrame(
        [("M1", "MO1", "MP-1", "2", "3.00", "2026-01-06 09:30:00")],
        "id string, ord string, item string, units string, amount string, at string",
    ).write.parquet(str(marketplace / "batch"))
    feed = (
        "feeds.marketplace={format: parquet, path: marketplace, time_format: 'yyyy-MM-dd HH:mm:ss', columns: "
        "{event_id: id, order_id: ord, product_id: item, quantity: units, unit_price: amount, event_time: at}}"
    )
    report = run_stage("ingest", spark, make_config(tmp_path, feed))
    rows = spark.read.parquet(str(tmp_path / "ingested")).where("feed = 'marketplace'").collect()
    assert [(r.event_id, r.order_id, r.product_id, r.quantity, r.customer_id, str(r.date)) for r in rows] == [
        ("M1", "MO1", "MP-1", "2", None, "2026-01-06")
    ]
    assert report.details["rows_in.marketplace"] == 1


def test_feeds_with_no_records_at_all_stop_with_a_clear_message(spark, tmp_path):
    write_raw(tmp_path)
    with pytest.raises(InputError, match="no records found"):
        run_stage("ingest", spark, make_config(tmp_path))


def test_a_day_of_only_bad_records_runs_through_every_stage_and_quarantines_them_all(spark, tmp_path):
    from dlspark.pipeline import run_stages

    write_raw(
        tmp_path,
        [b"E9,O9,S01,C1,T100,MILK,DAIRY,2\n", b"E8,O8,S01,C1,T100,MILK,DAIRY,two,1.00,05/01/2026 10:00:00\n"],
        [b"{not json\n"],
    )
    reports = {r.stage: r for r in run_stages(["ingest", "clean", "dedup"], spark, make_config(tmp_path))}
    assert (reports["ingest"].rows_in, reports["ingest"].rows_out, reports["ingest"].quarantined) == (
        3,
        1,
        {"invalid_json": 1, "wrong_column_count": 1},
    )
    assert (reports["clean"].rows_out, reports["clean"].quarantined) == (0, {"non_numeric_quantity": 1})
    assert (reports["dedup"].rows_in, reports["dedup"].rows_out, reports["dedup"].details["source_products"]) == (
        0,
        0,
        0,
    )


def test_files_are_dealt_to_tasks_of_about_equal_bytes():
    """Every file goes to exactly one task, largest first; no task has more bytes than another by more than the
    largest file (the bound of dealing largest first to the emptiest task)."""
    generator = random.Random(3)
    files = [("web", f"/raw/f{i}", generator.choice([1, 10, 1000, 50_000]), None) for i in range(57)]
    tasks = deal(files, 8)
    assert len(tasks) == 8
    assert sorted(f for task in tasks for f in task) == sorted(files)
    loads = [sum(f[2] for f in task) for task in tasks]
    assert max(loads) - min(loads) <= max(f[2] for f in files)
    assert all([f[2] for f in task] == sorted((f[2] for f in task), reverse=True) for task in tasks)
    assert deal(files[:3], 8)[3:] == [[]] * 5  # fewer files than tasks: the rest read nothing


def test_rows_written_in_tasks_read_back_as_if_spark_had_partitioned_them_by_day(spark, tmp_path):
    schema = pa.schema([("source_file", pa.string()), ("n", pa.string())])
    days = ["2026-01-05", None, "2026-01-06", "2026-02-30"]  # no day, an impossible one: Spark's null folder
    many = ROW_GROUP_ROWS // 3 + 1  # four tables of these on one day: a row group written early, the rest at the end
    for task in (0, 1):
        with DayWriter(str(tmp_path), schema, task) as writer:
            small = {"n": [f"{task} {day}" for day in days], "date": days, "source_file": ["f"] * 4}  # any order
            writer.write(pa.table(small))
            writer.write(
                pa.table({"date": pa.array([dt.date(2026, 1, 6)] * 2), "source_file": ["f"] * 2, "n": ["d"] * 2})
            )
            for _ in range(4):
                writer.write(
                    pa.table({"source_file": ["g"] * many, "n": [str(task)] * many, "date": ["2026-01-07"] * many})
                )
    back = spark.read.schema("source_file string, n string, date date").parquet(str(tmp_path))
    got = sorted((r.n, str(r.date)) for r in back.where("source_file = 'f'").collect())
    real = {"2026-01-05", "2026-01-06"}
    expected = [(f"{t} {d}", d if d in real else "None") for t in (0, 1) for d in days] + [("d", "2026-01-06")] * 4
    assert got == sorted(expected)
    counts = back.where("source_file = 'g'").groupBy("n", "date").count().collect()
    assert sorted((r.n, str(r.date), r["count"]) for r in counts) == [(t, "2026-01-07", 4 * many) for t in "01"]


def test_a_folder_named_for_an_impossible_day_gives_rows_without_a_day(spark, tmp_path):
    write_raw(tmp_path, [GOOD_TILL.encode()], [json.dumps(GOOD_WEB).encode() + b"\n"], day="2026-02-30")
    report, ingested, _ = run_ingest(spark, tmp_path)
    assert sorted((r.event_id, r.date) for r in ingested.collect()) == [("E1", None), ("E2", None)]
    assert (report.rows_in, report.rows_out) == (2, 2)


def test_files_written_from_tasks_refuse_speculative_attempts(spark):
    refuse_speculation(spark.sparkContext.getConf(), "ingest")  # the tests' session: off, as by default
    refuse_speculation(SparkConf(loadDefaults=False).set("spark.speculation", "false"), "ingest")
    with pytest.raises(ConfigError, match="spark.speculation=false"):
        refuse_speculation(SparkConf(loadDefaults=False).set("spark.speculation", " True"), "ingest")
