"""Hostile raw files, one case per file, all read by one ingest and clean: each file's exact outcome, and the
accounting (records in the file = rows kept + rows quarantined) for every one of them."""

import bz2
import codecs
import csv
import datetime as dt
import decimal
import gzip
import io
import json
import lzma
import random
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ansi_mode, make_config
from dlspark.rawfiles import (
    WHITESPACE,
    FileSummary,
    clean_column,
    clean_text,
    csv_fields,
    csv_records,
    decoded,
    json_value,
    pieces,
)
from dlspark.schemas import QUARANTINE

DAY = "2026-01-05"
HEADER = ["line_id", "receipt_no", "store_id", "loyalty_card", "plu", "description", "dept", "qty", "price", "sold_at"]


def till(event_id, name="WHOLE MILK 1 L", qty="2", time="05/01/2026 10:00:00", plu="T100", header=HEADER, price="1.20"):
    values = dict(zip(HEADER, [event_id, "O1", "S01", "C1", plu, name, "DAIRY", qty, price, time], strict=True))
    return [values[name] for name in header]


def csv_text(*rows, header=HEADER, newline="\n"):
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows([header, *rows])
    return out.getvalue()


def web(event_id, **changes):
    obj = {"eventId": event_id, "orderRef": "O2", "sku": "W200", "title": "Bread", "qty": 1, "price": 2.5}
    return json.dumps({**obj, "ts": "2026-01-05T11:00:00Z", **changes})


T = dt.datetime(2026, 1, 5, 9, 30)
PLUS_ONE = dt.timezone(dt.timedelta(hours=1))  # a time zone one hour east of UTC, as Paris in winter


def zipped(**files):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def market(prefix, int96=False, **columns):
    """A Parquet file of the marketplace feed: two rows of typed columns (ids, int32 units, double amount, a
    timestamp without a time zone), `columns` replacing some of them."""
    at = [T] * 2
    table = {"id": [f"{prefix}1", f"{prefix}2"], "ord": ["MO1", "MO1"], "item": ["M100", "M200"]}
    table |= {"units": pa.array([2, 3], pa.int32()), "amount": [2.5, 1.25], "at": pa.array(at, pa.timestamp("us"))}
    out = io.BytesIO()
    pq.write_table(pa.table(table | columns), out, use_deprecated_int96_timestamps=int96)
    return out.getvalue()


REORDERED = [
    "price",
    "plu",
    "receipt_no",
    "sold_at",
    "line_id",
    "qty",
    "dept",
    "description",
    "loyalty_card",
    "store_id",
]
MARKETPLACE = (
    "feeds.marketplace={format: parquet, path: marketplace, time_format: 'yyyy-MM-dd HH:mm:ss', columns: "
    "{event_id: id, order_id: ord, product_id: item, quantity: units, unit_price: amount, event_time: at}}"
)

BIG = csv_text(*[till(f"Z{i}") for i in range(30_000)])  # about 2 MB of text: over the limit the fixture sets (1 MB)

