"""Pulling the providers' analytics into the history: a settled window per provider, each figure stored once.

For each provider whose kind declares `analytics` (edgectl.providers.analytics is the contract), the
window is [now - since, now - settle) in whole minutes, begun no earlier than the provider can still
report (`oldest_ms`). Figures newer than the provider's settle time are not pulled: providers revise
their latest minutes for a while, and a figure stored once is never replaced, so only settled ones
are taken. The next pull takes them.

Pulls are idempotent, one value per series and interval: a point whose interval already holds a
value in the history (its raw samples or minute rollups, or for old minutes the hour rollups, and the
spans of the coarser points kept in `metric_spans`) is kept as it is and counted as present, so pulling a window
twice, or two overlapping windows at once, stores each figure once. Every batch checks and stores in
one transaction (BEGIN IMMEDIATE), so two processes pulling the same provider on one state file take
turns and the second finds what the first stored.

How each kind of point lands:
- `value` (a count or amount for an interval): samples of the catalogue's metric, provider = the
  provider's config name, labels {"source": "pull", ...};
- `gauge` (a figure the provider computed, a p95): samples of a series of kind "gauge", never merged;
- `counter` (a running total read now): the increase since the previous reading of the same series,
  kept in `metric_counters`; the first reading only sets the baseline.

A provider that fails (credentials refused, unreachable, still throttled at --timeout) is reported
as failed with what it stored before it failed; the others are still pulled.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from edgectl.errors import ConfigError, UsageError

ANALYTICS = "analytics"
MINUTE, HOUR = 60_000, 3_600_000
# points checked and stored per transaction: small enough that a pull beside another on a loaded machine
# holds the write lock well within the default state.busy_timeout of 5 s
BATCH = 2_000
DEFAULT_TIMEOUT_S = 600.0


@dataclass
class ProviderPull:
    """What one provider's pull did."""

    provider: str
    kind: str
    start_ms: int | None = None
    end_ms: int | None = None
    received: int = 0  # points the provider answered with
    stored: int = 0  # samples added to the history
    present: int = 0  # points whose interval already held a value (or counter readings older than the last)
    requests: int = 0  # API requests sent, retries included
    retries: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "ok" if self.start_ms is not None else "nothing to pull"

    def to_record(self) -> dict[str, Any]:
        return {"provider": self.provider, "kind": self.kind, "status": self.status,
                "start": _moment(self.start_ms), "end": _moment(self.end_ms), "received": self.received,
                "stored": self.stored, "present": self.present, "requests": self.requests,
                "retries": self.retries, "notes": list(self.notes), "error": self.error}


@dataclass
class PullReport:
    providers: list[ProviderPull]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.providers)

    @property
    def failed(self) -> list[ProviderPull]:
        return [p for p in self.providers if not p.ok]

    def to_record(self) -> dict[str, Any]:
        return {"providers": [p.to_record() for p in self.providers],
                "stored": sum(p.stored for p in self.providers), "present": sum(p.present for p in self.providers),
                "failed": [p.provider for p in self.failed]}


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc)


# -- which providers -------------------------------------------------------------------------

def select(config, names: list[str] | None):
    """The providers named (each must have analytics), or with None every one that has it, in file order."""
    from edgectl.providers import config as providers_config

    able = providers_config.configured(config, ANALYTICS)
    if names is None:
        if not able:
            raise ConfigError(f"no provider with the analytics capability is configured in {config.path}",
                              hint="edgectl providers list shows every provider and its capabilities")
        return able
    by_name = {e.name: e for e in able}
    listed = ", ".join(by_name) or "none is configured"
    chosen = []
    for name in dict.fromkeys(names):
        if name in by_name:
            chosen.append(by_name[name])
            continue
        known = {e.name: e for e in providers_config.configured(config)}
        if name in known and known[name].problem:
            raise ConfigError(known[name].problem, hint="edgectl config validate lists every problem")
        what = f"provider {name} (kind {known[name].kind}) has no analytics" if name in known \
            else f"unknown provider {name!r}"
        raise UsageError(what, hint=f"providers with analytics: {listed}")
    return chosen


