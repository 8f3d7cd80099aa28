"""What-if: where every location goes now and after some nodes fail or drain, changing nothing in state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgectl.errors import UsageError


@dataclass
class Move:
    location: str
    name: str
    before: str | None
    after: str | None
    distance_before_km: float | None
    distance_after_km: float | None
    latency_before_ms: float | None
    latency_after_ms: float | None
    estimated: bool  # a latency from the distance model, not from recorded probes

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_record(self) -> dict[str, Any]:
        def delta(a, b):
            return round(b - a, 1) if a is not None and b is not None else None

        return {"location": self.location, "name": self.name, "before": self.before, "after": self.after,
                "changed": self.changed, "distance_before_km": self.distance_before_km,
                "distance_after_km": self.distance_after_km,
                "distance_change_km": delta(self.distance_before_km, self.distance_after_km),
                "latency_before_ms": self.latency_before_ms, "latency_after_ms": self.latency_after_ms,
                "latency_change_ms": delta(self.latency_before_ms, self.latency_after_ms),
                "latency_estimated": self.estimated}


@dataclass
class Simulation:
    failed: list[str]
    drained: list[str]
    moves: list[Move] = field(default_factory=list)

    @property
    def stranded(self) -> list[Move]:
        """Locations left with no node at all."""
        return [m for m in self.moves if m.after is None]

    def to_record(self) -> dict[str, Any]:
        changed = [m for m in self.moves if m.changed]
        return {"failed": self.failed, "drained": self.drained, "locations": len(self.moves),
                "changed": len(changed), "stranded": [m.location for m in self.stranded],
                "moves": [m.to_record() for m in self.moves]}


def overrides(state, fail: list[str], drain: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """Node statuses as the simulation supposes them: `--fail NODE`, `--fail region:R`, `--drain NODE`."""
    from edgectl.nodes.inventory import NodeFilter, get_nodes, list_nodes

    failed: list[str] = []
    for item in fail:
        if item.startswith("region:"):
            region = item[len("region:"):].strip()
            if not region:  # NodeFilter takes an empty region for none at all, which is every node
                raise UsageError(f"--fail {item}: which region?", hint="give --fail region:R, e.g. region:eu-west")
            in_region = [n.name for n in list_nodes(state, NodeFilter(region=region))]
            if not in_region:
                raise UsageError(f"--fail {item}: no nodes in region {region!r}",
                                 hint="edgectl nodes list shows each node's region")
            failed += in_region
        else:
            failed.append(item)
    drained = list(drain)
    get_nodes(state, list(dict.fromkeys(failed + drained)))  # every name is a live node, or all are reported
    statuses = {name: "draining" for name in drained}
    statuses.update({name: "failed" for name in failed})
    return statuses, sorted(dict.fromkeys(failed)), sorted(dict.fromkeys(drained))


def simulate(state, config, locations: list, options, *, fail: list[str], drain: list[str]) -> Simulation:
    from dataclasses import replace

    from edgectl.routing.resolve import Resolver

    if not fail and not drain:
        raise UsageError("nothing to simulate", hint="give --fail NODE, --fail region:R or --drain NODE")
    statuses, failed, drained = overrides(state, fail, drain)
    still = replace(options, advance=False)  # a simulation moves no round-robin counter
    before = Resolver(state, config, still)
    after = Resolver(state, config, still, overrides=statuses)
    result = Simulation(failed, drained)
    for location in locations:
        now, then = before.resolve(location), after.resolve(location)
        estimated = any(r.node is not None and r.latency_ms is None for r in (now, then))
        result.moves.append(Move(location.text, location.name, now.node, then.node, now.distance_km,
                                 then.distance_km, now.expected_latency_ms, then.expected_latency_ms, estimated))
    return result
