"""Retention of the metrics history: raw samples and minute, hour and day rollups, each kept for a while.

Each resolution goes in whole buckets: a minute, hour or day rollup goes once its bucket ended
more than that resolution's retention ago, and raw samples, kept in a block per series per hour,
go an hour at a time once their hour ended more than the raw retention ago. Just before a block
goes, the minutes of it that are still within the minute retention are rolled up into minute rows,
so a window's edges read the same afterwards (percentiles unchanged; the mean to the last bit, as
the exact sum is kept).

Pruning is bounded in time: it deletes in chunks, each its own short write transaction, so
other writers get the lock between them and a prune after a long absence still finishes. Two
prunes at once take turns chunk by chunk and both succeed. An ingest with a retention prunes
after itself (prune_if_due) only when something is past its retention, at most every few
minutes and within a small budget: the rest is left for the next one or for `state prune`.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field

from edgectl.analytics.store import DAY, HOUR, MINUTE, UPSERT_ROLLUPS, block_samples, register_functions
from edgectl.errors import ConfigError

DEFAULTS = {"raw": "7d", "minute": "30d", "hour": "400d", "day": "1825d"}
BLOCKS_PER_CHUNK = 2_000  # raw blocks rolled up and dropped per transaction
ROWS_PER_CHUNK = 20_000  # rollup rows dropped per transaction
PRUNE_EVERY_MS = 10 * 60_000  # an ingest looks for what is past retention at most this often...
AFTER_INGEST_BUDGET_S = 0.5  # ... and prunes for at most this long
_MARK = "pruned_at"
_SPANS = {"minute": MINUTE, "hour": HOUR, "day": DAY}


@dataclass(frozen=True)
class Retention:
    """How long each resolution is kept, in milliseconds."""

    raw_ms: int = 7 * DAY
    minute_ms: int = 30 * DAY
    hour_ms: int = 400 * DAY
    day_ms: int = 1825 * DAY

    def __post_init__(self) -> None:
        if min(self.raw_ms, self.minute_ms, self.hour_ms, self.day_ms) <= 0:
            raise ValueError("every retention must be more than zero")
        if not self.minute_ms <= self.hour_ms <= self.day_ms:
            raise ValueError("minutes must not be kept longer than hours, nor hours longer than days")

    def of(self, resolution: str) -> int:
        return getattr(self, f"{resolution}_ms")

    @classmethod
    def from_config(cls, config) -> Retention:
        """analytics.retention.raw, .minute, .hour and .day; a bad value or order is a ConfigError (exit 2)."""
        values = {name: int(config.setting(f"analytics.retention.{name}") * 1000) for name in DEFAULTS}
        try:
            return cls(**{f"{name}_ms": value for name, value in values.items()})
        except ValueError as exc:
            raise ConfigError(f"{config.path}: analytics.retention: {exc}",
                              hint="e.g. raw = \"7d\", minute = \"30d\", hour = \"400d\", day = \"1825d\"") from None


@dataclass
class Pruned:
    """What one resolution lost: raw samples (in their blocks) or rollup rows."""

    resolution: str
    retention_ms: int
    older_than_ms: int  # buckets that ended at or before this went
    removed: int = 0  # raw: samples; rollups: rows
    blocks: int = 0  # raw only: the blocks the samples were in
    rolled_up: int | None = 0  # raw only: minute rows written (or added to) from them first; None in a dry run

    def to_record(self) -> dict:
        from edgectl.parse import format_duration

        record = {"resolution": self.resolution, "retention": format_duration(self.retention_ms / 1000),
                  "older_than": _iso(self.older_than_ms), "removed": self.removed}
        if self.resolution == "raw":
            record.update(blocks=self.blocks, rolled_up=self.rolled_up)
        return record


@dataclass
class PruneReport:
    now_ms: int
    dry_run: bool
    pruned: list[Pruned] = field(default_factory=list)
    complete: bool = True  # False when the time budget ran out first: the rest goes next time

    def to_record(self) -> dict:
        return {"dry_run": self.dry_run, "complete": self.complete, "now": _iso(self.now_ms),
                "resolutions": [p.to_record() for p in self.pruned]}


def _iso(ms: int) -> str:
    from datetime import datetime, timezone

    from edgectl.timeutil import to_iso

    return to_iso(datetime.fromtimestamp(ms / 1000, timezone.utc))


def _limits(retention: Retention, now_ms: int) -> dict[str, int]:
    """The latest bucket start that is past retention, per resolution (raw: an hour's block)."""
    limits = {"raw": now_ms - retention.raw_ms - HOUR}
    limits.update({name: now_ms - retention.of(name) - span for name, span in _SPANS.items()})
    return limits


def prune(state, retention: Retention, now_ms: int, *, dry_run: bool = False,
          budget_s: float | None = None) -> PruneReport:
    """Delete raw samples and rollups past their retention, chunk by chunk; say what went."""
    report = PruneReport(now_ms, dry_run)
    limits = _limits(retention, now_ms)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    conn = state.db.conn
    raw = Pruned("raw", retention.raw_ms, now_ms - retention.raw_ms)
    report.pruned.append(raw)
    if dry_run:
        raw.rolled_up = None  # known only by rolling them up
        raw.blocks, raw.removed = conn.execute("SELECT count(*), coalesce(sum(count), 0) FROM metric_blocks"
                                               " WHERE start <= ?", [limits["raw"]]).fetchone()
    else:
        register_functions(conn)
        keep_minutes_after = limits["minute"]
        while not _late(deadline, report):
            with state.db.atomic():
                rows = conn.execute("SELECT id, start, series_id, count, offsets, vals FROM metric_blocks"
                                    " WHERE start <= ? ORDER BY start, series_id LIMIT ?",
                                    [limits["raw"], BLOCKS_PER_CHUNK]).fetchall()
                if not rows:
                    break
                minutes = _minute_rows(rows, keep_minutes_after)
                conn.executemany(UPSERT_ROLLUPS, minutes)
                conn.executemany("DELETE FROM metric_blocks WHERE id = ?", [(row[0],) for row in rows])
            raw.blocks += len(rows)
            raw.removed += sum(row[3] for row in rows)
            raw.rolled_up += len(minutes)
    for name, span in _SPANS.items():
        pruned = Pruned(name, retention.of(name), now_ms - retention.of(name))
        report.pruned.append(pruned)
        if dry_run:
            pruned.removed = conn.execute("SELECT count(*) FROM metric_rollups WHERE resolution = ? AND start <= ?",
                                          [span, limits[name]]).fetchone()[0]
            continue
        while not _late(deadline, report):
            with state.db.atomic():
                # up to a chunk's rows, with every series of the last start taken: keys are (start, series)
                edge = conn.execute("SELECT start FROM metric_rollups WHERE resolution = ? AND start <= ?"
                                    " ORDER BY start LIMIT 1 OFFSET ?", [span, limits[name], ROWS_PER_CHUNK]).fetchone()
                upto = limits[name] if edge is None else edge[0]
                pruned.removed += conn.execute("DELETE FROM metric_rollups WHERE resolution = ? AND start <= ?",
                                               [span, upto]).rowcount
            if edge is None:
                break
    if not dry_run:
        with state.db.atomic():
            conn.execute("INSERT OR REPLACE INTO metric_marks (name, value) VALUES (?, ?)", [_MARK, now_ms])
    return report


def _late(deadline: float | None, report: PruneReport) -> bool:
    if deadline is not None and time.monotonic() > deadline:
        report.complete = False
        return True
    return False


def _minute_rows(blocks: list, after: int) -> list[tuple]:
    """The minute rollups of raw blocks, for the minutes that start after `after`."""
    from edgectl.analytics.histogram import indices_of, rollup_of

    samples: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for _, start, series_id, _, offsets, vals in blocks:
        if start + HOUR - MINUTE > after:
            times, values = block_samples(start, offsets, vals)
            samples.setdefault((start, series_id), []).extend(zip(times, values))
    rows = []
    for (start, series_id), pairs in samples.items():
        pairs.sort()
        times = [at for at, _ in pairs]
        values = [value for _, value in pairs]
        for minute in range(start, start + HOUR, MINUTE):
            lo, hi = bisect_left(times, minute), bisect_left(times, minute + MINUTE)
            if lo < hi and minute > after:
                part = values[lo:hi]
                rows.append((MINUTE, minute, series_id, *rollup_of(part, indices_of(part))))
    return rows


def pruned_at(state) -> int | None:
    """When retention last ran over this history (ms), if ever."""
    row = state.db.conn.execute("SELECT value FROM metric_marks WHERE name = ?", [_MARK]).fetchone()
    return row[0] if row else None


def prune_if_due(state, retention: Retention, now_ms: int | None = None, *,
                 oldest_ms: int | None = None) -> PruneReport | None:
    """After an ingest: prune within a small budget when something is past retention and the last
    prune is more than PRUNE_EVERY_MS ago, or the ingest itself brought samples already past it.

    Whether anything is past retention is a few index lookups; the time is remembered either way.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    limits = _limits(retention, now)
    last = pruned_at(state)
    brought_old = oldest_ms is not None and oldest_ms < limits["raw"] + HOUR
    if last is not None and now - last < PRUNE_EVERY_MS and not brought_old:
        return None
    conn = state.db.conn
    due = conn.execute("SELECT 1 FROM metric_blocks WHERE start <= ? LIMIT 1", [limits["raw"]]).fetchone() or any(
        conn.execute("SELECT 1 FROM metric_rollups WHERE resolution = ? AND start <= ? LIMIT 1",
                     [span, limits[name]]).fetchone() for name, span in _SPANS.items())
    if not due:
        with state.db.atomic():
            conn.execute("INSERT OR REPLACE INTO metric_marks (name, value) VALUES (?, ?)", [_MARK, now])
        return None
    return prune(state, retention, now, budget_s=AFTER_INGEST_BUDGET_S)