def _build(state, config, items, timeout_s: float) -> list:
    """Every provider built and its client prepared, so a missing credential stops the pull before anything."""
    from edgectl.nodes.inventory import node_lookup
    from edgectl.providers.config import build

    request_timeout = max(1.0, min(30.0, timeout_s / 4))  # a hung request leaves time to send it again
    built = []
    try:
        for item in items:
            provider = build(config, item, nodes=node_lookup(state), timeout=request_timeout)
            built.append(provider)
            provider.prepare()
    except BaseException:
        for provider in built:
            provider.close()
        raise
    return built


# -- pulling ---------------------------------------------------------------------------------

def pull(state, config, provider_names: list[str] | None, since_s: float, *, timeout_s: float = DEFAULT_TIMEOUT_S,
         now_ms: int | None = None) -> PullReport:
    """Pull each provider's settled figures of the last `since_s` seconds into the history."""
    if since_s <= 0:
        raise UsageError("--since must be more than zero")
    items = select(config, provider_names)
    providers = _build(state, config, items, timeout_s)
    deadline = time.monotonic() + timeout_s
    report = PullReport([])
    try:
        for provider in providers:
            now = now_ms if now_ms is not None else int(time.time() * 1000)
            report.providers.append(pull_provider(state, provider, int(since_s * 1000), now, deadline))
    finally:
        for provider in providers:
            provider.close()
    return report


def window_for(provider, since_ms: int, now_ms: int):
    """[now - since, now - settle) in whole minutes, from no earlier than the provider reaches; None when empty."""
    from edgectl.providers.analytics import PullWindow

    start = _floor(now_ms - since_ms, MINUTE)
    oldest = provider.oldest_ms(now_ms)
    if oldest is not None:
        start = max(start, _ceil(oldest, MINUTE))
    end = _floor(now_ms - provider.settle_ms, MINUTE)
    return PullWindow(start, end, now_ms) if start < end else None


def pull_provider(state, provider, since_ms: int, now_ms: int, deadline: float) -> ProviderPull:
    """One provider's pull, stored batch by batch; its failure is recorded, not raised."""
    from edgectl.logs import log, redact
    from edgectl.providers.analytics import PullLog
    from edgectl.providers.base import ProviderError

    result = ProviderPull(provider.name, provider.kind)
    pulled = PullLog(send=_sender(result, deadline))
    provider.pulling(pulled)
    try:
        window = window_for(provider, since_ms, now_ms)
        if window is None:
            pulled.notes.append("the window is empty: --since is shorter than the time the provider's figures "
                                f"take to settle ({provider.settle_ms // 1000}s)")
        else:
            result.start_ms, result.end_ms = window.start_ms, window.end_ms
            _Storing(state, provider.name, window, result, pulled.notes).run(provider.pull(window))
    except (ProviderError, UsageError) as exc:
        result.error = redact(exc.message)
    except Exception as exc:  # noqa: BLE001 - a plugin's bug fails its own provider, not the pull
        log.debug("analytics pull %s", provider.name, exc_info=True)
        result.error = redact(f"unexpected {exc.__class__.__name__}: {exc}")
    result.notes = [redact(n) for n in pulled.notes]
    return result


def _sender(result: ProviderPull, deadline: float):
    """How a provider's requests go out: each attempt counted, retryable failures sent again as the executor does."""
    from edgectl.providers.retry import retrying

    def send(what: str, call, retry: bool = True):
        def attempt():
            result.requests += 1
            return call()

        if not retry:
            return attempt()

        def again(_message: str) -> None:
            result.retries += 1

        return retrying(attempt, deadline=deadline, what=f"{result.provider}: {what}", on_retry=again)

    return send


# -- storing ---------------------------------------------------------------------------------

