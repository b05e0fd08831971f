"""The training shards' manifest (shards/manifest.json): what the shards stage wrote, read by every trainer and
evaluator, and the constants of the examples' encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlspark import fs
from dlspark.errors import InputError

SPLITS = ("train", "val", "test")
PAD, UNKNOWN = 0, 1  # product indexes 0 and 1; known products start at 2, most bought first
ANONYMOUS = 0  # customer index of an order without a customer id; 1 is an unknown customer


def columns(prefix: str, width: int) -> list[str]:
    """The scalar columns that hold a fixed-width array: item_00, item_01, ..."""
    return [f"{prefix}_{i:02d}" for i in range(width)]


def manifest_path(shards: str) -> str:
    return f"{shards}/manifest.json"


@dataclass(frozen=True)
class Manifest:
    """What the shards stage wrote, read once by every trainer and evaluator."""

    root: str  # the shards directory
    raw: dict[str, Any]

    @classmethod
    def read(cls, shards: str) -> Manifest:
        if not fs.exists(manifest_path(shards)):
            raise InputError(f"training shards not found at {shards} (no manifest.json); run `dlspark shards` first")
        return cls(shards, fs.read_json(manifest_path(shards)))

    @property
    def item_columns(self) -> list[str]:
        return list(self.raw["columns"]["items"])

    @property
    def rule_columns(self) -> list[str]:
        return list(self.raw["columns"]["rules"])

    @property
    def products(self) -> int:
        return len(self.raw["products"]["ids"])

    @property
    def customers(self) -> int:
        return len(self.raw["customers"]["ids"])

    @property
    def fingerprint(self) -> str:
        return str(self.raw["fingerprint"])

    def rows(self, split: str) -> int:
        return int(self.raw["splits"][split]["rows"])

    def url(self, split: str) -> str:
        """The split's directory as a URL, as Petastorm wants it (file:// for a local path)."""
        path = f"{self.root}/{split}"
        return path if "://" in path else f"file://{path}"

    def fields(self) -> list[str]:
        return [*self.item_columns, *self.rule_columns, "customer", "size", "label"]
