"""The node inventory: register, change, retire and list edge nodes, recording every change."""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass
from typing import Any

from edgectl.errors import NotFound, UsageError
from edgectl.nodes.model import SPEC_FIELDS, STATUSES, Node, NodeEvent, NodeSpec
from edgectl.parse import (
    parse_address,
    parse_coordinates,
    parse_country,
    parse_label,
    parse_name,
    parse_path,
    parse_positive_int,
    parse_secret_ref,
    parse_url,
)
from edgectl.timeutil import from_iso, to_iso, utcnow

_CAPABILITY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-/:")


def _text(value: Any, what: str, limit: int = 128) -> str | None:
    if value is None:
        return None
    if (not isinstance(value, str) or not value.strip() or len(value) > limit
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)):
        raise UsageError(f"{what} {value!r} is not valid", hint=f"use text of 1-{limit} characters on one line")
    return value.strip()


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{what} must be a number, not {value!r}")
    return float(value)


def build_spec(raw: dict[str, Any]) -> NodeSpec:
    """Validate a node's fields, however they arrived (options, inventory file), into a spec."""
    unknown = set(raw) - set(SPEC_FIELDS) - {"name"}
    if unknown:
        field_list = ", ".join(sorted(unknown))
        raise UsageError(f"unknown field(s): {field_list}", hint=f"known fields: {', '.join(SPEC_FIELDS)}")
    name = parse_name(raw.get("name", ""), what="node name")
    if raw.get("endpoint") is None:
        raise UsageError(f"node {name!r} needs an endpoint", hint="e.g. --endpoint https://edge-fra-1.example.net")
    endpoint = parse_url(raw["endpoint"], what="endpoint", base=True)
    address = parse_address(raw["address"], what="address") if raw.get("address") is not None else None
    coords = parse_coordinates(_number(raw.get("lat"), "latitude"), _number(raw.get("lon"), "longitude"))
    capabilities = raw.get("capabilities") if raw.get("capabilities") is not None else []
    if isinstance(capabilities, str) or not isinstance(capabilities, (list, tuple)):
        raise UsageError("capabilities must be a list of names")
    for cap in capabilities:
        if not isinstance(cap, str) or not cap or len(cap) > 64 or not set(cap.lower()) <= _CAPABILITY_CHARS:
            raise UsageError(f"capability {cap!r} is not valid", hint="use names like http3, image-resize or waf")
    labels = raw.get("labels") if raw.get("labels") is not None else {}
    if not isinstance(labels, dict):
        raise UsageError("labels must be a table of key = \"value\"")
    checked_labels = {}
    for key, value in labels.items():
        if not isinstance(value, str):
            raise UsageError(f"label {key!r} must have a string value, not {value!r}")
        key, value = parse_label(f"{key}={value}")
        checked_labels[key] = value
    max_concurrent = raw.get("max_concurrent")
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)):
        raise UsageError(f"max_concurrent must be a whole number, not {max_concurrent!r}")
    health_path = raw.get("health_path")
    token = raw.get("token")
    return NodeSpec(
        name=name,
        endpoint=endpoint,
        address=address,
        region=parse_name(raw["region"], what="region") if raw.get("region") is not None else None,
        country=parse_country(raw["country"]) if raw.get("country") is not None else None,
        city=_text(raw.get("city"), "city"),
        lat=coords[0] if coords else None,
        lon=coords[1] if coords else None,
        capabilities=sorted(dict.fromkeys(c.lower() for c in capabilities)),
        labels=dict(sorted(checked_labels.items())),
        max_concurrent=parse_positive_int(max_concurrent, what="max_concurrent"),
        health_path=parse_path(health_path, what="health path") if health_path is not None else None,
        token=parse_secret_ref(token, what="token") if token is not None else None,
    )


# ---- reading ------------------------------------------------------------------

@dataclass
class NodeFilter:
    status: str | None = None
    region: str | None = None
    country: str | None = None
    capability: str | None = None
    labels: dict[str, str] | None = None
    names: list[str] | None = None


def _live_rows(state, where: str = "", params: list | None = None):
    sql = "SELECT * FROM nodes WHERE removed_at IS NULL" + (f" AND {where}" if where else "") + " ORDER BY name COLLATE natural_order"
    return state.db.query(sql, params or [])


def mark_stale(nodes: list[Node], heartbeat_interval: float) -> list[Node]:
    """A node that has sent heartbeats and then missed three intervals is stale."""
    now = utcnow()
    for node in nodes:
        node.stale = bool(node.last_heartbeat and (now - node.last_heartbeat).total_seconds() > 3 * heartbeat_interval)
    return nodes


