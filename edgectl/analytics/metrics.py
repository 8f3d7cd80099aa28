"""The metrics edgectl records and reads, by name: one catalogue for every source and question.

A series is a metric with what it is about (edgectl.analytics.samples.SeriesKey). edgectl's own
sources and the provider pulls use these names, so a question (`analytics latency`, `analytics
cache`, an alert, the report, the Prometheus export) reads the same series whoever wrote them.
Labels say where a sample came from (`source`: probe, heartbeat, warm, purge, pull, ingest) and
anything finer (`prefix` of a path, `outcome` of a purge, `stat` of a provider's percentile).

Counts (requests, hits, errors, bytes) are stored as samples whose values add up: a window's
total is its rollups' sum, and the hit ratio is hits over requests. Percentiles a provider has
already computed are gauges (kind "gauge", `stat` label p50, p95...), kept as they came and
never merged into a histogram.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    doc: str
    additive: bool = False  # a count: windows add up (requests, bytes), rather than a distribution


CATALOGUE: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("latency", "ms", "time to a response: health probes, warm fetches, real-user measurements, "
               "a provider's edge time to first byte"),
        Metric("origin.latency", "ms", "time the edge waited for the origin (a provider's figure)"),
        Metric("up", "bool", "a health probe's outcome: 1 up, 0 down"),
        Metric("cpu", "percent", "cpu in use, from heartbeats and health reports"),
        Metric("memory", "percent", "memory in use"),
        Metric("disk", "percent", "disk in use"),
        Metric("network", "mbps", "network throughput"),
        Metric("requests", "count", "requests served", additive=True),
        Metric("cache.hits", "count", "requests answered from the cache", additive=True),
        Metric("cache.byte_hit_ratio", "percent", "share of the bytes sent to clients that came from the cache "
               "(a provider's figure, such as Azure's ByteHitRatio): a gauge, not the request hit ratio"),
        Metric("bytes", "bytes", "bytes served to clients", additive=True),
        Metric("errors.4xx", "count", "responses with a 4xx status", additive=True),
        Metric("errors.5xx", "count", "responses with a 5xx status", additive=True),
        Metric("purge.duration", "ms", "how long a purge request took, per provider (labels: outcome)"),
        Metric("purge.items", "count", "URLs, prefixes, tags or hosts sent in purge requests", additive=True),
    ]
}

# what a node's heartbeat or health report calls each resource figure
REPORT_KEYS = {"cpu_percent": "cpu", "memory_percent": "memory", "disk_percent": "disk", "network_mbps": "network"}


def labels_json(labels: dict[str, str] | None) -> str:
    """Labels in the canonical form series are keyed by: sorted keys, no spaces."""
    return json.dumps({str(k): str(v) for k, v in (labels or {}).items()}, sort_keys=True, separators=(",", ":"))


def key(metric: str, *, node: str = "", provider: str = "", country: str = "", region: str = "",
        labels: dict[str, str] | None = None, kind: str = "histogram", unit: str | None = None):
    """The series key of a catalogued metric, with its unit."""
    from edgectl.analytics.samples import SeriesKey

    unit = unit or CATALOGUE[metric].unit
    return SeriesKey(metric, unit, node, provider, country, region, labels_json(labels), kind)