class _Storing:
    """A provider's points into the history, a transaction per batch."""

    def __init__(self, state, provider_name: str, window, result: ProviderPull, notes: list[str]):
        self.state = state
        self.provider_name = provider_name
        self.window = window
        self.result = result
        self.notes = notes
        self.outside = self.first_readings = 0
        self.restarted: set[str] = set()
        self.problems: dict[str, int] = {}
        self.keys: dict[tuple, object] = {}  # what a point is about -> its SeriesKey
        self.index = None  # series ids, made in the first batch's transaction

    def run(self, points: Iterable) -> None:
        """Store the points a batch at a time; when the provider fails part way, what it answered is kept."""
        batch: list = []
        try:
            for point in points:
                batch.append(point)
                if len(batch) >= BATCH:
                    self._store(batch)
                    batch = []
        finally:
            try:
                if batch:
                    self._store(batch)
            finally:
                self._summarise()

    def _summarise(self) -> None:
        if self.outside:
            self.notes.append(f"{self.outside} point(s) outside the window were left out")
        if self.first_readings:
            self.notes.append(f"{self.first_readings} running total(s) read for the first time: "
                              "their increases count from the next pull")
        if self.restarted:
            self.notes.append(f"counters went down (restarted): {', '.join(sorted(self.restarted))}; "
                              "counted from zero")
        for problem, count in self.problems.items():
            self.notes.append(f"{count} point(s) left out: {problem}")

    def _series(self, point):
        """The series a point belongs to, or why it cannot be stored; keys are built once per pull."""
        from edgectl.analytics.metrics import CATALOGUE, key
        from edgectl.providers.analytics import POINT_KINDS

        if point.metric not in CATALOGUE:
            return None, f"metric {point.metric!r} is not in the catalogue"
        if point.kind not in POINT_KINDS:
            return None, f"kind {point.kind!r} is not one of {', '.join(POINT_KINDS)}"
        if not isinstance(point.value, (int, float)) or isinstance(point.value, bool) or not math.isfinite(point.value):
            return None, "a value that is not a finite number"
        kind = "gauge" if point.kind == "gauge" else "histogram"
        labels = tuple(sorted((str(k), str(v)) for k, v in point.labels.items() if k != "source"))
        wanted = (point.metric, kind, point.unit, point.node, point.country, point.region, labels)
        series = self.keys.get(wanted)
        if series is None:
            series = self.keys[wanted] = key(
                point.metric, node=point.node, provider=self.provider_name, country=point.country,
                region=point.region, labels={**dict(labels), "source": "pull"}, kind=kind, unit=point.unit)
        return series, None

    def _store(self, batch: list) -> None:
        from edgectl.analytics.samples import Sample
        from edgectl.analytics.store import SeriesIndex, ingest

        with self.state.db.atomic():
            if self.index is None:
                self.index = SeriesIndex(self.state)
            values, counters = [], []
            for point in batch:
                self.result.received += 1
                series, problem = self._series(point)
                if problem:
                    self.problems[problem] = self.problems.get(problem, 0) + 1
                elif point.kind == "counter":
                    counters.append((self.index.id_of(series), series, point))
                elif point.at_ms < self.window.start_ms or point.at_ms + point.step_ms > self.window.end_ms \
                        or point.step_ms < MINUTE:
                    self.outside += 1
                else:
                    values.append((self.index.id_of(series), series, point))
            stored = _Stored(self.state.db.conn, [(i, p.at_ms, p.step_ms) for i, _, p in values])
            fresh: list = []
            for series_id, series, point in values:
                if stored.has(series_id, point.at_ms, point.step_ms):
                    self.result.present += 1
                    continue
                stored.add(series_id, point.at_ms, point.step_ms)
                fresh.append(Sample(series, point.at_ms, float(point.value)))
            fresh += self._increases(counters)
            if fresh:
                ingest(self.state, fresh)
            self.result.stored += len(fresh)

    def _increases(self, counters: list) -> list:
        """Each running total's increase since the reading before it, which becomes its baseline."""
        from edgectl.analytics.samples import Sample

        conn = self.state.db.conn
        out = []
        for series_id, series, point in sorted(counters, key=lambda c: c[2].at_ms):
            last = conn.execute("SELECT at, value FROM metric_counters WHERE series_id = ?", [series_id]).fetchone()
            if last is None:
                self.first_readings += 1
            elif point.at_ms <= last[0]:
                # another pull read it later and stored that reading already: this one is older
                self.result.present += 1
                continue
            else:
                increase = point.value - last[1]
                if increase < 0:
                    # A running total only goes down when the node restarted and counts again from
                    # zero: the new reading is all increase since the restart.
                    increase = point.value
                    self.restarted.add(point.node or series.metric)
                if increase > 0:
                    out.append(Sample(series, point.at_ms, float(increase)))
            conn.execute("INSERT INTO metric_counters (series_id, at, value) VALUES (?, ?, ?) ON CONFLICT (series_id)"
                         " DO UPDATE SET at = excluded.at, value = excluded.value",
                         [series_id, point.at_ms, point.value])
        return out