def list_nodes(state, flt: NodeFilter | None = None, *, heartbeat_interval: float = 30.0) -> list[Node]:
    flt = flt or NodeFilter()
    clauses, params = [], []
    if flt.status:
        if flt.status not in STATUSES and flt.status != "stale":
            raise UsageError(f"unknown status {flt.status!r}", hint=f"statuses: {', '.join(STATUSES)}, stale")
        if flt.status != "stale":
            clauses.append("status = ?")
            params.append(flt.status)
    if flt.region:
        clauses.append("region = ?")
        params.append(flt.region)
    if flt.country:
        clauses.append("country = ?")
        params.append(parse_country(flt.country))
    if flt.capability:
        clauses.append("EXISTS (SELECT 1 FROM json_each(nodes.capabilities) WHERE value = ?)")
        params.append(flt.capability.lower())
    for key, value in (flt.labels or {}).items():
        clauses.append("json_extract(labels, ?) = ?")
        params.extend([f'$."{key}"', value])
    if flt.names:
        clauses.append(f"name IN ({', '.join('?' for _ in flt.names)})")
        params.extend(flt.names)
    nodes = [Node.from_row(r) for r in _live_rows(state, " AND ".join(clauses), params)]
    mark_stale(nodes, heartbeat_interval)
    if flt.status == "stale":
        nodes = [n for n in nodes if n.stale]
    return nodes


def get_node(state, name: str, *, heartbeat_interval: float = 30.0) -> Node:
    rows = list(_live_rows(state, "name = ?", [name]))
    if not rows:
        known = [r["name"] for r in state.db.query("SELECT name FROM nodes WHERE removed_at IS NULL")]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else "edgectl nodes list shows the registered nodes"
        raise NotFound(f"unknown node {name!r}", hint=hint)
    return mark_stale([Node.from_row(rows[0])], heartbeat_interval)[0]


def nodes_by_id(state, ids: list[int]) -> dict[int, Node]:
    """Live nodes by id, read now (under the caller's transaction, where it holds one)."""
    if not ids:
        return {}
    rows = _live_rows(state, f"id IN ({', '.join('?' for _ in ids)})", list(ids))
    return {node.id: node for node in (Node.from_row(row) for row in rows)}


def get_nodes(state, names: list[str]) -> list[Node]:
    """Several nodes by name; every unknown name is reported at once."""
    found = {n.name: n for n in list_nodes(state, NodeFilter(names=list(dict.fromkeys(names))))}
    missing = [n for n in names if n not in found]
    if missing:
        if len(missing) == 1:
            get_node(state, missing[0])  # raises with a suggestion
        raise NotFound(f"unknown nodes: {', '.join(missing)}", hint="edgectl nodes list shows the registered nodes")
    return [found[n] for n in dict.fromkeys(names)]


def node_events(state, name: str | None = None, since: str | None = None, limit: int | None = None) -> list[NodeEvent]:
    clauses, params = [], []
    if name:
        if not list(state.db.query("SELECT 1 FROM nodes WHERE name = ? LIMIT 1", [name])):
            get_node(state, name)  # raises NotFound with a suggestion
        clauses.append("n.name = ?")
        params.append(name)
    if since:
        clauses.append("e.at >= ?")
        params.append(since)
    sql = (
        "SELECT n.name, e.* FROM node_events e JOIN nodes n ON n.id = e.node_id"
        + (" WHERE " + " AND ".join(clauses) if clauses else "")
        + " ORDER BY e.at DESC, e.id DESC"
        + (f" LIMIT {int(limit)}" if limit else "")
    )
    events = [
        NodeEvent(r["name"], from_iso(r["at"]), r["kind"], r["old_status"], r["new_status"], r["reason"],
                  json.loads(r["details"] or "{}"))
        for r in state.db.query(sql, params)
    ]
    events.reverse()
    return events


# ---- writing --------------------------------------------------------------------

def _row_values(spec: NodeSpec) -> dict[str, Any]:
    values = spec.values()
    values["capabilities"] = json.dumps(values["capabilities"])
    values["labels"] = json.dumps(values["labels"], sort_keys=True)
    values["token_ref"] = values.pop("token")
    return values


def record_event(state, node_id: int, kind: str, *, old: str | None = None, new: str | None = None,
                 reason: str | None = None, details: dict | None = None, at: str | None = None) -> None:
    state.db.execute(
        "INSERT INTO node_events (node_id, at, kind, old_status, new_status, reason, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [node_id, at or to_iso(utcnow()), kind, old, new, reason, json.dumps(details or {}, sort_keys=True)],
    )


