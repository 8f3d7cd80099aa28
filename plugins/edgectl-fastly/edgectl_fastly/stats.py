"""A Fastly service's historical stats, by the minute, as the points of edgectl's analytics contract.

`GET /stats/service/{service_id}?from=&to=&by=minute` (https://www.fastly.com/documentation/reference/api/metrics-stats/historical-stats/)
answers `{"status": "success", "meta": {"from", "to", "by", "region"}, "msg": null, "data": [row, ...]}`,
a row per minute with its `start_time` (Unix seconds) and the minute's totals. `from` counts the
moment itself and both take Unix timestamps; rows are kept to the asked window here whichever side
`to` falls on. Minute data usually lands two minutes after the minute and can take up to fifteen,
and none older than 35 days can be read. These are GET requests, which the hourly API limit does
not count.

A row's figures, into the catalogue (edgectl.analytics.metrics):
- requests, cache.hits, bytes: what end users were served, `edge_requests`, `edge_hit_requests` and
  `edge_resp_header_bytes` + `edge_resp_body_bytes`. With shielding, `requests`, `hits` and
  `bandwidth` also count the requests between Fastly's own POPs (and `bandwidth` the bytes sent to
  origin), so they are read only from a row that lacks the edge figures;
- errors.4xx, errors.5xx: `status_4xx`, `status_5xx`;
- `hits_time` and `miss_time` are the seconds spent processing all of the minute's hits and misses:
  divided by `hits` and `miss` they are the mean time Fastly took per hit and per miss (a miss waits
  for the origin), stored as `latency` gauges in ms, labels stat=avg and cache=hit or cache=miss.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterator

from edgectl.providers.analytics import AnalyticsProvider, Point
from edgectl.providers.base import ProviderError

from edgectl_fastly.client import said

MINUTE = 60_000
RETENTION_MS = 35 * 24 * 3_600_000  # minute data is kept 35 days
# ask for data this much younger than the retention, so a request sent a little after it was planned still reaches
MARGIN_MS = 10 * MINUTE
SPAN_MS = 6 * 3_600_000  # minutes asked for in one request: 360 rows; Fastly refuses "exceedingly large queries"


class ServiceStats(AnalyticsProvider):
    """The analytics part of the fastly kind: a subclass sets `_api` (edgectl_fastly.client.FastlyApi)."""

    settle_ms = 15 * MINUTE
    step_ms = MINUTE
    _api: Any

    @property
    def service_id(self) -> str:
        return str(self.settings["service_id"])

    def oldest_ms(self, now_ms: int) -> int | None:
        return now_ms - RETENTION_MS + MARGIN_MS

    def pull(self, window) -> Iterator[Point]:
        for lo in range(window.start_ms, window.end_ms, SPAN_MS):
            hi = min(lo + SPAN_MS, window.end_ms)
            params = {"from": lo // 1000, "to": hi // 1000, "by": "minute"}
            answer = self.send(f"historical stats from {_iso(lo)}", lambda: self._api.request(
                "historical stats", "GET", f"/stats/service/{self.service_id}", params=params))
            for row in _rows(answer.doc):
                start = row.get("start_time")
                if not _is_number(start):
                    continue
                at = int(start) * 1000
                if lo <= at < hi and at % MINUTE == 0:
                    yield from row_points(row, at)


def _rows(doc: Any) -> list[dict]:
    if not isinstance(doc, dict):
        raise ProviderError("fastly: historical stats: the answer is not a JSON object")
    if doc.get("status") != "success":
        raise ProviderError(f"fastly: historical stats: {said(doc) or 'status ' + repr(doc.get('status'))}")
    meta = doc.get("meta")
    if isinstance(meta, dict) and meta.get("by") not in (None, "minute"):
        raise ProviderError(f"fastly: historical stats: asked for minutes and got rows by {meta.get('by')!r}")
    data = doc.get("data")
    if data is None:
        return []
    if not isinstance(data, list):
        raise ProviderError("fastly: historical stats: `data` is not a list of rows")
    return [row for row in data if isinstance(row, dict)]


def row_points(row: dict, at: int) -> Iterator[Point]:
    """One minute's row as points; a figure the row does not hold is left out, not taken as zero."""
    edge = all(name in row for name in ("edge_requests", "edge_resp_header_bytes", "edge_resp_body_bytes"))
    requests = _figure(row, "edge_requests" if edge else "requests")
    hits = _figure(row, "edge_hit_requests" if edge and "edge_hit_requests" in row else "hits")
    sent = _sum(row, "edge_resp_header_bytes", "edge_resp_body_bytes") if edge else _figure(row, "bandwidth")
    for metric, value in (("requests", requests), ("cache.hits", hits), ("bytes", sent),
                          ("errors.4xx", _figure(row, "status_4xx")), ("errors.5xx", _figure(row, "status_5xx"))):
        if value is not None:
            yield Point(metric, at, value)
    for outcome, count_field, time_field in (("hit", "hits", "hits_time"), ("miss", "miss", "miss_time")):
        count, seconds = _figure(row, count_field), _figure(row, time_field)
        if count and seconds is not None:
            yield Point("latency", at, seconds / count * 1000, kind="gauge", labels={"stat": "avg", "cache": outcome})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _figure(row: dict, name: str) -> float | None:
    value = row.get(name)
    return float(value) if _is_number(value) and value >= 0 else None


def _sum(row: dict, *names: str) -> float | None:
    values = [_figure(row, name) for name in names]
    return None if any(v is None for v in values) else sum(values)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
