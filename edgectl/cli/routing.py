"""`edgectl routing`: geographic routing rules, where a location goes and why, and what a failure would change."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.cli.options import (
    DryRun, Reason, SinceWindow, Timeout, Yes, apply_declared, confirm, overall_timeout, since_window,
)
from edgectl.errors import UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("routing"), no_args_is_help=True, add_completion=False)
rules_app = typer.Typer(help="Routing rules: a source of traffic sent to a node, with a weight and a failover.",
                        no_args_is_help=True)
app.add_typer(rules_app, name="rules")

RULE_COLUMNS = [
    Column("id", justify="right"),
    Column("source"),
    Column("target"),
    Column("weight", justify="right"),
    Column("latency_threshold_ms", "THRESHOLD", kind="ms", justify="right"),
    Column("failover"),
    Column("jurisdictions", kind="list"),
    Column("capabilities", kind="list"),
    Column("conditions", kind="map"),
    Column("status", kind="status"),
]
DETAIL_COLUMNS = RULE_COLUMNS + [Column("created_at", kind="time"), Column("updated_at", kind="time")]
EVENT_COLUMNS = [Column("at", kind="time"), Column("kind"), Column("actor"), Column("reason"),
                 Column("details", kind="map")]
PLAN_COLUMNS = [Column("action", kind="status"), Column("rule", justify="right"), Column("source"),
                Column("target"), Column("summary", "CHANGES")]

# The options that name a rule's source; exactly one is given.
Country = Annotated[Optional[str], typer.Option("--country", metavar="CC", help="An ISO 3166-1 country, e.g. DE.")]
Subdivision = Annotated[Optional[str], typer.Option("--subdivision", metavar="CC-SUB", help="An ISO 3166-2 subdivision, e.g. US-CA.")]
RegionSet = Annotated[Optional[str], typer.Option("--region", metavar="NAME", help="A Cloudflare region code (WEU, ENAM, ...) or a set from \\[routing.regions].")]
Continent = Annotated[Optional[str], typer.Option("--continent", metavar="CODE", help="AF, AN, AS, EU, NA, OC or SA.")]
Default = Annotated[bool, typer.Option("--default", help="Where traffic goes when no other rule matches.")]
Weight = Annotated[Optional[int], typer.Option("--weight", min=0, max=1_000_000, help="Share among a source's targets. \\[default: 100]")]
Threshold = Annotated[Optional[str], typer.Option("--latency-threshold", metavar="DURATION", help="Drop the target above this recent p95 latency. \\[default: 200ms]")]
Failover = Annotated[Optional[str], typer.Option("--failover", metavar="NODE", help="Where traffic goes when no target is left.")]
Jurisdictions = Annotated[Optional[list[str]], typer.Option("--jurisdiction", metavar="CODE", help="Only nodes in this jurisdiction (eu, us, ...); repeatable.")]
Capabilities = Annotated[Optional[list[str]], typer.Option("--capability", metavar="X", help="Only nodes with this capability; repeatable.")]
Conditions = Annotated[Optional[list[str]], typer.Option("--condition", metavar="K=V", help="A condition kept with the rule; repeatable.")]


def _source(country, subdivision, region, continent, default, *, required: bool = True):
    from edgectl.routing.rules import parse_source

    given = [(kind, value) for kind, value in (("country", country), ("subdivision", subdivision),
                                               ("region", region), ("continent", continent))
             if value is not None] + ([("default", None)] if default else [])
    if len(given) > 1:
        raise UsageError("give one source: --country, --subdivision, --region, --continent or --default")
    if not given:
        if required:
            raise UsageError("which traffic?", hint="give --country, --subdivision, --region, --continent or --default")
        return None
    kind, value = given[0]
    return parse_source(kind, value, current().config)


def _threshold(text: Optional[str]) -> float | None:
    from edgectl.parse import parse_duration

    if text is None:
        return None
    if text.strip().lower() in ("none", "off"):
        return None
    seconds = parse_duration(text, what="--latency-threshold")
    if seconds <= 0:
        raise UsageError("--latency-threshold must be more than zero (or 'none')")
    return round(seconds * 1000, 3)


def _conditions(items: Optional[list[str]]) -> dict[str, str]:
    from edgectl.parse import parse_label

    return dict(parse_label(item) for item in items or [])


def _ids(values: list[int]) -> list[int]:
    return list(dict.fromkeys(values))


@rules_app.command("add")
def rules_add(
    target: Annotated[str, typer.Option("--target", "-t", metavar="NODE", help="The node this traffic goes to.")],
    country: Country = None,
    subdivision: Subdivision = None,
    region: RegionSet = None,
    continent: Continent = None,
    default: Default = False,
    weight: Weight = None,
    latency_threshold: Threshold = None,
    failover: Failover = None,
    jurisdiction: Jurisdictions = None,
    capability: Capabilities = None,
    condition: Conditions = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it switched off.")] = False,
    reason: Reason = None,
) -> None:
    """Send a source of traffic to a node; a source may have several (weighted) targets."""
    from edgectl.routing.rules import add_rule, build_spec

    ctx = current()
    source = _source(country, subdivision, region, continent, default)
    values: dict = {"jurisdictions": jurisdiction or [], "capabilities": capability or [],
                    "conditions": _conditions(condition), "active": not disabled, "failover": failover}
    if weight is not None:
        values["weight"] = weight
    if latency_threshold is not None:
        values["latency_threshold_ms"] = _threshold(latency_threshold)
    rule = add_rule(ctx.state, build_spec(source, target, values), reason=reason)
    ctx.out.note(f"added rule {rule.id}: {rule.source} -> {rule.target}")
    ctx.out.show(rule.to_record(), ONE_RULE)


@rules_app.command("list")
def rules_list(
    country: Country = None,
    subdivision: Subdivision = None,
    region: RegionSet = None,
    continent: Continent = None,
    default: Default = False,
    node: Annotated[Optional[str], typer.Option("--node", metavar="NODE", help="Rules that send to or fail over to this node.")] = None,
    active: Annotated[Optional[bool], typer.Option("--active/--disabled", help="Only active, or only disabled, rules.")] = None,
) -> None:
    """Every rule, most specific source first."""
    from edgectl.routing.rules import RuleFilter, list_rules

    ctx = current()
    source = _source(country, subdivision, region, continent, default, required=False)
    flt = RuleFilter(source_kind=source.kind if source else None, source=source.value if source else None,
                     node=node, active=active)
    ctx.out.show([r.to_record() for r in list_rules(ctx.state, flt)], View(RULE_COLUMNS, empty="no routing rules"))


@rules_app.command("show")
def rules_show(rule_id: Annotated[int, typer.Argument(metavar="ID", min=1, max=2**62)]) -> None:
    """One rule in full, with its latest events (who changed what, when)."""
    from edgectl.routing.rules import get_rule, rule_events

    ctx = current()
    record = get_rule(ctx.state, rule_id).to_record()
    record["events"] = [e.to_record() for e in rule_events(ctx.state, rule_id)]
    ctx.out.show(record, RULE_VIEW)


def _draw_rule(out, record: dict) -> None:
    """The rule's fields (its status once, not as a flag too), then its latest events."""
    out.record({k: v for k, v in record.items() if k not in ("events", "source_kind", "source_value", "active")},
               DETAIL_COLUMNS)
    if record.get("events"):
        out.note("")
        out.records(record["events"], EVENT_COLUMNS)


