"""The data layout under one root: where every dataset lives (docs/stages.md, "Data layout")."""

from __future__ import annotations

import os
from dataclasses import dataclass

from dlspark.fs import is_uri


@dataclass(frozen=True)
class Layout:
    """Paths of every dataset under `root`; a local root is made absolute so executors see the same place."""

    root: str

    @classmethod
    def at(cls, root: str) -> Layout:
        return cls(root.rstrip("/") if is_uri(root) else os.path.abspath(root))

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    @property
    def raw(self) -> str:
        return self.path("raw")

    @property
    def truth(self) -> str:
        return self.path("truth")

    @property
    def events(self) -> str:
        return self.path("events")

    @property
    def products(self) -> str:
        return self.path("products")

    @property
    def shards(self) -> str:
        return self.path("shards")

    @property
    def model(self) -> str:
        return self.path("model")

    @property
    def models(self) -> str:
        return self.path("models")

    @property
    def reports(self) -> str:
        return self.path("reports")

    def staging(self, stage: str) -> str:
        """Where a running stage writes its outputs before they are published (publish.py)."""
        return self.path("_staging", stage)

    def quarantine(self, stage: str | None = None) -> str:
        return self.path("quarantine", f"stage={stage}") if stage else self.path("quarantine")
