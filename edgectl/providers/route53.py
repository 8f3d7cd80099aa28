"""Amazon Route 53: geographic steering as geolocation records, weighted sets and failover pairs with health checks.

The shape is octoDNS's for dynamic records (octodns-route53's provider.py), named for edgectl:

  R                 a geolocation record per place (continent, country, US state, and `*`), each
                    either the node's address itself (a pool of one node, with its health check) or
                    an alias, evaluating target health, to its pool:
  _edgectl-P.R      a PRIMARY/SECONDARY failover pair: PRIMARY is the pool's targets, SECONDARY its
  _edgectl-P-fN.R   first failover node, or an alias to the next pair when there are more
  _edgectl-P-w.R    a weighted set of the pool's targets, one record per node with its health check
  _edgectl.R        the ownership TXT record, "heritage=edgectl,edgectl/owner=OWNER" (external-dns's form)

A place whose records all fail their health checks falls back to the next larger place
(country, continent, `*`), as `routing resolve` falls back to less specific rules.

Ownership: every record edgectl writes carries a SetIdentifier starting `edgectl:OWNER:`, and
health checks a CallerReference starting the same way and naming the zone and record
(health checks belong to the account, not the zone), and tags naming the node. Records
without that prefix are listed as not managed and never changed; a record name claimed by
another owner's TXT record, or holding records of the same type edgectl does not own, is refused.

Validated before anything is sent, because moto (and a typo) would store it: continent, country
and subdivision codes as Route 53 documents them (subdivisions: US states only), weights 0-255,
one routing policy per name and type, unique SetIdentifiers, at most 1,000 ResourceRecord
elements (UPSERT counted twice) and 32,000 characters of values per ChangeBatch.

Sources:
  https://docs.aws.amazon.com/Route53/latest/APIReference/API_ChangeResourceRecordSets.html
  https://docs.aws.amazon.com/Route53/latest/APIReference/API_GeoLocation.html
  https://docs.aws.amazon.com/Route53/latest/APIReference/API_CreateHealthCheck.html
  https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DNSLimitations.html
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from typing import Any, Mapping
from urllib.parse import urlsplit

from edgectl.providers import aws
from edgectl.providers.base import ProviderError, RateLimited
from edgectl.providers.steering import (Change, Found, GeoEntry, Pool, Resource, RoutingProvider, Step, StepResult,
                                        Steering, SteeringRefused, Target)

CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
US_STATES = frozenset(
    "AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS MT NC ND NE NH NJ NM NV NY OH OK "
    "OR PA RI SC SD TN TX UT VA VT WA WI WV WY".split())
MAX_RECORDS_PER_BATCH = 1000  # ResourceRecord elements; an UPSERT counts each twice
MAX_VALUE_CHARS_PER_BATCH = 32000
MAX_WEIGHT = 255
HEALTH_INTERVALS = (10, 30)
_ZONE_ID = re.compile(r"(?:/hostedzone/)?([A-Z0-9]{1,32})")
_OWNERSHIP_LABEL = "_edgectl"


def _fqdn(name: str) -> str:
    return name.strip().lower().rstrip(".") + "."


def _digest(fields: Mapping[str, Any], size: int = 8) -> str:
    return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:size]


def scaled_weights(targets: tuple[tuple[str, int], ...]) -> list[tuple[str, int]]:
    """Rule weights as Route 53 weights, 0-255, keeping their proportions (a weight above 0 stays above 0)."""
    top = max((w for _, w in targets), default=0)
    if top <= MAX_WEIGHT:
        return list(targets)
    return [(node, max(1, round(w * MAX_WEIGHT / top))) for node, w in targets]


class Route53Provider(RoutingProvider):
    kind = "route53"
    capabilities = frozenset({"routing"})
    geo_units = ("subdivision", "country", "continent", "default")
    required_settings = ("hosted_zone_id", "record_name")
    optional_settings = ("ttl", "health_checks", "health_check_interval", "health_check_failures",
                         *aws.SETTINGS, *RoutingProvider.routing_settings)

    def __init__(self, name: str, settings: Mapping[str, Any], context):
        super().__init__(name, settings, context)
        self._api = aws.AwsApi("route53", "Route 53", self.settings, context.timeout,
                               lambda: f" on zone {self.zone_id}", self._special)
        self._health_ids: dict[str, str] = {}  # health check key -> id, as last listed or created

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = aws.check_settings(settings, super().check_settings(settings), "Route 53")
        zone = settings.get("hosted_zone_id")
        if zone not in ("", None) and not (isinstance(zone, str) and _ZONE_ID.fullmatch(zone)):
            problems.append("hosted_zone_id: must be a Route 53 hosted zone ID, like Z0123456789ABCDEFGHIJ")
        record = settings.get("record_name")
        if record not in ("", None) and not isinstance(record, str):
            problems.append("record_name: a DNS name, like www.example.com")
        elif record not in ("", None):
            from edgectl.errors import UsageError
            from edgectl.parse import ascii_host

            try:
                ascii_host(str(record).rstrip("."), what="record_name")
            except UsageError as exc:
                problems.append(f"record_name: {exc.message}")
        checks = {"ttl": (0, 2147483647), "health_check_failures": (1, 10)}
        for key, (low, high) in checks.items():
            value = settings.get(key)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= high):
                problems.append(f"{key}: a whole number from {low} to {high}")
        interval = settings.get("health_check_interval")
        if interval is not None and interval not in HEALTH_INTERVALS:
            problems.append("health_check_interval: 10 or 30 (seconds; Route 53 offers no other)")
        if settings.get("health_checks") is not None and not isinstance(settings.get("health_checks"), bool):
            problems.append("health_checks: true or false")
        return problems

    @property
    def zone_id(self) -> str:
        return _ZONE_ID.fullmatch(str(self.settings["hosted_zone_id"])).group(1)

    @property
    def record_name(self) -> str:
        from edgectl.parse import ascii_host

        return _fqdn(ascii_host(str(self.settings["record_name"]).rstrip(".")))

    def where(self) -> str:
        return f"{self.record_name} in zone {self.zone_id}"

    def _prefix(self) -> str:
        return f"edgectl:{self.owner}:"

    def _health_prefix(self) -> str:
        """Health checks are the account's, not the zone's: theirs also name the zone and record they serve
        (a public and a private zone may share a name)."""
        served = f"{self.zone_id} {self.record_name}"
        return f"{self._prefix()}{hashlib.sha256(served.encode()).hexdigest()[:8]}:"

    def _special(self, code: str, text: str, retry_after: float | None) -> ProviderError | None:
        # Route 53 rate-limits each account with a token bucket (five requests a second) and refuses a
        # change while an earlier one from the same account is still being applied: both only need time.
        if code in ("Throttling", "PriorRequestNotComplete"):
            return RateLimited(text, retry_after)
        return None

    def prepare(self) -> None:
        self._api.client()

    def close(self) -> None:
        self._api.close()

    def test(self) -> str:
        zone = self._api.call("get_hosted_zone", Id=self.zone_id)["HostedZone"]
        return (f"zone {zone.get('Name', '?')} ({self.zone_id}, {zone.get('ResourceRecordSetCount', '?')} records) "
                f"reachable; steering {self.record_name}")

    # -- what is wanted --------------------------------------------------------
    def desired(self, steering: Steering) -> tuple[list[Resource], list[str]]:
        warnings: list[str] = []
        types = {t.record_type for t in steering.targets.values()}
        if len(types) > 1:
            by_type = {kind: sorted(n for n, t in steering.targets.items() if t.record_type == kind) for kind in types}
            shown = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in sorted(by_type.items()))
            raise SteeringRefused(f"the nodes' addresses mix record types ({shown}); one record name steers one type",
                                  hint="give the nodes addresses of one kind (edgectl nodes update NODE --address ...)"
                                       ", or steer each kind under its own record_name")
        rtype = types.pop()
        builder = _Records(self, steering, rtype)
        for entry in steering.entries:
            if entry.unit == "subdivision" and (not entry.code.startswith("US-") or entry.code[3:] not in US_STATES):
                warnings.append(f"{entry.source}: Route 53 steers by US state only; {entry.code} is answered as "
                                f"country {entry.code.split('-')[0]}")
                continue
            builder.geo(entry)
        resources = builder.resources()
        validate(resources)
        return resources, warnings

    # -- what is there ---------------------------------------------------------
    def _list_records(self) -> list[dict[str, Any]]:
        seen: dict[tuple, dict] = {}
        params: dict[str, Any] = {"HostedZoneId": self.zone_id, "MaxItems": "300"}
        for _ in range(100_000):
            page = self._api.call("list_resource_record_sets", **params)
            fresh = 0
            for rrset in page.get("ResourceRecordSets", []):
                key = (_fqdn(rrset["Name"]), rrset["Type"], rrset.get("SetIdentifier"))
                if key not in seen:
                    fresh += 1
                seen[key] = rrset
            # a listing without NextRecordIdentifier (moto) restarts at the name and type: stop on a page with nothing new
            if not page.get("IsTruncated") or not fresh:
                break
            params = {"HostedZoneId": self.zone_id, "MaxItems": "300", "StartRecordName": page["NextRecordName"],
                      "StartRecordType": page["NextRecordType"]}
            if page.get("NextRecordIdentifier"):
                params["StartRecordIdentifier"] = page["NextRecordIdentifier"]
        return list(seen.values())

    def _list_health_checks(self) -> list[dict[str, Any]]:
        checks, params = [], {"MaxItems": "1000"}
        for _ in range(10_000):
            page = self._api.call("list_health_checks", **params)
            checks += page.get("HealthChecks", [])
            # moto leaves out IsTruncated; NextMarker alone says there is more
            if not page.get("NextMarker") or page.get("IsTruncated") is False:
                break
            params = {"MaxItems": "1000", "Marker": page["NextMarker"]}
        return checks

    def _health_tags(self, ids: list[str]) -> dict[str, dict[str, str]]:
        tags: dict[str, dict[str, str]] = {}
        for start in range(0, len(ids), 10):  # ListTagsForResources takes ten ids at a time
            page = self._api.call("list_tags_for_resources", ResourceType="healthcheck",
                                  ResourceIds=ids[start:start + 10])
            for item in page.get("ResourceTagSets", []):
                tags[item["ResourceId"]] = {t["Key"]: t.get("Value", "") for t in item.get("Tags", [])}
        return tags

    def found(self) -> Found:
        zone = _fqdn(self._api.call("get_hosted_zone", Id=self.zone_id)["HostedZone"]["Name"])
        if self.record_name != zone and not self.record_name.endswith("." + zone):
            raise SteeringRefused(f"record_name {self.record_name} is not in zone {zone} ({self.zone_id})",
                                  hint="name a record in the zone, or the zone that holds it")
        owned: list[Resource] = []
        unmanaged: list[Resource] = []
        mine = [hc for hc in self._list_health_checks()
                if str(hc.get("CallerReference", "")).startswith(self._health_prefix())]
        tags = self._health_tags([hc["Id"] for hc in mine]) if mine else {}
        by_id: dict[str, str] = {}
        for hc in mine:
            fields = _health_fields(hc.get("HealthCheckConfig", {}))
            node = tags.get(hc["Id"], {}).get("edgectl:node")
            key = f"{node}@{_digest(fields)}" if node else f"untagged@{hc['Id']}"
            if key in by_id.values():  # two made for one (two applies at once): the extra is deleted
                key = f"{key}#{hc['Id']}"
            by_id[hc["Id"]] = key
            owned.append(Resource("health_check", key, fields, hc["Id"]))
        self._health_ids = {key: hc_id for hc_id, key in by_id.items()}
        record, ownership = self.record_name, f"{_OWNERSHIP_LABEL}.{self.record_name}"
        for rrset in self._list_records():
            name = _fqdn(rrset["Name"])
            # the name itself, and the helper names directly under it (never a child name's own helpers)
            label, _, parent = name.partition(".")
            if name != record and not (label.startswith(_OWNERSHIP_LABEL) and parent == record):
                continue
            fields = _record_fields(rrset, by_id)
            set_id = rrset.get("SetIdentifier")
            if name == ownership and rrset["Type"] == "TXT" and not set_id:
                values = fields.get("values", [])
                resource = Resource("ownership", f"{name} TXT", fields)
                (owned if values == [self._ownership_value()] else unmanaged).append(resource)
                continue
            resource = Resource("record", _record_key(fields), fields)
            (owned if set_id and set_id.startswith(self._prefix()) else unmanaged).append(resource)
        return Found(tuple(owned), tuple(unmanaged))

    def _ownership_value(self) -> str:
        return f'"heritage=edgectl,edgectl/owner={self.owner},edgectl/record={self.record_name}"'

    def check_conflicts(self, desired: list[Resource], found: Found) -> None:
        names = {(r.fields["name"], r.fields["type"]) for r in desired if r.type == "record"}
        # the TXT record saying who steers the name speaks first: it names the owner
        for other in sorted(found.unmanaged, key=lambda r: r.type != "ownership"):
            if other.type == "ownership":
                owner = re.search(r"edgectl/owner=([^,\"]+)", " ".join(other.fields.get("values", [])))
                raise SteeringRefused(
                    f"{other.fields['name']} says {self.record_name} is steered by "
                    f"{'owner ' + owner.group(1) if owner else 'another tool'}",
                    hint="each owner steers its own record_name; set `owner` to the one that owns it, or remove "
                         "that TXT record if nothing steers this name any more")
            name, rtype = other.fields["name"], other.fields["type"]
            if (name, rtype) in names or (name in {n for n, _ in names} and "CNAME" in (rtype, *{t for _, t in names})):
                raise SteeringRefused(f"{name} already has {rtype} records edgectl does not own "
                                      f"({other.fields.get('set_identifier') or 'no SetIdentifier'})",
                                      hint="steer another record_name, or remove those records first")

    # -- changes ---------------------------------------------------------------
    def steps(self, changes: list[Change]) -> list[Step]:
        steps: list[Step] = []
        for change in changes:
            if change.type == "health_check" and change.action == "create":
                # at most 64 characters: "edgectl:" 8, owner 20, record 9, settings 9, unique 8
                reference = f"{self._health_prefix()}{_digest(change.new)}:{uuid.uuid4().hex[:8]}"
                steps.append(Step(f"create health check {change.key}", (Change(
                    "create", change.type, change.key, None, change.new, reference),)))
        records = [c for c in changes if c.type in ("record", "ownership")]
        upserts = sorted((c for c in records if c.action != "delete"), key=lambda c: (_rank(c), c.key))
        deletes = sorted((c for c in records if c.action == "delete"), key=lambda c: (-_rank(c), c.key))
        # a name changing type (A to CNAME when the nodes' addresses do) must lose its old records first:
        # a CNAME cannot sit beside them, even for the moment between two changes of one batch
        written = {(c.new["name"], c.new["type"]) for c in upserts}
        retyped = {name for name, rtype in written} & {c.old["name"] for c in deletes
                                                      if (c.old["name"], c.old["type"]) not in written}
        first = [c for c in deletes if c.old["name"] in retyped]
        steps += change_batches(first + upserts + [c for c in deletes if c not in first])
        for change in changes:
            if change.type == "health_check" and change.action == "delete":
                steps.append(Step(f"delete health check {change.key}", (change,)))
        return steps

    def apply(self, step: Step, *, resend: bool = False) -> StepResult:
        first = step.changes[0]
        if first.type == "health_check":
            return self._apply_health_check(first, resend)
        changes = list(step.changes)
        if resend:  # the first attempt may have landed: delete only what is still there
            present = {(_fqdn(r["Name"]), r["Type"], r.get("SetIdentifier")) for r in self._list_records()}
            changes = [c for c in changes if c.action != "delete"
                       or (c.old["name"], c.old["type"], c.old.get("set_identifier")) in present]
            if not changes:
                return StepResult(None, True, "already applied")
        need = {f.get("health_check") for c in changes for f in (c.old, c.new) if f and f.get("health_check")}
        need = {key for key in need if not _foreign_id(key)}
        if need - set(self._health_ids):
            self.found()  # health checks created by earlier steps (or an earlier run)
        missing = sorted(need - set(self._health_ids))
        if missing:
            raise ProviderError(f"Route 53 zone {self.zone_id}: health check {missing[0]} is missing; plan again")
        batch = [{"Action": "DELETE" if c.action == "delete" else "UPSERT",
                  "ResourceRecordSet": self._rrset(c.old if c.action == "delete" else c.new)} for c in changes]
        info = self._api.call("change_resource_record_sets", HostedZoneId=self.zone_id, ChangeBatch={
            "Comment": f"edgectl {self.owner}: {step.summary}"[:256], "Changes": batch})["ChangeInfo"]
        return StepResult(info["Id"], info.get("Status") == "INSYNC", f"change {info['Id']} {info.get('Status')}")

    def _apply_health_check(self, change: Change, resend: bool) -> StepResult:
        if change.action == "delete":
            hc_id = change.ref or self._health_ids.get(change.key)
            try:
                self._api.call("delete_health_check", HealthCheckId=hc_id)
            except ProviderError as exc:
                if getattr(exc, "aws_code", "") != "NoSuchHealthCheck":
                    raise
            self._health_ids.pop(change.key, None)
            return StepResult(None, True, f"health check {hc_id} deleted")
        # Route 53 answers a CallerReference it has seen with the health check it made then; a resend
        # looks first all the same, as not every implementation does (moto makes another)
        created = next((hc for hc in self._list_health_checks() if hc.get("CallerReference") == change.ref),
                       None) if resend else None
        if created is None:
            created = self._api.call("create_health_check", CallerReference=change.ref,
                                     HealthCheckConfig=_health_config(change.new))["HealthCheck"]
        node = change.key.split("@", 1)[0]
        self._api.call("change_tags_for_resource", ResourceType="healthcheck", ResourceId=created["Id"], AddTags=[
            {"Key": "Name", "Value": f"edgectl {self.owner} {node}"}, {"Key": "edgectl:owner", "Value": self.owner},
            {"Key": "edgectl:record", "Value": self.record_name}, {"Key": "edgectl:node", "Value": node}])
        self._health_ids[change.key] = created["Id"]
        return StepResult(None, True, f"health check {created['Id']} for {node}")

    def step_state(self, ref: str) -> StepResult:
        info = self._api.call("get_change", Id=ref)["ChangeInfo"]
        return StepResult(ref, info.get("Status") == "INSYNC", f"change {ref} {info.get('Status')}")

    def _rrset(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        rrset: dict[str, Any] = {"Name": fields["name"], "Type": fields["type"]}
        if fields.get("set_identifier"):
            rrset["SetIdentifier"] = fields["set_identifier"]
        if "geo" in fields:
            geo = fields["geo"]
            rrset["GeoLocation"] = ({"ContinentCode": geo[len("continent:"):]} if geo.startswith("continent:") else
                                    {"CountryCode": "*"} if geo == "*" else
                                    {"CountryCode": "US", "SubdivisionCode": geo[len("subdivision:US-"):]}
                                    if geo.startswith("subdivision:") else {"CountryCode": geo[len("country:"):]})
        if "weight" in fields:
            rrset["Weight"] = fields["weight"]
        if "failover" in fields:
            rrset["Failover"] = fields["failover"]
        if "alias" in fields:
            rrset["AliasTarget"] = {"HostedZoneId": self.zone_id, "DNSName": fields["alias"],
                                    "EvaluateTargetHealth": True}
        else:
            rrset["TTL"] = fields["ttl"]
            rrset["ResourceRecords"] = [{"Value": v} for v in fields["values"]]
        if fields.get("health_check"):
            key = fields["health_check"]
            rrset["HealthCheckId"] = _foreign_id(key) or self._health_ids[key]
        return rrset


class _Records:
    """The records (and health checks) for one steering, named and identified as the module says."""

    def __init__(self, provider: Route53Provider, steering: Steering, rtype: str):
        self.p = provider
        self.steering = steering
        self.rtype = rtype
        self.ttl = int(provider.settings.get("ttl", 60))
        self.health = bool(provider.settings.get("health_checks", True))
        self.out: dict[tuple[str, str], Resource] = {}
        self.health_keys: dict[str, str] = {}

    def _add(self, resource: Resource) -> None:
        self.out.setdefault((resource.type, resource.key), resource)

    def _value(self, target: Target) -> str:
        return _fqdn(target.address) if self.rtype == "CNAME" else target.address

    def _health(self, node: str) -> str | None:
        if not self.health:
            return None
        if node not in self.health_keys:
            fields = health_check_fields(self.steering.targets[node], self.p.settings)
            key = f"{node}@{_digest(fields)}"
            self._add(Resource("health_check", key, fields))
            self.health_keys[node] = key
        return self.health_keys[node]

    def _record(self, name: str, set_id: str, extra: dict[str, Any], *, node: str | None = None,
                alias: str | None = None) -> None:
        fields: dict[str, Any] = {"name": name, "type": self.rtype, "set_identifier": self.p._prefix() + set_id, **extra}
        if alias:
            fields["alias"] = alias
        else:
            fields["ttl"] = self.ttl
            fields["values"] = [self._value(self.steering.targets[node])]
            check = self._health(node)
            if check:
                fields["health_check"] = check
        self._add(Resource("record", _record_key(fields), fields))

    def _label(self, pool: str, suffix: str = "") -> str:
        return f"{_OWNERSHIP_LABEL}-{pool}{suffix}.{self.p.record_name}"

    def pool(self, pool: Pool, then: str | None = None) -> tuple[str | None, str | None]:
        """The pool's records; (alias name, node) for what points at it: an alias, or one node's own value.

        `then` is the pool to answer with once every node of this one has failed, where Route 53's
        next larger place would answer otherwise (a country whose region set comes before its continent).
        """
        chain: list[tuple[str | None, str | None]] = []
        if len(pool.targets) == 1:
            chain.append((None, pool.targets[0][0]))
        else:
            weighted = self._label(pool.name, "-w")
            for node, weight in scaled_weights(pool.targets):
                self._record(weighted, f"{pool.name}:{node}", {"weight": weight}, node=node)
            chain.append((weighted, None))
        chain += [(None, node) for node in pool.failover]
        name = pool.name
        if then:
            chain.append(self.pool(self.steering.pools[then]))
            name = _label_safe(f"{pool.name}-then-{then}")
        if len(chain) == 1:
            return chain[0]
        # pairs from the last: pair i is PRIMARY chain[i], SECONDARY chain[i + 1] or the next pair
        next_alias, next_node = chain[-1]
        for i in range(len(chain) - 2, -1, -1):
            label = self._label(name, f"-f{i}" if i else "")
            alias, node = chain[i]
            self._record(label, f"{name}:primary", {"failover": "PRIMARY"}, node=node, alias=alias)
            self._record(label, f"{name}:secondary", {"failover": "SECONDARY"}, node=next_node, alias=next_alias)
            next_alias, next_node = label, None
        return next_alias, None

    def geo(self, entry: GeoEntry) -> None:
        then = entry.fallback if entry.fallback not in (None, entry.implicit, entry.pool) else None
        alias, node = self.pool(self.steering.pools[entry.pool], then)
        code = "*" if entry.unit == "default" else f"{entry.unit}:{entry.code}"
        self._record(self.p.record_name, f"geo:{code}", {"geo": code}, node=node, alias=alias)

    def resources(self) -> list[Resource]:
        ownership = f"{_OWNERSHIP_LABEL}.{self.p.record_name}"
        self._add(Resource("ownership", f"{ownership} TXT", {"name": ownership, "type": "TXT", "ttl": 300,
                                                             "values": [self.p._ownership_value()]}))
        return list(self.out.values())


def health_check_fields(target: Target, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A node's Route 53 health check: HTTP(S) to its health URL, by IP address or by name."""
    parts = urlsplit(target.health_url)
    host = parts.hostname or ""
    fields: dict[str, Any] = {"type": "HTTPS" if parts.scheme == "https" else "HTTP",
                              "port": parts.port or (443 if parts.scheme == "https" else 80),
                              "path": (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                              "interval": int(settings.get("health_check_interval", 30)),
                              "failures": int(settings.get("health_check_failures", 3))}
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        fields["fqdn"] = host.lower()
    else:
        if not ip.is_global:
            raise SteeringRefused(f"node {target.node}: its health check would ask {ip}, which Route 53 cannot "
                                  "reach (not a public address)",
                                  hint="give the node a public endpoint, or set health_checks = false")
        fields["ip"] = str(ip)
    return fields


def _health_config(fields: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"Type": fields["type"], "Port": fields["port"], "ResourcePath": fields["path"],
                              "RequestInterval": fields["interval"], "FailureThreshold": fields["failures"]}
    if "ip" in fields:
        config["IPAddress"] = fields["ip"]
    else:
        config["FullyQualifiedDomainName"] = fields["fqdn"]
    if fields["type"] == "HTTPS" and "fqdn" in fields:
        config["EnableSNI"] = True
    return config


def _health_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": config.get("Type"), "port": config.get("Port"),
                              "path": config.get("ResourcePath") or "/", "interval": config.get("RequestInterval", 30),
                              "failures": config.get("FailureThreshold", 3)}
    if config.get("IPAddress"):
        fields["ip"] = config["IPAddress"]
    else:
        fields["fqdn"] = str(config.get("FullyQualifiedDomainName") or "").lower()
    return fields