RULE_VIEW = View(draw=_draw_rule)
ONE_RULE = View(RULE_COLUMNS, rows=lambda record: [record])  # a rule just added or changed, as `list` shows it


@rules_app.command("update")
def rules_update(
    rule_id: Annotated[int, typer.Argument(metavar="ID", min=1, max=2**62)],
    target: Annotated[Optional[str], typer.Option("--target", "-t", metavar="NODE")] = None,
    weight: Weight = None,
    latency_threshold: Threshold = None,
    failover: Failover = None,
    no_failover: Annotated[bool, typer.Option("--no-failover", help="Remove the failover node.")] = False,
    jurisdiction: Jurisdictions = None,
    capability: Capabilities = None,
    condition: Conditions = None,
    clear: Annotated[Optional[list[str]], typer.Option("--clear", metavar="FIELD", help="Empty jurisdictions, capabilities or conditions.")] = None,
    reason: Reason = None,
) -> None:
    """Change a rule; the change is kept in its events. Lists given replace the rule's own."""
    from edgectl.routing.rules import update_rule

    ctx = current()
    if failover and no_failover:
        raise UsageError("--failover and --no-failover cannot be used together")
    changes: dict = {}
    if target is not None:
        changes["target"] = target
    if weight is not None:
        changes["weight"] = weight
    if latency_threshold is not None:
        changes["latency_threshold_ms"] = _threshold(latency_threshold)
    if failover is not None or no_failover:
        changes["failover"] = failover
    for key, value in (("jurisdictions", jurisdiction), ("capabilities", capability)):
        if value:
            changes[key] = value
    if condition:
        changes["conditions"] = _conditions(condition)
    clearable = {"jurisdictions", "capabilities", "conditions"}
    for item in clear or []:
        if item not in clearable:
            raise UsageError(f"--clear {item}: not a field that can be cleared", hint=f"fields: {', '.join(sorted(clearable))}")
        changes[item] = {} if item == "conditions" else []
    if not changes:
        raise UsageError("nothing to update", hint="give at least one option, e.g. --weight 50")
    rule, diff = update_rule(ctx.state, rule_id, changes, reason=reason)
    ctx.out.note(f"updated rule {rule.id}: {', '.join(diff) or 'no field changed'}")
    ctx.out.show(rule.to_record(), ONE_RULE)