def add_node(state, spec: NodeSpec, *, reason: str | None = None) -> Node:
    with state.db.atomic():
        if list(_live_rows(state, "name = ?", [spec.name])):
            raise UsageError(f"node {spec.name!r} already exists", hint="use edgectl nodes update to change it")
        now = to_iso(utcnow())
        values = _row_values(spec)
        values.update(name=spec.name, status="active", created_at=now, updated_at=now)
        cols = ", ".join(values)
        cursor = state.db.execute(
            f"INSERT INTO nodes ({cols}) VALUES ({', '.join('?' for _ in values)})", list(values.values())
        )
        record_event(state, cursor.lastrowid, "added", new="active", reason=reason,
                     details={k: v for k, v in spec.values().items() if v not in (None, [], {})}, at=now)
    return get_node(state, spec.name)


def spec_diff(old: NodeSpec, new: NodeSpec) -> dict[str, dict[str, Any]]:
    """Field -> {'old': .., 'new': ..} for every field that differs."""
    return {
        f: {"old": getattr(old, f), "new": getattr(new, f)}
        for f in SPEC_FIELDS
        if getattr(old, f) != getattr(new, f)
    }


def _in_one_transaction(fn):
    """Read and write under one write lock: an overlapping change is built on, never written over."""
    import functools

    @functools.wraps(fn)
    def locked(state, *args, **kwargs):
        with state.db.atomic():
            return fn(state, *args, **kwargs)

    return locked


@_in_one_transaction
def update_node(state, name: str, changes: dict[str, Any], *, reason: str | None = None) -> tuple[Node, dict]:
    """Apply field changes (already merged into a full spec by the caller or here) and record them."""
    node = get_node(state, name)
    merged = node.spec().values()
    merged.update(changes)
    new_spec = build_spec({"name": name, **merged})
    return replace_spec(state, node, new_spec, reason=reason)


def replace_spec(state, node: Node, spec: NodeSpec, *, reason: str | None = None) -> tuple[Node, dict]:
    diff = spec_diff(node.spec(), spec)
    if not diff:
        return node, diff
    with state.db.atomic():
        now = to_iso(utcnow())
        values = _row_values(spec)
        values["updated_at"] = now
        assignments = ", ".join(f"{k} = ?" for k in values)
        state.db.execute(f"UPDATE nodes SET {assignments} WHERE id = ?", [*values.values(), node.id])
        record_event(state, node.id, "updated", reason=reason, details=diff, at=now)
    return get_node(state, node.name), diff


def set_status(state, node: Node, new: str, *, kind: str, reason: str | None = None, details: dict | None = None) -> Node:
    if new == node.status:
        return node
    now = to_iso(utcnow())
    with state.db.atomic():
        state.db.execute("UPDATE nodes SET status = ?, updated_at = ? WHERE id = ?", [new, now, node.id])
        record_event(state, node.id, kind, old=node.status, new=new, reason=reason, details=details, at=now)
    node.status = new
    return node


@_in_one_transaction
def drain_node(state, name: str, reason: str | None = None) -> Node:
    node = get_node(state, name)
    if node.status in ("maintenance", "inactive"):
        hint = (f"edgectl nodes maintenance {name} off first" if node.status == "maintenance"
                else "an inactive node takes no work to drain")
        raise UsageError(f"node {name!r} is {node.status}", hint=hint)
    return set_status(state, node, "draining", kind="drain", reason=reason)


def _back_in_service(node: Node) -> str:
    """Where a node returns to: failed if its last probe failed, so only probes bring it back."""
    return "failed" if node.last_check_ok is False and node.fail_streak else "active"


@_in_one_transaction
def undrain_node(state, name: str, reason: str | None = None) -> Node:
    node = get_node(state, name)
    if node.status in ("active", "failed"):
        return node  # nothing to undo; a repeated cron step stays quiet
    if node.status != "draining":
        raise UsageError(f"node {name!r} is {node.status}, not draining")
    return set_status(state, node, _back_in_service(node), kind="undrain", reason=reason)


@_in_one_transaction
def set_maintenance(state, name: str, on: bool, reason: str | None = None) -> Node:
    node = get_node(state, name)
    if on:
        return set_status(state, node, "maintenance", kind="maintenance_on", reason=reason)
    if node.status != "maintenance":
        return node
    # back in service; the next health checks decide whether it stays up
    return set_status(state, node, _back_in_service(node), kind="maintenance_off", reason=reason)


def check_admin_status(status: str) -> str:
    if status not in ("active", "inactive"):
        raise UsageError(f"--status takes active or inactive, not {status!r}",
                         hint="drain, maintenance and failure have their own commands")
    return status


@_in_one_transaction
def set_admin_status(state, name: str, status: str, reason: str | None = None) -> Node:
    """`nodes update --status active|inactive`: take a node out of service or put it back."""
    check_admin_status(status)
    node = get_node(state, name)
    return set_status(state, node, status, kind="status", reason=reason)


