"""Routing rules in the state: add, change, enable, disable and remove them, each change an event."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from edgectl.errors import ConfigError, NotFound, UsageError
from edgectl.routing.model import (
    DEFAULT_SOURCE, SOURCE_KINDS, SPEC_FIELDS, Rule, RuleEvent, RuleSpec, Source,
)
from edgectl.timeutil import to_iso, utcnow

CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
# Cloudflare Load Balancing's region codes (developers.cloudflare.com/load-balancing/reference/region-mapping-api/)
CLOUDFLARE_REGIONS = ("WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS")
_SUBDIVISION = re.compile(r"^([A-Z]{2})-([A-Z0-9]{1,3})$")
_REGION_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
MAX_WEIGHT = 1_000_000


def actor() -> str:
    """Who made a change: the user and host, as a shared audit trail wants it."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no name for this uid (a container): the uid says enough
        import os

        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


# -- sources ------------------------------------------------------------------------------------

def configured_regions(config) -> dict[str, list[str]]:
    """`[routing.regions]`: name -> country codes, each checked."""
    from edgectl.parse import parse_country

    table = config.section("routing").get("regions", {}) if config is not None else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{config.path}: routing.regions: expected a table of name = [\"CC\", ...]")
    regions = {}
    for name, countries in table.items():
        key = f"{config.path}: routing.regions.{name}"
        if not _REGION_NAME.match(str(name)):
            raise ConfigError(f"{key}: a region name is lower case letters, digits, '-' or '_'")
        if str(name).upper() in CLOUDFLARE_REGIONS:
            raise ConfigError(f"{key}: {name} is a Cloudflare region code; name the set otherwise")
        if not isinstance(countries, list) or not countries:
            raise ConfigError(f"{key}: expected a list of country codes, e.g. [\"DE\", \"AT\", \"CH\"]")
        try:
            regions[str(name)] = [parse_country(c) for c in countries]
        except UsageError as exc:
            raise ConfigError(f"{key}: {exc.message}", hint=exc.hint) from None
    return regions


def parse_source(kind: str, value: str | None, config=None) -> Source:
    """A rule's source as given on the command line or in a rules file, checked and normalised."""
    from edgectl.parse import parse_country

    if kind == "default":
        return Source("default", DEFAULT_SOURCE)
    text = str(value or "").strip()
    if kind == "country":
        return Source("country", parse_country(text))
    if kind == "subdivision":
        from edgectl.routing.locations import parse_location

        location = parse_location(text) if _SUBDIVISION.match(text.upper()) else None
        if location is None or location.kind != "subdivision":
            raise UsageError(f"subdivision {text!r} is not an ISO 3166-2 code",
                             hint="a country and a subdivision code, e.g. US-CA or DE-BY")
        return Source("subdivision", location.subdivision)
    if kind == "continent":
        code = text.upper()
        if code not in CONTINENTS:
            raise UsageError(f"continent {text!r} is not a continent code",
                             hint=f"one of {', '.join(CONTINENTS)}")
        return Source("continent", code)
    if kind == "region":
        if text.upper() in CLOUDFLARE_REGIONS:
            return Source("region", text.upper())
        regions = configured_regions(config)
        if text in regions:
            return Source("region", text)
        known = list(CLOUDFLARE_REGIONS) + sorted(regions)
        close = difflib.get_close_matches(text, known, n=1) or difflib.get_close_matches(text.upper(), known, n=1)
        hint = (f"did you mean {close[0]}?" if close else
                "a Cloudflare region code (WNAM, WEU, ...) or a set named in [routing.regions] of the config")
        raise UsageError(f"region {text!r} is not a known region", hint=hint)
    raise UsageError(f"unknown source kind {kind!r}", hint=f"one of {', '.join(SOURCE_KINDS)}")