def _switch(rule_ids: list[int], active: bool, reason: Optional[str]) -> None:
    from edgectl.routing.rules import set_active

    ctx = current()
    results = set_active(ctx.state, _ids(rule_ids), active, reason=reason)
    word = "enabled" if active else "disabled"
    for rule, changed in results:
        ctx.out.note(f"rule {rule.id} {word}" if changed else f"rule {rule.id} is already {word}")
    ctx.out.show([{"id": rule.id, "status": rule.to_record()["status"], "changed": changed} for rule, changed in results],
                 View(body=False))


RuleIds = Annotated[list[int], typer.Argument(metavar="ID...", min=1, max=2**62)]


@rules_app.command("enable")
def rules_enable(rule_ids: RuleIds, reason: Reason = None) -> None:
    """Switch rules on."""
    _switch(rule_ids, True, reason)


@rules_app.command("disable")
def rules_disable(rule_ids: RuleIds, reason: Reason = None) -> None:
    """Switch rules off: resolve passes them by; they stay, with their history."""
    _switch(rule_ids, False, reason)


@rules_app.command("remove")
def rules_remove(rule_ids: RuleIds, reason: Reason = None) -> None:
    """Remove rules; their history stays."""
    from edgectl.routing.rules import remove_rules

    ctx = current()
    removed = remove_rules(ctx.state, _ids(rule_ids), reason=reason)
    for rule in removed:
        ctx.out.note(f"removed rule {rule.id}: {rule.source} -> {rule.target}")
    ctx.out.show([{"id": rule.id, "removed": True} for rule in removed], View(body=False))