# file name -> (feed, bytes, rows kept after clean, {reason: rows quarantined})
CASES = {
    "too_large.csv": ("tills", BIG, 0, {"file_too_large": 1}),
    "too_large_inside.csv.gz": ("tills", gzip.compress(BIG.encode()), 0, {"file_too_large": 1}),
    "too_large_inside.zip": ("tills", zipped(**{"export.csv": BIG}), 0, {"file_too_large": 1}),
    "quoted_newline.csv": ("tills", csv_text(till("A1", 'MILK\nSEMI, "SKIM"'), till("A2")), 2, {}),
    "reordered_header.csv": ("tills", csv_text(till("B1", header=REORDERED), header=REORDERED), 1, {}),
    "extra_column.csv": ("tills", csv_text([*till("C1"), "x"], header=[*HEADER, "promo"]), 1, {}),
    "missing_required_column.csv": (
        "tills",
        csv_text(till("D1")[:4] + till("D1")[5:], till("D2")[:4] + till("D2")[5:], header=HEADER[:4] + HEADER[5:]),
        0,
        {"missing_column": 2},
    ),
    "duplicate_column.csv": (
        "tills",
        csv_text([*till("E1"), "T9"], header=[*HEADER, "plu"]),
        0,
        {"duplicate_column": 1},
    ),
    "repeated_unmapped_columns.csv": (
        "tills",
        csv_text([*till("E2"), "a", "b", "", ""], header=[*HEADER, "note", "note", "", ""]),
        1,
        {},
    ),
    "latin1_extra_column.csv": (
        "tills",
        csv_text([*till("E3"), "x"], header=[*HEADER, "d\u00e9signation"]).encode("latin-1"),
        1,
        {},
    ),
    "utf16_with_bom.csv": ("tills", csv_text(till("F1")).encode("utf-16"), 1, {}),
    "utf16_without_bom.csv": ("tills", csv_text(till("G1")).encode("utf-16-le"), 0, {"wrong_encoding": 3}),
    "utf8_bom.csv": ("tills", codecs.BOM_UTF8 + csv_text(till("H1")).encode(), 1, {}),
    "crlf.csv": ("tills", csv_text(till("I1"), till("I2"), newline="\r\n"), 2, {}),
    "blank_lines.csv": ("tills", csv_text(till("J1")) + "\n\n" + ",".join(till("J2")) + "\n\n", 2, {}),
    "unterminated_quote.csv": (
        "tills",
        csv_text(till("K1")) + 'K2,O1,S01,C1,T100,"OPEN QUOTE,DAIRY,1\n',
        1,
        {"unterminated_quote": 1},
    ),
    "inch_mark.csv": ("tills", csv_text(till("L1", '12" PIZZA')), 1, {}),
    "year_0001.csv": (
        "tills",
        csv_text(till("M1", time="05/01/0001 10:00:00"), till("M2")),
        1,
        {"time_out_of_range": 1},
    ),
    "year_2150.csv": ("tills", csv_text(till("M3", time="05/01/2150 10:00:00")), 0, {"time_out_of_range": 1}),
    "unicode_whitespace.csv": ("tills", csv_text(till("\u00a0N1\t", plu="\u3000T100\u2003")), 1, {}),
    "huge_quantity.csv": (
        "tills",
        csv_text(till("P1", qty="1e308"), till("P2", qty="-1e308")),
        0,
        {"quantity_too_large": 1, "non_positive_quantity": 1},
    ),
    # values past every type's range, which a plain cast refuses under ANSI mode (the default from Spark 4.0)
    "extreme_values.csv": (
        "tills",
        csv_text(
            till("X1", qty="1e308"),
            till("X2", price="1e20"),
            till("X3", price="1e308"),
            till("X4", time="01/01/0001 00:00:00"),
            till("X5", qty="99999999999999999999"),
            till("X6", price="12345678901.999"),
            till("X7"),
        ),
        1,
        {"quantity_too_large": 2, "price_too_large": 3, "time_out_of_range": 1},
    ),
    "extreme_values.jsonl": (
        "web",
        "\n".join(
            [
                web("XJ1", qty=1e308),
                web("XJ2", price=1e20),
                web("XJ3", ts="0001-01-01T00:00:00Z"),
                web("XJ4", qty=10**30, price=-(10**30)),
                web("XJ5"),
            ]
        ),
        1,
        {"quantity_too_large": 2, "price_too_large": 1, "time_out_of_range": 1},
    ),
    "extreme_values.parquet": (
        "marketplace",
        market("PX", amount=[1e20, 2.5], at=pa.array([T, dt.datetime(1, 1, 1)], pa.timestamp("us"))),
        0,
        {"price_too_large": 1, "time_out_of_range": 1},
    ),
    "extreme_units.parquet": ("marketplace", market("PU", units=pa.array([2**62, 2])), 1, {"quantity_too_large": 1}),
    "latin1.csv": ("tills", csv_text(till("Q1", "CR\u00c8ME")).encode("latin-1"), 0, {"invalid_utf8": 1}),
    "nul_in_a_record.csv": ("tills", csv_text(till("R1", "MI\x00LK"), till("R2")), 1, {"unparseable_record": 1}),
    "gzipped.csv.gz": ("tills", gzip.compress(csv_text(till("S1")).encode()), 1, {}),
    "cut_short.csv.gz": ("tills", gzip.compress(csv_text(till("S2")).encode() * 40)[:60], 0, {"corrupt_archive": 1}),
    "gzip_named_csv.csv": ("tills", gzip.compress(csv_text(till("S3")).encode()), 1, {}),
    "bzip2.csv.bz2": ("tills", bz2.compress(csv_text(till("S4")).encode()), 1, {}),
    "xz.csv.xz": ("tills", lzma.compress(csv_text(till("S5")).encode()), 1, {}),
    "zstd.csv.zst": ("tills", pa.Codec("zstd").compress(csv_text(till("S6")).encode(), asbytes=True), 1, {}),
    "one_file.zip": ("tills", zipped(**{"export.csv": csv_text(till("S7"), till("S8"))}), 2, {}),
    "two_files.zip": ("tills", zipped(a=csv_text(till("S9")), b=csv_text(till("S10"))), 0, {"corrupt_archive": 1}),
    "plain_text.csv.gz": ("tills", csv_text(till("S11")), 0, {"corrupt_archive": 1}),
    "name:with:colons.csv": ("tills", csv_text(till("T1")), 1, {}),
    "empty.csv": ("tills", b"", 0, {}),
    "empty.csv.gz": ("tills", b"", 0, {}),
    "header_only.csv": ("tills", csv_text(), 0, {}),
    "array_line.jsonl": ("web", "[]\n" + web("U1") + "\n", 1, {"not_an_object": 1}),
    "array_of_objects.jsonl": ("web", f"[{web('U2')}, {web('U3')}]\n", 0, {"not_an_object": 1}),
    "scalar_line.jsonl": ("web", "42\n", 0, {"not_an_object": 1}),
    "two_objects.jsonl": ("web", f"{web('V1')} {web('V2')}\n", 0, {"several_values": 1}),
    "trailing_garbage.jsonl": ("web", f"{web('V3')} oops\n", 0, {"trailing_garbage": 1}),
    "duplicate_key.jsonl": ("web", web("V4")[:-1] + ', "sku": "W999"}\n', 0, {"duplicate_key": 1}),
    "nested_value.jsonl": ("web", web("V5", sku={"id": "W200"}) + "\n", 0, {"nested_value": 1}),
    "nested_unmapped.jsonl": ("web", web("V6", channel={"app": "ios"}) + "\n", 1, {}),
    "numbers_as_strings.jsonl": ("web", web("W1", qty="3", price="1.50") + "\n", 1, {}),
    "not_a_number.jsonl": ("web", web("W2").replace('"price": 2.5', '"price": NaN') + "\n", 0, {"invalid_json": 1}),
    "lone_surrogate.jsonl": (
        "web",
        web("W3").replace('"Bread"', '"Br\\ud800ead"').replace('"W200"', '"W\\udc00"') + "\n",
        0,
        {"invalid_json": 1},
    ),
    "deep_nesting.jsonl": (
        "web",
        web("W9")[:-1] + ', "extra": ' + "[" * 50_000 + "]" * 50_000 + "}\n" + web("W10") + "\n",
        1,
        {"too_deeply_nested": 1},
    ),
    "crlf_and_blank.jsonl": ("web", f"{web('W4')}\r\n\r\n   \n{web('W5')}\r\n", 2, {}),
    "no_final_newline.jsonl": ("web", web("W6"), 1, {}),
    "broken_json.jsonl": ("web", web("W7")[:-5] + "\n", 0, {"invalid_json": 1}),
    "utf16_with_bom.jsonl": ("web", (web("W8") + "\n").encode("utf-16"), 1, {}),
    "not_parquet.parquet": ("marketplace", b"PAR1 this is not a parquet file PAR1", 0, {"unreadable_parquet": 1}),
    "typed_columns.parquet": ("marketplace", market("PY"), 2, {}),
    "zoned_times.parquet": (
        "marketplace",
        market("PZ", at=pa.array([T.replace(tzinfo=PLUS_ONE)] * 2, pa.timestamp("ns", tz="+01:00"))),
        2,
        {},
    ),
    "int96_times.parquet": ("marketplace", market("PI", int96=True), 2, {}),
    "date_times.parquet": ("marketplace", market("PD", at=[dt.date(2026, 1, 5)] * 2), 2, {}),
    "decimal_and_int64.parquet": (
        "marketplace",
        market("PX", amount=pa.array(map(decimal.Decimal, "23"), pa.decimal128(12, 2)), units=pa.array([4, 5])),
        2,
        {},
    ),
    "binary_ids.parquet": ("marketplace", market("PB", item=pa.array([b"M1", b"M\xff"])), 1, {"invalid_utf8": 1}),
    "struct_id.parquet": (
        "marketplace",
        market("PS", item=[{"sku": "M1"}, None]),
        0,
        {"nested_value": 1, "missing_product_id": 1},
    ),
    "list_units.parquet": ("marketplace", market("PL", units=[[1], [2, 3]]), 0, {"nested_value": 2}),
    "text_times.parquet": (
        "marketplace",
        market("PT", at=["2026-01-05T09:30:00.25Z", "05/01/2026 09:30"]),
        1,
        {"unparseable_time": 1},
    ),
}


