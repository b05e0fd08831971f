"""How the demo's feeds write an order line (tills: CSV, web: JSON lines), and how a bad record is broken."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

TILLS_FIELDS = [
    "line_id",
    "receipt_no",
    "store_id",
    "loyalty_card",
    "plu",
    "description",
    "dept",
    "qty",
    "price",
    "sold_at",
]
# Some tills deliver their columns in another order (odd days): ingest reads them by the header's names.
TILLS_REORDERED = [
    "receipt_no",
    "line_id",
    "sold_at",
    "plu",
    "qty",
    "price",
    "description",
    "dept",
    "loyalty_card",
    "store_id",
]
WEB_FIELDS = ["eventId", "orderRef", "customer", "sku", "title", "category", "qty", "price", "ts", "channel"]
# Every kind of bad record the generator plants; the reason the pipeline must give is the kind's own name.
BAD_KINDS_CSV = ("wrong_column_count",)
BAD_KINDS_JSON = ("invalid_json", "several_values")
BAD_KINDS_ANY = (
    "invalid_utf8",
    "missing_order_id",
    "missing_product_id",
    "non_numeric_quantity",
    "non_positive_quantity",
    "non_numeric_price",
    "negative_price",
    "unparseable_time",
    "time_out_of_range",
)
BAD_KINDS = BAD_KINDS_CSV + BAD_KINDS_JSON + BAD_KINDS_ANY
BAD_QUANTITIES = ["two", "1x", "3 pcs", "n/a"]
BAD_PRICES = ["N/A", "free?", "3.49.1", "EUR"]
BAD_TIMES = ["yesterday", "31/02/2026 25:61:00", "2026-13-45T99:00:00Z", "00/00/0000"]
OUT_OF_RANGE_YEARS = [1, 1899, 1969, 2100, 2150]
QUOTED_NEWLINE_RATE = 0.01  # tills lines whose description holds a line break (a quoted field, RFC 4180)
BAD_FILE = "part-9999-export.csv.gz"  # the first day's tills hold one archive that does not decompress


def other(feed: str) -> str:
    return "web" if feed == "tills" else "tills"


def csv_line(values: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


def till_values(line: dict[str, Any], header: list[str] = TILLS_FIELDS) -> list[str]:
    """The line's values in the order of `header` (a permutation of TILLS_FIELDS)."""
    when = line["event_time"]
    values = [
        line["event_id"],
        line["order_id"],
        line["store_id"],
        line["customer_id"],
        line["product_id"],
        line["product_name"],
        line["category"].upper(),
        line["quantity"],
        line["unit_price"],
        when if isinstance(when, str) else f"{when:%d/%m/}{when.year:04d} {when:%H:%M:%S}",  # strftime: year 1 is "1"
    ]
    by_name = dict(zip(TILLS_FIELDS, values, strict=True))
    return [by_name[name] for name in header]


def web_object(line: dict[str, Any]) -> dict[str, Any]:
    when = line["event_time"]
    obj: dict[str, Any] = {
        "eventId": line["event_id"],
        "orderRef": line["order_id"],
        "customer": line["customer_id"] or None,
        "sku": line["product_id"],
        "title": line["product_name"],
        "category": line["category"],
        "qty": json_number(line["quantity"]),
        "price": json_number(line["unit_price"]),
        "ts": when if isinstance(when, str) else f"{when.year:04d}-{when:%m-%dT%H:%M:%S}Z",
        "channel": "web",
    }
    return {k: v for k, v in obj.items() if v is not None}


def json_number(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_line(line: dict[str, Any], feed: str, header: list[str] = TILLS_FIELDS) -> bytes:
    if feed == "tills":
        return csv_line(till_values(line, header))
    return (json.dumps(web_object(line), ensure_ascii=False) + "\n").encode()


def corrupt(line: dict[str, Any], kind: str, rng: np.random.Generator, header: list[str] = TILLS_FIELDS) -> bytes:
    """The bytes of `line` broken in the way `kind` names (a tills line in the column order of `header`)."""
    feed = line["feed"]
    broken = dict(line)
    if kind == "wrong_column_count":
        values = till_values(line, header)
        values = values[:-1] if rng.random() < 0.5 else values + ["EXTRA"]
        return csv_line(values)
    if kind == "invalid_json":
        text = format_line(line, feed).decode().rstrip("\n")
        cut = int(rng.integers(len('{"eventId": "') + len(line["event_id"]) + 1, len(text) - 1))
        return (text[:cut] + "\n").encode()
    if kind == "several_values":  # two objects on one line (a writer that lost a newline)
        text = format_line(line, feed).decode().rstrip("\n")
        return f"{text} {text}\n".encode()
    if kind == "invalid_utf8":
        # a name in Latin-1 (as an old till export would write it): é is one byte, 0xE9, not valid UTF-8
        broken["product_name"] = line["product_name"] + " Crème"
        return format_line(broken, feed, header).decode().encode("latin-1")
    if kind == "missing_order_id":
        broken["order_id"] = ""
    elif kind == "missing_product_id":
        broken["product_id"] = ""
    elif kind == "non_numeric_quantity":
        broken["quantity"] = str(rng.choice(BAD_QUANTITIES))
    elif kind == "non_positive_quantity":
        broken["quantity"] = str(-int(rng.integers(0, 3)))
    elif kind == "non_numeric_price":
        broken["unit_price"] = str(rng.choice(BAD_PRICES))
    elif kind == "negative_price":
        broken["unit_price"] = f"-{line['unit_price']}"
    elif kind == "unparseable_time":
        broken["event_time"] = str(rng.choice(BAD_TIMES))
    elif kind == "time_out_of_range":  # a clock reset or a typo in the year: parses, but cannot be true
        broken["event_time"] = line["event_time"].replace(year=int(rng.choice(OUT_OF_RANGE_YEARS)))
    else:
        raise ValueError(f"unknown bad-record kind {kind!r}")
    if feed == "web" and kind in ("missing_order_id", "missing_product_id"):
        obj = web_object(broken)
        obj.pop("orderRef" if kind == "missing_order_id" else "sku", None)
        if rng.random() < 0.5:  # sometimes the key is there with null
            obj["orderRef" if kind == "missing_order_id" else "sku"] = None
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode()
    return format_line(broken, feed, header)
