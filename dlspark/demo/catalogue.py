"""The demo's catalogue: products (with the ids and name variants each system gives them), customers and their
segments, and the planted product groups; decided once on the driver, small (it scales with products, not lines)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from dlspark import fs
from dlspark.config import GenerateConfig
from dlspark.errors import ConfigError
from dlspark.layout import Layout

# category -> items and the sizes each comes in; brands and product lines multiply them into a catalogue.
CATALOGUE: dict[str, list[tuple[str, list[str]]]] = {
    "Dairy": [
        ("Whole Milk", ["1L", "2L"]),
        ("Semi Skimmed Milk", ["1L", "2L"]),
        ("Greek Yogurt", ["500g", "1kg"]),
        ("Cheddar Cheese", ["200g", "400g"]),
        ("Salted Butter", ["250g"]),
        ("Double Cream", ["300ml"]),
    ],
    "Bakery": [
        ("Sourdough Loaf", ["800g"]),
        ("Wholemeal Bread", ["400g", "800g"]),
        ("Butter Croissants", ["4pk"]),
        ("Bagels", ["6pk"]),
        ("Pitta Bread", ["6pk"]),
    ],
    "Produce": [
        ("Bananas", ["1kg"]),
        ("Cherry Tomatoes", ["250g", "500g"]),
        ("Baby Spinach", ["200g"]),
        ("Red Onions", ["1kg"]),
        ("Avocados", ["2pk", "4pk"]),
        ("Lemons", ["4pk"]),
    ],
    "Pantry": [
        ("Spaghetti", ["500g", "1kg"]),
        ("Basmati Rice", ["1kg", "2kg"]),
        ("Tomato Passata", ["500g"]),
        ("Olive Oil", ["500ml", "1L"]),
        ("Peanut Butter", ["340g"]),
        ("Chopped Tomatoes", ["400g"]),
    ],
    "Beverages": [
        ("Orange Juice", ["1L"]),
        ("Sparkling Water", ["1.5L", "6pk"]),
        ("Ground Coffee", ["227g"]),
        ("Green Tea", ["20pk", "40pk"]),
        ("Cola", ["2L", "6pk"]),
    ],
    "Snacks": [
        ("Sea Salt Crisps", ["150g"]),
        ("Dark Chocolate", ["100g"]),
        ("Salted Peanuts", ["200g"]),
        ("Oat Biscuits", ["300g"]),
        ("Tortilla Chips", ["200g"]),
    ],
    "Frozen": [
        ("Garden Peas", ["900g"]),
        ("Margherita Pizza", ["400g"]),
        ("Vanilla Ice Cream", ["1L", "500ml"]),
        ("Fish Fingers", ["10pk"]),
        ("Oven Chips", ["1.5kg"]),
    ],
    "Meat": [
        ("Chicken Breast", ["300g", "600g"]),
        ("Beef Mince", ["500g"]),
        ("Pork Sausages", ["6pk"]),
        ("Smoked Bacon", ["200g"]),
    ],
    "Household": [
        ("Washing Up Liquid", ["500ml"]),
        ("Laundry Detergent", ["1.5L"]),
        ("Kitchen Roll", ["2pk"]),
        ("Bin Bags", ["20pk"]),
        ("Toilet Tissue", ["9pk"]),
    ],
    "Personal Care": [
        ("Shampoo", ["250ml", "400ml"]),
        ("Toothpaste", ["75ml"]),
        ("Shower Gel", ["250ml"]),
        ("Hand Soap", ["300ml"]),
    ],
    "Baby": [("Baby Wipes", ["64pk"]), ("Nappies Size 4", ["40pk"]), ("Baby Porridge", ["200g"])],
    "Pet": [("Dog Food", ["400g", "2kg"]), ("Cat Litter", ["10L"]), ("Cat Treats", ["60g"])],
}
BRANDS = [
    "Greenfield",
    "Valley Farm",
    "Northwind",
    "Sunrise",
    "Oakridge",
    "Blue Harbor",
    "Maple Lane",
    "Riverside",
    "Golden Acre",
    "Highland",
]
PRODUCT_LINES = ["", "Organic", "Finest", "Value"]
SEGMENTS = {  # customer segment -> categories it prefers
    "families": ["Baby", "Dairy", "Frozen"],
    "health": ["Produce", "Dairy", "Pantry"],
    "snackers": ["Snacks", "Beverages", "Frozen"],
    "home_cooks": ["Meat", "Pantry", "Produce"],
    "pet_owners": ["Pet", "Household", "Personal Care"],
}
UNIT_SPELLINGS = {  # canonical unit suffix -> how the feeds spell it ({n} is the number)
    "L": ["{n}L", "{n} l", "{n} L", "{n} litre", "{n}ltr"],
    "ml": ["{n}ml", "{n} ml", "{n}ML"],
    "kg": ["{n}kg", "{n} kg", "{n}KG", "{n} kilo"],
    "g": ["{n}g", "{n} g", "{n}gr", "{n} grams"],
    "pk": ["{n}pk", "{n} pack", "{n}-pack", "{n}PK"],
}


@dataclass(frozen=True)
class Catalogue:
    """What the driver decides once and every generating task reads (small: scales with products, not lines)."""

    names: list[str]  # true product -> canonical name
    categories: list[str]  # true product -> category
    prices: np.ndarray  # true product -> unit price
    category_products: dict[str, np.ndarray]  # category -> true products
    category_cdf: dict[str, np.ndarray]  # category -> cumulative popularity of its products
    ids: dict[str, list[list[int]]]  # feed -> true product -> indexes into id_codes
    id_codes: list[str]
    id_names: list[str]  # id index -> the name variant that id carries
    segment_cdf: np.ndarray  # segment x category cumulative preference
    customer_segments: np.ndarray
    groups: list[list[int]]
    config: GenerateConfig


def build_catalogue(cfg: GenerateConfig) -> Catalogue:
    rng = np.random.default_rng([cfg.seed, 1])
    combos = [
        (category, " ".join(w for w in (brand, line, item) if w), size)
        for category, items in CATALOGUE.items()
        for item, sizes in items
        for size in sizes
        for brand in BRANDS
        for line in PRODUCT_LINES
    ]
    if cfg.products > len(combos):
        raise ConfigError(f"generate.products: {cfg.products} is more than the {len(combos)} the catalogue can make")
    chosen = sorted(rng.choice(len(combos), size=cfg.products, replace=False))
    categories = [combos[i][0] for i in chosen]
    names = [f"{combos[i][1]} {combos[i][2]}" for i in chosen]
    prices = np.round(np.exp(rng.normal(1.0, 0.6, cfg.products)) + 0.49, 2)

    category_products, category_cdf = {}, {}
    for category in CATALOGUE:
        members = np.array([p for p, c in enumerate(categories) if c == category], dtype=np.int64)
        if len(members) == 0:
            continue
        weights = 1.0 / (rng.permutation(len(members)) + 2.0) ** 0.9  # Zipf-like popularity
        category_products[category] = members
        category_cdf[category] = np.cumsum(weights) / weights.sum()

    id_codes: list[str] = []
    id_names: list[str] = []
    ids: dict[str, list[list[int]]] = {"tills": [], "web": []}
    codes = iter(rng.permutation(900_000) + 100_000)
    for product, name in enumerate(names):
        for feed in ("tills", "web"):
            ids[feed].append([])
        feeds = ["tills", "web"] if rng.random() > 0.1 else [str(rng.choice(["tills", "web"]))]
        if rng.random() < 0.3:
            feeds.append(str(rng.choice(["tills", "web"])))  # a duplicate record in one system, often with a typo
        for k, feed in enumerate(feeds):
            id_codes.append(("T" if feed == "tills" else "W") + str(next(codes)))
            id_names.append(_name_variant(name, feed, typo=k >= 2 or rng.random() < 0.15, rng=rng))
            ids[feed][product].append(len(id_codes) - 1)

    cats = list(CATALOGUE)
    preference = np.array([[4.0 if c in SEGMENTS[s] else 1.0 for c in cats] for s in SEGMENTS])
    for row in preference:
        for j, c in enumerate(cats):
            if c not in category_products:
                row[j] = 0.0
    segment_cdf = np.cumsum(preference, axis=1) / preference.sum(axis=1, keepdims=True)
    groups = []
    for _ in range(cfg.groups):
        size = int(rng.integers(2, 6))
        groups.append(sorted(int(p) for p in rng.choice(cfg.products, size=size, replace=False)))
    return Catalogue(
        names=names,
        categories=categories,
        prices=prices,
        category_products=category_products,
        category_cdf=category_cdf,
        ids=ids,
        id_codes=id_codes,
        id_names=id_names,
        segment_cdf=segment_cdf,
        customer_segments=rng.integers(0, len(SEGMENTS), cfg.customers),
        groups=groups,
        config=cfg,
    )


def _name_variant(name: str, feed: str, typo: bool, rng: np.random.Generator) -> str:
    """How one system spells a product: case, punctuation, unit spelling, and sometimes a typo."""
    *words, size = name.split(" ")
    number = size.rstrip("LmlkgpK")
    unit = size[len(number) :]
    size = str(rng.choice(UNIT_SPELLINGS[unit])).format(n=number)
    if typo:
        candidates = [i for i, w in enumerate(words) if len(w) >= 5]
        if candidates:
            i = int(rng.choice(candidates))
            j = int(rng.integers(1, len(words[i]) - 2))
            w = words[i]
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]  # swap two adjacent letters
    if feed == "tills":
        return " ".join(words).upper() + " " + size
    text = " ".join(words).capitalize() if rng.random() < 0.5 else " ".join(words)
    return text + (", " if rng.random() < 0.5 else " - ") + size


def write_catalogue_truth(root: Layout, catalogue: Catalogue) -> None:
    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\n")
    writer.writerow(["product_id", "feed", "true_product_id", "name", "true_name", "category"])
    for feed, per_product in catalogue.ids.items():
        for product, id_indexes in enumerate(per_product):
            for i in id_indexes:
                writer.writerow(
                    [
                        catalogue.id_codes[i],
                        feed,
                        f"P{product:05d}",
                        catalogue.id_names[i],
                        catalogue.names[product],
                        catalogue.categories[product],
                    ]
                )
    fs.write_bytes(root.path("truth", "products.csv"), lines.getvalue().encode())
    segments = list(SEGMENTS)
    customers = "customer_id,segment\n" + "".join(
        f"{customer_id(c)},{segments[s]}\n" for c, s in enumerate(catalogue.customer_segments)
    )
    fs.write_bytes(root.path("truth", "customers.csv"), customers.encode())
    fs.write_json(
        root.path("truth", "planted.json"),
        {
            "groups": [
                {
                    "true_product_ids": [f"P{p:05d}" for p in group],
                    "names": [catalogue.names[p] for p in group],
                }
                for group in catalogue.groups
            ],
            "group_rate": catalogue.config.group_rate,
            "segments": SEGMENTS,
        },
    )


def customer_id(index: int) -> str:
    return f"C{index:07d}"
