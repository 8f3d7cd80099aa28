"""`edgectl analytics alerts`: threshold rules over the metrics history, checked from cron, posted to webhooks."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgectl.cli.context import current
from edgectl.cli.options import Reason, Since, Timeout, overall_timeout, since_window
from edgectl.errors import EXIT_CONDITION, OperationFailed, UsageError
from edgectl.output import Column, View

app = typer.Typer(help="Alert rules over the metrics history: add, list, show, remove, silence, check, history.",
                  no_args_is_help=True, add_completion=False)

Name = Annotated[str, typer.Argument(metavar="NAME", help="The alert's name.")]
RULE_COLUMNS = [
    Column("name"),
    Column("metric"),
    Column("condition"),
    Column("by"),
    Column("severity"),
    Column("webhook"),
    Column("cooldown"),
    Column("firing", justify="right"),
    Column("silenced_until_text", "SILENCED UNTIL"),
]
INSTANCE_COLUMNS = [
    Column("alert"),
    Column("group"),
    Column("state"),
    Column("value_text", "VALUE", justify="right"),
    Column("condition"),
    Column("starts_at", "SINCE", kind="time"),
    Column("change"),
    Column("notification", "NOTIFIED"),
]
HISTORY_COLUMNS = [
    Column("at", kind="time"),
    Column("alert"),
    Column("status"),
    Column("labels", kind="map"),
    Column("value_text", "VALUE", justify="right"),
    Column("threshold_text", "THRESHOLD", justify="right"),
    Column("starts_at", "SINCE", kind="time"),
]
RULE_FIELDS = [Column("silenced", kind="bool"), Column("created_at", kind="time")]
STATES = {"nodata": "no data"}


def _until(moment) -> str:
    """A silence's end as a time, not rounded to "in 1h"."""
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else ""


def _rule_row(record: dict) -> dict:
    return {**record, "silenced_until_text": _until(record["silenced_until"])}


def _row(record: dict) -> dict:
    """An instance as a table shows it: its state in words, silences said."""
    state = STATES.get(record["evaluation"], record["evaluation"])
    if record["silenced"] and record["evaluation"] == "firing":
        state += " (silenced)"
    return {**record, "state": state}


@app.command("add")
def alerts_add(
    name: Name,
    metric: Annotated[str, typer.Option("--metric", metavar="METRIC", help="latency, cpu, ..., hit_ratio, error_rate.")],
    stat: Annotated[Optional[str], typer.Option("--stat", metavar="STAT",
                                                help="p50, p95, p99 (any pNN), avg, min, max, count, sum.")] = None,
    by: Annotated[Optional[str], typer.Option("--by", metavar="node|region|country|provider",
                                              help="One alert per group, each with its own labels.")] = None,
    above: Annotated[Optional[str], typer.Option("--above", metavar="VALUE", help="Fire above this, e.g. 200ms.")] = None,
    below: Annotated[Optional[str], typer.Option("--below", metavar="VALUE", help="Fire below this, e.g. 0.9 or 90%.")] = None,
    for_: Annotated[str, typer.Option("--for", metavar="DURATION",
                                      help="Pending until the condition has held this long; 0 fires at once.")] = "5m",
    severity: Annotated[str, typer.Option("--severity", metavar="critical|warning|info")] = "warning",
    webhook: Annotated[Optional[str], typer.Option("--webhook", metavar="env:VAR|URL",
                                                   help="Where to post; a URL with a secret in it by reference.")] = None,
    webhook_format: Annotated[str, typer.Option("--webhook-format", metavar="auto|alertmanager|slack",
                                                help="auto: Slack's for hooks.slack.com, else Alertmanager's.")] = "auto",
    cooldown: Annotated[str, typer.Option("--cooldown", metavar="DURATION",
                                          help="No new firing notification within this long of the last.")] = "30m",
) -> None:
    """Add an alert rule; `alerts check` evaluates it.

    Thresholds are read in the metric's unit: --above 200ms or 1.5s for latency, --below 0.9 or 90%
    for hit_ratio. The alert is pending until the condition has held at every minute with samples
    for the whole --for, and fires only then.
    """
    from edgectl.analytics import alerts
    from edgectl.analytics.notify import webhook_problem

    ctx = current()
    if (above is None) == (below is None):
        raise UsageError("give one of --above or --below", hint="e.g. --above 200ms, or --below 90% for hit_ratio")
    alerts.metric_unit(metric)  # a metric edgectl records, before what is said about it
    rule = alerts.Rule(
        name=alerts.parse_alert_name(name),
        metric=metric,
        stat=alerts.parse_stat(stat, metric),
        op="above" if above is not None else "below",
        threshold=alerts.parse_threshold(above if above is not None else below, metric,
                                         what="--above" if above is not None else "--below"),
        for_seconds=alerts.parse_for(for_),
        by=by or "",
        severity=severity,
        webhook=alerts.check_webhook(webhook) if webhook is not None else None,
        webhook_format=webhook_format,
        cooldown_seconds=alerts.parse_window(cooldown, what="--cooldown", low=0, high=30 * 86400),
    )
    rule = alerts.add_rule(ctx.state, rule)
    ctx.out.note(f"added alert {rule.name}: {rule.metric} {rule.condition}" + (f" by {rule.by}" if rule.by else ""))
    problem = webhook_problem(rule.webhook, alert=rule.name) if rule.webhook else None
    if problem:  # kept all the same: the checks may run where it is set (cron's environment)
        ctx.out.warn(f"{problem}: a check run here could not notify (exit 1); the rule is kept, "
                     "as cron's environment may differ")
    ctx.out.show({**rule.to_record(), "firing": 0}, View(RULE_COLUMNS, rows=lambda r: [_rule_row(r)]))


