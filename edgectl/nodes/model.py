"""Edge nodes as edgectl records them: the desired spec and the node as it is now."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edgectl.timeutil import from_iso

STATUSES = ("active", "draining", "maintenance", "inactive", "failed")

# Statuses an operator set on purpose; health probes report on them but never change them.
HELD_STATUSES = ("draining", "maintenance", "inactive")

# The fields a spec sets, in the order they show in plans, exports and `nodes show`.
SPEC_FIELDS = (
    "endpoint", "address", "region", "country", "city", "lat", "lon",
    "capabilities", "labels", "max_concurrent", "health_path", "token",
)


@dataclass
class NodeSpec:
    """What a node should be: from `nodes add`, `nodes update` or an inventory file."""

    name: str
    endpoint: str
    address: str | None = None  # where DNS points for it; unset, its endpoint's host
    region: str | None = None
    country: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    capabilities: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    max_concurrent: int | None = None
    health_path: str | None = None
    token: str | None = None  # a reference (env:NAME or file:PATH), never the secret

    def values(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in SPEC_FIELDS}


@dataclass
class Node:
    id: int
    name: str
    endpoint: str
    status: str
    region: str | None
    country: str | None
    city: str | None
    lat: float | None
    lon: float | None
    capabilities: list[str]
    labels: dict[str, str]
    resources: dict[str, Any]
    health_metrics: dict[str, Any]
    max_concurrent: int | None
    health_path: str | None
    token: str | None
    last_heartbeat: datetime | None
    last_check_at: datetime | None
    last_check_ok: bool | None
    last_latency_ms: float | None
    last_error: str | None
    fail_streak: int
    ok_streak: int
    created_at: datetime
    updated_at: datetime
    removed_at: datetime | None = None
    stale: bool = False
    address: str | None = None

    @classmethod
    def from_row(cls, row: dict) -> "Node":
        check_ok = row.get("last_check_ok")
        return cls(
            id=row["id"],
            name=row["name"],
            endpoint=row["endpoint"],
            status=row["status"],
            region=row["region"],
            country=row["country"],
            city=row["city"],
            lat=row["lat"],
            lon=row["lon"],
            capabilities=json.loads(row["capabilities"] or "[]"),
            labels=json.loads(row["labels"] or "{}"),
            resources=json.loads(row["resources"] or "{}"),
            health_metrics=json.loads(row["health_metrics"] or "{}"),
            max_concurrent=row["max_concurrent"],
            health_path=row["health_path"],
            token=row["token_ref"],
            last_heartbeat=from_iso(row["last_heartbeat"]),
            last_check_at=from_iso(row.get("last_check_at")),
            last_check_ok=None if check_ok is None else bool(check_ok),
            last_latency_ms=row.get("last_latency_ms"),
            last_error=row.get("last_error"),
            fail_streak=row.get("fail_streak") or 0,
            ok_streak=row.get("ok_streak") or 0,
            created_at=from_iso(row["created_at"]),
            updated_at=from_iso(row["updated_at"]),
            removed_at=from_iso(row["removed_at"]),
            address=row.get("address"),
        )

    def spec(self) -> NodeSpec:
        return NodeSpec(self.name, **{f: getattr(self, f) for f in SPEC_FIELDS})

    @property
    def published_address(self) -> str:
        """The address steering publishes for the node: its `address`, else its endpoint's host."""
        if self.address:
            return self.address
        from urllib.parse import urlsplit

        return urlsplit(self.endpoint).hostname or ""

    def health_url(self, default_path: str) -> str:
        return self.endpoint.rstrip("/") + (self.health_path or default_path)

    @property
    def location(self) -> dict[str, Any]:
        return {"country": self.country, "region": self.region, "city": self.city,
                "coordinates": None if self.lat is None else {"lat": self.lat, "lon": self.lon}}

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "endpoint": self.endpoint,
            "address": self.address,
            "published_address": self.published_address,
            "region": self.region,
            "country": self.country,
            "city": self.city,
            "lat": self.lat,
            "lon": self.lon,
            "capabilities": self.capabilities,
            "labels": self.labels,
            "max_concurrent": self.max_concurrent,
            "health_path": self.health_path,
            "token": self.token,
            "resources": self.resources,
            "health_metrics": self.health_metrics,
            "last_heartbeat": self.last_heartbeat,
            "stale": self.stale,
            "last_check_at": self.last_check_at,
            "last_check_ok": self.last_check_ok,
            "last_latency_ms": self.last_latency_ms,
            "last_error": self.last_error,
            "fail_streak": self.fail_streak,
            "ok_streak": self.ok_streak,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class NodeEvent:
    node: str
    at: datetime
    kind: str
    old_status: str | None
    new_status: str | None
    reason: str | None
    details: dict[str, Any]

    def to_record(self) -> dict[str, Any]:
        return {
            "at": self.at, "node": self.node, "kind": self.kind, "old_status": self.old_status,
            "new_status": self.new_status, "reason": self.reason, "details": self.details,
        }
