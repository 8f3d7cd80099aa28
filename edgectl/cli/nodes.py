"""`edgectl nodes`: the inventory of edge nodes, their status and their health."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.cli.options import DryRun, Labels, Reason, Since, Yes, apply_declared
from edgectl.errors import OperationFailed, UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("nodes"), no_args_is_help=True, add_completion=False)

NODE_COLUMNS = [
    Column("name"),
    Column("status", kind="status"),
    Column("region"),
    Column("country"),
    Column("city"),
    Column("endpoint"),
    Column("last_check_at", "LAST CHECK", kind="time"),
    Column("last_latency_ms", "LATENCY", kind="ms", justify="right"),
    Column("last_heartbeat", "HEARTBEAT", kind="time"),
    Column("stale", kind="bool"),
]
DETAIL_COLUMNS = NODE_COLUMNS + [
    Column("last_check_ok", kind="bool"),
    Column("capabilities", kind="list"),
    Column("labels", kind="map"),
    Column("resources", kind="map"),
    Column("health_metrics", kind="map"),
    Column("created_at", kind="time"),
    Column("updated_at", kind="time"),
]
EVENT_COLUMNS = [
    Column("at", kind="time"),
    Column("node"),
    Column("kind"),
    Column("old_status", "FROM", kind="status"),
    Column("new_status", "TO", kind="status"),
    Column("reason"),
    Column("details", kind="map"),
]
CHECK_COLUMNS = [
    Column("node"),
    Column("result", kind="status"),
    Column("status", kind="status"),
    Column("http_status", "HTTP", justify="right"),
    Column("latency_ms", "LATENCY", kind="ms", justify="right"),
    Column("fail_streak", "FAILS", justify="right"),
    Column("error"),
]
PLAN_COLUMNS = [Column("action", kind="status"), Column("node"), Column("summary", "CHANGES")]
DETAIL_VIEW = View(DETAIL_COLUMNS)  # a node just added or changed, in full
CHECK_VIEW = View(CHECK_COLUMNS)

# Options of `nodes add` that `nodes update` shares.
Region = Annotated[Optional[str], typer.Option("--region", help="Region name, e.g. eu-west.")]
Country = Annotated[Optional[str], typer.Option("--country", metavar="CC", help="ISO 3166-1 alpha-2 code.")]
City = Annotated[Optional[str], typer.Option("--city")]
Lat = Annotated[Optional[float], typer.Option("--lat", help="Latitude, -90..90.")]
Lon = Annotated[Optional[float], typer.Option("--lon", help="Longitude, -180..180.")]
Capabilities = Annotated[Optional[list[str]], typer.Option("--capability", "-c", help="Capability; repeatable.")]
MaxConcurrent = Annotated[Optional[int], typer.Option("--max-concurrent", metavar="N")]
HealthPath = Annotated[Optional[str], typer.Option("--health-path", metavar="PATH", help="Default: nodes.health_path.")]
Token = Annotated[Optional[str], typer.Option("--token", metavar="REF", help="Bearer token as env:VAR or file:PATH.")]
Address = Annotated[Optional[str], typer.Option("--address", metavar="IP|HOST", help="Where DNS and load balancers point for it (IPv4: A, IPv6: AAAA, a hostname: CNAME). Default: the endpoint's host.")]


def _interval(name: str, option: Optional[str], key: str) -> float:
    from edgectl.parse import parse_duration

    if option is not None:
        return parse_duration(option, what=name)
    return current().config.setting(key)


def _heartbeat_interval() -> float:
    return current().config.setting("nodes.heartbeat_interval")


@app.command("add")
def nodes_add(
    name: Annotated[str, typer.Argument(help="Node name: lower-case letters, digits, '.', '_', '-'.")],
    endpoint: Annotated[str, typer.Option("--endpoint", "-e", help="Base URL, e.g. https://edge-fra-1.example.net.")],
    address: Address = None,
    region: Region = None,
    country: Country = None,
    city: City = None,
    lat: Lat = None,
    lon: Lon = None,
    capability: Capabilities = None,
    max_concurrent: MaxConcurrent = None,
    health_path: HealthPath = None,
    token: Token = None,
    label: Labels = None,
    reason: Reason = None,
) -> None:
    """Register an edge node."""
    from edgectl.nodes.inventory import add_node, build_spec
    from edgectl.parse import parse_labels

    ctx = current()
    spec = build_spec({
        "name": name, "endpoint": endpoint, "address": address, "region": region, "country": country, "city": city,
        "lat": lat, "lon": lon, "capabilities": capability or [], "labels": parse_labels(label),
        "max_concurrent": max_concurrent, "health_path": health_path, "token": token,
    })
    node = add_node(ctx.state, spec, reason=reason)
    ctx.out.note(f"added node {node.name}")
    ctx.out.show(node.to_record(), DETAIL_VIEW)


@app.command("list")
def nodes_list(
    status: Annotated[Optional[str], typer.Option("--status", help="active, draining, maintenance, inactive, failed or stale.")] = None,
    region: Region = None,
    country: Country = None,
    capability: Annotated[Optional[str], typer.Option("--capability", "-c")] = None,
    label: Labels = None,
) -> None:
    """List nodes, with filters."""
    from edgectl.nodes.inventory import NodeFilter, list_nodes
    from edgectl.parse import parse_labels

    ctx = current()
    flt = NodeFilter(status=status, region=region, country=country, capability=capability, labels=parse_labels(label))
    nodes = list_nodes(ctx.state, flt, heartbeat_interval=_heartbeat_interval())
    ctx.out.show([n.to_record() for n in nodes], View(NODE_COLUMNS, empty="no nodes match"))


@app.command("show")
def nodes_show(name: Annotated[str, typer.Argument()]) -> None:
    """Show one node in full, with its latest events."""
    from edgectl.nodes.inventory import get_node, node_events

    ctx = current()
    node = get_node(ctx.state, name, heartbeat_interval=_heartbeat_interval())
    record = node.to_record()
    events = node_events(ctx.state, name, limit=5)
    record["recent_events"] = [e.to_record() for e in events]
    ctx.out.show(record, SHOW_VIEW)


def _draw_node(out, record: dict) -> None:
    """The node's fields, then its latest events as a table of their own."""
    out.record({k: v for k, v in record.items() if k != "recent_events"}, DETAIL_COLUMNS)
    if record["recent_events"]:
        out.note("")
        out.records(record["recent_events"], EVENT_COLUMNS)


