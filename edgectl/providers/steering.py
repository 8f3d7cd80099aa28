"""The routing capability's part of the provider contract: the steering a provider is asked to publish, and its changes.

The routing domain derives a `Steering` from the rules and the nodes (which node serves which
place, by weight, with failover nodes after them); a `RoutingProvider` turns it into the objects
it keeps (records, health checks, pools, a load balancer), each a `Resource` known by a key that
is stable across runs. The domain compares what the provider wants with what it found, and hands
the differences back as `Change`s, which the provider groups into `Step`s: one provider request
each, in an order that never points at something missing. The domain journals every step before
and after it is sent; a step resent after an interruption must be harmless, so each provider
applies a step as an absolute intent (create-or-replace, delete-if-present).

Ownership: a provider lists only what it owns as `owned`; everything else it found where it
writes is `unmanaged`, shown in the plan and never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from edgectl.providers.base import Provider

# Where a steering entry applies. A provider declares which of these it can publish (geo_units).
GEO_UNITS = ("subdivision", "country", "cf_region", "continent", "default")
ACTIONS = ("create", "update", "delete")

# octoDNS's defaults (octodns/provider/plan.py): a plan is unsafe when the provider already holds at
# least MIN_EXISTING managed objects and it would update or delete more than the share given.
UNSAFE_SETTINGS = {"unsafe_update_share": 0.3, "unsafe_delete_share": 0.3, "unsafe_min_existing": 10}


@dataclass(frozen=True)
class Target:
    """A node as steering publishes it."""

    node: str
    address: str  # the node's published address: IPv4, IPv6 or a hostname
    record_type: str  # A, AAAA or CNAME
    health_url: str  # what a provider's health check asks
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Pool:
    """The nodes one place is sent to: weighted targets first, then failover nodes in order."""

    name: str  # stable: derived from the rule sources it serves ("country-de", "default")
    targets: tuple[tuple[str, int], ...]  # (node, weight), by weight then name
    failover: tuple[str, ...] = ()  # nodes used when no target is healthy, in order

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(node for node, _ in self.targets) + self.failover


@dataclass(frozen=True)
class GeoEntry:
    """A place, in a unit the provider publishes, and the pool that serves it."""

    unit: str  # from GEO_UNITS
    code: str  # "DE", "US-CA", "EU", "WEU", "*"
    pool: str
    source: str  # the rule source it comes from, for plans ("region:dach")
    # the pool resolve falls back to once every node of `pool` has failed (its next level's), and the
    # one the provider's own next larger place would answer with; a provider whose answer falls back
    # by place (Route 53) chains to `fallback` only where the two differ
    fallback: str | None = None
    implicit: str | None = None


@dataclass(frozen=True)
class Steering:
    """What a provider is asked to publish, in the units it declared."""

    entries: tuple[GeoEntry, ...]
    pools: Mapping[str, Pool]
    targets: Mapping[str, Target]  # node name -> target, every node a pool uses
    default_pool: str
    notes: tuple[str, ...] = ()  # what the domain approximated already (units the provider lacks)


@dataclass(frozen=True)
class Resource:
    """One object at a provider as edgectl compares it.

    `fields` hold only what edgectl sets, written the same way whether built from the steering or
    read back from the provider (names, never the provider's generated ids), so that comparing
    them is the whole diff.
    """

    type: str  # "record", "health_check", "ownership", "pool", "monitor", "load_balancer"
    key: str  # unique within the provider and stable across runs
    fields: Mapping[str, Any]
    ref: str | None = None  # the provider's id for an existing object, when it has one

    def to_record(self) -> dict[str, Any]:
        return {"type": self.type, "key": self.key, "fields": dict(self.fields)}


@dataclass(frozen=True)
class Found:
    """What a provider holds where it writes: its own objects and everyone else's."""

    owned: tuple[Resource, ...]
    unmanaged: tuple[Resource, ...] = ()


@dataclass(frozen=True)
class Change:
    action: str  # from ACTIONS
    type: str
    key: str
    old: Mapping[str, Any] | None = None  # the fields as found (update, delete)
    new: Mapping[str, Any] | None = None  # the fields wanted (create, update)
    ref: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"action": self.action, "type": self.type, "key": self.key, "old": self.old, "new": self.new,
                "ref": self.ref}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> "Change":
        return cls(data["action"], data["type"], data["key"], data.get("old"), data.get("new"), data.get("ref"))


