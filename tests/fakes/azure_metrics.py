"""Azure Monitor's metrics endpoint for Microsoft.Cdn/profiles, as FakeArm serves it.

    GET {resourceUri}/providers/Microsoft.Insights/metrics?api-version=...&timespan=...&interval=...
        &metricnames=...&aggregation=...&$filter=...&top=...&metricnamespace=...

The answer is computed from traffic the test records (`Traffic`: per minute, endpoint host and
client country, the requests by status class, bytes sent, bytes served from the cache, and the
latency and origin figures), the way Azure derives each metric from the same requests:
RequestCount and ResponseSize are totals, Percentage4XX/5XX the share of requests, ByteHitRatio
the share of bytes served from the cache, TotalLatency and OriginLatency means per request. So the
data is deterministic and a test can work out every number it expects.

It refuses what Metrics - List refuses: a missing or unsupported api-version, an unknown metric
name (400 BadRequest "Failed to find metric configuration for provider: ..." with the valid names,
as the service answers it: https://github.com/Azure/azure-sdk-for-net/issues/29584), more than 20
metric names, a metricnamespace other than the resource type's, a timespan that is not two ISO 8601
date-times in order, an interval that is not one of the metrics' time grains, an unknown
aggregation, a $filter that is not `Dim eq 'value'` clauses joined by `and`, and a dimension a
metric does not have. With a $filter, at most `top` series (10 unless said) per metric.

Sources (2023-10-01 REST specification and the supported-metrics table):
  https://learn.microsoft.com/rest/api/monitor/metrics/list
  https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-cdn-profiles-metrics
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

API_VERSIONS = ("2018-01-01", "2019-07-01", "2021-05-01", "2023-10-01", "2024-02-01")
NAMESPACE = "Microsoft.Cdn/profiles"
# PT1M through P1D, as the table lists them for these metrics; FULL is one point for the timespan
TIME_GRAINS = {"PT1M": 1, "PT5M": 5, "PT15M": 15, "PT30M": 30, "PT1H": 60, "PT6H": 360, "PT12H": 720, "P1D": 1440}
AGGREGATIONS = ("average", "count", "minimum", "maximum", "total")
MAX_METRIC_NAMES = 20
_TRAFFIC_DIMENSIONS = ("HttpStatus", "HttpStatusGroup", "ClientRegion", "ClientCountry", "Endpoint")


@dataclass(frozen=True)
class MetricSpec:
    unit: str
    display: str
    dimensions: tuple[str, ...]


METRICS = {
    "RequestCount": MetricSpec("Count", "Request Count", _TRAFFIC_DIMENSIONS),
    "ResponseSize": MetricSpec("Bytes", "Response Size", _TRAFFIC_DIMENSIONS),
    "RequestSize": MetricSpec("Bytes", "Request Size", _TRAFFIC_DIMENSIONS),
    "TotalLatency": MetricSpec("MilliSeconds", "Total Latency", _TRAFFIC_DIMENSIONS),
    "Percentage4XX": MetricSpec("Percent", "Percentage of 4XX", ("Endpoint", "ClientRegion", "ClientCountry")),
    "Percentage5XX": MetricSpec("Percent", "Percentage of 5XX", ("Endpoint", "ClientRegion", "ClientCountry")),
    "ByteHitRatio": MetricSpec("Percent", "Byte Hit Ratio", ("Endpoint",)),
    "OriginLatency": MetricSpec("MilliSeconds", "Origin Latency", ("Origin", "Endpoint")),
    "OriginRequestCount": MetricSpec("Count", "Origin Request Count",
                                     ("HttpStatus", "HttpStatusGroup", "Origin", "Endpoint")),
    "OriginHealthPercentage": MetricSpec("Percent", "Origin Health Percentage", ("Origin", "OriginGroup")),
}
_CLAUSE = re.compile(r"^\s*(?P<name>[A-Za-z][A-Za-z0-9 ]*?)\s+eq\s+'(?P<value>[^']*)'\s*$")


@dataclass
class Traffic:
    """One minute of one endpoint's requests from one client country (a country name, as Azure writes it)."""

    profile: str
    endpoint: str  # the endpoint's host name: the Endpoint dimension's value
    at: datetime  # the minute, UTC
    country: str = ""
    region: str = ""
    requests_2xx: int = 0
    requests_3xx: int = 0
    requests_4xx: int = 0
    requests_5xx: int = 0
    response_bytes: int = 0
    cached_bytes: int = 0
    latency_ms: float = 0.0  # the sum over the minute's requests
    origin: str = "origin"
    origin_requests: int = 0
    origin_latency_ms: float = 0.0  # the sum over the origin requests

    @property
    def requests(self) -> int:
        return self.requests_2xx + self.requests_3xx + self.requests_4xx + self.requests_5xx

    def dimension(self, name: str) -> str:
        return {"endpoint": self.endpoint, "clientcountry": self.country, "clientregion": self.region,
                "origin": self.origin}.get(name.lower(), "")