SHOW_VIEW = View(draw=_draw_node)


@app.command("update")
def nodes_update(
    name: Annotated[str, typer.Argument()],
    endpoint: Annotated[Optional[str], typer.Option("--endpoint", "-e")] = None,
    address: Address = None,
    region: Region = None,
    country: Country = None,
    city: City = None,
    lat: Lat = None,
    lon: Lon = None,
    capability: Annotated[Optional[list[str]], typer.Option("--capability", "-c", help="Add a capability; repeatable.")] = None,
    remove_capability: Annotated[Optional[list[str]], typer.Option("--remove-capability", metavar="X")] = None,
    max_concurrent: MaxConcurrent = None,
    health_path: HealthPath = None,
    token: Token = None,
    label: Annotated[Optional[list[str]], typer.Option("--label", "-l", metavar="K=V", help="Set a label; repeatable.")] = None,
    remove_label: Annotated[Optional[list[str]], typer.Option("--remove-label", metavar="K")] = None,
    clear: Annotated[Optional[list[str]], typer.Option("--clear", metavar="FIELD",
                                                       help="Unset a field: address, region, country, city, location, max_concurrent, health_path, token.")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="active or inactive: take a node out of service or back.")] = None,
    reason: Reason = None,
) -> None:
    """Change a node's fields; the change is kept in its events."""
    from edgectl.nodes.inventory import check_admin_status, get_node, set_admin_status, update_node
    from edgectl.parse import parse_labels

    ctx = current()
    # everything read and written under one write lock: `--capability a` and `--capability b`
    # run at once both land
    with ctx.state.db.atomic():
        node = get_node(ctx.state, name)
        if status is not None:
            check_admin_status(status)
        changes: dict = {}
        for key, value in (("endpoint", endpoint), ("address", address), ("region", region), ("country", country),
                           ("city", city),
                           ("max_concurrent", max_concurrent), ("health_path", health_path), ("token", token)):
            if value is not None:
                changes[key] = value
        if lat is not None or lon is not None:
            changes["lat"] = lat if lat is not None else node.lat
            changes["lon"] = lon if lon is not None else node.lon
        clearable = {"address", "region", "country", "city", "location", "max_concurrent", "health_path", "token"}
        for item in clear or []:
            if item not in clearable:
                raise UsageError(f"--clear {item}: not a field that can be cleared", hint=f"fields: {', '.join(sorted(clearable))}")
            if item == "location":
                changes.update(lat=None, lon=None)
            else:
                changes[item] = None
        if capability or remove_capability:
            caps = [c for c in node.capabilities if c not in {x.lower() for x in remove_capability or []}]
            changes["capabilities"] = caps + [c for c in capability or [] if c not in caps]
        if label or remove_label:
            labels = {k: v for k, v in node.labels.items() if k not in set(remove_label or [])}
            labels.update(parse_labels(label))
            changes["labels"] = labels
        if not changes and status is None:
            raise UsageError("nothing to update", hint="give at least one option, e.g. --region eu-west")
        node, diff = update_node(ctx.state, name, changes, reason=reason) if changes else (node, {})
        if status is not None:
            node = set_admin_status(ctx.state, name, status, reason=reason)
    ctx.out.note(f"updated node {name}: {', '.join(diff) or 'no field changed'}" + (f"; status {node.status}" if status else ""))
    ctx.out.show(get_node(ctx.state, name).to_record(), DETAIL_VIEW)