def write_case(root, name, feed, data):
    folder = root / "raw" / feed / f"date={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)


@pytest.fixture(scope="module", params=[True, False], ids=["ansi-on", "ansi-off"])
def hostile(spark, tmp_path_factory, request):
    """Every case's file in one data root (with a Parquet feed), through ingest and clean, with Spark's ANSI SQL mode
    on (Spark 4's default) and off (3.5's), as a user's cluster may set it: (root, reports)."""
    from dlspark.pipeline import run_stages

    root = tmp_path_factory.mktemp("hostile")
    for name, (feed, data, _, _) in CASES.items():
        write_case(root, name, feed, data)
    marketplace = root / "raw" / "marketplace" / f"date={DAY}"
    spark.createDataFrame(  # a Parquet file without the column mapped to the product id
        [("M1", "MO1", "2", "3.00", "2026-01-05 09:30:00")],
        "id string, ord string, units string, amount string, at string",
    ).coalesce(1).write.parquet(str(marketplace / "no_item_column"))
    cfg = make_config(root, MARKETPLACE, "ingest.max_file_mb=1")
    with ansi_mode(spark, request.param):
        reports = {r.stage: r for r in run_stages(["ingest", "clean"], spark, cfg)}
    return root, reports


def outcome(spark, root, name):
    """(rows of the file in clean/, {reason: rows quarantined by ingest or clean})."""
    ends = f"/{name}"
    kept = spark.read.parquet(str(root / "clean")).where(f"source_file LIKE '%{ends}'").count()
    quarantined = spark.read.schema(QUARANTINE).parquet(str(root / "quarantine")).where(f"source_file LIKE '%{ends}'")
    reasons = {row.reason: row["count"] for row in quarantined.groupBy("reason").count().collect()}
    return kept, reasons


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_hostile_file_is_read_as_a_careful_user_expects(spark, hostile, name):
    root, _ = hostile
    _, _, kept, reasons = CASES[name]
    assert outcome(spark, root, name) == (kept, reasons)


