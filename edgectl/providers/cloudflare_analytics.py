"""Cloudflare's analytics for one zone, from the GraphQL Analytics API, as the points of the analytics contract.

Every query is a POST to /graphql (https://api.cloudflare.com/client/v4/graphql) sent through the
SDK's raw `client.post("/graphql", body={"query": ..., "variables": ...}, cast_to=object)`, so the
token, timeouts and errors are the purge path's. A 200 answer can carry `errors` instead of data;
those are failures too, except for the budget (300 queries in five minutes per user), which is
throttling and waited out like a 429.

- `httpRequests1mGroups` (and `httpRequests1hGroups` for what is older than minutes reach): per
  minute (or hour) requests, cached requests (cache.hits), bytes, 4xx and 5xx from
  `responseStatusMap`, and requests and bytes per client country from `countryMap`. Requests and
  bytes are stored per country, what no country accounts for without one, so the series of each
  metric add up to the zone's total.
- `httpRequestsAdaptiveGroups`: the edge time to first byte's p50, p95 and p99 (`latency` gauges,
  label `stat`) per minute for the whole zone and by `clientCountryName`, `cacheStatus` (label
  `cache`) and `coloCode` (label `colo`), where the zone's plan offers quantiles; otherwise skipped
  with a note.

Each dataset's reach (`notOlderThan`), widest range (`maxDuration`) and page size are read from the
zone's `settings` node once per pull, never assumed: a window is split to fit, and a page that
comes back full is split again. Hours are read whole, so the minute dataset covers the window back
to the first whole hour it reaches and the hour dataset the whole hours before that.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from edgectl.providers.analytics import AnalyticsProvider, Point
from edgectl.providers.base import AuthError, ProviderError, RateLimited

MINUTE, HOUR = 60_000, 3_600_000
MINUTES, HOURS, ADAPTIVE = "httpRequests1mGroups", "httpRequests1hGroups", "httpRequestsAdaptiveGroups"
# ask for data this much younger than notOlderThan, so a query sent a little after it was planned is still within it
MARGIN_MS = 10 * MINUTE
DEFAULT_PAGE = 10_000
QUANTILES = {"p50": "edgeTimeToFirstByteMsP50", "p95": "edgeTimeToFirstByteMsP95", "p99": "edgeTimeToFirstByteMsP99"}
# the adaptive groups asked for in one request: (alias, dimension or None for the whole zone)
SLICES = (("overall", None), ("byCountry", "clientCountryName"), ("byCache", "cacheStatus"), ("byColo", "coloCode"))
_SLICE_LABEL = {"cacheStatus": "cache", "coloCode": "colo"}
_COUNTRY = re.compile(r"[A-Z]{2}")
_UNKNOWN_COUNTRIES = frozenset({"XX", "T1"})  # Cloudflare's "unknown" and Tor

SETTINGS_QUERY = """
query EdgectlLimits($zoneTag: string!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      settings {
        minutes: httpRequests1mGroups { enabled maxDuration notOlderThan maxPageSize }
        hours: httpRequests1hGroups { enabled maxDuration notOlderThan maxPageSize }
        adaptive: httpRequestsAdaptiveGroups { enabled maxDuration notOlderThan maxPageSize availableFields }
      }
    }
  }
}"""

ROLLUP_QUERY = """
query EdgectlRequests($zoneTag: string!, $start: Time!, $end: Time!, $limit: uint64!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {
      rows: %(dataset)s(limit: $limit, orderBy: [%(time)s_ASC], filter: {datetime_geq: $start, datetime_lt: $end}) {
        dimensions { %(time)s }
        sum {
          requests cachedRequests bytes
          responseStatusMap { edgeResponseStatus requests }
          countryMap { clientCountryName requests bytes }
        }
      }
    }
  }
}"""

_SLICE_QUERY = """
      %(alias)s: httpRequestsAdaptiveGroups(limit: $limit, orderBy: [datetimeMinute_ASC],
                                        filter: {datetime_geq: $start, datetime_lt: $end}) {
        dimensions { datetimeMinute%(dimension)s }
        quantiles { %(quantiles)s }
      }"""
LATENCY_QUERY = """
query EdgectlLatency($zoneTag: string!, $start: Time!, $end: Time!, $limit: uint64!) {
  viewer {
    zones(filter: {zoneTag: $zoneTag}) {%s
    }
  }
}""" % "".join(_SLICE_QUERY % {"alias": alias, "dimension": f" {dimension}" if dimension else "",
                               "quantiles": " ".join(QUANTILES.values())} for alias, dimension in SLICES)


@dataclass(frozen=True)
class DatasetLimits:
    """A dataset as the settings node describes it for this zone; durations in milliseconds."""

    enabled: bool
    max_duration_ms: int
    not_older_than_ms: int
    page: int
    fields: frozenset[str] | None = None  # availableFields, when asked for

    @classmethod
    def read(cls, node: Any) -> "DatasetLimits":
        if not isinstance(node, dict):
            return cls(False, 0, 0, DEFAULT_PAGE)
        page = node.get("maxPageSize")
        fields = node.get("availableFields")
        return cls(bool(node.get("enabled")), int(node.get("maxDuration") or 0) * 1000,
                   int(node.get("notOlderThan") or 0) * 1000,
                   min(DEFAULT_PAGE, int(page)) if isinstance(page, int) and page > 0 else DEFAULT_PAGE,
                   frozenset(fields) if isinstance(fields, list) else None)

    @property
    def usable(self) -> bool:
        return self.enabled and self.max_duration_ms >= MINUTE and self.not_older_than_ms > MARGIN_MS

    def reach(self, now_ms: int, step: int) -> int:
        """The first whole `step` a query sent now may ask for."""
        return _ceil(now_ms - self.not_older_than_ms + MARGIN_MS, step)


class _QuantilesRefused(ProviderError):
    """The zone's plan has no adaptive quantiles: the latency figures are skipped, not failed."""