@app.command("remove")
def nodes_remove(
    name: Annotated[str, typer.Argument()],
    force: Annotated[bool, typer.Option("--force", help="Remove even while something still references it.")] = False,
    reason: Reason = None,
) -> None:
    """Decommission a node; its events and metrics stay."""
    from edgectl.nodes.inventory import remove_node

    ctx = current()
    node, disabled = remove_node(ctx.state, ctx.config, name, force=force, reason=reason)
    ctx.out.note(f"removed node {name}")
    for rule in disabled:
        ctx.out.warn(f"routing rule {rule.id} ({rule.source} -> {rule.target}) disabled: it used node {name}")
    ctx.out.show({"name": node.name, "removed": True, "removed_at": node.removed_at,
                  "disabled_rules": [rule.id for rule in disabled]}, View())


def _status_command(action, name: str, reason: Optional[str], verb: str) -> None:
    from edgectl.nodes.inventory import get_node

    ctx = current()
    before = get_node(ctx.state, name).status
    node = action(ctx.state, name, reason=reason)
    ctx.out.show({"name": name, "previous_status": before, "status": node.status, "changed": node.status != before},
                 View(text=lambda r: f"{verb} node {name}: {before} -> {r['status']}" if r["changed"]
                      else f"node {name} is already {r['status']}"))


@app.command("drain")
def nodes_drain(name: Annotated[str, typer.Argument()], reason: Reason = None) -> None:
    """Stop sending new work to a node (status draining)."""
    from edgectl.nodes.inventory import drain_node

    _status_command(drain_node, name, reason, "draining")


@app.command("undrain")
def nodes_undrain(name: Annotated[str, typer.Argument()], reason: Reason = None) -> None:
    """Put a draining node back in service."""
    from edgectl.nodes.inventory import undrain_node

    _status_command(undrain_node, name, reason, "undrained")


@app.command("maintenance")
def nodes_maintenance(
    name: Annotated[str, typer.Argument()],
    mode: Annotated[str, typer.Argument(metavar="on|off")],
    reason: Reason = None,
) -> None:
    """Put a node in maintenance, or take it out."""
    from edgectl.nodes.inventory import set_maintenance

    if mode not in ("on", "off"):
        raise UsageError(f"maintenance takes on or off, not {mode!r}")
    _status_command(lambda state, n, reason: set_maintenance(state, n, mode == "on", reason=reason), name, reason,
                    "maintenance" if mode == "on" else "maintenance over for")