@rules_app.command("export")
def rules_export(
    fmt: Annotated[Optional[str], typer.Option("--format", help="toml or json (default: json under -o json, else toml).")] = None,
) -> None:
    """Write the rules as a file that `routing rules apply` reads back."""
    import sys

    from edgectl.routing.declarative import export_rules
    from edgectl.routing.rules import list_rules

    ctx = current()
    if fmt is None:
        fmt = "json" if ctx.out.fmt in ("json", "jsonl") else "toml"
    if fmt not in ("toml", "json"):
        raise UsageError(f"--format takes toml or json, not {fmt!r}")
    sys.stdout.write(export_rules(list_rules(ctx.state), fmt))


@rules_app.command("apply")
def rules_apply(
    file: Annotated[str, typer.Option("--file", "-f", metavar="FILE|-", help="Rules file (TOML or JSON).")],
    prune: Annotated[bool, typer.Option("--prune", help="Remove rules the file does not list.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Allow --prune to remove every rule (an empty file).")] = False,
    yes: Yes = False,
    dry_run: DryRun = False,
) -> None:
    """Make the rules match a file, in one transaction: the plan is shown first, then applied."""
    from edgectl.declarative import read_file
    from edgectl.routing.declarative import apply_rules, parse_rules, plan_rules

    ctx = current()
    text, source = read_file(file, what="rules file")
    plan = plan_rules(ctx.state, parse_rules(text, source, ctx.config), prune=prune)
    plan.raise_if_unsafe(force=force)
    apply_declared(plan, PLAN_COLUMNS, empty="no changes: the rules match the file", yes=yes, dry_run=dry_run,
                   apply=lambda: apply_rules(ctx.state, plan, source=source))


# -- resolve and simulate -----------------------------------------------------------------------

RESOLVE_COLUMNS = [Column("location"), Column("name"), Column("node"), Column("via"),
                   Column("distance_km", "DISTANCE KM", justify="right"),
                   Column("expected_latency_ms", "EXPECTED", kind="ms", justify="right")]
ANSWER_COLUMNS = [Column("location"), Column("name"), Column("node"), Column("endpoint"), Column("via"),
                  Column("strategy"), Column("distance_km", "distance km"),
                  Column("latency_ms", "latency p95", kind="ms"), Column("expected_latency_ms", "expected latency",
                                                                        kind="ms"),
                  Column("jurisdictions", kind="list")]
MOVE_COLUMNS = [Column("location"), Column("name"), Column("before"), Column("after"),
                Column("distance_change_km", "Δ KM", justify="right"),
                Column("latency_change_ms", "Δ LATENCY", kind="ms", justify="right"),
                Column("latency_estimated", "ESTIMATED", kind="bool")]

Strategy = Annotated[Optional[str], typer.Option("--strategy", "-s", metavar="S", help="weighted, geo, latency, least_loaded, round_robin, capability or adaptive. Default: routing.strategy.")]
Capability = Annotated[Optional[list[str]], typer.Option("--capability", metavar="X", help="Only nodes with this capability; repeatable.")]
Window = Annotated[Optional[str], typer.Option("--window", metavar="DURATION", help="How far back latency and load are read. Default: routing.window.")]
Locations = Annotated[Optional[str], typer.Option("--locations", metavar="countries|continents|FILE", help="The locations: every country, every continent, or a file of one a line ('-' reads stdin).")]


def _explained(out, record: dict) -> None:
    """Each step on its own line, numbered, then the answer (or why there is none)."""
    for number, step in enumerate(record["steps"], 1):
        typer.echo(f"{number:>2}. {step['text']}")