@app.command("list")
def alerts_list() -> None:
    """Every alert rule, with how many of its alerts fire."""
    from edgectl.analytics import alerts

    ctx = current()
    counts: dict[str, int] = {}
    for instance in alerts.firing(ctx.state):
        counts[instance.rule.name] = counts.get(instance.rule.name, 0) + 1
    rows = [{**rule.to_record(), "firing": counts.get(rule.name, 0)} for rule in alerts.list_rules(ctx.state)]
    ctx.out.show(rows, View(RULE_COLUMNS, rows=lambda r: [_rule_row(row) for row in r],
                            empty="no alert rules; add one with edgectl analytics alerts add"))


def _draw_show(out, record: dict) -> None:
    rule = {k: v for k, v in record.items() if k != "instances"}
    rule["silenced_until"] = _until(rule["silenced_until"])
    out.record(rule, RULE_FIELDS)
    out.records([_row(i) for i in record["instances"]], INSTANCE_COLUMNS, empty="not checked yet")


@app.command("show")
def alerts_show(name: Name) -> None:
    """One rule and its alerts as the last check left them."""
    from edgectl.analytics import alerts

    ctx = current()
    rule = alerts.get_rule(ctx.state, name)
    found = alerts.instances(ctx.state, rule)
    record = {**rule.to_record(), "firing": sum(1 for i in found if i.evaluation == "firing"),
              "instances": [i.to_record() for i in found]}
    ctx.out.show(record, View(draw=_draw_show, rows=lambda r: r["instances"]))


@app.command("remove")
def alerts_remove(name: Name) -> None:
    """Remove a rule; its events stay in the history."""
    from edgectl.analytics import alerts

    ctx = current()
    rule = alerts.remove_rule(ctx.state, name)
    ctx.out.show({"name": rule.name, "removed": True}, View(text=lambda r: f"removed alert {r['name']}"))


@app.command("silence")
def alerts_silence(
    name: Name,
    for_: Annotated[str, typer.Option("--for", metavar="DURATION", help="How long, e.g. 2h.")],
    reason: Reason = None,
) -> None:
    """Mute a rule's firing notifications for a while (its events are still recorded; resolutions are still told)."""
    from edgectl.analytics import alerts

    ctx = current()
    seconds = alerts.parse_window(for_, what="--for", low=60, high=30 * 86400)
    rule = alerts.silence(ctx.state, name, seconds, reason)
    ctx.out.show(rule.to_record(), View(text=lambda r: f"silenced alert {r['name']} until {_until(r['silenced_until'])}"))