def region_countries(name: str, config=None) -> list[str]:
    """The countries a region set names: a Cloudflare region or one from the config."""
    if name.upper() in CLOUDFLARE_REGIONS and name == name.upper():
        from edgectl.routing.geo import cf_region_countries

        return sorted(cf_region_countries(name))
    return configured_regions(config).get(name, [])


# -- specs --------------------------------------------------------------------------------------

def parse_capability(text: str, *, what: str = "--capability") -> str:
    """A capability as a node can have it (nodes.inventory's rule): anything else would match no node."""
    from edgectl.nodes.inventory import _CAPABILITY_CHARS

    name = str(text).strip().lower()
    if not name or len(name) > 64 or not set(name) <= _CAPABILITY_CHARS:
        raise UsageError(f"{what} {text!r} is not a capability", hint="use names like http3, image-resize or waf")
    return name


def parse_jurisdiction(text: str) -> str:
    code = str(text).strip().lower()
    if not re.fullmatch(r"[a-z]{2,8}", code):
        raise UsageError(f"jurisdiction {text!r} is not a code such as eu, us or ch")
    return code


def build_spec(source: Source, target: str, values: dict[str, Any]) -> RuleSpec:
    """A rule spec from checked parts; values are the SPEC_FIELDS given (others take defaults)."""
    from edgectl.parse import check_text, parse_name

    unknown = set(values) - set(SPEC_FIELDS)
    if unknown:
        raise UsageError(f"unknown rule field(s): {', '.join(sorted(unknown))}",
                         hint=f"fields: {', '.join(SPEC_FIELDS)}")
    spec = RuleSpec(source, parse_name(target, what="--target"))
    weight = values.get("weight", spec.weight)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise UsageError(f"weight {weight!r} must be a whole number from 0 to {MAX_WEIGHT:,}")
    spec.weight = weight
    if "latency_threshold_ms" in values:
        threshold = values["latency_threshold_ms"]
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                      or not 0 < threshold < 3_600_000):
            raise UsageError("the latency threshold must be more than 0 and under an hour")
        spec.latency_threshold_ms = float(threshold) if threshold is not None else None
    if values.get("failover") is not None:
        spec.failover = parse_name(values["failover"], what="--failover")
        if spec.failover == spec.target:
            raise UsageError(f"the failover node of a rule cannot be its target ({spec.target})")
    spec.jurisdictions = sorted(dict.fromkeys(parse_jurisdiction(j) for j in values.get("jurisdictions") or []))
    spec.capabilities = sorted(dict.fromkeys(parse_capability(c) for c in values.get("capabilities") or []))
    conditions = values.get("conditions") or {}
    if not isinstance(conditions, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in conditions.items()):
        raise UsageError("conditions must be key = \"value\" pairs")
    for key, value in conditions.items():
        check_text(key, what="--condition key", limit=64)
        check_text(value, what="--condition value", limit=200)
    spec.conditions = dict(sorted(conditions.items()))
    active = values.get("active", True)
    if not isinstance(active, bool):
        raise UsageError("active must be true or false")
    spec.active = active
    return spec


# -- reading --------------------------------------------------------------------------------------

_SELECT = ("SELECT r.*, t.name AS target, f.name AS failover FROM geographic_routes r"
           " JOIN nodes t ON t.id = r.target_node_id LEFT JOIN nodes f ON f.id = r.failover_node_id"
           " WHERE r.removed_at IS NULL")


@dataclass
class RuleFilter:
    source_kind: str | None = None
    source: str | None = None
    node: str | None = None  # as target or failover
    active: bool | None = None
    ids: list[int] = field(default_factory=list)


