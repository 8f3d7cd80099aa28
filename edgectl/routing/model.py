"""Routing rules as edgectl records them: a source of traffic sent to a target node, and the rule as stored."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edgectl.timeutil import from_iso

# Most specific first: resolve takes the first kind that has matching rules.
SOURCE_KINDS = ("subdivision", "country", "region", "continent", "default")
DEFAULT_SOURCE = "*"
DEFAULT_WEIGHT = 100
DEFAULT_LATENCY_THRESHOLD_MS = 200.0  # the reference's geographic_routes default

# The fields a spec sets, in the order they show in plans, exports and `rules show`.
SPEC_FIELDS = ("weight", "latency_threshold_ms", "failover", "jurisdictions", "capabilities", "conditions", "active")


@dataclass(frozen=True)
class Source:
    """Where traffic comes from: ('country', 'DE'), ('region', 'dach'), ('default', '*')."""

    kind: str
    value: str

    def __str__(self) -> str:
        return "default" if self.kind == "default" else f"{self.kind}:{self.value}"


@dataclass
class RuleSpec:
    """What a rule should be: from `routing rules add`, `update` or a rules file.

    A rule is known by its source and target: one source may send to several nodes (weighted),
    each once.
    """

    source: Source
    target: str
    weight: int = DEFAULT_WEIGHT
    latency_threshold_ms: float | None = DEFAULT_LATENCY_THRESHOLD_MS
    failover: str | None = None
    jurisdictions: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    conditions: dict[str, str] = field(default_factory=dict)
    active: bool = True

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source.kind, self.source.value, self.target)

    def values(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in SPEC_FIELDS}

    def stored_conditions(self) -> str:
        """route_conditions as stored: jurisdictions, capabilities and the free conditions together."""
        data: dict[str, Any] = {}
        if self.jurisdictions:
            data["jurisdictions"] = self.jurisdictions
        if self.capabilities:
            data["capabilities"] = self.capabilities
        if self.conditions:
            data["match"] = self.conditions
        return json.dumps(data, sort_keys=True)


@dataclass
class Rule(RuleSpec):
    id: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_row(cls, row: dict) -> "Rule":
        conditions = json.loads(row["route_conditions"] or "{}")
        return cls(
            source=Source(row["source_kind"], row["source_region"]), target=row["target"],
            weight=row["routing_weight"], latency_threshold_ms=row["latency_threshold_ms"],
            failover=row.get("failover"), jurisdictions=conditions.get("jurisdictions", []),
            capabilities=conditions.get("capabilities", []), conditions=conditions.get("match", {}),
            active=bool(row["is_active"]), id=row["id"], created_at=from_iso(row["created_at"]),
            updated_at=from_iso(row["updated_at"]),
        )

    def spec(self) -> RuleSpec:
        return RuleSpec(self.source, self.target, **self.values())

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "source": str(self.source), "source_kind": self.source.kind,
                "source_value": self.source.value, "target": self.target, **self.values(),
                "status": "active" if self.active else "disabled",
                "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass
class RuleEvent:
    id: int
    rule_id: int
    at: datetime
    kind: str
    actor: str
    reason: str | None
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict) -> "RuleEvent":
        return cls(row["id"], row["route_id"], from_iso(row["at"]), row["kind"], row["actor"], row["reason"],
                   json.loads(row["details"] or "{}"))

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule_id, "at": self.at, "kind": self.kind, "actor": self.actor,
                "reason": self.reason, "details": self.details}
