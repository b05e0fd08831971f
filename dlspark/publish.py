"""Atomic publishing: a stage writes under data.root/_staging/<stage>/, then its outputs move into place by rename.

The journal (_publish.json) is written only once every output is complete in staging. Each output then moves into
place: the old one first to _staging/<stage>/_old/, then the staged one to its place. An output a daily run merges
into moves entry by entry instead (its day partition, its report), so the other days stay as they are: that is
dynamic partition overwrite, through the same journal. A crash between two moves leaves an entry missing for a
moment, never half written; `recover` (run before every stage) finishes the job.
"""

from __future__ import annotations

from dlspark import fs
from dlspark.layout import Layout

JOURNAL = "_publish.json"


def staged_outputs(root: Layout, stage: str, outputs: tuple[str, ...]) -> dict[str, str]:
    """Where a stage writes each of its outputs while it runs."""
    return {output: f"{root.staging(stage)}/{output}" for output in outputs}


def write_journal(root: Layout, stage: str, outputs: tuple[str, ...], merge: list[str]) -> None:
    """Declare the staged outputs complete: from here on, `recover` publishes them."""
    fs.write_json(f"{root.staging(stage)}/{JOURNAL}", {"stage": stage, "outputs": list(outputs), "merge": merge})


def recover(root: Layout, stage: str) -> None:
    """Publish what a finished stage staged, or finish a publish a crash interrupted; idempotent."""
    staging = root.staging(stage)
    if not fs.exists(f"{staging}/{JOURNAL}"):
        return
    journal = fs.read_json(f"{staging}/{JOURNAL}")
    for output in journal["outputs"]:
        staged, target = f"{staging}/{output}", root.path(output)
        entries = fs.listdir(staged) if output in journal.get("merge", []) else [""]
        for entry in entries:
            source, place = f"{staged}/{entry}".rstrip("/"), f"{target}/{entry}".rstrip("/")
            if fs.exists(source):
                if fs.exists(place):
                    fs.move(place, f"{staging}/_old/{output}/{entry}".rstrip("/"))
                fs.move(source, place)
    fs.delete(staging)


def discard(root: Layout, stage: str) -> None:
    """Drop what a stage staged (its input was refused: nothing to resume, nothing to publish)."""
    fs.delete(root.staging(stage))


def is_staged(root: Layout, stage: str) -> bool:
    """True while a stage's staging directory exists (it is running, or died and will be resumed)."""
    return fs.exists(root.staging(stage))
