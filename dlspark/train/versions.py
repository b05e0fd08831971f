"""Model versions: models/vNNNN/ (each trained model, its vocabularies and evaluation), models/current (the
version in use) and models/history.json (every run's test metrics and what was decided).

The gate: the current model (the champion) and the new one (the challenger) are scored on the same examples, the
new run's test split, and the new one is promoted unless it is worse in train.promotion_metric by more than
train.promotion_margin at train.promotion_confidence (a paired bootstrap interval; compare.py). Every step is a
rename or a whole-file replace, and a run that dies half-way is finished by the next: a version already copied is
found by its identity, a decision already taken is found in the history.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from dlspark import fs
from dlspark.config import PipelineConfig
from dlspark.digest import short_hash
from dlspark.errors import InputError
from dlspark.layout import Layout
from dlspark.manifest import Manifest
from dlspark.report import report_path
from dlspark.train.compare import compare

log = logging.getLogger(__name__)

SKIPPED = ("checkpoint",)  # what a version does not keep of the model directory


def history(root: Layout) -> list[dict[str, Any]]:
    path = f"{root.models}/history.json"
    return list(fs.read_json(path)) if fs.exists(path) else []


def current(root: Layout) -> str | None:
    """The directory of the current model version, or None before the first promotion."""
    pointer = f"{root.models}/current"
    if not fs.exists(pointer):
        return None
    return f"{root.models}/{fs.read_bytes(pointer).decode().strip()}"


def promote(cfg: PipelineConfig) -> dict[str, Any]:
    """Keep model/ as the next version, make it current if its test metric is not worse, and record the run."""
    root = cfg.data.layout
    evaluation_path = root.path("model", "evaluation.json")
    if not fs.exists(evaluation_path):
        raise InputError(f"no evaluation at {evaluation_path}; run `dlspark evaluate` before promoting the model")
    identity = short_hash(fs.read_bytes(report_path(root.model)))  # one per training run
    past = history(root)
    decided = next((entry for entry in past if entry["identity"] == identity), None)
    if decided is not None:
        return decided
    version = _store_version(root, identity)
    metric = cfg.train.promotion_metric
    current_dir = current(root)
    current_version = current_dir.rsplit("/", 1)[1] if current_dir else None
    comparison = None
    if current_dir is not None:
        comparison = compare(Manifest.read(root.shards), root.model, current_dir, cfg.train)
    promoted = comparison is None or comparison["promoted"]
    if promoted:
        fs.replace_bytes(f"{root.models}/current", f"{version}\n".encode())
    entry = {
        "version": version,
        "identity": identity,
        "date": str(cfg.data.date) if cfg.data.date else None,
        "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "metric": metric,
        "metrics": fs.read_json(evaluation_path)["metrics"]["model"],  # its own evaluation
        "current_before": current_version,
        "comparison": comparison,  # both models on the same test examples; None for the first version
        "promoted": promoted,
    }
    fs.replace_json(f"{root.models}/history.json", [*past, entry])
    log.info("model %s: %s", version, describe(entry))
    return entry


def describe(entry: dict[str, Any]) -> str:
    """One line: the decision and the figures it rests on."""
    metric, comparison = entry["metric"], entry.get("comparison")
    if entry["current_before"] is None:
        return f"promoted to current (the first version; {metric} {entry['metrics'][metric]:.4f})"
    if comparison is None:  # a decision recorded before champion and challenger shared a test set
        return "promoted to current" if entry["promoted"] else "kept as a candidate, not promoted"
    low, high = comparison["interval"]
    versus = (
        f"{metric} {comparison['challenger'][metric]:.4f} vs {comparison['champion'][metric]:.4f} of "
        f"{entry['current_before']} on the same {comparison['examples']:,} test examples; difference "
        f"{comparison['difference']:+.4f}, {100 * comparison['confidence']:.0f}% interval [{low:+.4f}, {high:+.4f}], "
        f"margin {comparison['margin']}"
    )
    return f"promoted to current ({versus})" if entry["promoted"] else f"kept as a candidate, not promoted ({versus})"


def _store_version(root: Layout, identity: str) -> str:
    """Copy model/ to models/vNNNN (via models/_incoming and a rename); an earlier copy of it is reused."""
    base = root.models
    versions = [name for name in fs.listdir(base) if name.startswith("v") and name[1:].isdigit()]
    for name in versions:
        if fs.exists(f"{base}/{name}/identity") and fs.read_bytes(f"{base}/{name}/identity").decode() == identity:
            return name
    version = f"v{max((int(name[1:]) for name in versions), default=0) + 1:04d}"
    incoming = f"{base}/_incoming/{version}"
    fs.delete(incoming)
    for entry in fs.listdir(root.model):
        if entry not in SKIPPED:
            fs.copy(f"{root.model}/{entry}", f"{incoming}/{entry}")
    fs.write_bytes(f"{incoming}/identity", identity.encode())
    fs.move(incoming, f"{base}/{version}")
    fs.delete(f"{base}/_incoming")
    return version