# metric -> (numerator, denominator) of one Traffic record; a metric without a denominator is a total
def _parts(metric: str, t: Traffic) -> tuple[float, float | None]:
    return {
        "RequestCount": (t.requests, None),
        "ResponseSize": (t.response_bytes, None),
        "RequestSize": (0, None),
        "TotalLatency": (t.latency_ms, t.requests),
        "Percentage4XX": (100.0 * t.requests_4xx, t.requests),
        "Percentage5XX": (100.0 * t.requests_5xx, t.requests),
        "ByteHitRatio": (100.0 * t.cached_bytes, t.response_bytes),
        "OriginLatency": (t.origin_latency_ms, t.origin_requests),
        "OriginRequestCount": (t.origin_requests, None),
        "OriginHealthPercentage": (100.0, 1),
    }[metric]


class BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str, wrapped: bool = True):
        super().__init__(message)
        self.status, self.code, self.message, self.wrapped = status, code, message, wrapped


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment.astimezone(timezone.utc)


def _timespan(text: str | None) -> tuple[datetime, datetime]:
    if not text:
        end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        return end - timedelta(hours=1), end
    try:
        start_text, end_text = text.split("/")
        start, end = _parse_time(start_text), _parse_time(end_text)
    except ValueError:
        raise BadRequest(400, "BadRequest", f"Invalid timespan '{text}': expected 'startDateTime_ISO/endDateTime_ISO'"
                         ) from None
    if start >= end:
        raise BadRequest(400, "BadRequest", f"Invalid timespan '{text}': the start time must be before the end time")
    return start, end


def _filter(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip()):
        found = _CLAUSE.match(part)
        if not found:
            raise BadRequest(400, "BadRequest", f"Invalid $filter '{text}': expected clauses like Dimension eq 'value' "
                             "joined by 'and'")
        clauses.append((found["name"].strip(), found["value"]))
    return clauses


