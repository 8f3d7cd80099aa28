"""Cache hit ratios from the metrics history: hits over requests per group and per step, against the target.

A window's hit ratio is sum(cache.hits) / sum(requests) of the series in it (the catalogue's
definition), read from the rollups' sums, so it is exact whatever the window. A group is a node,
a provider, a region or a path prefix (the `prefix` label), as `requests` and `cache.hits` are
recorded with the same node, provider, region and labels. Misses are requests less hits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edgectl.errors import UsageError

CACHE_GROUPINGS = ("node", "provider", "region", "prefix")
DEFAULT_TARGET = 0.9  # the reference specification's: a hit ratio above 90%
MINUTE_MS = 60_000
# the steps `analytics cache` picks from, finest first: the first giving at most MAX_STEPS steps
NICE_STEPS_MS = [m * MINUTE_MS for m in (1, 5, 10, 15, 30, 60, 180, 360, 720, 1440)]
MAX_STEPS = 30
STEP_LIMIT = 2000  # a series longer than this is no use to read, and slow to gather
PARTS = {"requests": "requests", "hits": "cache.hits", "bytes": "bytes"}  # a Tally's field: its metric


def whole(value: float) -> float | int:
    """A count as a whole number where it is one (sums of counts are floats in the rollups)."""
    return int(value) if float(value).is_integer() else value


def ratio(hits: float, requests: float) -> float | None:
    return hits / requests if requests else None


def totals_by(state, metric: str, by: str | None, start_ms: int, end_ms: int) -> dict[str, float]:
    """An additive metric's total over [start, end) per group (a column, a label, or "all")."""
    from edgectl.analytics.queries import histograms_by

    groups, _ = histograms_by(state, metric, by, start_ms, end_ms)
    return {name: histogram.sum for name, histogram in groups.items()}


def tallies_by(state, by: str | None, start_ms: int, end_ms: int) -> dict[str, "Tally"]:
    """Requests, hits and bytes over [start, end) per group that has requests or hits.

    A group with requests and no `cache.hits` samples at all (a provider that reports none, such as
    Azure, or CloudFront without its additional metrics) has no hit ratio, rather than 0%.
    """
    totals = {part: totals_by(state, metric, by, start_ms, end_ms) for part, metric in PARTS.items()}
    names = set(totals["requests"]) | set(totals["hits"])
    return {name: Tally(*(totals[part].get(name, 0.0) for part in PARTS), known=name in totals["hits"])
            for name in names}


def auto_step(start_ms: int, end_ms: int) -> int:
    """A step that cuts the window into at most MAX_STEPS steps, from a list of round ones."""
    span = max(end_ms - start_ms, 1)
    return next((s for s in NICE_STEPS_MS if span / s <= MAX_STEPS), -(-span // MAX_STEPS // 86_400_000) * 86_400_000)


@dataclass(frozen=True)
class CacheRequest:
    by: str = "node"
    start_ms: int = 0
    end_ms: int = 0
    step_ms: int | None = None  # None: auto_step
    target: float = DEFAULT_TARGET

    def __post_init__(self) -> None:
        if self.by not in CACHE_GROUPINGS:
            raise UsageError(f"--by {self.by!r}: one of {', '.join(CACHE_GROUPINGS)}")
        if self.step_ms is not None and (self.step_ms < MINUTE_MS or self.step_ms % MINUTE_MS):
            raise UsageError("--step must be whole minutes (the history keeps minutes), e.g. 5m or 1h")
        if self.step_ms is not None and (self.end_ms - self.start_ms) / self.step_ms > STEP_LIMIT:
            raise UsageError(f"--step is too fine for the window: more than {STEP_LIMIT:,} steps",
                             hint="a longer --step, or a shorter --since")


@dataclass
class Tally:
    """Requests, hits and bytes of a group or a step; the ratio and the misses follow from them."""

    requests: float = 0.0
    hits: float = 0.0
    bytes: float = 0.0
    known: bool = True  # hits were reported: without any, the ratio is unknown, not 0%

    @property
    def hit_ratio(self) -> float | None:
        return ratio(self.hits, self.requests) if self.known else None

    def add(self, part: str, amount: float) -> None:
        setattr(self, part, getattr(self, part) + amount)

    def merge(self, other: "Tally") -> None:
        """Another tally's figures added in. A tally whose hits are unknown would count its requests
        as misses, so a total that is to have a ratio merges only known ones."""
        for part in PARTS:
            self.add(part, getattr(other, part))

    def below(self, target: float) -> bool:
        return self.hit_ratio is not None and self.hit_ratio < target

    def to_record(self, target: float) -> dict[str, Any]:
        return {"requests": whole(self.requests), "hits": whole(self.hits),
                "misses": whole(max(self.requests - self.hits, 0.0)), "hit_ratio": self.hit_ratio,
                "bytes": whole(self.bytes), "below_target": self.below(target)}


@dataclass
class CacheGroup:
    name: str
    total: Tally
    steps: list[tuple[int, Tally]] = field(default_factory=list)


@dataclass
class CacheReport:
    request: CacheRequest
    step_ms: int
    overall: CacheGroup
    groups: list[CacheGroup]

    @property
    def empty(self) -> bool:
        return not self.groups

    def to_record(self) -> dict[str, Any]:
        target = self.request.target

        def steps(group: CacheGroup) -> list[dict[str, Any]]:
            return [{"start": _moment(at), **tally.to_record(target)}
                    for at, tally in group.steps]

        return {"by": self.request.by, "start": _moment(self.request.start_ms), "end": _moment(self.request.end_ms),
                "step_s": self.step_ms // 1000, "target": target, **self.overall.total.to_record(target),
                "steps": steps(self.overall),
                "groups": [{self.request.by: g.name, **g.total.to_record(target), "target": target, "steps": steps(g)}
                           for g in self.groups]}


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def hit_ratios(state, request: CacheRequest) -> CacheReport:
    """Requests, hits, misses, bytes and the hit ratio per group and per step, worst group first."""
    from edgectl.analytics.queries import timeseries

    step = request.step_ms or auto_step(request.start_ms, request.end_ms)
    window = {"by": request.by, "start_ms": request.start_ms, "end_ms": request.end_ms, "step_ms": step}
    parts = {part: timeseries(state, metric, **window) for part, metric in PARTS.items()}
    first = request.start_ms - request.start_ms % step
    starts = list(range(first, request.end_ms, step))  # the steps timeseries gives every group
    overall = CacheGroup("all", Tally(), [(at, Tally()) for at in starts])
    groups: list[CacheGroup] = []
    for name in sorted(set(parts["requests"]) | set(parts["hits"])):
        group = CacheGroup(name, Tally(), [(at, Tally()) for at in starts])
        for part, by_group in parts.items():
            for n, (_, histogram) in enumerate(by_group.get(name, ())):
                group.steps[n][1].add(part, histogram.sum)
        for _, tally in group.steps:
            group.total.merge(tally)
        if not (group.total.requests or group.total.hits):
            continue  # bytes alone: not a cache's requests
        groups.append(group)
        if not any(h.count for _, h in parts["hits"].get(name, ())):
            # requests but no hit figures at all (a provider that reports none): no ratio, and
            # left out of the overall one rather than counted as misses
            for tally in [group.total, *(t for _, t in group.steps)]:
                tally.known = False
            continue
        overall.total.merge(group.total)
        for n, (_, tally) in enumerate(group.steps):
            overall.steps[n][1].merge(tally)
    groups.sort(key=lambda g: (g.total.hit_ratio is None, g.total.hit_ratio or 0.0, g.name))
    return CacheReport(request, step, overall, groups)