class ZoneAnalytics(AnalyticsProvider):
    """The analytics part of the cloudflare kind: a subclass sets `_api` (providers/cloudflare_sdk.CloudflareApi)."""

    _api: Any
    _limits: dict[str, DatasetLimits] | None = None
    _zone_tag: str | None = None

    # -- the contract ------------------------------------------------------------------
    def oldest_ms(self, now_ms: int) -> int | None:
        limits = self.dataset_limits()
        reaches = [limits[name].reach(now_ms, step) for name, step in ((MINUTES, MINUTE), (HOURS, HOUR))
                   if limits[name].usable]
        if not reaches:
            raise ProviderError(f"cloudflare: neither {MINUTES} nor {HOURS} is available to zone {self._api.zone_id()}")
        return min(reaches)

    def pull(self, window) -> Iterator[Point]:
        limits = self.dataset_limits()
        now = window.now_ms if window.now_ms is not None else int(time.time() * 1000)
        start, end = window.start_ms, window.end_ms
        minutes, hours = limits[MINUTES], limits[HOURS]
        minutes_from = max(start, minutes.reach(now, MINUTE)) if minutes.usable else end
        covered = 0
        if minutes_from > start and hours.usable:
            # hours are read whole: those wholly in the window up to the first whole hour minutes reach
            hours_to = min(_ceil(minutes_from, HOUR), _floor(end, HOUR))
            hours_from = max(_ceil(start, HOUR), hours.reach(now, HOUR))
            if hours_from < hours_to:
                covered += hours_to - hours_from
                yield from self._rollups(HOURS, "datetime", HOUR, hours, hours_from, hours_to)
                minutes_from = max(minutes_from, hours_to)
        if minutes_from < end:
            covered += end - minutes_from
            yield from self._rollups(MINUTES, "datetimeMinute", MINUTE, minutes, minutes_from, end)
        if covered < end - start:
            self.note(f"{(end - start - covered) // MINUTE} minute(s) of the window are beyond {MINUTES}' reach "
                      f"and not whole hours {HOURS} can answer: not pulled")
        yield from self._latency(limits[ADAPTIVE], max(start, limits[ADAPTIVE].reach(now, MINUTE)), end)

    # -- the zone's limits -------------------------------------------------------------
    def dataset_limits(self) -> dict[str, DatasetLimits]:
        """Each dataset's limits from the settings node, read once."""
        if self._limits is None:
            zone = self._zone("settings", SETTINGS_QUERY, {})
            settings = zone.get("settings") if isinstance(zone.get("settings"), dict) else {}
            self._limits = {MINUTES: DatasetLimits.read(settings.get("minutes")),
                            HOURS: DatasetLimits.read(settings.get("hours")),
                            ADAPTIVE: DatasetLimits.read(settings.get("adaptive"))}
        return self._limits

    # -- queries -------------------------------------------------------------------------
    def _zone(self, what: str, query: str, variables: dict) -> dict:
        """The zone's node of one GraphQL answer, through the domain's sender (counted and retried)."""
        if self._zone_tag is None:  # configured, or looked up once by name (a request of its own)
            self._zone_tag = self._api.settings.get("zone_id") or self.send("zone lookup", self._api.zone_id)
        zone_id = self._zone_tag
        client = self._api.client()
        body = {"query": query, "variables": {"zoneTag": zone_id, **variables}}

        def ask():
            try:
                answer = self._api.call(f"graphql {what}",
                                        lambda: client.post("/graphql", body=body, cast_to=object))
            except AuthError as exc:
                if ".quantiles." in exc.message:  # refused as a 403, where Cloudflare says so with a status
                    raise _QuantilesRefused(exc.message) from None
                raise
            return _data(what, answer)

        data = self.send(f"graphql {what}", ask)
        zones = (data.get("viewer") or {}).get("zones") if isinstance(data, dict) else None
        if not isinstance(zones, list) or not zones or not isinstance(zones[0], dict):
            raise ProviderError(f"cloudflare: graphql {what}: zone {zone_id} is not in the answer")
        return zones[0]

    def _pages(self, what: str, query: str, aliases: tuple[str, ...], step: int, limits: DatasetLimits,
               start: int, end: int) -> Iterator[dict[str, list]]:
        """[start, end) in spans of at most maxDuration, each answered whole: a span whose page came back
        full is asked again in halves, down to one `step`."""
        span = max(step, _floor(limits.max_duration_ms, step))
        todo = [(at, min(at + span, end)) for at in range(start, end, span)]
        while todo:
            lo, hi = todo.pop(0)
            zone = self._zone(what, query, {"start": _iso(lo), "end": _iso(hi), "limit": limits.page})
            rows = {alias: zone.get(alias) if isinstance(zone.get(alias), list) else [] for alias in aliases}
            if any(len(found) >= limits.page for found in rows.values()) and hi - lo > step:
                middle = lo + (_floor((hi - lo) // 2, step) or step)
                todo[:0] = [(lo, middle), (middle, hi)]
                continue
            if any(len(found) >= limits.page for found in rows.values()):
                self.note(f"{what}: more than {limits.page} rows in the {step // MINUTE} minute(s) from {_iso(lo)}: "
                          "the page holds the first")
            yield rows

    def _rollups(self, dataset: str, time_field: str, step: int, limits: DatasetLimits, start: int, end: int
                 ) -> Iterator[Point]:
        query = ROLLUP_QUERY % {"dataset": dataset, "time": time_field}
        for page in self._pages(dataset, query, ("rows",), step, limits, start, end):
            for row in page["rows"]:
                yield from _rollup_points(row, time_field, step)

    def _latency(self, limits: DatasetLimits, start: int, end: int) -> Iterator[Point]:
        if start >= end:
            return
        offered = limits.fields is None or all(f"quantiles_{name}" in limits.fields for name in QUANTILES.values())
        if not limits.usable or not offered:
            self.note("edge time-to-first-byte quantiles are not available on this zone's plan: latency not pulled")
            return
        aliases = tuple(alias for alias, _ in SLICES)
        try:
            for page in self._pages(ADAPTIVE, LATENCY_QUERY, aliases, MINUTE, limits, start, end):
                for alias, dimension in SLICES:
                    for row in page[alias]:
                        yield from _latency_points(row, dimension)
        except _QuantilesRefused:
            self.note("edge time-to-first-byte quantiles are not available on this zone's plan: latency not pulled")


# -- answers into points ---------------------------------------------------------------------------

def _data(what: str, answer: Any) -> dict:
    """The `data` of a GraphQL answer; its `errors`, which a 200 can carry, as provider errors."""
    if not isinstance(answer, dict):
        raise ProviderError(f"cloudflare: graphql {what}: the answer is not a JSON object")
    errors = [e for e in answer.get("errors") or [] if isinstance(e, dict)]
    if errors:
        raise _graphql_error(what, errors)
    data = answer.get("data")
    if not isinstance(data, dict):
        raise ProviderError(f"cloudflare: graphql {what}: the answer holds no data")
    return data


def _graphql_error(what: str, errors: list[dict]) -> ProviderError:
    codes = {(e.get("extensions") or {}).get("code") for e in errors if isinstance(e.get("extensions"), dict)}
    said = "; ".join(str(e.get("message", "")).strip() for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    message = f"cloudflare: graphql {what}: {said}{more}"
    if "budget" in codes:
        return RateLimited(message)  # the budget frees as the five minutes slide: send again later
    paths = [".".join(str(p) for p in e.get("path") or []) for e in errors]
    if "authz" in codes and all(".quantiles" in f".{path}" for path in paths):
        return _QuantilesRefused(message)
    if "authz" in codes:
        return AuthError(message)
    return ProviderError(message)


def _rollup_points(row: dict, time_field: str, step: int) -> Iterator[Point]:
    at = _ms((row.get("dimensions") or {}).get(time_field))
    sums = row.get("sum") or {}
    if at is None or not isinstance(sums, dict):
        return
    requests, amount = _count(sums.get("requests")), _count(sums.get("bytes"))
    by_country: dict[str, list[float]] = {}
    for entry in sums.get("countryMap") or []:
        if isinstance(entry, dict):
            cell = by_country.setdefault(_country(entry.get("clientCountryName")), [0.0, 0.0])
            cell[0] += _count(entry.get("requests"))
            cell[1] += _count(entry.get("bytes"))
    # what no country accounts for is the zone's without one, so each metric's series add up to its total
    unplaced = by_country.setdefault("", [0.0, 0.0])
    unplaced[0] += max(0.0, requests - sum(c[0] for c in by_country.values()))
    unplaced[1] += max(0.0, amount - sum(c[1] for c in by_country.values()))
    for country, (count, size) in sorted(by_country.items()):
        if count:
            yield Point("requests", at, count, step_ms=step, country=country)
        if size:
            yield Point("bytes", at, size, step_ms=step, country=country)
    statuses = [e for e in sums.get("responseStatusMap") or [] if isinstance(e, dict)]
    for metric, low in (("errors.4xx", 400), ("errors.5xx", 500)):
        failed = sum(_count(e.get("requests")) for e in statuses
                     if isinstance(e.get("edgeResponseStatus"), int) and low <= e["edgeResponseStatus"] < low + 100)
        yield Point(metric, at, failed, step_ms=step)
    yield Point("cache.hits", at, _count(sums.get("cachedRequests")), step_ms=step)


def _latency_points(row: dict, dimension: str | None) -> Iterator[Point]:
    dimensions = row.get("dimensions") or {}
    at = _ms(dimensions.get("datetimeMinute"))
    quantiles = row.get("quantiles") or {}
    if at is None or not isinstance(quantiles, dict):
        return
    country, labels = "", {}
    if dimension == "clientCountryName":
        country = _country(dimensions.get(dimension))
        if not country:  # an unknown country's figures would read as the whole zone's
            return
    elif dimension is not None:
        value = dimensions.get(dimension)
        if not isinstance(value, str) or not value:
            return
        labels[_SLICE_LABEL[dimension]] = value
    for stat, name in QUANTILES.items():
        figure = quantiles.get(name)
        if isinstance(figure, (int, float)) and not isinstance(figure, bool):
            yield Point("latency", at, float(figure), kind="gauge", country=country, labels={**labels, "stat": stat})


def _country(value: Any) -> str:
    code = value.upper() if isinstance(value, str) else ""
    return code if _COUNTRY.fullmatch(code) and code not in _UNKNOWN_COUNTRIES else ""


def _count(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0.0


def _ms(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _floor(ms: int, step: int) -> int:
    return ms - ms % step


def _ceil(ms: int, step: int) -> int:
    return ms + (-ms) % step