def test_every_record_of_every_file_is_accounted_for(spark, hostile):
    root, reports = hostile
    ingest, clean = reports["ingest"], reports["clean"]
    expected = sum(kept + sum(reasons.values()) for _, _, kept, reasons in CASES.values()) + 1  # + the Parquet file
    assert ingest.rows_in == expected
    assert ingest.rows_in == clean.rows_out + ingest.quarantined_total + clean.quarantined_total
    assert ingest.details["files"] == len(CASES) + 1
    assert ingest.details["blank_lines"] == 3 + 2  # blank_lines.csv; crlf_and_blank.jsonl (a line of spaces too)
    whole = {entry["path"].rsplit("/", 1)[-1]: entry["reason"] for entry in ingest.details["files_quarantined"]}
    assert whole == {
        "missing_required_column.csv": "missing_column",
        "duplicate_column.csv": "duplicate_column",
        "utf16_without_bom.csv": "wrong_encoding",
        "cut_short.csv.gz": "corrupt_archive",
        "two_files.zip": "corrupt_archive",
        "plain_text.csv.gz": "corrupt_archive",
        "not_parquet.parquet": "unreadable_parquet",
        "too_large.csv": "file_too_large",
        "too_large_inside.csv.gz": "file_too_large",
        "too_large_inside.zip": "file_too_large",
        next(p.name for p in (root / "raw" / "marketplace").rglob("part-*.parquet")): "missing_column",
    }
    details = {entry["path"].rsplit("/", 1)[-1]: entry["detail"] for entry in ingest.details["files_quarantined"]}
    assert details["too_large.csv"].startswith(f"it holds {len(BIG):,} bytes, over ingest.max_file_mb (1 MB)")
    assert details["too_large_inside.csv.gz"].startswith(f"it decompresses to more than {2**20:,} bytes")
    extra = {path.rsplit("/", 1)[-1]: cols for path, cols in ingest.details["extra_columns"].items()}
    assert extra["extra_column.csv"] == ["promo"]
    assert extra["latin1_extra_column.csv"] == ["d\ufffdsignation"]  # the undecodable byte shown as U+FFFD