def node_references(config, node: Node) -> list[str]:
    """What still names this node: provider entries in the config that list it."""
    refs = []
    for provider, entry in (config.section("providers") if config else {}).items():
        listed = entry.get("nodes") if isinstance(entry, dict) else None
        if isinstance(listed, list) and node.name in listed:
            refs.append(f"provider {provider} (config {config.path})")
    return refs


def remove_node(state, config, name: str, *, force: bool = False, reason: str | None = None) -> tuple[Node, list]:
    """Decommission: the node leaves the inventory; its events and metrics stay.

    Routing rules that send to it or fail over to it refuse the removal, unless forced: then
    they are disabled in the same transaction, and returned with the node.
    """
    # rules refer to nodes by id; keeping them consistent is the removal's job, wherever it starts
    from edgectl.routing.rules import disable_for_node, rules_using

    with state.db.atomic():
        node = get_node(state, name)
        refs = node_references(config, node)
        rules = rules_using(state, node.id)
        refs += [f"routing rule {r.id} ({r.source} -> {r.target}"
                 + (f", failover {r.failover}" if r.failover else "") + ")" for r in rules]
        if refs and not force:
            raise UsageError(
                f"node {name!r} is still referenced by: {'; '.join(refs[:10])}"
                + (f" (and {len(refs) - 10} more)" if len(refs) > 10 else ""),
                hint="remove those references first, or pass --force (which disables the rules)",
            )
        now = to_iso(utcnow())
        state.db.execute("UPDATE nodes SET removed_at = ?, updated_at = ? WHERE id = ?", [now, now, node.id])
        record_event(state, node.id, "removed", old=node.status, reason=reason,
                     details={"references": refs} if refs else None, at=now)
        disabled = disable_for_node(state, node.id, name, reason=f"node {name} removed")
    node.removed_at = from_iso(now)
    return node, disabled


# ---- heartbeats -------------------------------------------------------------------

HEARTBEAT_METRICS = {
    "cpu_percent": "percent",
    "memory_percent": "percent",
    "disk_percent": "percent",
    "network_mbps": "mbps",
}


def parse_health_report(data: Any, where: str) -> tuple[dict[str, float], dict[str, Any]]:
    """The resource figures a node reports (heartbeat or health JSON) -> (metrics, resources)."""
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a JSON object")
    metrics: dict[str, float] = {}
    for key in HEARTBEAT_METRICS:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UsageError(f"{where}: {key} must be a non-negative number, not {value!r}")
        if HEARTBEAT_METRICS[key] == "percent" and value > 100:
            raise UsageError(f"{where}: {key} {value} is above 100")
        metrics[key] = float(value)
    resources = data.get("resources") or {}
    if not isinstance(resources, dict):
        raise UsageError(f"{where}: resources must be an object")
    for key, value in resources.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{where}: resources.{key} must be a finite number")
    return metrics, resources


def record_metrics(state, node: Node, metrics: dict[str, float], *, source: str, at: str) -> None:
    """A node's figures join the metrics history (edgectl.analytics), in the caller's transaction."""
    from edgectl.analytics.record import node_samples, record

    record(state, node_samples(node, metrics, source=source, when=at))


def record_heartbeat(state, name: str, metrics: dict[str, float], resources: dict[str, Any]) -> Node:
    now = to_iso(utcnow())
    with state.db.atomic():  # read under the write lock: heartbeats at once each add their figures
        node = get_node(state, name)
        merged_resources = {**node.resources, **resources}
        merged_health = {**node.health_metrics, **metrics}
        state.db.execute(
            "UPDATE nodes SET last_heartbeat = ?, health_metrics = ?, resources = ? WHERE id = ?",
            [now, json.dumps(merged_health, sort_keys=True), json.dumps(merged_resources, sort_keys=True), node.id],
        )
        record_metrics(state, node, metrics, source="heartbeat", at=now)
    return get_node(state, name)


def node_lookup(state):
    """The inventory's nodes as a provider's `nodes` setting names them (`label:k=v` or names), as
    endpoints: what the `http` kind needs from the state, handed to it when it is built."""

    def lookup(selector: Any, config_key: str):
        from edgectl.errors import ConfigError
        from edgectl.parse import parse_label
        from edgectl.providers.base import NodeEndpoint

        if isinstance(selector, str) and selector.startswith("label:"):
            key, value = parse_label(selector[len("label:"):])
            flt = NodeFilter(labels={key: value})
        else:
            flt = NodeFilter(names=list(selector or []))
        # a node taken out of service still holds cached objects, so it is purged too
        nodes = list_nodes(state, flt)
        missing = sorted(set(flt.names or []) - {node.name for node in nodes})
        if missing:
            raise ConfigError(f"{config_key}: unknown node(s): {', '.join(missing)}",
                              hint="edgectl nodes list shows the registered nodes")
        return [NodeEndpoint(node.name, node.endpoint) for node in nodes]

    return lookup
