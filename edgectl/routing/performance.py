"""How each routing rule's source is served: where resolve sends it now, and the latency its clients see.

A source's samples are the latency samples (from the metrics history) of clients in it, by the
client country and region each sample carries: a country source takes its country's samples, a
subdivision those of its country whose region names it (US-CA, or CA with country US), a region
set the countries in it (a Cloudflare region by each country's or subdivision's region, as
geo.cf_region_of places them), a continent its countries, and the default source the clients no
other source of a rule covers. Samples without a client country (a node's own probes) are no
source's. Percentiles come from the rollups, within their 0.54%.

A source is in violation when no node can serve it now (every candidate failed, stale, draining
or ruled out: resolve's own reason is the row's) or when its clients' p95 is above its rule's
latency threshold: the threshold of the rule resolve answered by, else the strictest of the
source's active rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from edgectl.routing.model import Rule, Source

_SUBDIVISION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")
_PART = re.compile(r"[A-Z0-9]{1,3}")


@dataclass
class SourcePerformance:
    source: Source
    rules: list[Rule]
    node: str | None  # where resolve sends the source now
    via: str | None
    threshold_ms: float | None
    samples: int = 0
    p50: float | None = None
    p95: float | None = None
    unserved_reason: str | None = None  # resolve's answer when no node can serve the source

    @property
    def unserved(self) -> bool:
        return self.node is None

    @property
    def slow(self) -> bool:
        """Served, and its clients' p95 above the threshold (a source no node serves is that violation)."""
        return (not self.unserved and self.p95 is not None and self.threshold_ms is not None
                and self.p95 > self.threshold_ms)

    @property
    def violation(self) -> bool:
        return self.unserved or self.slow

    @property
    def status(self) -> str:
        if self.unserved:
            return "no node"
        if not self.samples:
            return "no samples"
        return "violation" if self.slow else "ok"

    @property
    def reason(self) -> str | None:
        """Why the source is in violation, in a line; None when it is not."""
        from edgectl.analytics.charts import format_value

        if self.unserved:
            return self.unserved_reason or f"no node can serve {self.source}"
        if self.slow:
            return (f"p95 {format_value(self.p95, 'ms')} above the {format_value(self.threshold_ms, 'ms')} "
                    "threshold")
        return None

    def to_record(self) -> dict[str, Any]:
        return {"source": str(self.source), "source_kind": self.source.kind, "source_value": self.source.value,
                "rules": [r.id for r in self.rules], "targets": list(dict.fromkeys(r.target for r in self.rules)),
                "node": self.node, "via": self.via, "samples": self.samples, "p50": self.p50, "p95": self.p95,
                "latency_threshold_ms": self.threshold_ms, "violation": self.violation, "status": self.status,
                "reason": self.reason}


@dataclass
class RoutingPerformance:
    sources: list[SourcePerformance] = field(default_factory=list)

    @property
    def violations(self) -> list[SourcePerformance]:
        return [s for s in self.sources if s.violation]

    @property
    def slow(self) -> list[SourcePerformance]:
        return [s for s in self.sources if s.slow]

    @property
    def unserved(self) -> list[SourcePerformance]:
        return [s for s in self.sources if s.unserved]

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.sources)


def client_subdivision(country: str, region: str) -> str | None:
    """The subdivision a sample's client region names: US-CA, or CA with country US."""
    text = region.strip().upper()
    if _SUBDIVISION.fullmatch(text):
        return text if text.startswith(f"{country}-") else None
    return f"{country}-{text}" if _PART.fullmatch(text) else None