def _record_fields(rrset: Mapping[str, Any], health_keys: Mapping[str, str]) -> dict[str, Any]:
    """A listed record set written as `_Records` writes the ones it wants."""
    fields: dict[str, Any] = {"name": _fqdn(rrset["Name"]), "type": rrset["Type"]}
    if rrset.get("SetIdentifier"):
        fields["set_identifier"] = rrset["SetIdentifier"]
    geo = rrset.get("GeoLocation")
    if geo:
        if geo.get("ContinentCode"):
            fields["geo"] = f"continent:{geo['ContinentCode']}"
        elif geo.get("SubdivisionCode"):
            fields["geo"] = f"subdivision:{geo.get('CountryCode', 'US')}-{geo['SubdivisionCode']}"
        elif geo.get("CountryCode") == "*":
            fields["geo"] = "*"
        else:
            fields["geo"] = f"country:{geo.get('CountryCode')}"
    if "Weight" in rrset:
        fields["weight"] = int(rrset["Weight"])
    if rrset.get("Failover"):
        fields["failover"] = rrset["Failover"]
    if rrset.get("AliasTarget"):
        fields["alias"] = _fqdn(rrset["AliasTarget"]["DNSName"])
    else:
        fields["ttl"] = int(rrset.get("TTL", 0))
        values = [r["Value"] for r in rrset.get("ResourceRecords", [])]
        fields["values"] = [_fqdn(v) for v in values] if rrset["Type"] == "CNAME" else values
    if rrset.get("HealthCheckId"):
        fields["health_check"] = health_keys.get(rrset["HealthCheckId"], f"foreign@{rrset['HealthCheckId']}")
    return fields