@app.command("resolve")
def routing_resolve(
    location: Annotated[Optional[str], typer.Argument(metavar="LOCATION", help="DE, US-CA, EU, WEU, us-east-1, 52.5,13.4 or an IP address.")] = None,
    strategy: Strategy = None,
    capability: Capability = None,
    key: Annotated[Optional[str], typer.Option("--key", metavar="K", help="A client id: the same key gets the same weighted answer.")] = None,
    window: Window = None,
    explain: Annotated[bool, typer.Option("--explain", "-e", help="Every step: rules, candidates kept or dropped and why, the choice.")] = False,
    all_locations: Annotated[bool, typer.Option("--all", help="Resolve many locations, as a table (see --locations).")] = False,
    locations: Locations = None,
) -> None:
    """Where a location's traffic goes now, and with --explain why. Exit 1 when no node can serve it."""
    from edgectl.errors import OperationFailed
    from edgectl.routing.resolve import options_from, read_locations, resolve_all, resolve_location

    ctx = current()
    options = options_from(ctx.config, strategy=strategy, capabilities=capability, key=key, window=window)
    if all_locations or locations:
        if location is not None:
            raise UsageError("give a LOCATION or --all, not both")
        answers = resolve_all(ctx.state, ctx.config, read_locations(ctx.config, locations or "countries"), options)
        ctx.out.show([a.to_record(explain=explain) for a in answers], View(RESOLVE_COLUMNS, empty="no locations"))
        unserved = [a.location.text for a in answers if a.node is None]
        if unserved:
            raise OperationFailed(f"{len(unserved)} of {len(answers)} location(s) have no node: "
                                  f"{', '.join(unserved[:10])}" + (" ..." if len(unserved) > 10 else ""),
                                  hint="edgectl routing resolve LOCATION --explain says why")
        return
    if location is None:
        raise UsageError("which location?", hint="give a LOCATION (DE, US-CA, 52.5,13.4, ...) or --all")
    answer = resolve_location(ctx.state, ctx.config, location, options)
    record = answer.to_record(explain=explain)
    ctx.out.show(record, View(draw=_explained) if explain else View(ANSWER_COLUMNS))
    if answer.node is None:
        raise OperationFailed(answer.steps[-1].text, hint=None if explain else
                              f"edgectl routing resolve {location} --explain shows every step")


PERFORMANCE_COLUMNS = [Column("source"), Column("node", "ROUTES TO"), Column("via"),
                       Column("samples", justify="right"), Column("p50", "P50", kind="ms", justify="right"),
                       Column("p95", "P95", kind="ms", justify="right"),
                       Column("latency_threshold_ms", "THRESHOLD", kind="ms", justify="right"),
                       Column("status", kind="status"), Column("reason")]


def _violation_parts(slow: list[str], unserved: list[str], of: int | None = None) -> list[str]:
    """The violations in words, `of` so many sources: those above their threshold, and those no node can serve."""
    def count(found: list[str]) -> str:
        return f"{len(found)} of {of}" if of is not None else str(len(found))

    def names(found: list[str]) -> str:
        return ", ".join(found[:10]) + (" ..." if len(found) > 10 else "")

    return ([f"{count(slow)} source(s) above their latency threshold: {names(slow)}"] if slow else []) + (
        [f"{count(unserved)} source(s) no node can serve: {names(unserved)}"] if unserved else [])


@app.command("performance")
def routing_performance(
    since: SinceWindow = "24h",
    check: Annotated[bool, typer.Option("--check", help="Exit 3 when any source is in violation: its p95 above its "
                                                        "rule's threshold, or no node can serve it.")] = False,
) -> None:
    """Per source of the rules: where it is routed now, its clients' p50/p95 latency, the threshold, violations.

    A source's samples are the latency samples of clients in it, by their country and region.
    The default source takes the clients that no other rule's source covers. A source is in
    violation when its p95 is above the threshold, or when no node can serve it now (every
    candidate failed, stale or ruled out): the row's reason says which.
    """
    from edgectl.errors import ConditionMet
    from edgectl.routing.performance import routing_performance as performance
    from edgectl.routing.resolve import options_from

    ctx = current()
    start, end = since_window(since)
    report = performance(ctx.state, ctx.config, start, end, options_from(ctx.config))

    slow = [str(s.source) for s in report.slow]
    unserved = [str(s.source) for s in report.unserved]

    def notes(rows: list[dict]) -> list[str]:
        empty = [f"no samples in the last {since} (latency samples with a client country)"]
        return (empty if rows and not report.samples else []) + _violation_parts(slow, unserved, of=len(rows))

    ctx.out.show([s.to_record() for s in report.sources],
                 View(PERFORMANCE_COLUMNS, empty="no active routing rules", notes=notes))
    if check and report.violations:
        raise ConditionMet("; ".join(_violation_parts(slow, unserved)),
                           hint="edgectl routing resolve LOCATION --explain shows where each goes")


