"""Questions over the metrics history: percentiles by node, region, country or provider over any window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgectl.errors import UsageError

GROUPINGS = ("node", "region", "country", "provider")
DEFAULT_PERCENTILES = (50.0, 95.0, 99.0)


def parse_percentiles(text: str | None) -> tuple[float, ...]:
    """`50,95,99.9` as percentiles, each above 0 and at most 100."""
    if text is None:
        return DEFAULT_PERCENTILES
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            value = float(part.rstrip("%").lstrip("pP"))
        except ValueError:
            raise UsageError(f"--percentiles: {part!r} is not a number", hint="e.g. --percentiles 50,95,99") from None
        if not 0 < value <= 100:
            raise UsageError(f"--percentiles: {part} is not above 0 and at most 100")
        out.append(value)
    if not out:
        raise UsageError("--percentiles names no percentile", hint="e.g. --percentiles 50,95,99")
    return tuple(dict.fromkeys(out))


def field_name(percentile: float) -> str:
    """p50, p95, p99.9: the field a percentile has in records."""
    return f"p{percentile:g}"


@dataclass(frozen=True)
class PercentileRequest:
    metric: str = "latency"
    by: str = "node"
    start_ms: int = 0
    end_ms: int = 0
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES

    def __post_init__(self) -> None:
        if self.by not in GROUPINGS:
            raise UsageError(f"--by {self.by!r}: one of {', '.join(GROUPINGS)}")


def histograms_by(state, metric: str, by: str | None, start_ms: int, end_ms: int,
                  *, labels: dict[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    """A metric's histogram over [start, end) per group (group_of), and each group's unit."""
    from edgectl.analytics.histogram import Histogram
    from edgectl.analytics.store import window_histograms

    series = select_series(state, metric, labels=labels)
    groups: dict[str, Histogram] = {}
    units: dict[str, str] = {}
    for series_id, histogram in window_histograms(state, series, start_ms, end_ms).items():
        if histogram.count:
            name = group_of(series[series_id], by)
            groups.setdefault(name, Histogram()).merge(histogram)
            units[name] = series[series_id]["unit"]
    return groups, units


def percentile_fields(by: str, percentiles: tuple[float, ...]) -> tuple[str, ...]:
    """The fields of every percentile record, in their order, whichever source it has and whether or not
    there are any: a csv header is the same for an empty window as for a full one."""
    return (by, "samples", *(field_name(p) for p in percentiles), "mean", "min", "max", "unit", "source")


def _percentile_record(request: PercentileRequest, group: str, *, samples: int, unit: str, source: str,
                       percentiles: list[float | None], mean: float | None = None, low: float | None = None,
                       high: float | None = None) -> dict[str, Any]:
    values = {request.by: group, "samples": samples, "mean": mean, "min": low, "max": high, "unit": unit,
              "source": source, **{field_name(p): v for p, v in zip(request.percentiles, percentiles)}}
    return {name: values[name] for name in percentile_fields(request.by, request.percentiles)}


def percentiles_by(state, request: PercentileRequest) -> list[dict[str, Any]]:
    """One record per group: samples, each percentile, mean, min and max, from the rollups (`source: history`)."""
    groups, units = histograms_by(state, request.metric, request.by, request.start_ms, request.end_ms)
    rows = [_percentile_record(request, name, samples=histogram.count, unit=units[name], source="history",
                               percentiles=histogram.quantiles([p / 100 for p in request.percentiles]),
                               mean=histogram.sum / histogram.count, low=histogram.min, high=histogram.max)
            for name, histogram in groups.items()]
    top = field_name(request.percentiles[-1])
    return sorted(rows, key=lambda r: -r[top])


def select_series(state, metric: str, *, labels: dict[str, str] | None = None, kind: str = "histogram",
                  **where: str) -> dict[int, dict]:
    """Series of a metric, by id, filtered by columns (node, provider, country, region) and by labels."""
    from edgectl.analytics.store import series_matching

    found = series_matching(state, metric, **where)
    if kind != "histogram":
        import json

        sql = "SELECT * FROM metric_series WHERE metric = ? AND kind = ?"
        params: list = [metric, kind]
        for column, value in where.items():
            sql += f" AND {column} = ?"
            params.append(value)
        found = {row["id"]: {**row, "labels": json.loads(row["labels"])} for row in state.db.query(sql, params)}
    if labels:
        found = {i: s for i, s in found.items() if all(s["labels"].get(k) == v for k, v in labels.items())}
    return found


def group_of(series: dict, by: str | None) -> str:
    """The group a series falls in: a column (node, region...), a label (`prefix`), or "all"."""
    if by is None:
        return "all"
    value = series.get(by) if by in GROUPINGS else series["labels"].get(by)
    return value or "-"


def timeseries(state, metric: str, *, by: str | None, start_ms: int, end_ms: int, step_ms: int,
               labels: dict[str, str] | None = None, **where: str):
    """Each group's histogram per step over [start, end): {group: [(step start, Histogram), ...]}.

    Steps are aligned to whole multiples of step_ms since the epoch; a step with no samples holds an
    empty histogram, so every group has the same steps. Counts (requests, hits) read `.sum`.
    """
    from edgectl.analytics.histogram import Histogram
    from edgectl.analytics.store import window_histograms

    if step_ms <= 0:
        raise UsageError("the step must be more than zero")
    series = select_series(state, metric, labels=labels, **where)
    first = start_ms - start_ms % step_ms
    starts = list(range(first, end_ms, step_ms))
    out: dict[str, list] = {}
    groups = {i: group_of(s, by) for i, s in series.items()}
    for name in sorted(set(groups.values())):
        out[name] = [(at, Histogram()) for at in starts]
    for n, at in enumerate(starts):
        for series_id, histogram in window_histograms(state, series, max(at, start_ms),
                                                      min(at + step_ms, end_ms)).items():
            if histogram.count:
                out[groups[series_id]][n][1].merge(histogram)
    return out


def provider_percentiles(state, request: PercentileRequest) -> list[dict[str, Any]]:
    """Percentiles a provider computed itself (gauges with a `stat` label, such as Cloudflare's edge time
    to first byte), one record per group with `source: provider` and the fields percentiles_by's have
    (mean, min and max none).

    They cannot be merged into a histogram, so each is the mean of the provider's per-interval figures
    over the window: a summary of what the provider said, not a percentile of the window. Only the
    unsliced figures count (labels `source` and `stat` alone), and by provider only the provider-wide
    ones, so a figure for one country or one cache status is never averaged into the whole.
    """
    from edgectl.analytics.store import window_histograms

    wanted = {field_name(p) for p in request.percentiles}
    chosen: dict[int, tuple[str, str, str]] = {}
    for series_id, series in select_series(state, request.metric, kind="gauge").items():
        labels = series["labels"]
        if set(labels) - {"source", "stat"} or labels.get("stat") not in wanted or not series[request.by]:
            continue
        if request.by == "provider" and (series["node"] or series["country"] or series["region"]):
            continue
        chosen[series_id] = (series[request.by], labels["stat"], series["unit"])
    figures: dict[str, dict[str, list[float]]] = {}
    units: dict[str, str] = {}
    for series_id, histogram in window_histograms(state, chosen, request.start_ms, request.end_ms).items():
        if not histogram.count:
            continue
        group, stat, unit = chosen[series_id]
        total = figures.setdefault(group, {}).setdefault(stat, [0, 0.0])
        total[0] += histogram.count
        total[1] += histogram.sum
        units[group] = unit
    rows = []
    for group, stats in figures.items():
        means = [total / count if count else None
                 for count, total in (stats.get(field_name(p), (0, 0.0)) for p in request.percentiles)]
        rows.append(_percentile_record(request, group, samples=max(count for count, _ in stats.values()),
                                       unit=units[group], source="provider", percentiles=means))
    top = field_name(request.percentiles[-1])
    return sorted(rows, key=lambda r: -(r[top] or 0))