class Coverage:
    """Which sources a client country and region fall in, with the config's region sets."""

    def __init__(self, config, sources: list[Source]):
        from edgectl.routing.rules import region_countries

        self.sources = sources
        self.sets = {s.value: frozenset(region_countries(s.value, config)) for s in sources if s.kind == "region"}

    def covers(self, source: Source, country: str, region: str) -> bool:
        from edgectl.errors import UsageError
        from edgectl.routing import geo
        from edgectl.routing.rules import CLOUDFLARE_REGIONS

        try:
            if source.kind == "country":
                return country == source.value
            if source.kind == "subdivision":
                return client_subdivision(country, region) == source.value
            if source.kind == "continent":
                return geo.continent_of(country) == source.value
            if source.kind == "region" and source.value in CLOUDFLARE_REGIONS:
                return geo.cf_region_of(country, client_subdivision(country, region)) == source.value
            if source.kind == "region":
                return country in self.sets.get(source.value, ())
        except UsageError:  # a country code edgectl's data does not know: in no area
            return False
        return False

    def of(self, country: str, region: str) -> list[Source]:
        """The sources a client is in; the default source where no other one covers it."""
        if not country:
            return []
        found = [s for s in self.sources if s.kind != "default" and self.covers(s, country, region)]
        if not found:
            found = [s for s in self.sources if s.kind == "default"]
        return found


def source_location(source: Source, config):
    """The Location that stands for a source's traffic, for resolve."""
    from edgectl.routing import geo
    from edgectl.routing.locations import (
        Location, cf_region_location, continent_location, country_location, parse_location,
    )
    from edgectl.routing.rules import CLOUDFLARE_REGIONS, region_countries

    if source.kind == "country":
        return country_location(source.value)
    if source.kind == "subdivision":
        return parse_location(source.value)
    if source.kind == "continent":
        return continent_location(source.value)
    if source.kind == "region" and source.value in CLOUDFLARE_REGIONS:
        return cf_region_location(source.value)
    if source.kind == "region":
        countries = frozenset(region_countries(source.value, config))
        places = [geo.country(c) for c in sorted(countries)]
        continents = {p.continent for p in places}
        regions = {r for p in places for r in geo.cf_regions_of(p.code)}
        lat, lon = geo.mean_point([(p.lat, p.lon) for p in places]) if places else (None, None)
        return Location(kind="region", text=f"region:{source.value}", code=source.value,
                        name=f"region set {source.value} ({', '.join(sorted(countries))})",
                        continent=continents.pop() if len(continents) == 1 else None,
                        cf_region=regions.pop() if len(regions) == 1 else None, lat=lat, lon=lon, countries=countries)
    # the default rule's traffic is everywhere no other rule names: a location in no other source
    return Location(kind="default", text="default", code="*", name="clients no other rule names")


def _threshold(rules: list[Rule], answered: int | None) -> float | None:
    for rule in rules:
        if rule.id == answered:
            return rule.latency_threshold_ms
    thresholds = [r.latency_threshold_ms for r in rules if r.latency_threshold_ms is not None]
    return min(thresholds) if thresholds else None


def routing_performance(state, config, start_ms: int, end_ms: int, options) -> RoutingPerformance:
    """Every source of an active rule: resolve's answer for it now, its clients' p50/p95 over the window."""
    from edgectl.analytics.histogram import Histogram
    from edgectl.analytics.queries import select_series
    from edgectl.analytics.store import window_histograms
    from edgectl.routing.resolve import Resolver
    from edgectl.routing.rules import RuleFilter, list_rules

    by_source: dict[Source, list[Rule]] = {}
    for rule in list_rules(state, RuleFilter(active=True)):
        by_source.setdefault(rule.source, []).append(rule)
    resolver = Resolver(state, config, replace(options, advance=False))  # looking moves no round-robin turn
    coverage = Coverage(config, list(by_source))
    series = {i: s for i, s in select_series(state, "latency").items() if s["country"]}
    merged: dict[Source, Histogram] = {source: Histogram() for source in by_source}
    for series_id, histogram in window_histograms(state, series, start_ms, end_ms).items():
        if histogram.count:
            for source in coverage.of(series[series_id]["country"], series[series_id]["region"]):
                merged[source].merge(histogram)
    report = RoutingPerformance()
    for source, rules in by_source.items():
        answer = resolver.resolve(source_location(source, config))
        histogram = merged[source]
        p50, p95 = histogram.quantiles([0.5, 0.95])
        why = next((step.text for step in reversed(answer.steps) if step.kind == "none"), None)
        report.sources.append(SourcePerformance(source, rules, answer.node, answer.via,
                                                _threshold(rules, answer.rule), histogram.count, p50, p95,
                                                why if answer.node is None else None))
    return report