@app.command("simulate")
def routing_simulate(
    fail: Annotated[Optional[list[str]], typer.Option("--fail", metavar="NODE|region:R", help="Suppose this node (or every node of a region) failed; repeatable.")] = None,
    drain: Annotated[Optional[list[str]], typer.Option("--drain", metavar="NODE", help="Suppose this node draining; repeatable.")] = None,
    locations: Locations = None,
    strategy: Strategy = None,
    capability: Capability = None,
    window: Window = None,
    changed_only: Annotated[bool, typer.Option("--changed", help="Only the locations whose node changes.")] = False,
) -> None:
    """What a failure would change: each location's node before and after, and the distance and latency it costs.

    Changes nothing in state. Exit 1 when a location would be left with no node, so it can gate a maintenance change in CI.
    """
    from edgectl.errors import OperationFailed
    from edgectl.routing.resolve import options_from, read_locations
    from edgectl.routing.simulate import simulate

    ctx = current()
    options = options_from(ctx.config, strategy=strategy, capabilities=capability, window=window)
    result = simulate(ctx.state, ctx.config, read_locations(ctx.config, locations or "countries"), options,
                      fail=list(fail or []), drain=list(drain or []))
    record = result.to_record()
    if changed_only:
        record["moves"] = [m for m in record["moves"] if m["changed"]]
    ctx.out.show(record, View(MOVE_COLUMNS, rows=lambda r: r["moves"], empty="no location changes its node",
                              notes=_simulation_lines))
    if result.stranded:
        raise OperationFailed(f"{len(result.stranded)} location(s) would have no node: "
                              + ", ".join(m.location for m in result.stranded[:10])
                              + (" ..." if len(result.stranded) > 10 else ""),
                              hint="add a failover or a rule elsewhere before taking these nodes down")


def _simulation_lines(record: dict) -> list[str]:
    supposed = ", ".join([f"{n} failed" for n in record["failed"]] + [f"{n} draining" for n in record["drained"]])
    lines = [f"supposing {supposed}: {record['changed']} of {record['locations']} location(s) change node"
             + (f", {len(record['stranded'])} left with none" if record["stranded"] else "")]
    if any(m["latency_estimated"] for m in record["moves"]):
        lines.append("latency marked estimated: no probes recorded, so 5 ms + 0.015 ms per km of distance")
    return lines


# -- plan and apply: the rules published at steering providers ----------------------------------

STEERING_COLUMNS = [Column("provider"), Column("action", kind="status"), Column("type"), Column("key", "OBJECT"),
                    Column("summary", "CHANGES")]
APPLY_HISTORY_COLUMNS = [Column("id", justify="right"), Column("status", kind="status"),
                         Column("created_at", "STARTED", kind="time"), Column("finished_at", "FINISHED", kind="time"),
                         Column("providers", kind="list"), Column("counts", "CHANGES", kind="map"),
                         Column("actor"), Column("reason")]
STEP_COLUMNS = [Column("seq", "#", justify="right"), Column("provider"), Column("summary", "STEP"),
                Column("state", kind="status"), Column("attempts", justify="right"),
                Column("provider_ref", "PROVIDER ID"), Column("last_error", "LAST ERROR")]

Providers = Annotated[Optional[list[str]], typer.Option("--provider", "-p", metavar="NAME", help="This steering provider; repeatable.")]
AllProviders = Annotated[bool, typer.Option("--all-providers", help="Every provider with the routing capability.")]