def list_rules(state, flt: RuleFilter | None = None) -> list[Rule]:
    flt = flt or RuleFilter()
    where, params = [], []
    if flt.source_kind:
        where.append("r.source_kind = ?")
        params.append(flt.source_kind)
    if flt.source:
        where.append("r.source_region = ?")
        params.append(flt.source)
    if flt.node:
        where.append("(t.name = ? OR f.name = ?)")
        params += [flt.node, flt.node]
    if flt.active is not None:
        where.append("r.is_active = ?")
        params.append(int(flt.active))
    if flt.ids:
        where.append(f"r.id IN ({', '.join('?' for _ in flt.ids)})")
        params += flt.ids
    sql = _SELECT + "".join(f" AND {w}" for w in where)
    order = {kind: i for i, kind in enumerate(SOURCE_KINDS)}
    rules = [Rule.from_row(row) for row in state.db.query(sql, params)]
    from edgectl.names import natural_key

    return sorted(rules, key=lambda r: (order[r.source.kind], natural_key(r.source.value), natural_key(r.target)))


def rules_for_sources(state, sources: Iterable[Source]) -> list[Rule]:
    """The live rules of these sources, active or not, through the source index."""
    found = []
    for source in sources:
        found += [Rule.from_row(row) for row in state.db.query(
            _SELECT + " AND r.source_kind = ? AND r.source_region = ? ORDER BY r.id", [source.kind, source.value])]
    return found


def get_rule(state, rule_id: int) -> Rule:
    rows = list(state.db.query(_SELECT + " AND r.id = ?", [rule_id]))
    if not rows:
        raise NotFound(f"no routing rule with id {rule_id}", hint="edgectl routing rules list shows the rules")
    return Rule.from_row(rows[0])


def rule_events(state, rule_id: int, limit: int = 20) -> list[RuleEvent]:
    return [RuleEvent.from_row(r) for r in state.db.query(
        "SELECT * FROM route_events WHERE route_id = ? ORDER BY at DESC, id DESC LIMIT ?", [rule_id, limit])]


def rules_using(state, node_id: int) -> list[Rule]:
    """Live rules whose target or failover is this node."""
    return [Rule.from_row(row) for row in state.db.query(
        _SELECT + " AND (r.target_node_id = ? OR r.failover_node_id = ?) ORDER BY r.id", [node_id, node_id])]


# -- writing --------------------------------------------------------------------------------------

def record_event(state, rule_id: int, kind: str, *, reason: str | None = None, details: dict | None = None,
                 at: str | None = None, who: str | None = None) -> None:
    state.db.execute("INSERT INTO route_events (route_id, at, kind, actor, reason, details) VALUES (?, ?, ?, ?, ?, ?)",
                     [rule_id, at or to_iso(utcnow()), kind, who or actor(), reason,
                      json.dumps(details or {}, sort_keys=True, default=str)])


def _node_ids(state, spec: RuleSpec) -> tuple[int, int | None]:
    """The target's and failover's ids: live nodes, or an error naming the one that is not."""
    from edgectl.nodes.inventory import get_node

    target = get_node(state, spec.target).id
    failover = get_node(state, spec.failover).id if spec.failover else None
    return target, failover


def _columns(state, spec: RuleSpec) -> dict[str, Any]:
    target, failover = _node_ids(state, spec)
    return {"source_kind": spec.source.kind, "source_region": spec.source.value, "target_node_id": target,
            "routing_weight": spec.weight, "latency_threshold_ms": spec.latency_threshold_ms,
            "failover_node_id": failover, "route_conditions": spec.stored_conditions(),
            "is_active": int(spec.active)}


def _described(spec: RuleSpec) -> dict[str, Any]:
    return {"source": str(spec.source), "target": spec.target,
            **{k: v for k, v in spec.values().items() if v not in (None, [], {})}}


