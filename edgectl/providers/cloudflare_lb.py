"""Cloudflare Load Balancing: geographic steering as one load balancer over a pool per node, with one health monitor.

What edgectl keeps, through the official SDK (objects compared by name, never by id):

  monitor        edgectl-OWNER          account  HTTP(S) to the nodes' health path, expecting 2xx;
                                                  its description "edgectl-OWNER: HOSTNAME" marks it
  pool           edgectl-OWNER-NODE     account  one origin (the node's address, weight 1), the
                                                  monitor, the node's coordinates, check_regions
  load_balancer  HOSTNAME               zone     default_pools, fallback_pool, country_pools and
                                                  region_pools, each an ordered list of pools

A place's list is its pool's targets by weight, then its failover nodes, then the nodes of resolve's
next level for it (once a whole list fails Cloudflare goes to fallback_pool): with `geo` steering
Cloudflare sends everything to the first healthy pool of the list for the visitor's country, else
its region, else default_pools, and to fallback_pool when none is healthy. `proximity`,
`dynamic_latency` and `random` choose among default_pools only (by the pools' coordinates, by
measured round-trip time, at random by weight), so with them every node is in default_pools and
the places' lists are not published.

Ownership: pools and the load balancer carry the description "managed by edgectl (owner OWNER)",
the monitor its own description; pools are also named with the owner's prefix. Nothing else in
the account is listed except what could collide with what edgectl writes: a pool of one of its
names without the mark, a load balancer of HOSTNAME that is not edgectl's (refused while
planning), and a monitor of the same owner for another hostname (pools are the owner's, so one
owner steers one hostname per account).

Every step is one request, except a pool created with check_regions, which the create call does
not take (the SDK's pools.create has no such parameter; update and edit do): it is created, then
edited. A step sent again after an unknown outcome looks the object up by name first.

Sources:
  https://developers.cloudflare.com/api/resources/load_balancers/
  https://developers.cloudflare.com/load-balancing/understand-basics/traffic-steering/steering-policies/
  https://developers.cloudflare.com/load-balancing/reference/region-mapping-api/
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from edgectl.providers import cloudflare_sdk
from edgectl.providers.base import AuthError, ProviderError, RetryableError
from edgectl.providers.steering import (Change, Found, Resource, RoutingProvider, Step, StepResult, Steering,
                                        SteeringRefused)

STEERING_POLICIES = ("geo", "proximity", "dynamic_latency", "random")
# where health checks may run from: the thirteen regions, China, or everywhere (the SDK's CheckRegion)
CHECK_REGIONS = ("WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS",
                 "CHINA", "ALL_REGIONS")
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_TTL = 30  # Cloudflare's own, for a load balancer that is not proxied
MAX_TTL = 86400
_ACCOUNT_ID = re.compile(r"[0-9a-f]{32}")
_POOL_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")  # pool names hold only letters, digits, '-' and '_'
_ORDER = {("create", "monitor"): 0, ("update", "monitor"): 0, ("create", "pool"): 1, ("update", "pool"): 1,
          ("create", "load_balancer"): 2, ("update", "load_balancer"): 2, ("delete", "load_balancer"): 3,
          ("delete", "pool"): 4, ("delete", "monitor"): 5}
_NOUN = {"monitor": "monitor", "pool": "pool", "load_balancer": "load balancer"}


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name_of(key: str) -> str:
    """The object's name from its key ("pool edgectl-default-fra-1" -> "edgectl-default-fra-1")."""
    return key.split(" ", 1)[1]


def _scaled(targets: tuple[tuple[str, int], ...]) -> dict[str, float]:
    """Rule weights as random_steering weights, 0-1 in hundredths, keeping their proportions (above 0 stays above 0)."""
    top = max(w for _, w in targets)
    return {node: max(0.01, round(w / top, 2)) for node, w in targets}


