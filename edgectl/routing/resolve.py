"""Where a location's traffic goes, and why: rules, candidates dropped or kept, the strategy's choice, fallbacks.

The order, as `routing resolve --explain` prints it:
1. the most specific active rules that match (subdivision, country, region set, continent, default);
2. their targets, less those out of service, stale, slower than the rule's latency threshold over
   the window, lacking a capability, or outside the allowed jurisdictions;
3. the strategy's pick among what is left;
4. with nothing left: the rules' failover nodes, then the next less specific rules, then the
   nearest allowed healthy node; else no node at all.
Jurisdictions bind every step: once a rule or `[routing.compliance]` restricts a source to some,
no step may answer with a node outside them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from edgectl.errors import UsageError
from edgectl.routing.model import Rule, Source

STRATEGIES = ("weighted", "geo", "latency", "least_loaded", "round_robin", "capability", "adaptive")
LATENCY_METRIC = "latency"  # what `nodes check` records per probe, in ms
LOAD_METRIC = "cpu"  # from heartbeats, and from health reports that carry it
CONNECTIONS_KEYS = ("connections", "active_connections")  # from heartbeats' resources or health metrics
# Expected round-trip time where no node's latency is recorded: light in fibre covers about
# 200 km a millisecond, paths run about 1.5 times the great circle, and a round trip is two
# ways, so 0.015 ms per km, plus 5 ms for the last mile and the server.
MODEL_BASE_MS = 5.0
MODEL_MS_PER_KM = 0.015


def expected_latency_ms(distance_km: float) -> float:
    return round(MODEL_BASE_MS + MODEL_MS_PER_KM * distance_km, 1)


@dataclass
class Options:
    strategy: str = "weighted"
    capabilities: tuple[str, ...] = ()
    key: str | None = None
    window_s: float = 900.0
    heartbeat_interval: float = 30.0
    advance: bool = True  # round_robin moves its counter on; a simulation only looks

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UsageError(f"unknown strategy {self.strategy!r}", hint=f"one of {', '.join(STRATEGIES)}")


@dataclass
class Candidate:
    node: str
    rule: int | None
    kept: bool = True
    reason: str | None = None  # why it was dropped
    weight: int | None = None
    distance_km: float | None = None
    p95_ms: float | None = None
    load: float | None = None

    def to_record(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None or k in ("kept", "rule")}


@dataclass
class Step:
    kind: str  # location | jurisdictions | rules | candidates | strategy | failover | fallback | nearest | none
    text: str
    candidates: list[Candidate] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"step": self.kind, "text": self.text}
        if self.candidates:
            record["candidates"] = [c.to_record() for c in self.candidates]
        if self.detail:
            record["detail"] = self.detail
        return record


@dataclass
class Resolution:
    location: Any
    node: str | None
    via: str | None  # "rule 3", "failover of rule 3", "nearest allowed node"
    rule: int | None
    strategy: str
    steps: list[Step]
    endpoint: str | None = None
    distance_km: float | None = None
    latency_ms: float | None = None  # recent p95, where recorded
    expected_latency_ms: float | None = None  # recorded, else from the distance model
    jurisdictions: list[str] | None = None

    def to_record(self, *, explain: bool = True) -> dict[str, Any]:
        loc = self.location
        record = {"location": loc.text, "kind": loc.kind, "name": loc.name, "country": loc.country,
                  "node": self.node, "endpoint": self.endpoint, "via": self.via, "rule": self.rule,
                  "strategy": self.strategy, "distance_km": self.distance_km, "latency_ms": self.latency_ms,
                  "expected_latency_ms": self.expected_latency_ms, "jurisdictions": self.jurisdictions}
        if explain:
            record["steps"] = [s.to_record() for s in self.steps]
        return record


@dataclass
class Forbidden:
    """The nodes the jurisdictions ruled out, each with who set them: the answer with no node says so."""

    by: list[str] = field(default_factory=list)  # "routing.compliance DE", "rule 3"
    entries: list[str] = field(default_factory=list)

    def bind(self, who: str) -> None:
        if who not in self.by:
            self.by.append(who)

    def add(self, node: str, role: str, reason: str) -> None:
        # "rule 3 forbade iad-1, the target of rule 5 (jurisdiction us not in eu)"
        self.entries.append(f"{' and '.join(self.by)} forbade {node}{role} ({reason})")


def _key_fraction(text: str) -> float:
    """A stable point in [0, 1) for a key: the same on every machine and run (not Python's hash)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def _fmt_km(km: float | None) -> str:
    return "?" if km is None else f"{km:,.0f} km"


class Resolver:
    """Answers for many locations against one state: nodes, metrics and rules read once each.

    `overrides` changes nodes' statuses for this resolver only (what `simulate` asks about).
    """

    def __init__(self, state, config, options: Options, overrides: dict[str, str] | None = None):
        from edgectl.routing.jurisdictions import country_jurisdictions

        self.state = state
        self.config = config
        self.options = options
        self.overrides = dict(overrides or {})
        self.jurisdiction_overrides = country_jurisdictions(config)
        self._nodes: dict[int, Any] = {}
        self._all_loaded = False
        self._p95: dict[str, float] | None = None  # by node name, read once
        self._load: dict[str, float] | None = None
        self._rules: dict[Source, list[Rule]] = {}
        self._regions = None

    # -- what the state holds ---------------------------------------------------------------
    def nodes(self, ids: Iterable[int]) -> dict[int, Any]:
        from edgectl.nodes.inventory import mark_stale
        from edgectl.nodes.model import Node

        wanted = [i for i in dict.fromkeys(ids) if i not in self._nodes]
        if wanted and not self._all_loaded:
            rows = self.state.db.query(f"SELECT * FROM nodes WHERE id IN ({', '.join('?' for _ in wanted)})", wanted)
            for node in mark_stale([Node.from_row(r) for r in rows], self.options.heartbeat_interval):
                self._nodes[node.id] = node
        return {i: self._nodes[i] for i in ids if i in self._nodes}

    def all_nodes(self) -> list[Any]:
        """Every live node, for the nearest-node fallback."""
        from edgectl.nodes.inventory import list_nodes

        if not self._all_loaded:
            for node in list_nodes(self.state, heartbeat_interval=self.options.heartbeat_interval):
                self._nodes.setdefault(node.id, node)
            self._all_loaded = True
        return [n for n in self._nodes.values() if n.removed_at is None]

    def status(self, node) -> str:
        return self.overrides.get(node.name, node.status)

    def p95(self, node_id: int) -> float | None:
        """The node's recent p95 latency from its probes; None without samples in the window."""
        if self._p95 is None:
            self._p95 = {name: h.quantile(0.95) for name, h in self._window(LATENCY_METRIC, "probe").items()}
        return self._p95.get(self._name(node_id))

    def load(self, node_id: int) -> float | None:
        """The node's mean cpu over the window, from heartbeats and probes."""
        if self._load is None:
            self._load = {name: h.sum / h.count for name, h in self._window(LOAD_METRIC).items()}
        return self._load.get(self._name(node_id))

    def _name(self, node_id: int) -> str | None:
        node = self.nodes([node_id]).get(node_id)
        return node.name if node else None

    def _window(self, metric: str, source: str | None = None) -> dict[str, Any]:
        """Each node's histogram of a metric over the window, from the metrics history, in one read."""
        from edgectl.analytics.histogram import Histogram
        from edgectl.analytics.queries import select_series
        from edgectl.analytics.store import window_histograms

        series = select_series(self.state, metric, labels={"source": source} if source else None)
        end = int(time.time() * 1000)
        out: dict[str, Histogram] = {}
        for series_id, histogram in window_histograms(self.state, series, end - int(self.options.window_s * 1000),
                                                      end + 1).items():
            if histogram.count and series[series_id]["node"]:
                out.setdefault(series[series_id]["node"], Histogram()).merge(histogram)
        return out

    def rules(self, source: Source) -> list[Rule]:
        from edgectl.routing.rules import rules_for_sources

        if source not in self._rules:
            self._rules[source] = rules_for_sources(self.state, [source])
        return self._rules[source]

    def regions(self) -> dict[str, list[str]]:
        from edgectl.routing.rules import configured_regions

        if self._regions is None:
            self._regions = configured_regions(self.config)
        return self._regions

    # -- the location's sources, most specific first -------------------------------------------
    def levels(self, location) -> list[list[Source]]:
        levels: list[list[Source]] = []
        if location.subdivision:
            levels.append([Source("subdivision", location.subdivision)])
        if location.country:
            levels.append([Source("country", location.country)])
        regions = []
        if location.cf_region:
            regions.append(Source("region", location.cf_region))
        covered = set(location.countries) or ({location.country} if location.country else set())
        for name, countries in self.regions().items():
            # a region set matches a country in it, or a location (continent, region) wholly inside it
            if covered and covered <= set(countries):
                regions.append(Source("region", name))
        if regions:
            levels.append(regions)
        if location.continent:
            levels.append([Source("continent", location.continent)])
        levels.append([Source("default", "*")])
        return levels

    # -- resolving ----------------------------------------------------------------------------
    def resolve(self, location) -> Resolution:
        from edgectl.routing.jurisdictions import compliance_for

        steps: list[Step] = []
        opts = self.options
        where = ", ".join(part for part in (
            f"country {location.country}" if location.country and location.kind != "country" else "",
            f"continent {location.continent}" if location.continent else "",
            f"Cloudflare {location.cf_region}" if location.cf_region else "") if part)
        steps.append(Step("location", f"{location.text}: {location.name}" + (f" ({where})" if where else ""),
                          detail={"lat": location.lat, "lon": location.lon}))
        allowed: set[str] | None = None
        forbidden = Forbidden()
        for key, codes in compliance_for(location, self.config):
            allowed = set(codes) if allowed is None else allowed & set(codes)
            forbidden.bind(f"routing.compliance {key}")
        if forbidden.by:
            steps.append(Step("jurisdictions", f"jurisdictions: only {', '.join(sorted(allowed)) or 'none'} "
                              f"({'; '.join(forbidden.by)})"))
        for level in self.levels(location):
            rules = [rule for source in level for rule in self.rules(source)]
            active = [rule for rule in rules if rule.active]
            if not active:
                if rules:  # said, so that a rule someone expected to answer is seen to be off
                    sources = ", ".join(str(s) for s in level if any(r.source == s for r in rules))
                    steps.append(Step("rules", f"rules for {sources}: {len(rules)} disabled, passed by"))
                continue
            sources = ", ".join(str(s) for s in level if any(r.source == s for r in active))
            inactive = len(rules) - len(active)
            steps.append(Step("rules", f"rules for {sources}: " + "; ".join(
                f"rule {r.id} -> {r.target} (weight {r.weight})" for r in active)
                + (f"; {inactive} disabled" if inactive else "")))
            declared = {j for rule in active for j in rule.jurisdictions}
            if declared:
                allowed = declared if allowed is None else allowed & declared
                binding = [str(r.id) for r in active if r.jurisdictions]
                for rule_id in binding:
                    forbidden.bind(f"rule {rule_id}")
                steps.append(Step("jurisdictions", f"jurisdictions: only {', '.join(sorted(allowed)) or 'none'} "
                                  f"(rule{'s' if len(binding) > 1 else ''} {', '.join(binding)})"))
            candidates = self._candidates(location, active, allowed, forbidden)
            steps.append(Step("candidates", "candidates: " + "; ".join(
                f"{c.node} kept" if c.kept else f"{c.node} dropped: {c.reason}" for c in candidates), candidates))
            kept = [c for c in candidates if c.kept]
            if kept:
                chosen, text = self._choose(location, kept, active, level)
                steps.append(Step("strategy", text, detail={"strategy": self._strategy_used(kept)}))
                return self._answer(location, chosen.node, f"rule {chosen.rule}", chosen.rule, steps, allowed)
            failover = self._failover(location, active, allowed, forbidden)
            steps.append(Step("failover", failover[1], failover[2]))
            if failover[0] is not None:
                return self._answer(location, failover[0].node, f"failover of rule {failover[0].rule}",
                                    failover[0].rule, steps, allowed)
            steps.append(Step("fallback", "nothing left at this level: on to the less specific rules"))
        nearest, text, candidates = self._nearest(location, allowed, forbidden)
        steps.append(Step("nearest", text, candidates))
        if nearest is not None:
            return self._answer(location, nearest.node, "nearest allowed node", None, steps, allowed)
        why = f"; {', '.join(forbidden.entries[:5])}" if forbidden.entries else ""
        steps.append(Step("none", f"no node can serve {location.text}{why}", detail={"forbidden": forbidden.entries}))
        return Resolution(location, None, None, None, opts.strategy, steps,
                          jurisdictions=sorted(allowed) if allowed is not None else None)

    def _drop_reason(self, node, rule: Rule | None, allowed: set[str] | None, *, latency: bool) -> str | None:
        from edgectl.routing.jurisdictions import of_node

        if node is None or node.removed_at is not None:
            return "removed from the inventory"
        status = self.status(node)
        if status != "active":
            return f"status {status}" + (" (simulated)" if node.name in self.overrides else "")
        if node.stale:
            return "stale: no heartbeat for three intervals"
        if rule is not None and rule.weight == 0:
            return "weight 0"
        wanted = set(self.options.capabilities) | set(rule.capabilities if rule else ())
        missing = sorted(wanted - set(node.capabilities))
        if missing:
            return f"lacks capability {', '.join(missing)}"
        if allowed is not None:
            jurisdiction = of_node(node, self.jurisdiction_overrides)
            if jurisdiction not in allowed:
                return f"jurisdiction {jurisdiction or 'unknown'} not in {', '.join(sorted(allowed)) or 'none'}"
        if latency and rule is not None and rule.latency_threshold_ms is not None:
            p95 = self.p95(node.id)
            if p95 is not None and p95 > rule.latency_threshold_ms:
                return f"latency p95 {p95:,.0f} ms > {rule.latency_threshold_ms:,.0f} ms"
        if node.max_concurrent:
            connections = next((v for k in CONNECTIONS_KEYS for v in (node.health_metrics.get(k),
                                                                        node.resources.get(k)) if v is not None), None)
            if isinstance(connections, (int, float)) and connections >= node.max_concurrent:
                return f"at max_concurrent ({connections:g} of {node.max_concurrent})"
        return None

    def _candidates(self, location, rules: list[Rule], allowed, forbidden: Forbidden) -> list[Candidate]:
        by_id = {}
        for rule in rules:
            by_id[rule.id] = rule
        node_ids = self._rule_node_ids(rules)
        nodes = self.nodes(node_ids.values())
        out = []
        for rule in rules:
            node = nodes.get(node_ids[(rule.id, "target")])
            reason = self._drop_reason(node, rule, allowed, latency=True)
            candidate = Candidate(rule.target, rule.id, reason is None, reason, rule.weight,
                                  self._distance(location, node), self.p95(node.id) if node else None)
            if reason and reason.startswith("jurisdiction"):
                forbidden.add(rule.target, f", the target of rule {rule.id}", reason)
            out.append(candidate)
        return out

    def _rule_node_ids(self, rules: list[Rule]) -> dict[tuple[int, str], int]:
        ids = {}
        rows = self.state.db.query(
            f"SELECT id, target_node_id, failover_node_id FROM geographic_routes WHERE id IN "
            f"({', '.join('?' for _ in rules)})", [r.id for r in rules])
        for row in rows:
            ids[(row["id"], "target")] = row["target_node_id"]
            if row["failover_node_id"]:
                ids[(row["id"], "failover")] = row["failover_node_id"]
        return ids

    def _distance(self, location, node) -> float | None:
        from edgectl.routing.geo import distance_km

        point = _node_point(node)
        if point is None or location.lat is None:
            return None
        return round(distance_km(location.lat, location.lon, *point), 1)

    def _strategy_used(self, kept: list[Candidate]) -> str:
        if self.options.strategy == "adaptive":
            return "latency" if any(c.p95_ms is not None for c in kept) else "geo"
        return self.options.strategy

    def _choose(self, location, kept: list[Candidate], rules: list[Rule], level) -> tuple[Candidate, str]:
        strategy = self._strategy_used(kept)
        if len(kept) == 1:
            return kept[0], f"{strategy}: {kept[0].node}, the only candidate left"
        if strategy == "weighted":
            return self._weighted(location, kept)
        if strategy == "geo":
            ranked = sorted(kept, key=lambda c: (c.distance_km is None, c.distance_km or 0.0))
            return ranked[0], f"geo: {ranked[0].node} is nearest ({_fmt_km(ranked[0].distance_km)}; " + ", ".join(
                f"{c.node} {_fmt_km(c.distance_km)}" for c in ranked[1:]) + ")"
        if strategy == "latency":
            measured = [c for c in kept if c.p95_ms is not None]
            if not measured:
                chosen, text = self._weighted(location, kept)
                return chosen, f"latency: no recent latency recorded; {text}"
            ranked = sorted(measured, key=lambda c: c.p95_ms)
            return ranked[0], f"latency: {ranked[0].node} has the lowest p95 ({ranked[0].p95_ms:,.0f} ms; " + ", ".join(
                f"{c.node} {c.p95_ms:,.0f} ms" for c in ranked[1:]) + ")"
        if strategy == "least_loaded":
            nodes_by_name = {n.name: n for n in self._nodes.values()}
            for c in kept:
                c.load = self.load(nodes_by_name[c.node].id)
            loaded = [c for c in kept if c.load is not None]
            if not loaded:
                chosen, text = self._weighted(location, kept)
                return chosen, f"least_loaded: no recent load recorded; {text}"
            ranked = sorted(loaded, key=lambda c: c.load)
            return ranked[0], f"least_loaded: {ranked[0].node} has the lowest cpu ({ranked[0].load:.0f}%; " + ", ".join(
                f"{c.node} {c.load:.0f}%" for c in ranked[1:]) + ")"
        if strategy == "round_robin":
            from edgectl.names import natural_key

            ordered = sorted(kept, key=lambda c: natural_key(c.node))
            key = "round_robin:" + ",".join(str(s) for s in level)
            turn = self._turn(key)
            chosen = ordered[turn % len(ordered)]
            return chosen, f"round_robin: turn {turn} of {', '.join(c.node for c in ordered)}: {chosen.node}"
        # capability: the most of the wanted capabilities, else the most capabilities at all
        nodes_by_name = {n.name: n for n in self._nodes.values()}
        wanted = set(self.options.capabilities) | {cap for rule in rules for cap in rule.capabilities}

        def score(c: Candidate) -> int:
            caps = set(nodes_by_name[c.node].capabilities)
            return len(caps & wanted) if wanted else len(caps)

        best = max(score(c) for c in kept)
        top = [c for c in kept if score(c) == best]
        if len(top) == 1:
            return top[0], f"capability: {top[0].node} has the most matching capabilities ({best})"
        chosen, text = self._weighted(location, top)
        return chosen, f"capability: {len(top)} tie with {best}; {text}"

    def _weighted(self, location, kept: list[Candidate]) -> tuple[Candidate, str]:
        total = sum(c.weight or 0 for c in kept)
        key = self.options.key if self.options.key is not None else location.text
        point = _key_fraction(key) * total
        running = 0.0
        chosen = kept[-1]
        for c in kept:
            running += c.weight or 0
            if point < running:
                chosen = c
                break
        shares = ", ".join(f"{c.node} {100 * (c.weight or 0) / total:.0f}%" for c in kept)
        keyed = f"key {self.options.key!r}" if self.options.key is not None else "the location as the key"
        return chosen, f"weighted ({shares}): {chosen.node}, by {keyed}"

    def _turn(self, key: str) -> int:
        db = self.state.db
        if not self.options.advance:
            row = db.execute("SELECT value FROM routing_counters WHERE key = ?", [key]).fetchone()
            return row[0] if row else 0
        with db.atomic():
            row = db.execute("SELECT value FROM routing_counters WHERE key = ?", [key]).fetchone()
            turn = row[0] if row else 0
            db.execute("INSERT INTO routing_counters (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
                       " value = excluded.value", [key, turn + 1])
        return turn

    def _failover(self, location, rules: list[Rule], allowed,
                  forbidden: Forbidden) -> tuple[Candidate | None, str, dict]:
        with_failover = [r for r in rules if r.failover]
        if not with_failover:
            return None, "no candidate left, and no failover node named", {}
        node_ids = self._rule_node_ids(with_failover)
        nodes = self.nodes(node_ids.values())
        notes = []
        for rule in sorted(with_failover, key=lambda r: -r.weight):
            node = nodes.get(node_ids.get((rule.id, "failover")))
            reason = self._drop_reason(node, None, allowed, latency=False)
            if reason is None:
                return (Candidate(rule.failover, rule.id, distance_km=self._distance(location, node)),
                        f"failover of rule {rule.id}: {rule.failover}", {})
            if reason.startswith("jurisdiction"):
                forbidden.add(rule.failover, f", the failover of rule {rule.id}", reason)
            notes.append(f"{rule.failover} (rule {rule.id}) dropped: {reason}")
        return None, "failover: " + "; ".join(notes), {}

    def _nearest(self, location, allowed, forbidden: Forbidden) -> tuple[Candidate | None, str, list[Candidate]]:
        ranked = []
        dropped: dict[str, int] = {}
        for node in self.all_nodes():
            reason = self._drop_reason(node, None, allowed, latency=False)
            if reason is not None:
                dropped[reason.split(" (")[0].split(":")[0]] = dropped.get(reason.split(" (")[0].split(":")[0], 0) + 1
                if reason.startswith("jurisdiction"):
                    forbidden.add(node.name, " as the nearest node", reason)
                continue
            distance = self._distance(location, node)
            if distance is not None:
                ranked.append(Candidate(node.name, None, distance_km=distance))
        ranked.sort(key=lambda c: c.distance_km)
        left_out = "; ".join(f"{n} {why}" for why, n in sorted(dropped.items(), key=lambda kv: -kv[1]))
        if not ranked:
            return None, "nearest allowed node: none" + (f" ({left_out})" if left_out else ""), []
        best = ranked[0]
        return best, (f"nearest allowed node: {best.node} ({_fmt_km(best.distance_km)})"
                      + (f"; left out: {left_out}" if left_out else "")), ranked[:5]

    def _answer(self, location, name: str, via: str, rule: int | None, steps: list[Step], allowed) -> Resolution:
        node = next(n for n in self._nodes.values() if n.name == name and n.removed_at is None)
        distance = self._distance(location, node)
        p95 = self.p95(node.id)
        expected = p95 if p95 is not None else (expected_latency_ms(distance) if distance is not None else None)
        steps.append(Step("answer", f"=> {name} ({node.endpoint}) via {via}"
                          + (f", {_fmt_km(distance)} away" if distance is not None else "")))
        return Resolution(location, name, via, rule, self.options.strategy, steps, node.endpoint,
                          distance, p95, expected, sorted(allowed) if allowed is not None else None)


def _node_point(node) -> tuple[float, float] | None:
    """A node's coordinates, else its country's centroid."""
    if node is None:
        return None
    if node.lat is not None and node.lon is not None:
        return node.lat, node.lon
    if node.country:
        from edgectl.routing.geo import country

        place = country(node.country)
        return place.lat, place.lon
    return None


def options_from(config, *, strategy: str | None = None, capabilities: list[str] | None = None,
                 key: str | None = None, window: str | None = None) -> Options:
    """Options from what was given, else the config's routing and nodes settings."""
    from edgectl.parse import parse_duration
    from edgectl.routing.rules import parse_capability

    # an empty --strategy or --window is a mistake to report, not a request for the default
    window_s = parse_duration(window, what="--window") if window is not None else config.setting("routing.window")
    if window_s <= 0:
        raise UsageError("--window must be more than zero")
    return Options(strategy=(strategy if strategy is not None else config.setting("routing.strategy")).lower(),
                   capabilities=tuple(sorted({parse_capability(c) for c in capabilities or []})), key=key,
                   window_s=window_s, heartbeat_interval=config.setting("nodes.heartbeat_interval"))


def read_locations(config, which: str) -> list:
    """`countries`, `continents`, or a file (or '-') of one LOCATION a line; a bad line is named."""
    from edgectl.routing.locations import all_locations, parse_location

    if which in ("countries", "continents"):
        return list(all_locations(which))
    import sys

    try:
        lines = sys.stdin.read().splitlines() if which == "-" else open(which, encoding="utf-8").read().splitlines()
    except OSError as exc:
        raise UsageError(f"--locations {which}: {exc.strerror or exc}",
                         hint="give countries, continents, or a file of one location a line") from None
    except UnicodeDecodeError:
        raise UsageError(f"--locations {which} is not UTF-8 text") from None
    found = []
    geoip = config.get("routing.geoip_db")
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            found.append(parse_location(text, geoip_db=geoip))
        except UsageError as exc:
            raise UsageError(f"{which}:{number}: {exc.message}", hint=exc.hint) from None
    if not found:
        raise UsageError(f"--locations {which} names no locations")
    return found


def resolve_location(state, config, text: str, options: Options) -> Resolution:
    from edgectl.routing.locations import parse_location

    location = parse_location(text, geoip_db=config.get("routing.geoip_db"))
    return Resolver(state, config, options).resolve(location)


def resolve_all(state, config, locations: list, options: Options) -> list[Resolution]:
    resolver = Resolver(state, config, options)
    return [resolver.resolve(location) for location in locations]
