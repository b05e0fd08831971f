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
WEB_FIELDS = ["eventId", "orderRef", "customer", "sku", "title", "category", "qty", "price", "ts", "channel"]
# Every kind of bad record the generator plants; the reason the pipeline must give is the kind's own name.
BAD_KINDS_CSV = ("wrong_column_count",)
BAD_KINDS_JSON = ("invalid_json",)
BAD_KINDS_ANY = (
    "invalid_utf8",
    "missing_order_id",
    "missing_product_id",
    "non_numeric_quantity",
    "non_positive_quantity",
    "non_numeric_price",
    "negative_price",
    "unparseable_time",
)
BAD_KINDS = BAD_KINDS_CSV + BAD_KINDS_JSON + BAD_KINDS_ANY
BAD_QUANTITIES = ["two", "1x", "3 pcs", "n/a"]
BAD_PRICES = ["N/A", "free?", "3.49.1", "EUR"]
BAD_TIMES = ["yesterday", "31/02/2026 25:61:00", "2026-13-45T99:00:00Z", "00/00/0000"]


def other(feed: str) -> str:
    return "web" if feed == "tills" else "tills"


def csv_line(values: list[str]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode()


def till_values(line: dict[str, Any]) -> list[str]:
    when = line["event_time"]
    return [
        line["event_id"],
        line["order_id"],
        line["store_id"],
        line["customer_id"],
        line["product_id"],
        line["product_name"],
        line["category"].upper(),
        line["quantity"],
        line["unit_price"],
        when if isinstance(when, str) else when.strftime("%d/%m/%Y %H:%M:%S"),
    ]


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
        "ts": when if isinstance(when, str) else when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "channel": "web",
    }
    return {k: v for k, v in obj.items() if v is not None}


def json_number(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_line(line: dict[str, Any], feed: str) -> bytes:
    if feed == "tills":
        return csv_line(till_values(line))
    return (json.dumps(web_object(line), ensure_ascii=False) + "\n").encode()


def corrupt(line: dict[str, Any], kind: str, rng: np.random.Generator) -> bytes:
    """The bytes of `line` broken in the way `kind` names."""
    feed = line["feed"]
    broken = dict(line)
    if kind == "wrong_column_count":
        values = till_values(line)
        values = values[:-1] if rng.random() < 0.5 else values + ["EXTRA"]
        return csv_line(values)
    if kind == "invalid_json":
        text = format_line(line, feed).decode().rstrip("\n")
        cut = int(rng.integers(len('{"eventId": "') + len(line["event_id"]) + 1, len(text) - 1))
        return (text[:cut] + "\n").encode()
    if kind == "invalid_utf8":
        # a name in Latin-1 (as an old till export would write it): é is one byte, 0xE9, not valid UTF-8
        broken["product_name"] = line["product_name"] + " Crème"
        return format_line(broken, feed).decode().encode("latin-1")
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
    else:
        raise ValueError(f"unknown bad-record kind {kind!r}")
    if feed == "web" and kind in ("missing_order_id", "missing_product_id"):
        obj = web_object(broken)
        obj.pop("orderRef" if kind == "missing_order_id" else "sku", None)
        if rng.random() < 0.5:  # sometimes the key is there with null
            obj["orderRef" if kind == "missing_order_id" else "sku"] = None
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode()
    return format_line(broken, feed)