def test_values_are_read_by_name_trimmed_of_any_whitespace_and_kept_whole(spark, hostile):
    root, _ = hostile
    rows = {r.event_id: r for r in spark.read.parquet(str(root / "clean")).collect()}
    assert (
        rows["B1"].order_id == "O1" and rows["B1"].product_id == "T100" and rows["B1"].product_name == "WHOLE MILK 1 L"
    )
    assert rows["A1"].product_name == 'MILK\nSEMI, "SKIM"'
    assert rows["N1"].product_id == "T100"  # no-break space, tab, ideographic and em spaces trimmed
    assert rows["L1"].product_name == '12" PIZZA'
    assert str(rows["W1"].unit_price) == "1.50" and rows["W1"].quantity == 3
    # Parquet columns of any type: timestamps are instants (a zone-less one in UTC), whatever the feed's time_format
    assert (rows["PY1"].quantity, str(rows["PY1"].unit_price), rows["PY1"].event_time) == (2, "2.50", T)
    assert rows["PZ1"].event_time == T - dt.timedelta(hours=1)  # 09:30 at UTC+1 is 08:30 UTC
    assert rows["PI1"].event_time == T and rows["PD1"].event_time == dt.datetime(2026, 1, 5)
    assert (str(rows["PX1"].unit_price), rows["PX1"].quantity) == ("2.00", 4)
    assert rows["PT1"].event_time == T + dt.timedelta(seconds=0.25) and rows["PB1"].product_id == "M1"


def test_quarantined_records_keep_their_exact_bytes_and_valid_text(spark, hostile):
    root, _ = hostile
    rows = spark.read.schema(QUARANTINE).parquet(str(root / "quarantine" / "stage=ingest")).collect()
    latin = next(r for r in rows if r.source_file.endswith("/latin1.csv"))
    assert latin.raw == ",".join(till("Q1", "CR\u00c8ME")).encode("latin-1") + b"\n"  # the bytes, losslessly
    assert latin.record == latin.raw.decode("utf-8", "replace") and "\ufffd" in latin.record
    two = next(r for r in rows if r.reason == "several_values")
    assert json.loads(two.raw.decode().split("} ")[0] + "}")["eventId"] == "V1"


def test_csv_records_split_as_pythons_csv_module_reads_them():
    """An oracle: random CSV texts of quotes, delimiters, line breaks (LF, CRLF, CR) and text."""
    parts = ['"', '""', ",", "\n", "\r\n", "\r", "a", "b c", " ", '"x\ny"', "é"]
    generator = random.Random(7)
    for _ in range(3000):
        text = "".join(generator.choice(parts) for _ in range(generator.randint(0, 30)))
        expected = list(csv.reader(io.StringIO(text, newline="")))
        records = list(csv_records([text]))
        assert list(csv_records(pieces(text, generator.randint(1, 8)))) == records, repr(text)  # read in pieces
        found = [row for record, _ in records for row in csv.reader(io.StringIO(record, newline=""))]
        assert found == expected, repr(text)
        assert all(len(list(csv.reader(io.StringIO(r, newline="")))) <= 1 for r, _ in records), repr(text)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "shift_jis", "latin-1"])