@app.command("unsilence")
def alerts_unsilence(name: Name) -> None:
    """Lift a rule's silence now."""
    from edgectl.analytics import alerts

    ctx = current()
    rule, was = alerts.unsilence(ctx.state, name)
    ctx.out.show({**rule.to_record(), "was_silenced": was},
                 View(text=lambda r: f"alert {r['name']}: " + ("silence lifted" if was else "was not silenced")))


def _check_notes(record: dict) -> list[str]:
    alerts = record["alerts"]
    parts = [f"{record['firing']} firing"]
    if record["silenced"]:
        parts.append(f"{record['silenced']} silenced")
    pending = sum(1 for a in alerts if a["evaluation"] == "pending")
    if pending:
        parts.append(f"{pending} pending")
    nodata = sum(1 for a in alerts if a["evaluation"] == "nodata")
    if nodata:
        parts.append(f"{nodata} without data")
    sent = sum(1 for n in record["notifications"] if n["ok"])
    lines = [f"{record['rules']} rule(s), {len(alerts)} alert(s): {', '.join(parts)}"
             + (f"; {sent} notification(s) sent" if sent else "")]
    if not record["recorded"]:
        lines.append("dry run: nothing recorded or sent")
    return lines


@app.command("check")
def alerts_check(
    timeout: Timeout = "60s",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Evaluate and show; record and send nothing.")] = False,
) -> None:
    """Evaluate every rule, record firing and resolved events, and post them to the webhooks.

    Exit 3 while any alert fires (and is not silenced) and every receiver was told, 0 when none
    fires; 1 when a rule could not be evaluated or a notification could not be delivered (a
    receiver kept failing, a webhook's variable not set), firing alerts or not: the next check
    sends it again. Made for cron: with --quiet it prints nothing unless something is wrong.
    """
    from edgectl.analytics import alerts

    ctx = current()
    report = alerts.check(ctx.state, timeout=overall_timeout(timeout), record=not dry_run)
    record = report.to_record()
    ctx.out.show(record, View(INSTANCE_COLUMNS, rows=lambda r: [_row(a) for a in r["alerts"]], notes=_check_notes,
                              empty="no alert rules; add one with edgectl analytics alerts add", quiet=True))
    for problem in report.errors:
        ctx.out.warn(problem)
    for delivery in report.failed_deliveries:
        ctx.out.warn(f"alert {delivery.alert}: notification not delivered after {delivery.attempts} attempt(s): "
                     f"{delivery.error}")
    if report.errors or report.failed_deliveries:
        raise OperationFailed(_check_failure(report),
                              hint="the warnings above say why; the next check tries the notifications again")
    if report.firing:
        raise typer.Exit(EXIT_CONDITION)


def _check_failure(report) -> str:
    """`1 alert(s) firing, and 1 notification(s) not delivered: slow-edge (1 firing) to env:HOOK`."""
    firing = f"{len(report.firing)} alert(s) firing" if report.firing else "no alert firing"
    parts = []
    if report.errors:
        parts.append(f"{len(report.errors)} rule(s) not evaluated")
    failed = report.failed_deliveries
    if failed:
        said = []
        for delivery in failed:
            kinds = delivery.to_record()
            counts = ", ".join(f"{kinds[k]} {k}" for k in ("firing", "resolved") if kinds[k])
            said.append(f"{delivery.alert} ({counts}) to {delivery.receiver}")
        parts.append(f"{len(failed)} notification(s) not delivered: {'; '.join(said)}")
    return f"{firing}, and {', and '.join(parts)}"


@app.command("history")
def alerts_history(
    name: Annotated[Optional[str], typer.Argument(metavar="[NAME]", help="Only this alert's events.")] = None,
    since: Since = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="At most N events, the newest first.")] = 100,
) -> None:
    """Firing and resolved events, the newest first (a removed rule's included)."""
    from datetime import datetime, timezone

    from edgectl.analytics import alerts
    from edgectl.parse import parse_positive_int

    ctx = current()
    parse_positive_int(limit, what="--limit", maximum=100_000)
    start = datetime.fromtimestamp(since_window(since)[0] / 1000, timezone.utc) if since is not None else None
    events = alerts.history(ctx.state, name, since=start, limit=limit)
    ctx.out.show([e.to_record() for e in events], View(HISTORY_COLUMNS, empty="no alert events"))
