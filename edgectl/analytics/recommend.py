"""What the history suggests changing, each suggestion with its evidence in numbers.

Five questions, each answered from the rollups over one window:
- places whose clients' p95 latency stays above the target while their nearest node is far: a node
  there would help (latency samples that carry the client's country: real-user measurements);
- nodes whose cpu stays high: shift weight away from them;
- path prefixes with a low hit ratio: a cache policy or a warm job;
- nodes that serve almost none of the traffic: candidates to decommission;
- providers whose 5xx rate spiked in some hour well above their rate over the window.

A suggestion needs enough samples behind it (`MIN_SAMPLES` latencies, `MIN_REQUESTS` requests,
`MIN_CPU_SAMPLES` cpu figures), so a quiet week doesn't recommend anything on the strength of
three requests. Cache warms' own requests are not traffic: hit ratios and shares leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MIN_SAMPLES = 20
MIN_REQUESTS = 100
MIN_CPU_SAMPLES = 10  # heartbeats: five minutes of them at the default 30 s
FAR_KM = 1000.0  # a nearest node further than this is far enough that a nearer one would cut latency
IDLE_SHARE = 0.01  # under 1% of the nodes' traffic
SPIKE_RATE = 0.05  # an hour's 5xx rate of at least 5%...
SPIKE_FACTOR = 3.0  # ...and three times the provider's rate over the window
HOUR = 3_600_000


@dataclass
class Recommendation:
    kind: str  # add_node | shift_weight | cache_policy | decommission | provider_errors
    subject: str
    action: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "action": self.action, "evidence": self.evidence}


@dataclass(frozen=True)
class Targets:
    latency_ms: float = 100.0
    hit_ratio: float = 0.9
    cpu_high: float = 80.0

    @classmethod
    def from_config(cls, config) -> "Targets":
        return cls(config.setting("analytics.latency_target") * 1000, config.setting("analytics.hit_ratio_target"),
                   config.setting("analytics.cpu_high"))


def recommend(state, targets: Targets, start_ms: int, end_ms: int) -> list[Recommendation]:
    out: list[Recommendation] = []
    out += _far_places(state, targets, start_ms, end_ms)
    out += _busy_nodes(state, targets, start_ms, end_ms)
    out += _missed_prefixes(state, targets, start_ms, end_ms)
    out += _idle_nodes(state, start_ms, end_ms)
    out += _error_spikes(state, start_ms, end_ms)
    return out


def _by(state, metric: str, by: str, start_ms: int, end_ms: int, **labels: str) -> dict[str, Any]:
    """A metric's histogram over the window per value of a column or label, groups without one left out."""
    from edgectl.analytics.histogram import Histogram
    from edgectl.analytics.queries import group_of, select_series
    from edgectl.analytics.store import window_histograms

    series = select_series(state, metric, labels=labels or None)
    out: dict[str, Histogram] = {}
    for series_id, histogram in window_histograms(state, series, start_ms, end_ms).items():
        name = group_of(series[series_id], by)
        if histogram.count and name != "-":
            out.setdefault(name, Histogram()).merge(histogram)
    return out


def _in_service(state) -> list:
    from edgectl.nodes.inventory import list_nodes

    return [n for n in list_nodes(state) if n.status == "active" and n.removed_at is None]


def _far_places(state, targets: Targets, start_ms: int, end_ms: int) -> list[Recommendation]:
    from edgectl.routing.geo import distance_km
    from edgectl.routing.locations import country_location

    nodes = [n for n in _in_service(state) if n.lat is not None and n.lon is not None]
    out = []
    for country, histogram in sorted(_by(state, "latency", "country", start_ms, end_ms).items()):
        p95 = histogram.quantile(0.95)
        if histogram.count < MIN_SAMPLES or p95 <= targets.latency_ms:
            continue
        try:
            place = country_location(country)
        except Exception:  # a code the history holds that is no country (ingested as such)
            continue
        if place.lat is None or not nodes:
            continue
        nearest = min(nodes, key=lambda n: distance_km(place.lat, place.lon, n.lat, n.lon))
        km = distance_km(place.lat, place.lon, nearest.lat, nearest.lon)
        if km < FAR_KM:
            continue
        out.append(Recommendation(
            "add_node", country, f"a node in or near {place.name} would help: its clients' p95 is "
            f"{p95:.0f} ms and the nearest node, {nearest.name}, is {km:,.0f} km away",
            {"p95_ms": round(p95, 1), "target_ms": targets.latency_ms, "samples": histogram.count,
             "nearest_node": nearest.name, "distance_km": round(km)}))
    return out