@app.command("events")
def nodes_events(
    name: Annotated[Optional[str], typer.Argument(help="Only this node's events.")] = None,
    since: Since = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="At most N, the newest.")] = None,
) -> None:
    """Status changes and edits, oldest first."""
    from edgectl.nodes.inventory import node_events
    from edgectl.parse import parse_duration
    from edgectl.timeutil import ago

    ctx = current()
    cutoff = ago(parse_duration(since, what="--since")) if since else None
    events = node_events(ctx.state, name, since=cutoff, limit=limit)
    ctx.out.show([e.to_record() for e in events], View(EVENT_COLUMNS, empty="no events"))


@app.command("check")
def nodes_check(
    names: Annotated[Optional[list[str]], typer.Argument(metavar="[NAME]...", help="Nodes to probe.")] = None,
    all_nodes: Annotated[bool, typer.Option("--all", help="Probe every node.")] = False,
    label: Labels = None,
    region: Region = None,
    timeout: Annotated[Optional[str], typer.Option("--timeout", metavar="DURATION", help="Per probe, all of it. Default: nodes.check_timeout.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, help="Probes in flight. Default: nodes.check_concurrency.")] = None,
    fail_after: Annotated[Optional[int], typer.Option("--fail-after", min=1, metavar="N", help="Failures in a row that mark a node failed.")] = None,
    recover_after: Annotated[Optional[int], typer.Option("--recover-after", min=1, metavar="M", help="Successes in a row that bring it back.")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Repeat until interrupted.")] = False,
    interval: Annotated[str, typer.Option("--interval", metavar="DURATION", help="Pause between rounds with --watch.")] = "5s",
) -> None:
    """Probe node health; N failures mark a node failed, M successes bring it back. Exit 1 if any is failed."""
    from edgectl.nodes.health import CheckSettings, check_nodes
    from edgectl.nodes.inventory import NodeFilter, get_nodes, list_nodes
    from edgectl.parse import parse_duration, parse_labels

    ctx = current()
    config = ctx.config
    if names and (all_nodes or label or region):
        raise UsageError("name nodes or select them with --all/--label/--region, not both")
    if not names and not (all_nodes or label or region):
        raise UsageError("which nodes?", hint="name them, or pass --all, --label k=v or --region R")
    settings = CheckSettings(
        timeout=_interval("--timeout", timeout, "nodes.check_timeout"),
        concurrency=concurrency or config.setting("nodes.check_concurrency"),
        fail_after=fail_after or config.setting("nodes.fail_after"),
        recover_after=recover_after or config.setting("nodes.recover_after"),
        default_path=config.setting("nodes.health_path"),
    )
    if settings.timeout <= 0:
        raise UsageError("--timeout must be more than zero")
    pause = parse_duration(interval, what="--interval")
    flt = NodeFilter(labels=parse_labels(label), region=region)

    def select():
        return get_nodes(ctx.state, names) if names else list_nodes(ctx.state, flt)

    def one_round():
        nodes = select()
        if not nodes:
            raise UsageError("no nodes to check", hint="edgectl nodes list shows the registered nodes")
        outcomes = check_nodes(ctx.state, config, nodes, settings)
        for o in outcomes:
            if o.changed:
                ctx.out.note(f"node {o.node}: {o.previous_status} -> {o.status}")
        return outcomes

    if not watch:
        outcomes = one_round()
        ctx.out.show([o.to_record() for o in outcomes], CHECK_VIEW)
        failed = [o.node for o in outcomes if o.status == "failed"]
        if failed:
            raise OperationFailed(f"{len(failed)} of {len(outcomes)} node(s) failed: {', '.join(failed[:10])}"
                                  + (" ..." if len(failed) > 10 else ""), hint="edgectl nodes events shows why")
        return
    _watch(one_round, pause)


def _watch(one_round, pause: float) -> None:
    import time

    ctx = current()
    if ctx.out.interactive:
        from rich.live import Live

        from edgectl.parse import format_duration

        with Live(console=ctx.out.console(), auto_refresh=False) as live:
            rounds = 0
            while True:
                rows = [o.to_record() for o in one_round()]
                rounds += 1
                caption = (f"round {rounds} at {time.strftime('%H:%M:%S')}; every {format_duration(pause)}; "
                           "Ctrl-C to stop")
                live.update(ctx.out.table(rows, CHECK_COLUMNS, caption=caption), refresh=True)
                time.sleep(pause)
    while True:
        ctx.out.show([o.to_record() for o in one_round()], CHECK_VIEW)
        time.sleep(pause)


@app.command("heartbeat")
def nodes_heartbeat(
    name: Annotated[str, typer.Argument()],
    cpu: Annotated[Optional[float], typer.Option("--cpu", metavar="PERCENT")] = None,
    memory: Annotated[Optional[float], typer.Option("--memory", metavar="PERCENT")] = None,
    disk: Annotated[Optional[float], typer.Option("--disk", metavar="PERCENT")] = None,
    network: Annotated[Optional[float], typer.Option("--network", metavar="MBPS")] = None,
    json_file: Annotated[Optional[str], typer.Option("--json-file", metavar="FILE|-",
                                                     help="A JSON report: cpu_percent, memory_percent, disk_percent, network_mbps, resources.")] = None,
) -> None:
    """Record a node's report of itself (its agent calls this)."""
    import json
    import sys

    from edgectl.nodes.inventory import parse_health_report, record_heartbeat

    ctx = current()
    report: dict = {}
    if json_file:
        where = "stdin" if json_file == "-" else json_file
        try:
            text = sys.stdin.read() if json_file == "-" else open(json_file, encoding="utf-8").read()
            report = json.loads(text)
        except OSError as exc:
            raise UsageError(f"cannot read {where}: {exc.strerror}") from None
        except ValueError as exc:
            raise UsageError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(report, dict):
        raise UsageError(f"{json_file}: expected a JSON object")
    for key, value in (("cpu_percent", cpu), ("memory_percent", memory), ("disk_percent", disk), ("network_mbps", network)):
        if value is not None:
            report[key] = value
    metrics, resources = parse_health_report(report, json_file or "heartbeat")
    node = record_heartbeat(ctx.state, name, metrics, resources)
    ctx.out.note(f"heartbeat recorded for {name}")
    ctx.out.show({"name": node.name, "last_heartbeat": node.last_heartbeat, "health_metrics": node.health_metrics},
                 View([Column("last_heartbeat", kind="time"), Column("health_metrics", kind="map")]))


@app.command("export")
def nodes_export(
    fmt: Annotated[Optional[str], typer.Option("--format", help="toml or json (default: json under -o json, else toml).")] = None,
) -> None:
    """Write the inventory as a file that `nodes apply` reads back."""
    import sys

    from edgectl.nodes.declarative import export_inventory
    from edgectl.nodes.inventory import list_nodes

    if fmt is None:
        fmt = "json" if current().out.fmt in ("json", "jsonl") else "toml"
    if fmt not in ("toml", "json"):
        raise UsageError(f"--format takes toml or json, not {fmt!r}")
    sys.stdout.write(export_inventory(list_nodes(current().state), fmt))


@app.command("apply")
def nodes_apply(
    file: Annotated[str, typer.Option("--file", "-f", metavar="FILE|-", help="Inventory file (TOML or JSON).")],
    prune: Annotated[bool, typer.Option("--prune", help="Remove nodes the file does not list.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Allow --prune to remove every node (an empty file).")] = False,
    yes: Yes = False,
    dry_run: DryRun = False,
) -> None:
    """Make the inventory match a file: the plan is shown first, then applied."""
    from edgectl.declarative import read_file
    from edgectl.nodes.declarative import apply_inventory, parse_inventory, plan_inventory

    ctx = current()
    text, source = read_file(file)
    specs = parse_inventory(text, source)
    plan = plan_inventory(ctx.state, specs, prune=prune)
    plan.raise_if_unsafe(force=force, source=source)
    apply_declared(plan, PLAN_COLUMNS, empty="no changes: the inventory matches the file", yes=yes, dry_run=dry_run,
                   apply=lambda: apply_inventory(ctx.state, ctx.config, plan, source=source))