def _label_safe(name: str) -> str:
    """A pool name short enough for a DNS label with edgectl's prefix and suffixes (63 characters in all)."""
    return name if len(name) <= 44 else f"{name[:33]}-{hashlib.sha1(name.encode()).hexdigest()[:10]}"


def _foreign_id(key: str) -> str | None:
    """The id in a health check key read back as `foreign@ID` or `untagged@ID` (one edgectl did not name)."""
    kind, _, hc_id = key.partition("@")
    return hc_id if kind in ("foreign", "untagged") else None


def _record_key(fields: Mapping[str, Any]) -> str:
    return f"{fields['name']} {fields['type']} {fields.get('set_identifier') or '-'}"


def _rank(change: Change) -> int:
    """Where a record sits in the chain of aliases: what others point at ranks lower and is written first."""
    fields = change.new or change.old
    if change.type == "ownership":
        return -1
    name = fields["name"]
    if not name.startswith(_OWNERSHIP_LABEL + "-"):
        return 1000  # the geolocation records at the name itself
    label = name.split(".", 1)[0]
    if label.endswith("-w"):
        return 0
    # pair i's SECONDARY points at pair i + 1: later pairs first; a pair ending at another pool's
    # records (-then-) after every pool's own
    match = re.search(r"-f(\d+)$", label)
    index = int(match.group(1)) if match else 0
    return (700 if "-then-" in label else 500) - index


