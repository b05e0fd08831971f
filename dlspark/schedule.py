"""Daily runs: each day with raw files is run once (`dlspark pipeline --date DAY`), in order, catching up.

A day is due when its raw files are not the ones its last run saw (a new day, files delivered late, or a failed
day whose files were replaced). Catching up several days runs ingest, clean and dedup for each and the whole
pipeline for the last one only: mining and training read a window of days, so one model covers them all. What
was run is kept in data.root/schedule.json.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from dlspark import fs
from dlspark.config import PipelineConfig
from dlspark.errors import DlsparkError
from dlspark.runlock import RunLockedError, run_lock
from dlspark.stage import Registry
from dlspark.stages import STAGES

log = logging.getLogger(__name__)

RunDay = Callable[[list[str], PipelineConfig], None]


def state_path(cfg: PipelineConfig) -> str:
    return cfg.data.layout.path("schedule.json")


def for_day(cfg: PipelineConfig, day: str) -> PipelineConfig:
    return cfg.for_day(dt.date.fromisoformat(day))


def due_days(cfg: PipelineConfig, since: str | None, until: str, registry: Registry = STAGES) -> list[tuple[str, str]]:
    """(day, fingerprint of its raw files) for every day in [since, until] whose files its last run did not see."""
    from dlspark.pipeline import input_fingerprints
    from dlspark.stages.ingest import raw_days

    first = registry[registry.names[0]]
    state = _state(cfg)
    due = []
    for day in raw_days(cfg):
        if (since and day < since) or day > until:
            continue
        raw = input_fingerprints(first, for_day(cfg, day), registry)["raw"]
        last = state.get(day, {})
        if last.get("raw") != raw or last.get("status") == "error":
            due.append((day, raw))
    return due


def run_due(
    cfg: PipelineConfig,
    run_day: RunDay,
    since: str | None,
    until: str,
    registry: Registry = STAGES,
) -> list[str]:
    """Run every due day in order under the data root's lock; return the days run. Catch-up days run the daily
    stages (those partitioned by day: registry.daily()), the last due day runs them all. A day whose data is
    unusable is recorded as failed (and not retried until its files change); any other failure stops the pass,
    to be retried by the next one."""
    with run_lock(cfg.data.root):
        due = due_days(cfg, since, until, registry)
        if not due:
            log.info("schedule: nothing due (every day up to %s has run on its current files)", until)
        for position, (day, raw) in enumerate(due):
            names = registry.names if position == len(due) - 1 else registry.daily()
            log.info("schedule: %s (%d of %d due): %s", day, position + 1, len(due), ", ".join(names))
            try:
                run_day(names, for_day(cfg, day))
                _record(cfg, day, {"raw": raw, "status": "done"})
            except DlsparkError as err:
                log.error("schedule: %s failed: %s", day, err)
                _record(cfg, day, {"raw": raw, "status": "failed", "message": str(err)})
            except Exception as err:
                _record(cfg, day, {"raw": raw, "status": "error", "message": repr(err)})
                raise
    return [day for day, _ in due]


def loop(
    cfg: PipelineConfig,
    run_day: RunDay,
    since: str | None,
    until: str | None,
    every_s: float,
    after_pass: Callable[[], None] = lambda: None,
) -> None:
    """Run what is due up to `until` (default: yesterday, in UTC: a day runs once it is over), call `after_pass`,
    then sleep `every_s` seconds, forever (one pass when `every_s` is 0)."""
    while True:
        last = until or (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
        try:
            try:
                run_due(cfg, run_day, since, last)
            finally:
                after_pass()
        except RunLockedError as err:
            log.warning("schedule: skipping this pass: %s", err)
        except Exception:
            if not every_s:
                raise
            log.exception("schedule: the pass failed; the next one, in %.0f s, retries", every_s)
        if not every_s:
            return
        time.sleep(every_s)


def _state(cfg: PipelineConfig) -> dict[str, Any]:
    """schedule.json: each day's raw fingerprint, outcome and time (empty before the first run)."""
    return dict(fs.read_json(state_path(cfg))) if fs.exists(state_path(cfg)) else {}


def _record(cfg: PipelineConfig, day: str, outcome: dict[str, Any]) -> None:
    state = _state(cfg)
    state[day] = {**outcome, "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    fs.replace_json(state_path(cfg), dict(sorted(state.items())))