def add_rule(state, spec: RuleSpec, *, reason: str | None = None) -> Rule:
    with state.db.atomic():
        values = _columns(state, spec)
        existing = list(state.db.query(
            "SELECT id FROM geographic_routes WHERE removed_at IS NULL AND source_kind = ? AND source_region = ?"
            " AND target_node_id = ?", [values["source_kind"], values["source_region"], values["target_node_id"]]))
        if existing:
            raise UsageError(f"a rule already sends {spec.source} to {spec.target} (rule {existing[0]['id']})",
                             hint=f"change it with edgectl routing rules update {existing[0]['id']}")
        now = to_iso(utcnow())
        values.update(created_at=now, updated_at=now)
        cursor = state.db.execute(f"INSERT INTO geographic_routes ({', '.join(values)}) VALUES "
                                  f"({', '.join('?' for _ in values)})", list(values.values()))
        record_event(state, cursor.lastrowid, "added", reason=reason, details=_described(spec), at=now)
    return get_rule(state, cursor.lastrowid)


def spec_diff(old: RuleSpec, new: RuleSpec) -> dict[str, dict[str, Any]]:
    fields = ("target",) + SPEC_FIELDS
    return {f: {"old": getattr(old, f), "new": getattr(new, f)} for f in fields if getattr(old, f) != getattr(new, f)}


def replace_rule(state, rule: Rule, spec: RuleSpec, *, reason: str | None = None) -> tuple[Rule, dict]:
    diff = spec_diff(rule.spec(), spec)
    if not diff:
        return rule, diff
    with state.db.atomic():
        values = _columns(state, spec)
        values["updated_at"] = now = to_iso(utcnow())
        state.db.execute(f"UPDATE geographic_routes SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                         [*values.values(), rule.id])
        record_event(state, rule.id, "updated", reason=reason, details=diff, at=now)
    return get_rule(state, rule.id), diff


def update_rule(state, rule_id: int, changes: dict[str, Any], *, reason: str | None = None) -> tuple[Rule, dict]:
    """Change some fields of a rule; read under the write lock, so overlapping updates each land."""
    with state.db.atomic():
        rule = get_rule(state, rule_id)
        values = rule.values()
        values.update({k: v for k, v in changes.items() if k != "target"})
        spec = build_spec(rule.source, changes.get("target", rule.target), values)
        return replace_rule(state, rule, spec, reason=reason)


def set_active(state, rule_ids: list[int], active: bool, *, reason: str | None = None) -> list[tuple[Rule, bool]]:
    """Enable or disable rules, all or none; (rule, whether it changed) for each."""
    results = []
    with state.db.atomic():
        for rule_id in rule_ids:
            rule = get_rule(state, rule_id)
            if rule.active == active:
                results.append((rule, False))
                continue
            _switch(state, rule, active, reason)
            results.append((get_rule(state, rule.id), True))
    return results


def _switch(state, rule: Rule, active: bool, reason: str | None) -> None:
    """Only the rule's switch: its nodes are not looked up again (one may be being removed)."""
    now = to_iso(utcnow())
    state.db.execute("UPDATE geographic_routes SET is_active = ?, updated_at = ? WHERE id = ?",
                     [int(active), now, rule.id])
    record_event(state, rule.id, "enabled" if active else "disabled", reason=reason,
                 details={"active": {"old": rule.active, "new": active}}, at=now)


def remove_rules(state, rule_ids: list[int], *, reason: str | None = None) -> list[Rule]:
    """Remove rules, all or none; their rows and events stay, as a removed node's do."""
    removed = []
    with state.db.atomic():
        for rule_id in rule_ids:
            rule = get_rule(state, rule_id)
            now = to_iso(utcnow())
            state.db.execute("UPDATE geographic_routes SET removed_at = ?, updated_at = ? WHERE id = ?",
                             [now, now, rule.id])
            record_event(state, rule.id, "removed", reason=reason, details=_described(rule.spec()), at=now)
            removed.append(rule)
    return removed


def disable_for_node(state, node_id: int, node_name: str, *, reason: str | None = None) -> list[Rule]:
    """Disable every active rule that sends to or fails over to a node that is being removed."""
    disabled = []
    for rule in rules_using(state, node_id):
        if rule.active:
            _switch(state, rule, False, reason or f"node {node_name} removed")
            disabled.append(rule)
    return disabled