def batch_cost(change: Change) -> tuple[int, int]:
    """(ResourceRecord elements, characters of values) a change counts against a batch's limits."""
    fields = change.old if change.action == "delete" else change.new
    values = fields.get("values") or []
    elements = max(1, len(values)) * (2 if change.action != "delete" else 1)  # sent as UPSERT, which counts twice
    chars = sum(len(v) for v in values) * (2 if change.action != "delete" else 1)
    return elements, chars


def change_batches(changes: list[Change]) -> list[Step]:
    """The changes in order, cut into ChangeBatches within Route 53's limits."""
    steps, current, elements, chars = [], [], 0, 0

    def close() -> None:
        if current:
            counts = {a: sum(1 for c in current if c.action == a) for a in ("create", "update", "delete")}
            shown = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
            steps.append(Step(f"change batch of {len(current)} records ({shown})", tuple(current)))

    for change in changes:
        e, c = batch_cost(change)
        if current and (elements + e > MAX_RECORDS_PER_BATCH or chars + c > MAX_VALUE_CHARS_PER_BATCH):
            close()
            current, elements, chars = [], 0, 0
        current.append(change)
        elements += e
        chars += c
    close()
    return steps


def validate(resources: list[Resource]) -> None:
    """Refuse what Route 53 would refuse, or silently misread, before anything is sent."""
    from edgectl.parse import address_record_type

    seen: dict[tuple[str, str], set[str]] = {}
    identifiers: set[tuple[str, str, str]] = set()
    for resource in resources:
        if resource.type != "record":
            continue
        f = resource.fields
        where = f"{f['name']} {f['type']} {f.get('set_identifier', '')}".strip()
        geo = f.get("geo")
        if geo and geo != "*":
            unit, _, code = geo.partition(":")
            ok = (unit == "continent" and code in CONTINENTS) or \
                 (unit == "country" and _is_country(code)) or \
                 (unit == "subdivision" and code.startswith("US-") and code[3:] in US_STATES)
            if not ok:
                raise SteeringRefused(f"{where}: {unit} code {code!r} is not one Route 53 accepts")
        weight = f.get("weight")
        if weight is not None and not (isinstance(weight, int) and 0 <= weight <= MAX_WEIGHT):
            raise SteeringRefused(f"{where}: weight {weight} is outside Route 53's 0-255")
        policy = "geolocation" if geo else "weighted" if weight is not None else \
            "failover" if f.get("failover") else "simple"
        seen.setdefault((f["name"], f["type"]), set()).add(policy)
        if len(seen[(f["name"], f["type"])]) > 1:
            raise SteeringRefused(f"{f['name']} {f['type']}: mixes routing policies "
                                  f"({', '.join(sorted(seen[(f['name'], f['type'])]))})")
        ident = (f["name"], f["type"], f.get("set_identifier") or "")
        if ident in identifiers:
            raise SteeringRefused(f"{where}: the SetIdentifier is used twice")
        identifiers.add(ident)
        if f.get("set_identifier") and not 1 <= len(f["set_identifier"]) <= 128:
            raise SteeringRefused(f"{where}: a SetIdentifier is 1 to 128 characters")
        for value in f.get("values", []):
            kind = address_record_type(value.rstrip(".")) if f["type"] in ("A", "AAAA", "CNAME") else f["type"]
            if kind != f["type"]:
                raise SteeringRefused(f"{where}: {value} is not a value for a {f['type']} record")


def _is_country(code: str) -> bool:
    import pycountry

    return len(code) == 2 and code.isupper() and pycountry.countries.get(alpha_2=code) is not None