@dataclass(frozen=True)
class Step:
    """One provider request's worth of changes, with a line for people."""

    summary: str
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class StepResult:
    ref: str | None = None  # the provider's id for the request (a Route 53 change id), to wait on
    in_sync: bool = True  # False while the provider is still propagating it
    detail: str = ""


class SteeringRefused(Exception):
    """The provider cannot publish this steering as it stands (mixed address types, a conflict with
    records it does not own, an invalid code); raised while planning, before anything is sent."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class RoutingProvider(Provider):
    """A provider that publishes steering: desired objects, what it holds, steps, and their state."""

    geo_units: ClassVar[tuple[str, ...]] = ("country", "default")
    routing_settings: ClassVar[tuple[str, ...]] = ("owner", *UNSAFE_SETTINGS)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = super().check_settings(settings)
        owner = settings.get("owner")
        if owner is not None and not (isinstance(owner, str) and owner and len(owner) <= 20
                                      and all(c.isascii() and (c.isalnum() or c in "-_") for c in owner)):
            problems.append("owner: up to 20 letters, digits, '-' or '_'")
        for key in ("unsafe_update_share", "unsafe_delete_share"):
            value = settings.get(key)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and 0 < value <= 1):
                problems.append(f"{key}: a share above 0 and at most 1, e.g. 0.3")
        value = settings.get("unsafe_min_existing")
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            problems.append("unsafe_min_existing: a whole number, 0 or more")
        return problems

    @property
    def owner(self) -> str:
        return str(self.settings.get("owner") or "default")

    def unsafe_thresholds(self) -> tuple[float, float, int]:
        get = lambda key: self.settings.get(key, UNSAFE_SETTINGS[key])  # noqa: E731
        return float(get("unsafe_update_share")), float(get("unsafe_delete_share")), int(get("unsafe_min_existing"))

    def where(self) -> str:
        """What it steers, for plans: "www.example.com in zone Z123"."""
        raise NotImplementedError

    def desired(self, steering: Steering) -> tuple[list[Resource], list[str]]:
        """The objects that publish the steering, and warnings for what it can only approximate.

        Raises SteeringRefused for what it cannot publish at all; contacts nothing."""
        raise NotImplementedError

    def found(self) -> Found:
        """What the provider holds where it writes, read now."""
        raise NotImplementedError

    def check_conflicts(self, desired: list[Resource], found: Found) -> None:
        """Raise SteeringRefused when the desired objects would collide with unmanaged ones."""

    def steps(self, changes: list[Change]) -> list[Step]:
        """The changes as ordered requests: what others point at exists before them and goes after them."""
        raise NotImplementedError

    def apply(self, step: Step, *, resend: bool = False) -> StepResult:
        """Send one step. `resend` is set when an earlier attempt's outcome is unknown."""
        raise NotImplementedError

    def step_state(self, ref: str) -> StepResult:
        """Where a sent step stands (for --wait); providers that apply at once need not override it."""
        return StepResult(ref, True)

    def describe(self) -> dict[str, Any]:
        update, delete, minimum = self.unsafe_thresholds()
        try:
            steers = self.where()
        except (KeyError, ValueError, NotImplementedError):  # settings too broken to say; check_settings names why
            steers = None
        return {**super().describe(), "steers": steers, "owner": self.owner, "geo_units": list(self.geo_units),
                "unsafe": {"update_share": update, "delete_share": delete, "min_existing": minimum}}