def _plan_lines(record: dict) -> list[str]:
    lines = []
    for provider in record["providers"]:
        counts = provider["counts"]
        head = (f"{provider['provider']} ({provider['kind']}, {provider['where']}, owner {provider['owner']}): "
                + (", ".join(f"{n} to {a}" for a, n in counts.items() if n) or "no changes")
                + f"; {provider['existing']} managed now")
        if provider["not_managed"]:
            head += f", {len(provider['not_managed'])} not managed (left alone)"
        lines.append(head)
        lines += [f"  note: {w}" for w in provider["warnings"]]
        if provider["unsafe"]:
            lines.append(f"  unsafe: {provider['unsafe']}")
    return lines


PLAN_VIEW = View(STEERING_COLUMNS, rows=lambda r: r["rows"], empty="no changes: the providers publish the rules",
                 notes=_plan_lines)


def _plan_record(plan) -> dict:
    return {**plan.to_record(), "rows": plan.rows()}


@app.command("plan")
def routing_plan(provider: Providers = None, all_providers: AllProviders = False) -> None:
    """What publishing the rules would change at each steering provider. Changes nothing.

    Creates, updates field by field and deletes; what is there and not edgectl's; what the provider
    can only approximate, and how.
    """
    from edgectl.routing.plan import plan_routing

    ctx = current()
    plan = plan_routing(ctx.state, ctx.config, provider, all_providers=all_providers)
    ctx.out.show(_plan_record(plan), PLAN_VIEW)


def _apply_report_lines(record: dict) -> list[str]:
    return [f"routing apply {record['apply']}: {record['status']}"
            + (f"; failed at {', '.join(record['failed_providers'])}" if record["failed_providers"] else "")]


@app.command("apply")
def routing_apply(
    provider: Providers = None,
    all_providers: AllProviders = False,
    yes: Yes = False,
    force: Annotated[bool, typer.Option("--force", help="Apply a plan that changes more than the unsafe thresholds allow.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until each change has propagated (Route 53: INSYNC).")] = False,
    timeout: Timeout = "10m",
    resume: Annotated[Optional[str], typer.Option("--resume", metavar="ID", help="Send what apply ID left unfinished.")] = None,
    dry_run: DryRun = False,
    reason: Reason = None,
) -> None:
    """Publish the rules: show the plan, ask (or --yes), then apply it step by step, journaled.

    Exit 0 when every step was applied; 1 when one failed, with the command that resumes it; 2 for
    an unsafe plan without --force.
    """
    from edgectl.process import held_lock

    ctx = current()
    limit = overall_timeout(timeout)
    # one apply at a time per state file, from its plan to its last step: two at once would both
    # create what neither saw. A second one waits (within --timeout) and then plans what is left,
    # so overlapping pipeline runs both succeed
    with held_lock(f"{ctx.state_path()}.routing.lock", what="another routing apply", wait=limit,
                   hint="it ran past --timeout; edgectl routing history shows it"):
        _apply(ctx, provider, all_providers, yes, force, wait, limit, resume, dry_run, reason)


