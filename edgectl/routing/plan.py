"""Plans for steering providers: what each would create, update and delete to publish the rules, and whether that is safe.

The shape follows octoDNS's Plan: the plan is computed from what the provider holds now and what
the rules ask for, always rendered (creates, updates field by field, deletes, and what is not
edgectl's), and refused when it would update or delete too large a share of what exists, unless
forced. Changes are grouped into the provider's steps here, so the plan that is shown is the plan
that is journaled and sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from edgectl.errors import ConfigError, UsageError
from edgectl.providers.steering import Change, Found, Resource, Step

ORDER = {"create": 0, "update": 1, "delete": 2}
KEY_FIELDS = ("name", "type", "set_identifier")  # what a record's key already says, not said again


def field_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Field -> {old, new} for the fields that differ; a table's entries are compared one by one."""
    old, new = dict(old or {}), dict(new or {})
    out: dict[str, dict[str, Any]] = {}
    for key in list(dict.fromkeys([*old, *new])):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for inner, change in field_changes(a, b).items():
                out[f"{key}.{inner}"] = change
        else:
            out[key] = {"old": a, "new": b}
    return out


def diff(desired: list[Resource], found: Found) -> list[Change]:
    """The changes that make what the provider owns what is desired: creates, updates, deletes."""
    owned = {(r.type, r.key): r for r in found.owned}
    wanted: dict[tuple[str, str], Resource] = {}
    for resource in desired:
        if (resource.type, resource.key) in wanted:
            raise ValueError(f"two desired objects share the key {resource.type} {resource.key}")
        wanted[(resource.type, resource.key)] = resource
    changes = []
    for key, resource in wanted.items():
        have = owned.get(key)
        if have is None:
            changes.append(Change("create", resource.type, resource.key, None, dict(resource.fields)))
        elif dict(have.fields) != dict(resource.fields):
            changes.append(Change("update", resource.type, resource.key, dict(have.fields), dict(resource.fields),
                                  have.ref))
    for key, have in owned.items():
        if key not in wanted:
            changes.append(Change("delete", have.type, have.key, dict(have.fields), None, have.ref))
    return changes


@dataclass
class ProviderPlan:
    name: str
    kind: str
    where: str
    owner: str
    changes: list[Change]
    steps: list[Step]
    unmanaged: list[Resource]
    warnings: list[str]
    existing: int  # objects edgectl owns there now
    thresholds: tuple[float, float, int]  # update share, delete share, minimum existing

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0}
        for change in self.changes:
            out[change.action] += 1
        return out

    def unsafe(self) -> str | None:
        """Why this plan changes too much of what exists (octoDNS's rule), or None."""
        update_share, delete_share, minimum = self.thresholds
        if self.existing < minimum or not self.existing:
            return None
        counts = self.counts()
        problems = []
        for action, limit in (("update", update_share), ("delete", delete_share)):
            share = counts[action] / self.existing
            if share > limit:
                problems.append(f"{action}s {counts[action]} of {self.existing} ({share:.0%} > {limit:.0%})")
        return f"provider {self.name}: " + " and ".join(problems) if problems else None

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for change in sorted(self.changes, key=lambda c: (ORDER[c.action], c.type, c.key)):
            fields = field_changes(change.old, change.new)
            shown = fields if change.type not in ("record", "ownership") else \
                {k: v for k, v in fields.items() if k not in KEY_FIELDS or change.action == "update"}
            rows.append({"provider": self.name, "action": change.action, "type": change.type, "key": change.key,
                         "changes": fields, "summary": _summary(change.action, shown)})
        for resource in self.unmanaged:
            rows.append({"provider": self.name, "action": "not managed", "type": resource.type,
                         "key": resource.key, "changes": {}, "summary": "left alone"})
        return rows

    def to_record(self) -> dict[str, Any]:
        update, delete, minimum = self.thresholds
        return {"provider": self.name, "kind": self.kind, "where": self.where, "owner": self.owner,
                "counts": self.counts(), "existing": self.existing,
                "changes": [{**c.to_record(), "fields": field_changes(c.old, c.new)} for c in self.changes],
                "steps": [{"summary": s.summary, "changes": len(s.changes),
                           "order": [f"{c.action} {c.key}" for c in s.changes]} for s in self.steps],
                "not_managed": [r.to_record() for r in self.unmanaged], "warnings": list(self.warnings),
                "unsafe": self.unsafe(),
                "thresholds": {"update_share": update, "delete_share": delete, "min_existing": minimum}}


def _shown(value: Any) -> str:
    """A field's value for a person: lists joined, a table grouped by value ("a, b for DE, FR (+3)")."""
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value) or "[]"
    if isinstance(value, dict):
        if value and all(isinstance(v, (list, str, int, float)) for v in value.values()):
            groups: dict[str, list[str]] = {}
            for key, inner in value.items():
                groups.setdefault(_shown(inner), []).append(str(key))
            if len(groups) < len(value):
                return "; ".join(f"{v} for {', '.join(keys[:6])}" + (f" (+{len(keys) - 6})" if len(keys) > 6 else "")
                                 for v, keys in groups.items())
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) or "{}"
    return "-" if value is None else str(value)


