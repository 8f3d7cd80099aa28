"""Metrics over time, step by step, as chart series: latency percentiles and the cache hit ratio per group."""

from __future__ import annotations

from edgectl.analytics.charts import DAY, TIME_STEPS, Series

CHART_POINTS = 96


def choose_step(start_ms: int, end_ms: int, points: int = CHART_POINTS) -> int:
    """The smallest round step that draws [start, end) in at most `points` steps (a minute at least):
    whole minutes, hours or days, so each step is read from whole rollups."""
    span = max(1, end_ms - start_ms)
    points = max(1, points)
    return next((s for s in TIME_STEPS if span / s <= points), -(-span // (points * DAY)) * DAY)


def latency_trends(state, *, by: str | None, start_ms: int, end_ms: int, step_ms: int,
                   percentiles: tuple[float, ...] = (95.0,), metric: str = "latency",
                   **where: str) -> dict[float, list[Series]]:
    """Each group's percentiles per step, from the rollups read once: {percentile: [Series]}; None for a
    step without samples."""
    from edgectl.analytics.queries import timeseries

    steps = timeseries(state, metric, by=by, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms, **where)
    qs = [p / 100 for p in percentiles]
    answers = {name: [(at, h.quantiles(qs) if h.count else None) for at, h in points] for name, points in steps.items()}
    return {p: [Series(name, tuple((at, None if values is None else values[n]) for at, values in points))
                for name, points in answers.items()]
            for n, p in enumerate(percentiles)}


def latency_trend(state, *, by: str | None, start_ms: int, end_ms: int, step_ms: int, percentile: float = 95.0,
                  **where: str) -> list[Series]:
    """Each group's percentile per step, from the rollups; None for a step without samples."""
    return latency_trends(state, by=by, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms,
                          percentiles=(percentile,), **where)[percentile]


def hit_ratio_trend(state, *, by: str, start_ms: int, end_ms: int, step_ms: int) -> list[Series]:
    """Each group's cache hit ratio per step (node, provider or prefix): the step's cache.hits over its
    requests, None without requests; the groups as `analytics cache` finds them."""
    from edgectl.analytics.hitratio import CacheRequest, hit_ratios

    report = hit_ratios(state, CacheRequest(by, start_ms, end_ms, step_ms))
    return [Series(group.name, tuple((at, tally.hit_ratio) for at, tally in group.steps)) for group in report.groups]


def ordered(series: list[Series], names: list[str]) -> list[Series]:
    """The series of `names`, in their order (a table's rows)."""
    found = {s.name: s for s in series}
    return [found[name] for name in names if name in found]