def _apply(ctx, provider, all_providers, yes, force, wait, limit, resume, dry_run, reason) -> None:
    from edgectl.errors import Interrupted, OperationFailed
    from edgectl.routing import journal
    from edgectl.routing.apply import ApplyOptions, check_resumable, providers_for, run
    from edgectl.routing.plan import plan_routing
    from edgectl.routing.rules import actor

    providers: dict = {}
    if resume is not None:
        if provider or all_providers or force:
            raise UsageError("--resume takes no providers or --force", hint="it sends what the journal holds")
        record = journal.get(ctx.state, journal.parse_id(resume))
        steps = journal.steps(ctx.state, record.id)
        left = [s for s in steps if s.state not in journal.DONE]
        unsynced = wait and any(s.state == "applied" for s in steps)
        if dry_run or not (left or unsynced):
            ctx.out.show([s.to_record() for s in left], View(STEP_COLUMNS, empty=f"apply {record.id}: nothing left to send"))
            return
        providers = providers_for(ctx.state, ctx.config, record)
        try:
            check_resumable(ctx.state, record, providers)
        except BaseException:
            for built in providers.values():
                built.close()
            raise
        journal.claim(ctx.state, record)
        ctx.out.note(f"resuming routing apply {record.id}")
    else:
        plan = plan_routing(ctx.state, ctx.config, provider, all_providers=all_providers, providers=providers)
        go_on = False
        try:
            ctx.out.preview(plan.rows(), STEERING_COLUMNS, empty="no changes: the providers publish the rules")
            for line in _plan_lines(plan.to_record()):
                ctx.out.note(line)
            if plan.empty or dry_run:
                ctx.out.show({**_plan_record(plan), "applied": False, "dry_run": dry_run}, View(body=False))
                return
            plan.raise_if_unsafe(force=force)
            counts = ", ".join(f"{n} to {a}" for a, n in plan.counts().items() if n)
            confirm(f"apply this plan ({counts})?", yes)
            go_on = True
        finally:
            if not go_on:
                for built in providers.values():
                    built.close()
        record = journal.create(ctx.state, plan, actor=actor(), reason=reason)
        journal.claim(ctx.state, record)
        ctx.out.info(f"routing apply {record.id}: {sum(len(p.steps) for p in plan.providers)} step(s) journaled")
    resume_hint = f"resume it: edgectl routing apply --resume {record.id}"
    try:
        report = run(ctx.state, record, providers, ApplyOptions(wait=wait, timeout=limit), progress=ctx.out.info)
    except KeyboardInterrupt:
        raise Interrupted(f"routing apply {record.id} interrupted; what was sent is journaled", hint=resume_hint) from None
    finally:
        for built in providers.values():
            built.close()
    data = report.to_record()
    ctx.out.show(data, View(STEP_COLUMNS, rows=lambda r: r["steps"], notes=_apply_report_lines))
    if not report.ok:
        failed = [s for s in report.steps if s["state"] not in journal.DONE]
        first = next((s for s in failed if s["last_error"]), failed[0] if failed else None)
        why = f": {first['provider']}: {first['last_error'] or first['state']}" if first else ""
        raise OperationFailed(f"routing apply {record.id}: {len(failed)} step(s) not applied{why}", hint=resume_hint)
    if wait and report.status != "synced":
        raise OperationFailed(f"routing apply {record.id}: applied, not yet in sync when the wait ended",
                              hint=f"check it: edgectl routing show {record.id}")


@app.command("history")
def routing_history(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000, help="At most this many.")] = 50,
) -> None:
    """Recent routing applies, newest first."""
    from edgectl.routing import journal

    ctx = current()
    ctx.out.show([a.to_record() for a in journal.history(ctx.state, limit)],
                 View(APPLY_HISTORY_COLUMNS, empty="no routing applies yet"))


def _draw_apply(out, data: dict) -> None:
    out.record({k: v for k, v in data.items() if k not in ("steps", "plan")}, APPLY_HISTORY_COLUMNS)
    out.records(data["steps"], STEP_COLUMNS, empty="no steps")


@app.command("show")
def routing_show(apply_id: Annotated[str, typer.Argument(metavar="ID", help="Apply id, from routing history.")]) -> None:
    """One routing apply: the plan it applied and every step's state, provider id, attempts and last error."""
    from edgectl.routing import journal

    ctx = current()
    record = journal.get(ctx.state, journal.parse_id(apply_id))
    data = {**record.to_record(), "plan": record.plan,
            "steps": [s.to_record() for s in journal.steps(ctx.state, record.id)]}
    ctx.out.show(data, View(draw=_draw_apply))
