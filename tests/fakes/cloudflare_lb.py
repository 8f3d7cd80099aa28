"""A local stand-in for Cloudflare's Load Balancing API (monitors, pools, load balancers), for tests and the demo.

`FakeCloudflareLB` is the v4 fake of `tests.fakes.cloudflare_api` with the Load Balancing routes
added, so one server answers zones, purges and load balancing with the same envelope, token check,
fault queue (`fail_next`, `reset_next_connection`, `delay_next`), request log (`calls`) and, unless
told otherwise, Cloudflare's global limit of 1,200 requests in any five minutes. Below /client/v4:

  GET, POST                /accounts/{account_id}/load_balancers/monitors
  GET, PUT, PATCH, DELETE  /accounts/{account_id}/load_balancers/monitors/{monitor_id}
  GET, POST                /accounts/{account_id}/load_balancers/pools            (GET takes ?monitor=ID)
  GET, PUT, PATCH, DELETE  /accounts/{account_id}/load_balancers/pools/{pool_id}
  GET, POST                /zones/{zone_id}/load_balancers
  GET, PUT, PATCH, DELETE  /zones/{zone_id}/load_balancers/{load_balancer_id}
  and from FakeCloudflare: GET /zones (?name=), GET /zones/{zone_id}, POST /zones/{zone_id}/purge_cache,
  GET /user/tokens/verify

It refuses what the API reference and Cloudflare's quoted answers say the real API refuses: a pool
without origins, a pool name already taken in the account or holding other than letters, digits,
`-` and `_`, an origin weight outside 0..1, a monitor, pool, region or country that does not exist,
a load balancer name that is not a hostname in its zone or is already taken there, and deleting a
monitor a pool uses or a pool a load balancer uses. PUT replaces a whole object (and needs what a
POST needs); PATCH replaces only the top-level fields it names.

Lists answer every item on one page, as the API reference documents them (the SDK reads them as a
`SyncSinglePage` and never asks for a second page), unless the query names `page` or `per_page` or
the fake was made with `list_per_page`, which makes a client that pages testable.

In-process: `fake = FakeCloudflareLB().start()`, point the SDK at `fake.url`, `fake.stop()`. As a
program, like tests.fakes.cloudflare_api:

  python -m tests.fakes.cloudflare_lb --port-file F --stats-file S [--api-limit 1200 --list-per-page 5]
"""

from __future__ import annotations

import copy
import ipaddress
import re
import uuid
from datetime import datetime, timezone

from tests.fakes.cloudflare_api import (_NO_URI, GLOBAL_LIMIT, FakeCloudflare, _envelope, _error, _is_hostname,
                                        _no_route, _page, _read_json, _Refusal, arguments, serve)

# Codes as Cloudflare's answers quoted in public issues show them: 1002 with "...: validation failed"
# for a body the API will not take (cloudflare-docs#2850, hashicorp/terraform#17948), 1003 "value not
# unique" (terraform-provider-cloudflare#6275) and 1005 with HTTP 412 for an object still in use
# (terraform-provider-cloudflare#66). The answer to an ID that names nothing could not be found
# quoted anywhere: 404 with 1001 is this fake's guess, and so is the exact wording of each message.
_VALIDATION = 1002
_NOT_UNIQUE = (1003, "value not unique")
_IN_USE = (1005, "This object is referenced by other objects, delete them first.")
_NOT_FOUND = 1001  # undocumented, see above

