"""Declarative routing rules: read a rules file, plan the difference from state, apply it in one transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgectl.declarative import DeclaredPlan, load_document
from edgectl.errors import UsageError
from edgectl.routing.model import DEFAULT_LATENCY_THRESHOLD_MS, DEFAULT_WEIGHT, SOURCE_KINDS, Rule, RuleSpec
from edgectl.timeutil import to_iso, utcnow

# A rules file's keys: one source key, the target, and the spec's fields as a person writes them.
_SOURCE_KEYS = ("subdivision", "country", "region", "continent", "default")
_FIELD_KEYS = ("target", "weight", "latency_threshold", "failover", "jurisdictions", "capabilities", "conditions",
               "active")


def parse_rules(text: str, label: str, config=None) -> list[RuleSpec]:
    """TOML (`[[rules]]` tables) or JSON (`{"rules": [...]}`); every bad entry is named."""
    from edgectl.routing.rules import build_spec, parse_source

    data = load_document(text, label)
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise UsageError(f"{label}: expected [[rules]] tables", hint="edgectl routing rules export shows the format")
    extra = set(data) - {"rules"}
    if extra:
        raise UsageError(f"{label}: unknown top-level key(s): {', '.join(sorted(extra))}")
    specs: list[RuleSpec] = []
    seen: dict[tuple, int] = {}
    problems = []
    for number, entry in enumerate(data.get("rules", []), 1):
        where = f"rules[{number}]"
        try:
            if not isinstance(entry, dict):
                raise UsageError("expected a table")
            unknown = set(entry) - set(_SOURCE_KEYS) - set(_FIELD_KEYS)
            if unknown:
                raise UsageError(f"unknown key(s): {', '.join(sorted(unknown))}",
                                 hint=f"keys: one of {', '.join(_SOURCE_KEYS)}, then {', '.join(_FIELD_KEYS)}")
            given = [k for k in _SOURCE_KEYS if k in entry]
            if len(given) != 1:
                raise UsageError(f"give exactly one source key ({', '.join(_SOURCE_KEYS)})")
            kind = given[0]
            if kind == "default" and entry["default"] is not True:
                raise UsageError("default = true is the only way to write the default source")
            if not isinstance(entry.get("target"), str):
                raise UsageError("target: the node's name is required")
            source = parse_source(kind, None if kind == "default" else str(entry[kind]), config)
            values = {k: entry[k] for k in ("weight", "failover", "jurisdictions", "capabilities", "conditions",
                                            "active") if k in entry}
            if "latency_threshold" in entry:
                values["latency_threshold_ms"] = _threshold(entry["latency_threshold"])
            spec = build_spec(source, entry["target"], values)
            if spec.key in seen:
                raise UsageError(f"sends {spec.source} to {spec.target} again (as rules[{seen[spec.key]}] does)")
            seen[spec.key] = number
            specs.append(spec)
        except UsageError as exc:
            problems.append(f"{where}: {exc.message}")
    if problems:
        more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
        raise UsageError(f"{label}: {problems[0]}{more}")
    return specs


def _threshold(value: Any) -> float | None:
    """'200ms', '1s' or 'none'; a bare number is milliseconds."""
    from edgectl.parse import parse_duration

    if isinstance(value, bool):
        raise UsageError("latency_threshold: expected a duration such as \"200ms\", or \"none\"")
    if isinstance(value, (int, float)):
        return float(value)
    if str(value).strip().lower() == "none":
        return None
    return round(parse_duration(str(value), what="latency_threshold") * 1000, 3)


@dataclass
class PlanStep:
    action: str  # create | update | remove
    spec: RuleSpec
    rule: Rule | None = None
    changes: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"action": self.action, "rule": self.rule.id if self.rule else None, "source": str(self.spec.source),
                "target": self.spec.target, "changes": self.changes}

    def summary(self) -> str:
        def show(value):
            return "-" if value is None else json.dumps(value, separators=(",", ":")) if isinstance(
                value, (list, dict)) else str(value)

        if self.action == "update":
            return ", ".join(f"{k}: {show(v['old'])} -> {show(v['new'])}" for k, v in self.changes.items())
        if self.action == "create":
            return ", ".join(f"{k}={show(v)}" for k, v in self.changes.items())
        return ""


@dataclass
class RulesPlan(DeclaredPlan):
    steps: list[PlanStep]
    prune: bool
    listed: int  # rules the file lists
    what: str = "rules"


def plan_rules(state, specs: list[RuleSpec], *, prune: bool) -> RulesPlan:
    from edgectl.nodes.inventory import list_nodes
    from edgectl.routing.rules import list_rules, spec_diff

    live = {node.name for node in list_nodes(state)}
    missing = sorted({name for spec in specs for name in (spec.target, spec.failover) if name and name not in live})
    if missing:
        raise UsageError(f"the rules name unknown node(s): {', '.join(missing)}",
                         hint="edgectl nodes list shows the registered nodes")
    current = {rule.key: rule for rule in list_rules(state)}
    steps = []
    for spec in specs:
        rule = current.get(spec.key)
        if rule is None:
            steps.append(PlanStep("create", spec, changes={k: v for k, v in spec.values().items()
                                                           if v not in (None, [], {})}))
        else:
            diff = spec_diff(rule.spec(), spec)
            if diff:
                steps.append(PlanStep("update", spec, rule, diff))
    if prune:
        wanted = {spec.key for spec in specs}
        steps += [PlanStep("remove", rule.spec(), rule) for key, rule in current.items() if key not in wanted]
    return RulesPlan(steps, prune, len(specs))


def apply_rules(state, plan: RulesPlan, *, source: str) -> None:
    """All of the plan or none of it: one transaction, each change recorded as a rule event."""
    from edgectl.routing.rules import add_rule, remove_rules, replace_rule

    reason = f"routing rules apply {source}"
    with state.db.atomic():
        for step in plan.steps:
            if step.action == "create":
                add_rule(state, step.spec, reason=reason)
            elif step.action == "update":
                replace_rule(state, step.rule, step.spec, reason=reason)
            else:
                remove_rules(state, [step.rule.id], reason=reason)


def _entry(rule: Rule) -> dict[str, Any]:
    entry: dict[str, Any] = {"default": True} if rule.source.kind == "default" else {rule.source.kind: rule.source.value}
    entry["target"] = rule.target
    if rule.weight != DEFAULT_WEIGHT:
        entry["weight"] = rule.weight
    if rule.latency_threshold_ms != DEFAULT_LATENCY_THRESHOLD_MS:
        threshold = rule.latency_threshold_ms
        entry["latency_threshold"] = "none" if threshold is None else f"{threshold:g}ms"
    for key in ("failover", "jurisdictions", "capabilities", "conditions"):
        value = getattr(rule, key)
        if value not in (None, [], {}):
            entry[key] = value
    if not rule.active:
        entry["active"] = False
    return entry


def export_rules(rules: list[Rule], fmt: str) -> str:
    entries = [_entry(rule) for rule in sorted(rules, key=lambda r: SOURCE_KINDS.index(r.source.kind))]
    if fmt == "json":
        return json.dumps({"rules": entries}, indent=2) + "\n"
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"edgectl routing rules, exported {to_iso(utcnow())}"))
    doc.add(tomlkit.comment("apply with: edgectl routing rules apply -f FILE"))
    tables = tomlkit.aot()
    for entry in entries:
        table = tomlkit.table()
        for key, value in entry.items():
            if key == "conditions":
                inline = tomlkit.inline_table()
                inline.update(value)
                value = inline
            table.add(key, value)
        tables.append(table)
    doc.add("rules", tables)
    return tomlkit.dumps(doc)