def _busy_nodes(state, targets: Targets, start_ms: int, end_ms: int) -> list[Recommendation]:
    out = []
    for node, histogram in sorted(_by(state, "cpu", "node", start_ms, end_ms).items()):
        p95, mean = histogram.quantile(0.95), histogram.sum / histogram.count
        if histogram.count < MIN_CPU_SAMPLES or p95 <= targets.cpu_high:
            continue
        out.append(Recommendation(
            "shift_weight", node, f"shift weight away from {node}: its cpu p95 is {p95:.0f}% "
            f"(mean {mean:.0f}%) against {targets.cpu_high:g}%",
            {"cpu_p95": round(p95, 1), "cpu_mean": round(mean, 1), "cpu_max": histogram.max,
             "threshold": targets.cpu_high, "samples": histogram.count}))
    return out


def _served(state, metric: str, by: str, start_ms: int, end_ms: int) -> dict[str, float]:
    """An additive metric's totals per group from the traffic served, cache warms' own requests left out:
    a warm is the remedy for misses, and its first pass misses by design."""
    totals = {name: h.sum for name, h in _by(state, metric, by, start_ms, end_ms).items()}
    for name, histogram in _by(state, metric, by, start_ms, end_ms, source="warm").items():
        totals[name] = totals.get(name, 0.0) - histogram.sum
    return totals


def _missed_prefixes(state, targets: Targets, start_ms: int, end_ms: int) -> list[Recommendation]:
    requests = _served(state, "requests", "prefix", start_ms, end_ms)
    hits = _served(state, "cache.hits", "prefix", start_ms, end_ms)
    out = []
    for prefix, total in sorted(requests.items(), key=lambda item: -item[1]):
        if prefix not in hits:  # a provider that reports no hits: no ratio to judge
            continue
        hit = hits[prefix]
        if total < MIN_REQUESTS or hit / total >= targets.hit_ratio:
            continue
        out.append(Recommendation(
            "cache_policy", prefix, f"{prefix} hits {hit / total:.0%} against {targets.hit_ratio:.0%}: "
            f"a cache policy (edgectl cache policies add) or a warm job for it",
            {"hit_ratio": round(hit / total, 4), "target": targets.hit_ratio, "requests": int(total),
             "misses": int(total - hit)}))
    return out


def _idle_nodes(state, start_ms: int, end_ms: int) -> list[Recommendation]:
    """Traffic the nodes served (provider pulls of own nodes, ingested logs), warm requests left out."""
    served = _served(state, "requests", "node", start_ms, end_ms)
    everything = sum(served.values())
    if everything < MIN_REQUESTS:
        return []
    out = []
    for node in sorted(n.name for n in _in_service(state)):
        share = served.get(node, 0.0) / everything
        if share >= IDLE_SHARE:
            continue
        out.append(Recommendation(
            "decommission", node, f"{node} served {share:.2%} of the nodes' requests: a candidate to decommission "
            "(or to route more to)",
            {"requests": int(served.get(node, 0.0)), "share": round(share, 5), "all_requests": int(everything)}))
    return out


def _error_spikes(state, start_ms: int, end_ms: int) -> list[Recommendation]:
    from datetime import datetime, timezone

    from edgectl.analytics.queries import timeseries
    from edgectl.timeutil import to_iso

    start = start_ms - start_ms % HOUR
    requests = timeseries(state, "requests", by="provider", start_ms=start, end_ms=end_ms, step_ms=HOUR)
    errors = timeseries(state, "errors.5xx", by="provider", start_ms=start, end_ms=end_ms, step_ms=HOUR)
    out = []
    for provider, steps in sorted(requests.items()):
        if provider == "-" or provider not in errors:
            continue
        total = sum(h.sum for _, h in steps)
        failed = sum(h.sum for _, h in errors[provider])
        if total < MIN_REQUESTS:
            continue
        overall = failed / total
        worst = max(((h.sum / r.sum, at, r.sum) for (at, r), (_, h) in zip(steps, errors[provider]) if r.sum),
                    default=None)
        if worst is None:
            continue
        rate, at, hour_requests = worst
        if rate < SPIKE_RATE or rate < SPIKE_FACTOR * overall:
            continue
        when = to_iso(datetime.fromtimestamp(at / 1000, timezone.utc))
        out.append(Recommendation(
            "provider_errors", provider, f"{provider}'s 5xx rate reached {rate:.1%} in the hour from {when} "
            f"against {overall:.2%} over the window: look at its origin or status page for that hour",
            {"peak_rate": round(rate, 4), "peak_hour": when, "peak_requests": int(hour_requests),
             "window_rate": round(overall, 5), "requests": int(total)}))
    return out