def answer(resource_uri: str, query: dict[str, list[str]], traffic: list[Traffic], profile: str) -> dict:
    """The 200 body of a Metrics - List request, or BadRequest."""
    def one(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    version = one("api-version")
    if version not in API_VERSIONS:
        raise BadRequest(400, "NoRegisteredProviderFound",
                         f"No registered resource provider found for location 'global' and API version '{version}' "
                         f"for type 'metrics'. The supported api-versions are '{', '.join(API_VERSIONS)}'.")
    namespace = one("metricnamespace")
    if namespace is not None and namespace.lower() != NAMESPACE.lower():
        raise BadRequest(400, "BadRequest", f"Metric namespace '{namespace}' is not valid for resource type "
                         f"'{NAMESPACE}'.", wrapped=False)
    names = [n.strip() for n in (one("metricnames") or "RequestCount").split(",") if n.strip()]
    if len(names) > MAX_METRIC_NAMES:
        raise BadRequest(400, "BadRequest", f"At most {MAX_METRIC_NAMES} metric names are allowed, {len(names)} given.",
                         wrapped=False)
    known = {name.lower(): name for name in METRICS}
    for name in names:
        if name.lower() not in known:
            raise BadRequest(400, "BadRequest", f"Failed to find metric configuration for provider: Microsoft.Cdn, "
                             f"resource Type: profiles, metric: {name}, Valid metrics: {','.join(METRICS)}",
                             wrapped=False)
    names = [known[name.lower()] for name in names]
    start, end = _timespan(one("timespan"))
    interval = (one("interval") or "PT1M").upper()
    if interval != "FULL" and interval not in TIME_GRAINS:
        raise BadRequest(400, "BadRequest", f"Invalid time grain '{interval}'. Supported time grains: "
                         f"{', '.join(TIME_GRAINS)}, FULL.", wrapped=False)
    aggregations = [a.strip().lower() for a in (one("aggregation") or "").split(",") if a.strip()]
    for aggregation in aggregations:
        if aggregation not in AGGREGATIONS:
            raise BadRequest(400, "BadRequest", f"Invalid aggregation '{aggregation}'. Valid values: "
                             f"{', '.join(a.title() for a in AGGREGATIONS)}.", wrapped=False)
    clauses = _filter(one("$filter"))
    try:
        top = int(one("top") or 10)
    except ValueError:
        raise BadRequest(400, "BadRequest", f"Invalid top '{one('top')}': expected an integer.") from None
    for name in names:
        supported = {d.lower() for d in METRICS[name].dimensions}
        for dimension, _ in clauses:
            if dimension.lower() not in supported:
                raise BadRequest(400, "BadRequest", f"Metric: {name} does not support requested dimension "
                                 f"combination: {dimension}, supported ones are: {','.join(METRICS[name].dimensions)}",
                                 wrapped=False)
    grain = (end - start) if interval == "FULL" else timedelta(minutes=TIME_GRAINS[interval])
    mine = [t for t in traffic if t.profile.lower() == profile.lower() and start <= t.at < end
            and all(value == "*" or t.dimension(d) == value for d, value in clauses)]
    split = [d for d, value in clauses if value == "*"]
    shown = [d for d, _ in clauses]
    value = []
    for name in names:
        series: dict[tuple, list[Traffic]] = defaultdict(list)
        for record in mine:
            series[tuple(record.dimension(d) for d in split)].append(record)
        if not clauses:
            series = {(): mine}
        elements = []
        for key in sorted(series)[:top] if clauses else sorted(series):
            records = series[key]
            values = dict(zip(split, key))
            metadata = [{"name": {"value": d.lower(), "localizedValue": d.lower()},
                         "value": values[d] if d in values else dict(clauses)[d]} for d in shown]
            elements.append({"metadatavalues": metadata, "data": _data(name, records, start, end, grain,
                                                                      aggregations or ["average"])})
        value.append({"id": f"{resource_uri}/providers/Microsoft.Insights/metrics/{name}",
                      "type": "Microsoft.Insights/metrics",
                      "name": {"value": name, "localizedValue": METRICS[name].display},
                      "displayDescription": METRICS[name].display, "unit": METRICS[name].unit,
                      "timeseries": elements, "errorCode": "Success"})
    return {"cost": len(names) * max(1, int((end - start) / grain)), "timespan": f"{_iso(start)}/{_iso(end)}",
            "interval": interval if interval != "FULL" else "FULL", "namespace": NAMESPACE,
            "resourceregion": "global", "value": value}


def _data(name: str, records: list[Traffic], start: datetime, end: datetime, grain: timedelta,
          aggregations: list[str]) -> list[dict]:
    by_interval: dict[int, list[Traffic]] = defaultdict(list)
    for record in records:
        by_interval[int((record.at - start) / grain)].append(record)
    data = []
    moment, index = start, 0
    while moment < end:
        point: dict = {"timeStamp": _iso(moment)}
        inside = by_interval.get(index, [])
        minutes: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for record in inside:
            numerator, denominator = _parts(name, record)
            minutes[record.at][0] += numerator
            minutes[record.at][1] += denominator if denominator is not None else 0.0
        ratio = _parts(name, records[0])[1] is not None if records else False
        numerators = sum(m[0] for m in minutes.values())
        denominators = sum(m[1] for m in minutes.values())
        per_minute = [m[0] / m[1] if ratio else m[0] for m in minutes.values() if not ratio or m[1]]
        for aggregation in aggregations:
            if aggregation == "total":
                point["total"] = float(numerators) if not ratio else (float(sum(per_minute)) if per_minute else 0.0)
            elif aggregation == "count":
                point["count"] = float(len(per_minute))
            elif per_minute:
                point[aggregation] = {"average": (numerators / denominators) if ratio and denominators else
                                      (sum(per_minute) / len(per_minute)),
                                      "minimum": min(per_minute), "maximum": max(per_minute)}[aggregation]
        data.append(point)
        moment, index = moment + grain, index + 1
    return data