class _Stored:
    """Whether a series already holds a value in an interval: what the rollups and spans held when the batch
    began (read once for the batch's series and hours), and what the batch itself adds."""

    def __init__(self, conn, wanted: list[tuple[int, int, int]]):
        from edgectl.analytics.store import minutes_held, oldest_minute_ms

        self.conn = conn
        ids = {series_id for series_id, _, _ in wanted}
        hours = sorted({hour for _, at, step in wanted for hour in range(_floor(at, HOUR), at + step, HOUR)})
        self.minutes: set[tuple[int, int]] = set()  # (series, minute start) holding a value in the history
        self.hours: set[tuple[int, int]] = set()  # (series, hour start) likewise
        self.spans: list[tuple[int, int, int]] = []  # (series, start, stop) of points longer than a minute
        for hour in hours:
            self.minutes.update(held for held in minutes_held(conn, hour) if held[0] in ids)
            self.hours.update((series_id, hour) for series_id, in conn.execute(
                "SELECT series_id FROM metric_rollups WHERE resolution = ? AND start = ?", [HOUR, hour])
                if series_id in ids)
        if hours:
            self.spans = [row for row in conn.execute(
                "SELECT series_id, start, stop FROM metric_spans WHERE start < ? AND stop > ?",
                [hours[-1] + HOUR, hours[0]]) if row[0] in ids]
        # minutes older than this were pruned, or never were: there the hour says whether it holds a value
        self.oldest_minute = oldest_minute_ms(conn)
        self.batch_minutes: set[tuple[int, int]] = set()  # what this batch stores
        self.batch_hours: set[tuple[int, int]] = set()

    def has(self, series_id: int, at: int, step: int) -> bool:
        stop = at + step
        if any(s == series_id and a < stop and b > at for s, a, b in self.spans):
            return True
        if at % HOUR == 0 and step % HOUR == 0:  # whole hours: anything stored in them
            return any((series_id, hour) in self.hours or (series_id, hour) in self.batch_hours
                       for hour in range(at, stop, HOUR))
        minutes = range(_floor(at, MINUTE), stop, MINUTE)
        if any((series_id, minute) in self.batch_minutes for minute in minutes):
            return True
        if self.oldest_minute is not None and minutes[0] < self.oldest_minute:
            # no minute rollups this far back: anything stored in the hour counts, so nothing is stored twice
            return any((series_id, hour) in self.hours for hour in range(_floor(at, HOUR), stop, HOUR))
        return any((series_id, minute) in self.minutes for minute in minutes)

    def add(self, series_id: int, at: int, step: int) -> None:
        stop = at + step
        self.batch_minutes.update((series_id, minute) for minute in range(_floor(at, MINUTE), stop, MINUTE))
        self.batch_hours.update((series_id, hour) for hour in range(_floor(at, HOUR), stop, HOUR))
        if step > MINUTE:
            self.spans.append((series_id, at, stop))
            self.conn.execute("INSERT OR IGNORE INTO metric_spans (series_id, start, stop) VALUES (?, ?, ?)",
                              [series_id, at, stop])


def _floor(ms: int, step: int) -> int:
    return ms - ms % step


def _ceil(ms: int, step: int) -> int:
    return ms + (-ms) % step
