"""Declarative inventory: read a file of nodes, plan the difference from state, apply it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgectl.declarative import DeclaredPlan, load_document
from edgectl.errors import UsageError
from edgectl.nodes.inventory import add_node, build_spec, list_nodes, remove_node, replace_spec, spec_diff
from edgectl.nodes.model import SPEC_FIELDS, Node, NodeSpec
from edgectl.timeutil import to_iso, utcnow


def parse_inventory(text: str, label: str) -> list[NodeSpec]:
    """TOML (`[nodes.NAME]` tables) or JSON (`{"nodes": {NAME: {...}}}`); every bad entry is named."""
    data = load_document(text, label)
    if not isinstance(data, dict) or not isinstance(data.get("nodes", {}), dict):
        raise UsageError(f"{label}: expected [nodes.NAME] tables", hint="edgectl nodes export shows the format")
    extra = set(data) - {"nodes"}
    if extra:
        raise UsageError(f"{label}: unknown top-level key(s): {', '.join(sorted(extra))}")
    specs, problems = [], []
    for name, entry in data.get("nodes", {}).items():
        if not isinstance(entry, dict):
            problems.append(f"nodes.{name}: expected a table")
            continue
        if "name" in entry:
            problems.append(f"nodes.{name}: 'name' is not a field: the table key names the node")
            continue
        try:
            specs.append(build_spec({"name": name, **entry}))
        except UsageError as exc:
            problems.append(f"nodes.{name}: {exc.message}")
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
        raise UsageError(f"{label}: {problems[0]}{more}")
    return specs


@dataclass
class PlanStep:
    action: str  # create | update | remove
    node: str
    changes: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"action": self.action, "node": self.node, "changes": self.changes}

    def summary(self) -> str:
        if self.action == "update":
            return ", ".join(f"{k}: {_show(v['old'])} -> {_show(v['new'])}" for k, v in self.changes.items())
        if self.action == "create":
            return ", ".join(f"{k}={_show(v)}" for k, v in self.changes.items())
        return ""


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@dataclass
class InventoryPlan(DeclaredPlan):
    steps: list[PlanStep]
    specs: dict[str, NodeSpec]
    nodes: dict[str, Node]
    prune: bool = False
    listed: int = 0  # nodes the file lists
    what: str = "nodes"


def plan_inventory(state, specs: list[NodeSpec], *, prune: bool) -> InventoryPlan:
    current = {n.name: n for n in list_nodes(state)}
    wanted = {s.name: s for s in specs}
    steps = []
    for name, spec in wanted.items():
        node = current.get(name)
        if node is None:
            steps.append(PlanStep("create", name, {k: v for k, v in spec.values().items() if v not in (None, [], {})}))
        else:
            diff = spec_diff(node.spec(), spec)
            if diff:
                steps.append(PlanStep("update", name, diff))
    if prune:
        steps.extend(PlanStep("remove", name) for name in current if name not in wanted)
    return InventoryPlan(steps, wanted, current, prune, len(specs))


def apply_inventory(state, config, plan: InventoryPlan, *, source: str) -> None:
    """All of the plan or none of it: one transaction, each change recorded as a node event."""
    reason = f"nodes apply {source}"
    with state.db.atomic():
        for step in plan.steps:
            if step.action == "create":
                add_node(state, plan.specs[step.node], reason=reason)
            elif step.action == "update":
                replace_spec(state, plan.nodes[step.node], plan.specs[step.node], reason=reason)
            else:
                remove_node(state, config, step.node, reason=reason)


def export_inventory(nodes: list[Node], fmt: str) -> str:
    entries = {
        n.name: {k: v for k, v in n.spec().values().items() if v not in (None, [], {})}
        for n in nodes
    }
    if fmt == "json":
        return json.dumps({"nodes": entries}, indent=2) + "\n"
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"edgectl node inventory, exported {to_iso(utcnow())}"))
    doc.add(tomlkit.comment("apply with: edgectl nodes apply -f FILE"))
    nodes_table = tomlkit.table(is_super_table=True)
    for name, entry in entries.items():
        table = tomlkit.table()
        for key in SPEC_FIELDS:
            if key not in entry:
                continue
            value = entry[key]
            if key == "labels":
                inline = tomlkit.inline_table()
                inline.update(value)
                value = inline
            table.add(key, value)
        nodes_table.add(name, table)
    doc.add("nodes", nodes_table)
    return tomlkit.dumps(doc)