@pytest.mark.parametrize("breaks", ["\n", "\r\n"])
def test_text_decoded_in_pieces_is_the_text_decoded_whole(encoding, breaks):
    """An oracle: random bytes (multibyte characters cut anywhere, undecodable bytes, LF, CR, CRLF) decoded a few
    bytes at a time are the whole decode, and every piece but the last ends at a line break."""
    chunks = [b"\n", b"\r", b"\r\n", b"a", b",", b"\xe9", b"\xc3\xa9", b"\xe2\x82\xac", b"\x82\xa0", b"\xff", b"\x00"]
    generator = random.Random(11)
    for _ in range(400):
        data = b"".join(generator.choice(chunks) for _ in range(generator.randint(0, 40)))
        try:
            whole = data.decode(encoding, "surrogateescape")
        except UnicodeDecodeError:
            continue  # the reader quarantines such a file whole before decoding it in pieces
        parts = list(decoded(data, 0, encoding, breaks, generator.randint(1, 9)))
        assert "".join(parts) == whole, repr(data)
        if "\r" in breaks:  # each part ends where a CSV reader's line ends
            lines = [line for part in parts for line in io.StringIO(part, newline="")]
            assert lines == list(io.StringIO(whole, newline="")), repr(data)
        else:  # at a line feed
            assert all(part.endswith("\n") for part in parts[:-1]), repr(data)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"a": 1}', None),
        ('  {"a": "1"}  ', None),
        ("[]", "not_an_object"),
        ('"text"', "not_an_object"),
        ("null", "not_an_object"),
        ('{"a": 1}{"a": 2}', "several_values"),
        ('{"a": 1} []', "several_values"),
        ('{"a": 1} x', "trailing_garbage"),
        ('{"a": 1, "a": 2}', "duplicate_key"),
        ('{"a": {"b": 1, "b": 2}}', "duplicate_key"),
        ('{"a": Infinity}', "invalid_json"),
        ('{"a": 1, "b": ' + "[" * 100_000 + "]" * 100_000 + "}", "too_deeply_nested"),
        ('{"a": ' * 5000 + "1" + "}" * 5000, "too_deeply_nested"),
        ('{"a": 1} ' + "[" * 100_000, "several_values"),
        ('{"a": 1} {"b": 1, "b": 2}', "several_values"),
        ("{'a': 1}", "invalid_json"),
        ("", "invalid_json"),
    ],
)
def test_a_json_line_holds_exactly_one_object(line, reason):
    assert json_value(line)[1] == reason


def test_a_file_summary_is_valid_text_of_a_readable_size():
    """A file that is no CSV at all (binary, or one line of a thousand commas) has a "header" of any size and
    bytes: the report shows 50 of its extra columns, undecodable bytes as U+FFFD, and 500 characters of detail."""
    summary = FileSummary("tills", "/x.csv", 1, extra_columns=[f"c\udce9{i}" for i in range(200)], detail="d" * 9000)
    shown = json.loads(summary.to_json())
    assert shown["extra_columns"][:2] == ["c\ufffd0", "c\ufffd1"]
    assert len(shown["extra_columns"]) == 51 and shown["extra_columns"][-1] == "... and 150 more"
    assert shown["detail"] == "d" * 500


def test_whitespace_is_what_python_strips():
    assert set(WHITESPACE) == {chr(c) for c in range(0x110000) if chr(c).isspace()}


def test_a_column_is_cleaned_as_each_value_alone():
    """An oracle: clean_column (Arrow's trim, Python for the rare invisible mark) against clean_text, on random
    values of whitespace, invisible marks, text and characters beyond ASCII."""
    parts = [" ", "\t", "\u00a0", "\u3000", "\u2028", "\x1c", "\ufeff", "\u200b", "a", "b c", "é", "\u4e2d", ""]
    generator = random.Random(11)
    values = [
        "".join(generator.choice(parts) for _ in range(generator.randint(0, 8))) if generator.random() > 0.05 else None
        for _ in range(20_000)
    ]
    expected = [None if v is None else clean_text(v) for v in values]
    assert clean_column(pa.array(values, pa.string())).to_pylist() == expected
    ascii_only = [v.encode("ascii", "ignore").decode() if v else v for v in values]
    assert clean_column(pa.array(ascii_only, pa.string())).to_pylist() == [
        None if v is None else clean_text(v) for v in ascii_only
    ]


def test_csv_fields_are_what_pythons_csv_module_reads():
    """An oracle for the split of records without a quote (done without the csv module) and with one."""
    parts = [",", ";", "a", " b ", "\t", "é", "\x1c", "\x00", "\x85", "", '"', '""', "\u2028"]
    generator = random.Random(5)
    for _ in range(5000):
        record = "".join(generator.choice(parts) for _ in range(generator.randint(0, 12)))
        record += generator.choice(["", "\n", "\r\n", "\r"])
        for delimiter in ",;":
            try:
                rows = list(csv.reader([record.rstrip("\r\n")], delimiter=delimiter, strict=False))
                expected = rows[0] if len(rows) == 1 else None
            except csv.Error:
                expected = None
            assert csv_fields(record, delimiter) == expected, repr(record)
    long_field = "x" * (csv.field_size_limit() + 1)
    assert csv_fields(f"a,{long_field}\n", ",") is None  # the csv module refuses it: unparseable_record