def _summary(action: str, fields: dict[str, dict[str, Any]]) -> str:
    shown = _shown

    if action == "update":
        return "; ".join(f"{k}: {shown(v['old'])} -> {shown(v['new'])}" for k, v in fields.items())
    values = {k: v["new" if action == "create" else "old"] for k, v in fields.items()}
    return ", ".join(f"{k}={shown(v)}" for k, v in values.items() if v not in (None, [], {}))


@dataclass
class RoutingPlan:
    providers: list[ProviderPlan] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(p.changes for p in self.providers)

    def counts(self) -> dict[str, int]:
        total = {"create": 0, "update": 0, "delete": 0}
        for provider in self.providers:
            for key, value in provider.counts().items():
                total[key] += value
        return total

    def raise_if_unsafe(self, force: bool) -> None:
        problems = [p.unsafe() for p in self.providers if p.unsafe()]
        if problems and not force:
            raise UsageError("unsafe plan: " + "; ".join(problems),
                             hint="check the plan; --force applies it, and the thresholds are the provider's "
                                  "unsafe_update_share, unsafe_delete_share and unsafe_min_existing settings")

    def rows(self) -> list[dict[str, Any]]:
        return [row for p in self.providers for row in p.rows()]

    def warnings(self) -> list[str]:
        return [f"{p.name}: {w}" for p in self.providers for w in p.warnings]

    def to_record(self) -> dict[str, Any]:
        return {"counts": self.counts(), "empty": self.empty, "providers": [p.to_record() for p in self.providers]}


# -- building -----------------------------------------------------------------------------------

def routing_entries(config, names: list[str] | None, all_providers: bool):
    """The routing providers asked for: the ones named, every one, or the only one configured."""
    from edgectl.providers.config import configured, entry

    if names:
        return [entry(config, name, "routing") for name in dict.fromkeys(names)]
    found = configured(config, "routing")
    if not found:
        from edgectl.providers.config import broken

        unusable = broken(config)
        if unusable:
            raise ConfigError(f"no usable provider with the routing capability: {unusable[0].problem}",
                              hint="edgectl config validate lists every problem")
        raise ConfigError(f"{config.path} has no provider with the routing capability",
                          hint="add a [providers.NAME] table of kind route53 or cloudflare_lb")
    if len(found) > 1 and not all_providers:
        raise UsageError(f"{len(found)} routing providers are configured ({', '.join(e.name for e in found)})",
                         hint="name them with --provider NAME, or give --all-providers")
    return found


def build_provider(config, item):
    from edgectl.providers.config import build

    provider = build(config, item)
    provider.prepare()
    return provider


def plan_provider(state, config, provider, *, timeout: float = 120.0) -> ProviderPlan:
    """One provider's plan: its desired objects from the rules, against what it holds now."""
    import time

    from edgectl.providers.steering import SteeringRefused
    from edgectl.providers.retry import retrying
    from edgectl.routing.steering import build_steering

    steering = build_steering(state, config, provider.geo_units)
    try:
        desired, warnings = provider.desired(steering)
        found = retrying(provider.found, deadline=time.monotonic() + timeout, what=f"{provider.name}: reading")
        provider.check_conflicts(desired, found)
    except SteeringRefused as exc:
        raise UsageError(f"provider {provider.name}: {exc.message}", hint=exc.hint) from None
    changes = diff(desired, found)
    return ProviderPlan(provider.name, provider.kind, provider.where(), provider.owner, changes,
                        provider.steps(changes) if changes else [], list(found.unmanaged),
                        list(steering.notes) + list(warnings), len(found.owned), provider.unsafe_thresholds())


def plan_routing(state, config, names: list[str] | None = None, *, all_providers: bool = False,
                 providers: dict | None = None) -> RoutingPlan:
    """The plan for every provider asked for; `providers` collects the built providers for applying.

    A provider that refuses what it is asked (an unknown zone, a refused token) is bad input, exit 2;
    one that stays unreachable after retries is exit 1.
    """
    from edgectl.errors import OperationFailed
    from edgectl.logs import redact
    from edgectl.providers.base import ProviderError, RetryableError

    plan = RoutingPlan()
    built = []
    try:
        for item in routing_entries(config, names, all_providers):
            provider = build_provider(config, item)
            built.append(provider)
            try:
                plan.providers.append(plan_provider(state, config, provider))
            except RetryableError as exc:
                raise OperationFailed(f"provider {provider.name}: {redact(exc.message)}",
                                      hint="it did not answer in time; try again later") from None
            except ProviderError as exc:
                raise UsageError(f"provider {provider.name}: {redact(exc.message)}",
                                 hint=f"edgectl providers test {provider.name} checks its settings") from None
    except BaseException:
        for provider in built:
            provider.close()
        raise
    for provider in built:
        if providers is not None:
            providers[provider.name] = provider
        else:
            provider.close()
    return plan
