"""The steering a provider publishes, derived from the rules and the nodes in the order `resolve` uses.

For every country, the most specific level of rule sources with a node in service (subdivision,
country, region sets, continent, default: resolve's `levels`) names the group of sources whose
rules serve it; each group is a pool: its rules' targets by weight, then their failover nodes.
A provider declares the geographic units it can publish (`geo_units`), and each unit falls back to
the next larger one at the provider (Route 53: country, continent, default; Cloudflare: country,
region, default), so a country gets its own entry only where its group differs from the one the
provider would reach for it anyway. What the provider does for a place is then what resolve says,
except for what neither DNS nor a load balancer can know: latency thresholds, load, jurisdictions
of the client rather than of its resolver. Those are listed as notes with how they are approximated.

Node health is the provider's own business (its health checks): a node that edgectl's probes see
failing is still published, so that a flapping probe does not rewrite DNS. A node an operator took
out of service (draining, maintenance, inactive) is not published at all.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from edgectl.errors import UsageError
from edgectl.nodes.model import HELD_STATUSES
from edgectl.providers.steering import GeoEntry, Pool, Steering, Target
from edgectl.routing.model import Source

# For each unit a provider may publish, the units a place falls back to there when it has no entry.
_FALLBACK = {"country": ("cf_region", "continent", "default")}


def pool_name(group: Iterable[Source]) -> str:
    """A stable, DNS-label-safe name for the pool serving a group of sources."""
    sources = sorted(group, key=lambda s: (s.kind, s.value))
    if sources[0].kind == "default":
        return "default"
    name = sources[0].kind + "-" + "-".join(s.value.lower() for s in sources)
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)
    if len(name) > 40:
        name = f"{sources[0].kind}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"
    return name


def _reachable(address: str) -> bool:
    """Whether clients could use the address at all: not loopback, unspecified, link-local or multicast.

    Private addresses pass: a private DNS zone (a VPC's) answers with them."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address not in ("localhost",) and not address.endswith(".localhost")
    return not (ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast)


def _record_type(address: str) -> str:
    from edgectl.parse import address_record_type

    return address_record_type(address)


class _Builder:
    def __init__(self, state, config):
        from edgectl.nodes.inventory import list_nodes
        from edgectl.routing.resolve import Resolver, options_from

        self.config = config
        self.resolver = Resolver(state, config, options_from(config))
        self.nodes = {n.name: n for n in list_nodes(state)}
        self.health_path = config.setting("nodes.health_path")
        self.pools: dict[str, Pool] = {}
        self.groups: dict[frozenset, str | None] = {}
        self.named: dict[str, frozenset] = {}
        self.notes: list[str] = []
        self.used_rules: list = []

    def in_service(self, name: str | None) -> bool:
        node = self.nodes.get(name or "")
        return node is not None and node.status not in HELD_STATUSES

    def capable(self, name: str, rule) -> bool:
        return set(rule.capabilities) <= set(self.nodes[name].capabilities)

    def rules(self, source: Source) -> list:
        return [r for r in self.resolver.rules(source) if r.active]

    def pool_for(self, group: frozenset) -> str | None:
        """The pool serving a group of sources, None when none of its rules has a node in service."""
        if group in self.groups:
            return self.groups[group]
        rules = [r for source in sorted(group, key=lambda s: (s.kind, s.value)) for r in self.rules(source)]
        weights: dict[str, int] = {}
        for rule in rules:
            if rule.weight > 0 and self.in_service(rule.target) and self.capable(rule.target, rule):
                weights[rule.target] = weights.get(rule.target, 0) + rule.weight
        # in resolve's order: the failover of the heaviest rule first (sorted is stable: then by id)
        failover = [r.failover for r in sorted(rules, key=lambda r: -r.weight)
                    if r.failover and self.in_service(r.failover) and r.failover not in weights]
        failover = list(dict.fromkeys(failover))
        if not weights and failover:  # every target out of service: the failover nodes serve, as resolve does
            weights[failover.pop(0)] = 100
        name = None
        if weights:
            from edgectl.names import natural_key

            name = pool_name(group)
            if self.named.setdefault(name, group) != group:  # {WEU, dach} and a set named weu-dach
                name = f"{name}-{hashlib.sha1(repr(sorted((x.kind, x.value) for x in group)).encode()).hexdigest()[:6]}"
                self.named[name] = group
            targets = tuple(sorted(weights.items(), key=lambda kv: (-kv[1], natural_key(kv[0]))))
            self.pools[name] = Pool(name, targets, tuple(failover))
            self.used_rules += rules
        self.groups[group] = name
        return name

    def group_of(self, location, start: int = 0) -> tuple[frozenset, str | None, int]:
        """The most specific level of the location (from `start`) with a pool: its sources, pool and index."""
        levels = self.resolver.levels(location)
        for index in range(start, len(levels)):
            group = frozenset(s for s in levels[index] if self.rules(s))
            if group:
                pool = self.pool_for(group)
                if pool:
                    return group, pool, index
        return frozenset(), None, len(levels)

    def entry(self, unit: str, code: str, location, group: frozenset, pool: str, index: int,
              implicit: str | None) -> GeoEntry:
        """An entry, with the pool resolve falls back to once every node of its own has failed."""
        _, fallback, _ = self.group_of(location, index + 1)
        return GeoEntry(unit, code, pool, ", ".join(sorted(str(s) for s in group)), fallback, implicit)

    def target(self, name: str) -> Target:
        node = self.nodes[name]
        address = node.published_address
        if not address or not _reachable(address):
            shown = f"publishes {address}, which no client can reach" if address else "has no address to publish"
            raise UsageError(f"node {name} {shown}",
                             hint=f"give it the address clients use: edgectl nodes update {name} --address ADDRESS")
        return Target(name, address, _record_type(address), node.health_url(self.health_path), node.lat, node.lon)


def build_steering(state, config, geo_units: tuple[str, ...]) -> Steering:
    """The steering for a provider that publishes `geo_units`, from the active rules and the nodes."""
    from edgectl.routing import geo
    from edgectl.routing.locations import country_location

    b = _Builder(state, config)
    default_pool = b.pool_for(frozenset({Source("default", "*")})) if b.rules(Source("default", "*")) else None
    if default_pool is None:
        raise UsageError("no default rule with a node in service: places without a rule would get no answer",
                         hint="add one: edgectl routing rules add --default --target NODE")
    entries: list[GeoEntry] = [GeoEntry("default", "*", default_pool, "default")]
    # the provider's own larger units, where a country without an entry of its own falls back to
    implicit_units = [u for u in _FALLBACK["country"] if u in geo_units and u != "default"]
    larger: dict[tuple[str, str], str] = {}
    for unit in implicit_units:
        data = geo.geo_data()
        codes = sorted(data.continents) if unit == "continent" else sorted(data.cf_regions)
        for code in codes:
            source = Source("continent" if unit == "continent" else "region", code)
            pool = b.pool_for(frozenset({source})) if b.rules(source) else None
            if pool:
                larger[(unit, code)] = pool
                entries.append(GeoEntry(unit, code, pool, str(source), default_pool, default_pool))
    country_pool: dict[str, str] = {}  # what the provider answers for each country
    for code in sorted(geo.geo_data().countries):
        location = country_location(code)
        group, pool, index = b.group_of(location)
        if pool is None:
            continue
        implicit = default_pool
        for unit in implicit_units:
            key = (unit, location.continent if unit == "continent" else location.cf_region)
            if key in larger:
                implicit = larger[key]
                break
        country_pool[code] = pool
        if pool != implicit:
            entries.append(b.entry("country", code, location, group, pool, index, implicit))
    _subdivisions(b, entries, country_pool, geo_units)
    targets = {name: b.target(name) for pool in b.pools.values() for name in pool.nodes}
    used = {e.pool for e in entries} | {e.fallback for e in entries if e.fallback}
    pools = {name: pool for name, pool in b.pools.items() if name in used}
    return Steering(tuple(entries), pools, {n: t for n, t in targets.items()
                                            if any(n in p.nodes for p in pools.values())},
                    default_pool, tuple(b.notes + _approximations(b, config)))


def _subdivisions(b: _Builder, entries: list[GeoEntry], country_pool: dict[str, str], geo_units) -> None:
    """Entries for the subdivisions whose answer differs from their country's.

    Those with rules of their own, and the parts of the countries Cloudflare splits (US, CA): a
    state in WNAM has WNAM's rules, whatever the country as a whole falls under.
    """
    from edgectl.routing import geo
    from edgectl.routing.locations import parse_location
    from edgectl.routing.rules import RuleFilter, list_rules

    codes = {r.source.value for r in list_rules(b.resolver.state, RuleFilter(source_kind="subdivision")) if r.active}
    if "cf_region" not in geo_units:  # a provider that steers by Cloudflare region splits them itself
        data = geo.geo_data()
        codes |= {code for code, part in data.subdivisions.items() if part.country in data.split}
    skipped: dict[str, list[str]] = {}
    for code in sorted(codes):
        location = parse_location(code)
        group, pool, index = b.group_of(location)
        if pool is None or pool == country_pool.get(location.country):
            continue
        if "subdivision" not in geo_units:
            skipped.setdefault(location.country, []).append(code)
            continue
        implicit = country_pool.get(location.country)
        entries.append(b.entry("subdivision", code, location, group, pool, index, implicit))
    for country, parts in skipped.items():
        b.notes.append(f"this provider cannot steer by subdivision: {', '.join(parts)} are answered as country "
                       f"{country}")


def _approximations(b: _Builder, config) -> list[str]:
    """What the rules ask that DNS and load balancers cannot see, and what stands in for it."""
    notes = []
    rules = {r.id: r for r in b.used_rules}.values()
    thresholds = sorted({r.latency_threshold_ms for r in rules if r.latency_threshold_ms is not None})
    if thresholds:
        shown = ", ".join(f"{t:g} ms" for t in thresholds)
        notes.append(f"latency thresholds ({shown}) are not published: a target is left out only when the "
                     "provider's health check fails it")
    strategy = config.setting("routing.strategy")
    if strategy != "weighted":
        notes.append(f"strategy {strategy} is published as weights: the provider splits by weight, not by "
                     f"{'load' if strategy == 'least_loaded' else 'distance'}")
    if any(r.jurisdictions for r in rules) or config.section("routing").get("compliance"):
        notes.append("jurisdictions cannot be enforced by geolocation alone (a client is placed by its "
                     "resolver's address): the published targets are the rules' own, each already in its "
                     "jurisdiction")
    if any(r.capabilities for r in rules):
        notes.append("capability conditions are applied when the steering is built: a target lacking one is "
                     "not published")
    return notes