class CloudflareLbProvider(RoutingProvider):
    kind = "cloudflare_lb"
    capabilities = frozenset({"routing"})
    geo_units = ("country", "cf_region", "default")
    required_settings = ("account_id", "api_token", "hostname")
    optional_settings = ("steering_policy", "monitor_path", "check_regions", "ttl", "proxied",
                         *cloudflare_sdk.SETTINGS, *RoutingProvider.routing_settings)
    secret_settings = ("api_token",)

    def __init__(self, name: str, settings: Mapping[str, Any], context):
        super().__init__(name, settings, context)
        self._api = cloudflare_sdk.CloudflareApi(self.settings, context.timeout, lambda: self.secret("api_token"))
        self._zone_name: str | None = None
        # ("monitor" or "pool", name) -> id, as last listed or created: what a step points at
        self._ids: dict[tuple[str, str], str] = {}
        self._pool_names: dict[str, str] = {}  # every pool of the account, id -> name, for reading lists of ids
        self._attempted: set[tuple[str, str, str]] = set()  # steps sent by this process: a retry is a resend

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = cloudflare_sdk.check_settings(settings, super().check_settings(settings), cls.kind)
        account = settings.get("account_id")
        if account not in ("", None) and not (isinstance(account, str) and _ACCOUNT_ID.fullmatch(account)):
            problems.append("account_id: must be the account's ID, 32 lower-case hexadecimal characters")
        given = settings.get("hostname")
        host, zone = cloudflare_sdk.hostname_or_none(given), cloudflare_sdk.hostname_or_none(settings.get("zone"))
        if given not in ("", None) and host is None:
            problems.append(f"hostname: {given!r} is not a hostname such as www.example.com")
        elif host and zone and host != zone and not host.endswith("." + zone):
            problems.append(f"hostname: {host} is not in zone {zone}")
        policy = settings.get("steering_policy")
        if policy is not None and policy not in STEERING_POLICIES:
            problems.append(f"steering_policy: {policy!r} is not one of {', '.join(STEERING_POLICIES)}")
        path = settings.get("monitor_path")
        if path is not None and not (isinstance(path, str) and path.startswith("/")
                                     and not any(c.isspace() or ord(c) < 32 for c in path)):
            problems.append("monitor_path: a path starting with '/', without spaces, such as /healthz")
        regions = settings.get("check_regions")
        if regions is not None:
            if not (isinstance(regions, list) and regions and all(isinstance(r, str) for r in regions)):
                problems.append("check_regions: a non-empty list of Cloudflare region codes "
                                f"({', '.join(CHECK_REGIONS)})")
            else:
                unknown = [r for r in regions if r not in CHECK_REGIONS]
                if unknown:
                    problems.append(f"check_regions: {', '.join(unknown)} not among {', '.join(CHECK_REGIONS)}")
                elif len(set(regions)) != len(regions):
                    problems.append("check_regions: a region is listed twice")
        ttl = settings.get("ttl")
        if ttl is not None and not (_is_whole(ttl) and 1 <= ttl <= MAX_TTL):
            problems.append(f"ttl: a whole number of seconds from 1 to {MAX_TTL}")
        if settings.get("proxied") is not None and not isinstance(settings.get("proxied"), bool):
            problems.append("proxied: true or false")
        return problems

    @property
    def hostname(self) -> str:
        return cloudflare_sdk.normalise_hostname(str(self.settings["hostname"]))

    @property
    def account_id(self) -> str:
        return str(self.settings["account_id"])

    @property
    def policy(self) -> str:
        return str(self.settings.get("steering_policy") or "geo")

    @property
    def proxied(self) -> bool:
        return bool(self.settings.get("proxied", True))

    def _publishes_ttl(self) -> bool:
        return not self.proxied or self.settings.get("ttl") is not None

    def _mark(self) -> str:
        return f"managed by edgectl (owner {self.owner})"

    def _monitor_name(self) -> str:
        return f"edgectl-{self.owner}"

    def _monitor_description(self) -> str:
        return f"edgectl-{self.owner}: {self.hostname}"

    def _prefix(self) -> str:
        return f"edgectl-{self.owner}-"

    def pool_name(self, node: str) -> str:
        return self._prefix() + _POOL_UNSAFE.sub("-", node)

    def where(self) -> str:
        zone = self.settings.get("zone") or self.settings.get("zone_id")
        return f"{self.hostname} in zone {zone}, account {self.account_id}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "hostname": self.hostname, "steering_policy": self.policy}

    def prepare(self) -> None:
        self._api.client()

    def close(self) -> None:
        self._api.close()

    def _call(self, what: str, call: Callable[[Any], Any]):
        client = self._api.client()
        return self._api.call(what, lambda: call(client))

    def _zone(self) -> tuple[str, str]:
        """(id, name) of the zone, read once; the hostname must be in it."""
        if self._zone_name is None:
            zone = self._api.zone()
            self._zone_name = (zone.name or "").lower()
            host = self.hostname
            if host != self._zone_name and not host.endswith("." + self._zone_name):
                raise ProviderError(f"cloudflare: hostname {host} is not in zone {zone.name} ({zone.id})")
        return self._api.zone_id(), self._zone_name

    def test(self) -> str:
        zone_id, zone_name = self._zone()
        balancers = self._list("load_balancer")
        mine = next((lb for lb in balancers if (lb.name or "").lower() == self.hostname), None)
        state = ("not there yet" if mine is None else "edgectl's" if mine.description == self._mark()
                 else "not edgectl's: planning will refuse it")
        return (f"zone {zone_name} (id {zone_id}) reachable, {len(balancers)} load balancer(s); "
                f"{self.hostname}: {state}")

    # -- what is wanted --------------------------------------------------------
    def desired(self, steering: Steering) -> tuple[list[Resource], list[str]]:
        warnings: list[str] = []
        lb = self._balancer(steering, warnings)
        used = list(dict.fromkeys([*lb["default_pools"], lb["fallback_pool"],
                                   *(p for pools in lb["country_pools"].values() for p in pools),
                                   *(p for pools in lb["region_pools"].values() for p in pools)]))
        nodes: dict[str, str] = {}
        for node in sorted(steering.targets):
            other = nodes.setdefault(self.pool_name(node), node)
            if other != node:
                raise SteeringRefused(f"nodes {other} and {node} would share the pool name {self.pool_name(node)} "
                                      "(pool names hold only letters, digits, '-' and '_')",
                                      hint="register one of them again under another name")
        monitor = self._monitor(steering, [nodes[p] for p in used], warnings)
        resources = [Resource("monitor", f"monitor {self._monitor_name()}", monitor)]
        regions = self.settings.get("check_regions")
        for pool in used:
            target = steering.targets[nodes[pool]]
            fields: dict[str, Any] = {"name": pool, "description": self._mark(),
                                      "origins": [{"name": target.node, "address": target.address, "enabled": True,
                                                   "weight": 1}],
                                      "monitor": self._monitor_name()}
            if target.lat is not None and target.lon is not None:
                fields["latitude"], fields["longitude"] = target.lat, target.lon
            if regions:
                fields["check_regions"] = list(regions)
            resources.append(Resource("pool", f"pool {pool}", fields))
        resources.append(Resource("load_balancer", f"load_balancer {self.hostname}", lb))
        if self.policy == "proximity":
            far = sorted(nodes[p] for p in used if steering.targets[nodes[p]].lat is None
                         or steering.targets[nodes[p]].lon is None)
            if far:
                warnings.append(f"proximity steering: {', '.join(far)} have no coordinates, so Cloudflare cannot "
                                "place their pools and picks them only in failover order; give them --lat and --lon")
        if self.proxied and self.settings.get("ttl") is not None:
            warnings.append("ttl applies only to a load balancer that is not proxied; Cloudflare ignores it here")
        return resources, warnings

    def _balancer(self, steering: Steering, warnings: list[str]) -> dict[str, Any]:
        """The load balancer's fields: ordered lists of pool names for every place, as the policy uses them."""
        pools = steering.pools
        default = pools[steering.default_pool]
        names = lambda nodes: [self.pool_name(n) for n in nodes]  # noqa: E731
        by_unit: dict[str, dict[str, list[str]]] = {"country": {}, "cf_region": {}}
        for entry in steering.entries:
            if entry.unit in by_unit:
                # once every pool of a place's list fails, Cloudflare goes to fallback_pool, not to the
                # region's or the default list: resolve's next level comes next in the list itself
                chain = list(pools[entry.pool].nodes)
                if entry.fallback and entry.fallback != entry.pool:
                    after = list(pools[entry.fallback].nodes)
                    if entry.fallback == steering.default_pool:
                        after = after[:-1]  # its last node is fallback_pool: Cloudflare goes there anyway
                    chain += [n for n in after if n not in chain]
                by_unit[entry.unit][entry.code] = names(chain)
        default_pools = names(default.nodes)
        fallback = default_pools[-1]
        extra: dict[str, Any] = {}
        if self.policy == "geo":
            weighted = [p for p in pools.values() if len(p.targets) > 1]
            if weighted:
                shown = "; ".join(f"{p.name}: " + ", ".join(f"{n} {w}" for n, w in p.targets) for p in weighted)
                warnings.append(f"geo steering sends a place's traffic to the first healthy pool in its list, so "
                                f"several weighted targets are not split by weight ({shown}): each list is ordered "
                                "by weight, highest first, then the failover nodes")
        else:
            ignored = len(by_unit["country"]) + len(by_unit["cf_region"])
            how = {"proximity": "nearest by the pools' coordinates", "dynamic_latency": "fastest by measured "
                   "round-trip time", "random": "at random, by the default rule's weights"}[self.policy]
            if self.policy == "random":
                targets = [n for n, _ in default.targets]
                default_pools = names(targets)
                extra["random_steering"] = {"pool_weights": {self.pool_name(n): w
                                                             for n, w in _scaled(default.targets).items()}}
                if default.failover:
                    warnings.append(f"random steering: the default rule's failover nodes "
                                    f"({', '.join(default.failover)}) are not in default_pools; "
                                    f"{default.failover[-1]} is the fallback pool")
            else:
                seen = list(default.nodes)
                for entry in steering.entries:
                    seen += [n for n in pools[entry.pool].nodes if n not in seen]
                default_pools = names(seen)
            if ignored:
                warnings.append(f"{self.policy} steering picks from default_pools only ({how}); the rules for "
                                f"{ignored} countries and regions are not published as country_pools or region_pools "
                                "(use steering_policy = \"geo\" to publish them)")
            by_unit = {"country": {}, "cf_region": {}}
        fields: dict[str, Any] = {"name": self.hostname, "description": self._mark(), "default_pools": default_pools,
                                  "fallback_pool": fallback, "country_pools": dict(sorted(by_unit["country"].items())),
                                  "region_pools": dict(sorted(by_unit["cf_region"].items())),
                                  "steering_policy": self.policy, "proxied": self.proxied, **extra}
        if self._publishes_ttl():
            fields["ttl"] = int(self.settings.get("ttl") or DEFAULT_TTL)
        return fields

    def _monitor(self, steering: Steering, nodes: list[str], warnings: list[str]) -> dict[str, Any]:
        """One monitor for every pool, from the first node's health URL; nodes that differ are named."""
        def probe(node: str) -> tuple[str, int | None, str]:
            parts = urlsplit(steering.targets[node].health_url)
            kind = "https" if parts.scheme == "https" else "http"
            asked = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            path = self.settings.get("monitor_path") or asked
            port = parts.port if parts.port not in (None, DEFAULT_PORTS[kind]) else None
            return kind, port, path

        kind, port, path = probe(nodes[0])
        differ = [n for n in nodes if probe(n) != (kind, port, path)]
        if differ:
            warnings.append(f"one monitor checks every pool as {kind}, port {port or DEFAULT_PORTS[kind]}, path {path} "
                            f"(from {nodes[0]}); the health URLs of {', '.join(differ)} differ and are not used")
        fields: dict[str, Any] = {"description": self._monitor_description(), "type": kind, "path": path,
                                  "expected_codes": "2xx"}
        if port is not None:
            fields["port"] = port
        return fields

    # -- what is there ---------------------------------------------------------
    def _list(self, kind: str) -> list:
        api, where = self._resource(kind)
        return list(self._call(f"{_NOUN[kind]} list", lambda c: api(c).list(**where)).result or [])

    def found(self) -> Found:
        owned: list[Resource] = []
        unmanaged: list[Resource] = []
        monitors = self._list("monitor")
        pools = self._list("pool")
        balancers = self._list("load_balancer")
        self._pool_names = {p.id: p.name for p in pools}
        mine = [p for p in pools if (p.name or "").startswith(self._prefix()) and p.description == self._mark()]
        mine_ids = {p.id for p in mine}
        # the monitor is known by its description; a second one with it (a create whose answer was lost) is deleted
        ours = [m for m in monitors if m.description == self._monitor_description()]
        used = {m.id: sum(1 for p in mine if p.monitor == m.id) for m in ours}
        ours.sort(key=lambda m: (-used[m.id], m.created_on or "", m.id))
        monitor_names: dict[str, str] = {}
        for i, monitor in enumerate(ours):
            name = self._monitor_name() if i == 0 else f"{self._monitor_name()}@{monitor.id}"
            monitor_names[monitor.id] = name
            owned.append(Resource("monitor", f"monitor {name}", _monitor_fields(monitor), monitor.id))
        for monitor in monitors:
            description = monitor.description or ""
            if description.startswith(f"edgectl-{self.owner}: ") and monitor.id not in monitor_names:
                unmanaged.append(Resource("monitor", f"monitor {description}", _monitor_fields(monitor), monitor.id))
        for pool in pools:
            if not (pool.name or "").startswith(self._prefix()):
                continue
            fields = _pool_fields(pool, monitor_names)
            (owned if pool.id in mine_ids else unmanaged).append(Resource("pool", f"pool {pool.name}", fields, pool.id))
        for lb in balancers:
            if (lb.name or "").lower() != self.hostname:
                continue
            fields = self._balancer_fields(lb)
            resource = Resource("load_balancer", f"load_balancer {self.hostname}", fields, lb.id)
            (owned if lb.description == self._mark() else unmanaged).append(resource)
        self._ids = {("monitor", name): mid for mid, name in monitor_names.items()}
        self._ids.update({("pool", p.name): p.id for p in pools})
        return Found(tuple(owned), tuple(unmanaged))

    def _balancer_fields(self, lb) -> dict[str, Any]:
        """A listed load balancer written as `_balancer` writes the one it wants: pool ids as names."""
        name = lambda pool_id: self._pool_names.get(pool_id, f"id:{pool_id}")  # noqa: E731
        names = lambda ids: [name(i) for i in ids or []]  # noqa: E731
        fields: dict[str, Any] = {"name": (lb.name or "").lower(), "description": lb.description or "",
                                  "default_pools": names(lb.default_pools), "fallback_pool": name(lb.fallback_pool),
                                  "country_pools": {c: names(p) for c, p in sorted((lb.country_pools or {}).items())},
                                  "region_pools": {r: names(p) for r, p in sorted((lb.region_pools or {}).items())},
                                  "steering_policy": lb.steering_policy or "", "proxied": bool(lb.proxied)}
        if lb.steering_policy == "random":
            weights = (lb.random_steering.pool_weights if lb.random_steering else None) or {}
            fields["random_steering"] = {"pool_weights": {name(i): w for i, w in weights.items()}}
        if self._publishes_ttl():
            fields["ttl"] = lb.ttl
        return fields

    def check_conflicts(self, desired: list[Resource], found: Found) -> None:
        wanted = {(r.type, r.key) for r in desired}
        for other in found.unmanaged:
            if other.type == "monitor":
                host = other.fields.get("description", "").split(": ", 1)[-1]
                raise SteeringRefused(
                    f"owner {self.owner} already steers {host} in account {self.account_id} (monitor {other.ref}); "
                    f"its pools are named edgectl-{self.owner}-NODE too, so the two would rewrite each other's",
                    hint=f"give this provider another `owner`; or, if nothing steers {host} any more, delete its "
                         "load balancer and that monitor")
            if other.type == "pool" and (other.type, other.key) in wanted:
                raise SteeringRefused(
                    f"pool {_name_of(other.key)} exists in account {self.account_id} and is not edgectl's for owner "
                    f"{self.owner} (its description is {other.fields.get('description')!r})",
                    hint="rename or remove that pool, or give this provider another `owner`")
            if other.type == "load_balancer":
                raise SteeringRefused(
                    f"a load balancer named {self.hostname} exists in the zone and is not edgectl's "
                    f"(its description is {other.fields.get('description')!r})",
                    hint="steer another hostname, or remove that load balancer first")

    # -- changes ---------------------------------------------------------------
    def steps(self, changes: list[Change]) -> list[Step]:
        ordered = sorted(changes, key=lambda c: (_ORDER[(c.action, c.type)], c.key))
        return [Step(f"{change.action} {_NOUN[change.type]} {_name_of(change.key)}", (change,)) for change in ordered]

    def apply(self, step: Step, *, resend: bool = False) -> StepResult:
        change = step.changes[0]
        attempt = (change.action, change.type, change.key)
        resend = resend or attempt in self._attempted  # a retry after an error may follow a request that landed
        self._attempted.add(attempt)
        if change.action == "delete":
            return self._delete(change, resend)
        name = _name_of(change.key)
        ident = change.ref
        if change.action == "create" and resend:
            ident = self._lookup(change.type, name)
        body = self._body(change.type, change.new)
        noun = f"{_NOUN[change.type]} {name}"
        if ident:
            self._send(change.type, "update", ident, body)
            return StepResult(ident, True, f"{noun} ({ident}) written")
        try:
            ident = self._send(change.type, "create", None, body)
        except (RetryableError, AuthError):
            raise
        except ProviderError:
            # a name already taken may be this very object, from an attempt whose answer was lost
            ident = self._lookup(change.type, name) if change.type != "monitor" else None
            if not ident:
                raise
            self._send(change.type, "update", ident, body)
            return StepResult(ident, True, f"{noun} ({ident}) written")
        self._ids[(change.type, name)] = ident
        if change.type == "pool":
            self._pool_names[ident] = name
            if change.new.get("check_regions"):
                regions = list(change.new["check_regions"])
                self._call(f"pool {name} check_regions", lambda c: c.load_balancers.pools.edit(
                    ident, account_id=self.account_id, check_regions=regions))
        return StepResult(ident, True, f"{noun} ({ident}) created")

    def _send(self, kind: str, verb: str, ident: str | None, body: dict[str, Any]) -> str:
        """One create or update (PUT: the whole object, as wanted); the object's id."""
        what = f"{verb} {_NOUN[kind]}"
        api, where = self._resource(kind)
        if verb == "create":
            if kind == "pool":
                body = {k: v for k, v in body.items() if k != "check_regions"}
            result = self._call(what, lambda c: api(c).create(**where, **body))
        else:
            result = self._call(what, lambda c: api(c).update(ident, **where, **body))
        return result.id

    def _resource(self, kind: str) -> tuple[Callable[[Any], Any], dict[str, str]]:
        """The SDK resource for a kind of object, and where it lives (the account, or the zone)."""
        if kind == "load_balancer":
            return (lambda c: c.load_balancers), {"zone_id": self._zone()[0]}
        if kind == "monitor":
            return (lambda c: c.load_balancers.monitors), {"account_id": self.account_id}
        return (lambda c: c.load_balancers.pools), {"account_id": self.account_id}

    def _body(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """What the SDK is given for an object's fields: names become ids."""
        body = dict(fields)
        if kind == "pool":
            body["monitor"] = self._id("monitor", fields["monitor"])
        elif kind == "load_balancer":
            pool = lambda name: self._id("pool", name)  # noqa: E731
            body["default_pools"] = [pool(n) for n in fields["default_pools"]]
            body["fallback_pool"] = pool(fields["fallback_pool"])
            for mapping in ("country_pools", "region_pools"):
                body[mapping] = {code: [pool(n) for n in names] for code, names in fields[mapping].items()}
            if "random_steering" in fields:
                body["random_steering"] = {"pool_weights": {pool(n): w for n, w in
                                                            fields["random_steering"]["pool_weights"].items()}}
        return body

    def _id(self, kind: str, name: str) -> str:
        """The id of what an object points at, listing again when an earlier step (or run) created it."""
        if (kind, name) not in self._ids:
            self._refresh(kind)
        if (kind, name) not in self._ids:
            raise ProviderError(f"cloudflare: {_NOUN[kind]} {name} is missing in account {self.account_id}; plan again")
        return self._ids[(kind, name)]

    def _refresh(self, kind: str) -> None:
        """The ids of the monitor or of every pool, listed now."""
        items = self._list(kind)
        if kind == "monitor":
            ours = sorted((m for m in items if m.description == self._monitor_description()),
                          key=lambda m: (m.created_on or "", m.id))
            if ours:
                self._ids[("monitor", self._monitor_name())] = ours[0].id
        else:
            self._ids.update({("pool", p.name): p.id for p in items})
            self._pool_names.update({p.id: p.name for p in items})

    def _lookup(self, kind: str, name: str) -> str | None:
        """The id of an object of this name (the monitor: of its description) that is edgectl's, or None."""
        for item in self._list(kind):
            if kind == "monitor":
                if item.description == self._monitor_description():
                    return item.id
                continue
            if (item.name or "").lower() != name.lower():
                continue
            if item.description != self._mark():
                raise ProviderError(f"cloudflare: {_NOUN[kind]} {name} exists and is not edgectl's for owner "
                                    f"{self.owner}; plan again")
            return item.id
        return None

    def _delete(self, change: Change, resend: bool) -> StepResult:
        noun = f"{_NOUN[change.type]} {_name_of(change.key)}"
        ident = change.ref
        present = lambda: any(item.id == ident for item in self._list(change.type))  # noqa: E731
        if resend and not present():
            return StepResult(ident, True, f"{noun} ({ident}) already gone")
        api, where = self._resource(change.type)
        try:
            self._call(f"delete {noun}", lambda c: api(c).delete(ident, **where))
        except (RetryableError, AuthError):
            raise
        except ProviderError:
            # Cloudflare's answer to an id that names nothing is not documented: what counts is that it is gone
            if present():
                raise
            return StepResult(ident, True, f"{noun} ({ident}) already gone")
        self._ids = {k: v for k, v in self._ids.items() if v != ident}
        return StepResult(ident, True, f"{noun} ({ident}) deleted")


def _monitor_fields(monitor) -> dict[str, Any]:
    fields: dict[str, Any] = {"description": monitor.description or "", "type": monitor.type,
                              "path": monitor.path or "/", "expected_codes": monitor.expected_codes or ""}
    if monitor.port and monitor.port != DEFAULT_PORTS.get(monitor.type or ""):
        fields["port"] = monitor.port
    return fields


def _pool_fields(pool, monitor_names: Mapping[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": pool.name, "description": pool.description or "",
        "origins": [{"name": o.name, "address": o.address, "enabled": o.enabled is not False,
                     "weight": 1 if o.weight is None else o.weight} for o in pool.origins or []],
        "monitor": monitor_names.get(pool.monitor, f"id:{pool.monitor}") if pool.monitor else None}
    if pool.latitude is not None and pool.longitude is not None:
        fields["latitude"], fields["longitude"] = pool.latitude, pool.longitude
    if pool.check_regions:
        fields["check_regions"] = list(pool.check_regions)
    return fields