# The thirteen load balancing regions (developers.cloudflare.com/load-balancing/reference/region-mapping-api);
# health checks may also run from CHINA or ALL_REGIONS (the SDK's CheckRegion).
REGIONS = ("WNAM", "ENAM", "WEU", "EEU", "NSAM", "SSAM", "OC", "ME", "NAF", "SAF", "SAS", "SEAS", "NEAS")
CHECK_REGIONS = REGIONS + ("CHINA", "ALL_REGIONS")
# ISO 3166-1 alpha-2, the keys country_pools takes
COUNTRIES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS
MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS
RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW
TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW""".split())
MONITOR_TYPES = ("http", "https", "tcp", "udp_icmp", "icmp_ping", "smtp")
STEERING_POLICIES = ("off", "geo", "random", "dynamic_latency", "proximity", "least_outstanding_requests",
                     "least_connections", "")
SESSION_AFFINITIES = ("none", "cookie", "ip_cookie", "header", "")
_POOL_NAME = re.compile(r"[A-Za-z0-9_-]+")
_EXPECTED_CODES = re.compile(r"[1-5]([0-9]{2}|xx)")
_POP = re.compile(r"[A-Z]{3}")

_ACCOUNT_KINDS = {"monitors": "monitor", "pools": "pool"}


def _invalid(message: str) -> _Refusal:
    return _Refusal(400, [_error(_VALIDATION, f"{message}: validation failed")])


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _given(doc: dict, name: str, default):
    """`doc[name]`, or `default` where it is missing or null."""
    value = doc.get(name)
    return default if value is None else value


def _text(doc: dict, name: str, default: str = "") -> str:
    value = _given(doc, name, default)
    if not isinstance(value, str):
        raise _invalid(f"{name}: must be a string")
    return value


def _flag(doc: dict, name: str, default: bool) -> bool:
    value = _given(doc, name, default)
    if not isinstance(value, bool):
        raise _invalid(f"{name}: must be true or false")
    return value


def _number(doc: dict, name: str, default, low: float | None = None, high: float | None = None, whole=False):
    value = _given(doc, name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise _invalid(f"{name}: must be a {'whole ' if whole else ''}number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _invalid(f"{name}: {value} is outside {low}..{'' if high is None else high}")
    return value


def _headers(doc: dict, name: str) -> dict[str, list[str]]:
    value = _given(doc, name, {})
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and k and isinstance(v, list) and all(isinstance(x, str) for x in v)
            for k, v in value.items()):
        raise _invalid(f"{name}: must map header names to lists of strings")
    return value


def _require(doc: dict, names: tuple[str, ...]) -> None:
    for name in names:
        if doc.get(name) is None:
            raise _invalid(f"{name}: required")


def _is_address(value) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return _is_hostname(value)


class FakeCloudflareLB(FakeCloudflare):
    """FakeCloudflare that also serves Load Balancing; `monitors`, `pools` and `load_balancers` show what it holds."""

    def __init__(self, *, list_per_page: int | None = None, api_limit: int | None = GLOBAL_LIMIT, **options):
        super().__init__(api_limit=api_limit, **options)
        self.list_per_page = list_per_page
        self._monitors: dict[str, dict] = {}
        self._pools: dict[str, dict] = {}
        self._load_balancers: dict[str, dict[str, dict]] = {}  # zone ID -> load balancer ID -> record

    # -- what it holds ---------------------------------------------------------
    @property
    def monitors(self) -> dict[str, dict]:
        with self._lock:
            return copy.deepcopy(self._monitors)

    @property
    def pools(self) -> dict[str, dict]:
        with self._lock:
            return copy.deepcopy(self._pools)

    @property
    def load_balancers(self) -> dict[str, dict]:
        """Every zone's load balancers by ID; each record's `zone_name` says whose it is."""
        with self._lock:
            return {lb_id: copy.deepcopy(lb) for zone in self._load_balancers.values() for lb_id, lb in zone.items()}

    def stats(self) -> dict:
        counts = {"monitors": len(self.monitors), "pools": len(self.pools), "load_balancers": len(self.load_balancers)}
        return {**super().stats(), **counts}

    # -- routing ---------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict]:
        segments = path.strip("/").split("/")
        if segments[0] == "accounts" and len(segments) in (4, 5) and segments[2] == "load_balancers" \
                and segments[3] in _ACCOUNT_KINDS:
            if segments[1] != self.account_id:
                raise _no_route(path)
            kind, zone_id = _ACCOUNT_KINDS[segments[3]], None
        elif segments[0] == "zones" and len(segments) in (3, 4) and segments[2] == "load_balancers":
            self._zone_name(segments[1], path)
            kind, zone_id = "load balancer", segments[1]
        else:
            return super()._route(method, path, query, body)
        item_id = segments[-1] if len(segments) == (5 if zone_id is None else 4) else None
        with self._lock:
            store = self._store(kind, zone_id)
            if item_id is None:
                if method == "GET":
                    items = list(store.values())
                    if kind == "pool" and query.get("monitor"):
                        items = [pool for pool in items if pool["monitor"] == query["monitor"][0]]
                    return 200, _page(copy.deepcopy(items), query, self.list_per_page or max(1, len(items)))
                if method == "POST":
                    record = self._build(kind, zone_id, self._body(body), None)
                    store[record["id"]] = record
                    return 200, _envelope(copy.deepcopy(record))
            else:
                current = store.get(item_id)
                if current is None:
                    raise _Refusal(404, [_error(_NOT_FOUND, f"{kind} {item_id} not found")])
                if method == "GET":
                    return 200, _envelope(copy.deepcopy(current))
                if method in ("PUT", "PATCH"):
                    doc = self._body(body)
                    record = self._build(kind, zone_id, {**current, **doc} if method == "PATCH" else doc, current)
                    store[item_id] = record
                    return 200, _envelope(copy.deepcopy(record))
                if method == "DELETE":
                    if self._users_of(kind, item_id):
                        raise _Refusal(412, [_error(*_IN_USE)])
                    del store[item_id]
                    return 200, _envelope({"id": item_id})
        raise _Refusal(404, [_error(*_NO_URI)])

    def _store(self, kind: str, zone_id: str | None) -> dict[str, dict]:
        if kind == "monitor":
            return self._monitors
        if kind == "pool":
            return self._pools
        return self._load_balancers.setdefault(zone_id, {})

    @staticmethod
    def _body(body: bytes) -> dict:
        doc = _read_json(body, _VALIDATION)
        if not isinstance(doc, dict):
            raise _invalid("the request body must be a JSON object")
        return doc

    def _users_of(self, kind: str, item_id: str) -> list[str]:
        """IDs of what refers to monitor or pool `item_id`: the pools that use a monitor, the load balancers that
        use a pool."""
        if kind == "monitor":
            return [pool["id"] for pool in self._pools.values() if pool["monitor"] == item_id]
        if kind == "pool":
            return [lb["id"] for zone in self._load_balancers.values() for lb in zone.values()
                    if item_id in self._pools_named_by(lb)]
        return []

    @staticmethod
    def _pools_named_by(lb: dict) -> set[str]:
        named = {lb["fallback_pool"], *lb["default_pools"], *lb["random_steering"].get("pool_weights", {})}
        for mapping in ("region_pools", "country_pools", "pop_pools"):
            for pools in lb[mapping].values():
                named.update(pools)
        return named

    # -- records ---------------------------------------------------------------
    def _build(self, kind: str, zone_id: str | None, doc: dict, current: dict | None) -> dict:
        """The record `doc` makes (replacing `current`, if any), or the refusal the real API would answer."""
        fields = {"monitor": self._monitor_fields, "pool": self._pool_fields, "load balancer": self._lb_fields}[kind]
        stamp = _now()
        record = {"id": current["id"] if current else uuid.uuid4().hex,
                  "created_on": current["created_on"] if current else stamp, "modified_on": stamp}
        record.update(fields(doc, zone_id, current))
        return record

    def _monitor_fields(self, doc: dict, zone_id: str | None, current: dict | None) -> dict:
        kind = _given(doc, "type", "http")
        if kind not in MONITOR_TYPES:
            raise _invalid(f"type: {kind!r} is not one of {', '.join(MONITOR_TYPES)}")
        web = kind in ("http", "https")
        method = _text(doc, "method", "GET" if web else "connection_established")
        if web and method not in ("GET", "HEAD"):
            raise _invalid(f"method: {method!r} is not GET or HEAD")  # the dashboard's two choices; not documented
        expected = _text(doc, "expected_codes", "200" if web else "")
        if web and not _EXPECTED_CODES.fullmatch(expected):
            raise _invalid(f"expected_codes: {expected!r} is not a status code or a range like 2xx")
        port = _number(doc, "port", 0, 0, 65535, whole=True)
        if kind in ("tcp", "udp_icmp", "smtp") and not port:
            raise _invalid(f"port: required for {kind} monitors")
        return {"type": kind, "method": method, "path": _text(doc, "path", "/" if web else ""),
                "expected_codes": expected, "expected_body": _text(doc, "expected_body"),
                "header": _headers(doc, "header"), "port": port,
                "interval": _number(doc, "interval", 60, 1, whole=True),
                "timeout": _number(doc, "timeout", 5, 1, whole=True),
                "retries": _number(doc, "retries", 2, 0, whole=True),
                "consecutive_up": _number(doc, "consecutive_up", 0, 0, whole=True),
                "consecutive_down": _number(doc, "consecutive_down", 0, 0, whole=True),
                "allow_insecure": _flag(doc, "allow_insecure", False),
                "follow_redirects": _flag(doc, "follow_redirects", False),
                "probe_zone": _text(doc, "probe_zone"), "description": _text(doc, "description")}

    def _pool_fields(self, doc: dict, zone_id: str | None, current: dict | None) -> dict:
        _require(doc, ("name", "origins"))
        name = _text(doc, "name")
        if not _POOL_NAME.fullmatch(name):
            raise _invalid(f"name: {name!r} may hold only letters, digits, '-' and '_'")
        if any(p["name"] == name for p in self._pools.values() if current is None or p["id"] != current["id"]):
            raise _Refusal(400, [_error(*_NOT_UNIQUE)])
        origins = doc["origins"]
        if not isinstance(origins, list) or not origins:
            raise _invalid("origins: the origin list must hold at least one origin")
        monitor = _given(doc, "monitor", None)
        if monitor is not None and monitor not in self._monitors:
            raise _invalid(f"monitor: {monitor!r} not found")
        regions = _given(doc, "check_regions", None)
        if regions is not None and (not isinstance(regions, list)
                                    or any(region not in CHECK_REGIONS for region in regions)):
            raise _invalid(f"check_regions: {regions!r} holds something other than {', '.join(CHECK_REGIONS)}")
        latitude = _number(doc, "latitude", None, -90, 90)
        longitude = _number(doc, "longitude", None, -180, 180)
        if (latitude is None) != (longitude is None):
            raise _invalid("latitude and longitude: give both or neither")
        enabled = _flag(doc, "enabled", True)
        fields = {"name": name, "description": _text(doc, "description"), "enabled": enabled,
                  "minimum_origins": _number(doc, "minimum_origins", 1, 1, whole=True), "monitor": monitor,
                  "origins": [self._origin(origin, i) for i, origin in enumerate(origins)],
                  "check_regions": regions, "latitude": latitude, "longitude": longitude,
                  "notification_email": _text(doc, "notification_email"),
                  "origin_steering": _given(doc, "origin_steering", {"policy": "random"}),
                  "load_shedding": _given(doc, "load_shedding", None),
                  "notification_filter": _given(doc, "notification_filter", None),
                  "networks": _given(doc, "networks", ["cloudflare"])}
        if not enabled:
            fields["disabled_at"] = current.get("disabled_at") if current and not current["enabled"] else _now()
        return fields

    @staticmethod
    def _origin(origin, index: int) -> dict:
        if not isinstance(origin, dict):
            raise _invalid(f"origins[{index}]: must be an object")
        try:
            _require(origin, ("name", "address"))
            name, address = _text(origin, "name"), _text(origin, "address")
            if not name:
                raise _invalid("name: must not be empty")
            if not _is_address(address):
                raise _invalid(f"address: {address!r} is not an IP address or hostname")
            return {"name": name, "address": address, "enabled": _flag(origin, "enabled", True),
                    "weight": _number(origin, "weight", 1, 0, 1), "header": _headers(origin, "header"),
                    "port": _number(origin, "port", 0, 0, 65535, whole=True),
                    "virtual_network_id": _text(origin, "virtual_network_id"),
                    "flatten_cname": _flag(origin, "flatten_cname", True)}
        except _Refusal as refusal:
            refusal.errors[0]["message"] = f"origins[{index}].{refusal.errors[0]['message']}"
            raise

    def _lb_fields(self, doc: dict, zone_id: str, current: dict | None) -> dict:
        _require(doc, ("name", "default_pools", "fallback_pool"))
        zone_name = self._zone_name(zone_id, "")
        name = _text(doc, "name").rstrip(".").lower()
        if not _is_hostname(name) or not (name == zone_name or name.endswith("." + zone_name)):
            raise _invalid(f"name: invalid hostname {name!r}: it must be a hostname in the zone {zone_name}")
        if any(lb["name"] == name for lb in self._load_balancers.get(zone_id, {}).values()
               if current is None or lb["id"] != current["id"]):
            raise _Refusal(400, [_error(*_NOT_UNIQUE)])
        default_pools = self._pool_list(doc["default_pools"], "default_pools")
        if not default_pools:
            raise _invalid("default_pools: must name at least one pool")
        fallback = doc["fallback_pool"]
        if not isinstance(fallback, str) or fallback not in self._pools:
            raise _invalid(f"fallback_pool: pool {fallback!r} not found")
        mappings = {}
        for mapping, known, what in (("region_pools", REGIONS.__contains__, "a load balancing region"),
                                     ("country_pools", COUNTRIES.__contains__, "an ISO 3166-1 alpha-2 country code"),
                                     ("pop_pools", _POP.fullmatch, "a Cloudflare PoP code")):
            given = _given(doc, mapping, {})
            if not isinstance(given, dict):
                raise _invalid(f"{mapping}: must map codes to lists of pool IDs")
            for code in given:
                if not known(code):
                    raise _invalid(f"{mapping}: {code!r} is not {what}")
            mappings[mapping] = {code: self._pool_list(pools, f"{mapping}.{code}") for code, pools in given.items()}
        steering = _given(doc, "steering_policy", "")
        if steering not in STEERING_POLICIES:
            raise _invalid(f"steering_policy: {steering!r} is not one of {', '.join(map(repr, STEERING_POLICIES))}")
        affinity = _given(doc, "session_affinity", "")
        if affinity not in SESSION_AFFINITIES:
            raise _invalid(f"session_affinity: {affinity!r} is not one of {', '.join(map(repr, SESSION_AFFINITIES))}")
        return {"name": name, "zone_name": zone_name, "description": _text(doc, "description"),
                "enabled": _flag(doc, "enabled", True), "proxied": _flag(doc, "proxied", False),
                "ttl": _number(doc, "ttl", 30, 0), "default_pools": default_pools, "fallback_pool": fallback,
                **mappings, "steering_policy": steering, "session_affinity": affinity,
                "session_affinity_ttl": _number(doc, "session_affinity_ttl", None, 0),
                "session_affinity_attributes": _given(doc, "session_affinity_attributes", {}),
                "random_steering": self._random_steering(_given(doc, "random_steering", {})),
                "adaptive_routing": _given(doc, "adaptive_routing", {"failover_across_pools": False}),
                "location_strategy": _given(doc, "location_strategy", {"mode": "pop", "prefer_ecs": "proximity"}),
                "rules": _given(doc, "rules", []), "networks": _given(doc, "networks", ["cloudflare"])}

    def _pool_list(self, pools, where: str) -> list[str]:
        if not isinstance(pools, list) or not all(isinstance(pool, str) for pool in pools):
            raise _invalid(f"{where}: must be a list of pool IDs")
        for pool in pools:
            if pool not in self._pools:
                raise _invalid(f"{where}: pool {pool!r} not found")
        return list(pools)

    def _random_steering(self, given) -> dict:
        if not isinstance(given, dict):
            raise _invalid("random_steering: must be an object")
        weights = _given(given, "pool_weights", {})
        if not isinstance(weights, dict):
            raise _invalid("random_steering.pool_weights: must map pool IDs to weights")
        self._pool_list(list(weights), "random_steering.pool_weights")
        for pool in weights:
            _number(weights, pool, None, 0, 1)
        return {"default_weight": _number(given, "default_weight", 1, 0, 1), "pool_weights": dict(weights)}


def main(argv: list[str] | None = None) -> int:
    parser = arguments("python -m tests.fakes.cloudflare_lb", __doc__.splitlines()[0])
    parser.add_argument("--list-per-page", type=int, help="page lists at this size (default: all on one page)")
    parser.set_defaults(api_limit=GLOBAL_LIMIT)
    args = parser.parse_args(argv)
    fake = FakeCloudflareLB(token=args.token, zones=dict(args.zone) if args.zone else None,
                            account_id=args.account, api_limit=args.api_limit, api_window=args.api_window,
                            list_per_page=args.list_per_page, port=args.port)
    return serve(fake, args.port_file, args.stats_file)


if __name__ == "__main__":
    raise SystemExit(main())
