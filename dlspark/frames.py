"""Small DataFrame helpers every layer uses: rule tagging, one-row aggregations, column checks, small lookups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from dlspark.errors import AccountingError, InputError


def first_failing(rules: Iterable[tuple[str, Column]]) -> Column:
    """The name of the first rule whose condition holds, or null when none does (the row is good)."""
    reason: Column | None = None
    for name, failed in rules:
        reason = F.when(failed, F.lit(name)) if reason is None else reason.when(failed, F.lit(name))
    return reason if reason is not None else F.lit(None).cast("string")


def one_row(frame: DataFrame) -> Row:
    """The single row of a global aggregation (which always has exactly one)."""
    row = frame.first()
    if row is None:
        raise AccountingError("an aggregation returned no row")
    return row


def require_columns(frame: DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{what} lacks column(s) {missing}; it has {frame.columns}")


class Lookup(NamedTuple):
    """A small frame computed once (a local checkpoint), its row count, and whether joins should broadcast it."""

    frame: DataFrame
    rows: int
    broadcast: bool

    def for_join(self) -> DataFrame:
        """The frame marked for broadcast when it is small (only a join may carry the mark: Spark warns about one
        anywhere else, so aggregations read `frame`)."""
        return F.broadcast(self.frame) if self.broadcast else self.frame


def small_lookup(frame: DataFrame, broadcast_limit: int) -> Lookup:
    """`frame` computed once, to be broadcast to its joins when it has at most `broadcast_limit` rows.

    For a lookup table joined to many rows: Spark's own estimate stops broadcasting past 10 MB of the input it was
    computed from, and its sort-merge join then shuffles every row of the other side.
    """
    computed = frame.localCheckpoint()
    rows = computed.count()
    return Lookup(computed, rows, rows <= broadcast_limit)
