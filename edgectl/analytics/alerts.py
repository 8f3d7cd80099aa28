"""Alert rules over the metrics history: their thresholds, evaluation, firing and resolved events, and silences.

A rule watches one statistic of a metric (latency p95, cpu avg, the hit ratio...) for the whole
estate or, with `by`, for each node, region, country or provider, each group being one alert
instance with its own labels and fingerprint.

`for` means what Prometheus's `for` means: an alert is pending until its condition has held at
every evaluation for the whole `for`, and only then fires. An evaluation is one minute's statistic
over that minute's rollups, made at the minute's end (the current minute's at the check), so what
a check says depends on the history alone: a run every five minutes, or two at once, sees what
Prometheus evaluating every minute would have seen. A check looks back past `for` for the start
of the current run of holding minutes: a minute without samples is no evaluation (probes and
warms are sparser than Prometheus's scrapes) rather than a reset, but more than `for` without
samples ends the run, so a new series, or one back after such a gap, is pending for a whole
`for` first. `for` 0 fires at the first evaluation that holds. A group without a sample in the
last `for` (at least a minute) is "no data", neither firing nor resolved. A firing alert
resolves at the first check whose latest minute does not hold, or whose run of holding minutes
is too short (it began after a gap), and fires again only after holding for `for` again.

Each check records a transition (firing, resolved) once: the stored instance is read and written
under the write lock (BEGIN IMMEDIATE), so two checks running at once find each other's events,
and an evaluation older than the stored one changes nothing. Notifications are claimed under the
same lock before they are sent, so one of two overlapping checks sends them.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from edgectl.errors import NotFound, UsageError

GROUPINGS = ("node", "region", "country", "provider")
SEVERITIES = ("critical", "warning", "info")
WEBHOOK_FORMATS = ("auto", "alertmanager", "slack")
# hit ratio and error rate: sums of two additive metrics over each minute, one over the other
DERIVED = {
    "hit_ratio": ("cache.hits", "requests", "requests answered from the cache, over all requests"),
    "error_rate": ("errors.5xx", "requests", "responses with a 5xx status, over all requests"),
}
MIN_FOR, MAX_FOR = 60, 86400  # seconds: 0 (at once), or at least one whole minute and at most a day
DEFAULT_FOR, DEFAULT_COOLDOWN = 300, 1800
MINUTE_MS = 60_000
CLAIM_MS = 10 * 60_000  # a notification claimed by a run that died is free again after this
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")
_STAT_SYNONYMS = {"mean": "avg", "average": "avg", "total": "sum", "median": "p50"}

# the units a threshold may be written in, per metric unit: suffix -> factor to the metric's unit
_SUFFIXES: dict[str, dict[str, float]] = {
    "ms": {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001},
    "percent": {"": 1.0, "%": 1.0},
    "ratio": {"": 1.0, "%": 0.01},
    "bool": {"": 1.0, "%": 0.01},
    "mbps": {"": 1.0, "mbps": 1.0, "kbps": 0.001, "gbps": 1000.0},
    "bytes": {"": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
              "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30, "tib": 2.0**40},
    "count": {"": 1.0},
}
_EXAMPLES = {"ms": "200ms or 1.5s", "percent": "90% or 90", "ratio": "0.9 or 90%", "bool": "0.5 or 50%",
             "mbps": "500mbps or 1gbps", "bytes": "10mb or 1gib", "count": "1000"}
_THRESHOLD = re.compile(r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*(?P<suffix>[a-zµ%]*)")


# ---- the rule ---------------------------------------------------------------------------------

def metric_unit(metric: str) -> str:
    """The unit a rule on this metric compares in: the catalogue's, or ratio for a derived metric."""
    from edgectl.analytics.metrics import CATALOGUE

    if metric in DERIVED:
        return "ratio"
    if metric not in CATALOGUE:
        from edgectl.parse import closest_name

        known = [*CATALOGUE, *DERIVED]
        meant = closest_name(metric, known)
        raise UsageError(f"--metric {metric!r} is not a metric edgectl records"
                         + (f" (did you mean {meant!r}?)" if meant else ""), hint=f"one of {', '.join(known)}")
    return CATALOGUE[metric].unit


def parse_stat(text: str | None, metric: str) -> str:
    """p50, p95, p99.9 (any percentile), avg, min, max, count or sum; `ratio` for a derived metric."""
    from edgectl.analytics.metrics import CATALOGUE

    if metric in DERIVED:
        if text not in (None, "ratio"):
            raise UsageError(f"--stat {text}: {metric} is a ratio of sums and has no other statistic",
                             hint=f"leave out --stat for {metric}")
        return "ratio"
    additive = CATALOGUE[metric].additive
    if text is None:
        return "sum" if additive else "p95"
    stat = _STAT_SYNONYMS.get(text.strip().lower(), text.strip().lower())
    match = _PERCENTILE.fullmatch(stat)
    if match:
        value = float(match.group(1))
        if not 0 < value <= 100:
            raise UsageError(f"--stat {text}: a percentile is above 0 and at most 100")
        if additive:
            raise UsageError(f"--stat {text}: {metric} is a count; its minutes add up rather than spread",
                             hint="use sum, count, avg, min or max")
        return f"p{value:g}"
    if stat in ("avg", "min", "max", "count", "sum"):
        return stat
    raise UsageError(f"--stat {text!r} is not a statistic", hint="p50, p90, p95, p99 (any pNN), avg, min, max, count or sum")


def parse_threshold(text: str, metric: str, *, what: str) -> float:
    """A threshold as typed (`200ms`, `1.5s`, `0.9`, `90%`), in the metric's own unit."""
    unit = metric_unit(metric)
    suffixes = _SUFFIXES.get(unit, {"": 1.0})
    example = _EXAMPLES.get(unit, "a number")
    match = _THRESHOLD.fullmatch(str(text).strip().lower())
    if not match:
        raise UsageError(f"{what} {text!r} is not a number with a unit", hint=f"{metric} is in {unit}: e.g. {what} {example}")
    suffix = match.group("suffix")
    if suffix not in suffixes:
        raise UsageError(f"{what} {text}: {metric} is measured in {unit}, not {suffix}",
                         hint=f"give it in {unit}: e.g. {what} {example}")
    value = float(match.group("number")) * suffixes[suffix]
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{what} {text}: the threshold must be a finite number, not negative")
    if unit in ("ratio", "bool") and value > 1:
        raise UsageError(f"{what} {text}: a {unit} is between 0 and 1", hint=f"e.g. {what} {example}")
    return value


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.4g}ms" if value < 1000 else f"{value / 1000:.4g}s"
    if unit == "ratio":
        return f"{value * 100:.4g}%"
    if unit == "percent":
        return f"{value:.4g}%"
    if unit == "count":
        return f"{value:.6g}"
    return f"{value:.4g} {unit}"


def parse_alert_name(text: str) -> str:
    if not _NAME.fullmatch(str(text)):
        raise UsageError(f"alert name {text!r} is not valid",
                         hint="1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return str(text)


def parse_window(text: str, *, what: str, low: int, high: int) -> int:
    from edgectl.parse import format_duration, parse_duration

    seconds = parse_duration(text, what=what)
    if not low <= seconds <= high:
        raise UsageError(f"{what} {text}: from {format_duration(low) if low else '0s'} to {format_duration(high)}")
    return int(round(seconds))


def parse_for(text: str) -> int:
    """--for in seconds: 0 fires at the first evaluation that holds, else from a minute to a day."""
    from edgectl.parse import parse_duration

    if parse_duration(text, what="--for") == 0:
        return 0
    try:
        return parse_window(text, what="--for", low=MIN_FOR, high=MAX_FOR)
    except UsageError as exc:
        raise UsageError(exc.message.replace(": from ", ": 0 (at once), or from "), hint=exc.hint) from None


def check_webhook(text: str) -> str:
    """A webhook as it may be stored: an env:/file: reference, or a plain http(s) URL that holds no secret.

    A Slack incoming webhook's path is its secret (on Slack's hosts, or a path shaped like one,
    /services/T.../B.../..., behind a proxy), and a query string or credentials usually hold one:
    those must be given by reference, so that the state file never holds them.
    """
    from urllib.parse import urlsplit

    from edgectl.analytics.notify import is_slack_host, masked_url, slack_secret_path
    from edgectl.config import is_reference
    from edgectl.parse import parse_secret_ref, parse_url

    raw = str(text).strip()
    if is_reference(raw):
        return parse_secret_ref(raw, what="--webhook")
    hint = "export the URL and pass --webhook env:NAME; the state file keeps the reference, never the URL"
    try:
        url = parse_url(raw, what="--webhook")
    except UsageError as exc:
        if "credentials" in exc.message:
            raise UsageError("--webhook: a URL with credentials in it is a secret", hint=hint) from None
        raise UsageError(f"--webhook {masked_url(raw)} is not an http(s) URL with a host",
                         hint="give an absolute http:// or https:// URL, or env:NAME") from None
    parts = urlsplit(url)
    if is_slack_host(parts.hostname) or slack_secret_path(parts.path):
        raise UsageError("--webhook: a Slack webhook URL is a secret (its path is the key)", hint=hint)
    if parts.query or parts.fragment:
        raise UsageError("--webhook: a URL with a query string usually carries a token", hint=hint)
    return url


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    stat: str
    op: str  # above | below
    threshold: float
    for_seconds: int = DEFAULT_FOR
    by: str = ""
    severity: str = "warning"
    webhook: str | None = None  # env:NAME, file:PATH or a URL without secrets; resolved when sent
    webhook_format: str = "auto"
    cooldown_seconds: int = DEFAULT_COOLDOWN
    silenced_until: datetime | None = None
    silence_reason: str | None = None
    created_at: datetime | None = None
    id: int | None = None

    def __post_init__(self) -> None:
        if self.by and self.by not in GROUPINGS:
            raise UsageError(f"--by {self.by!r}: one of {', '.join(GROUPINGS)}")
        if self.severity not in SEVERITIES:
            raise UsageError(f"--severity {self.severity!r}: one of {', '.join(SEVERITIES)}")
        if self.webhook_format not in WEBHOOK_FORMATS:
            raise UsageError(f"--webhook-format {self.webhook_format!r}: one of {', '.join(WEBHOOK_FORMATS)}")
        if self.op not in ("above", "below"):
            raise UsageError("give one of --above or --below")

    @property
    def unit(self) -> str:
        return metric_unit(self.metric)

    @property
    def measure(self) -> str:
        """What is compared: `latency p95`, or `hit_ratio` for a ratio of sums."""
        return self.metric if self.stat == "ratio" else f"{self.metric} {self.stat}"

    @property
    def condition(self) -> str:
        """`p95 above 200ms for 5m`."""
        from edgectl.parse import format_duration

        stat = "" if self.stat == "ratio" else f"{self.stat} "
        return f"{stat}{self.op} {format_value(self.threshold, self.unit)} for {format_duration(self.for_seconds)}"

    def holds(self, value: float) -> bool:
        return value > self.threshold if self.op == "above" else value < self.threshold

    def silenced(self, now: datetime) -> bool:
        return self.silenced_until is not None and self.silenced_until > now

    def to_record(self, now: datetime | None = None) -> dict[str, Any]:
        from edgectl.analytics.notify import masked_url
        from edgectl.config import is_reference
        from edgectl.parse import format_duration
        from edgectl.timeutil import utcnow

        now = now or utcnow()
        webhook = self.webhook
        if webhook and not is_reference(webhook):
            webhook = masked_url(webhook)
        return {"name": self.name, "metric": self.metric, "stat": self.stat, "by": self.by or None,
                "op": self.op, "threshold": self.threshold, "unit": self.unit, "condition": self.condition,
                "for": format_duration(self.for_seconds), "for_seconds": self.for_seconds,
                "severity": self.severity, "webhook": webhook, "webhook_format": self.webhook_format,
                "cooldown": format_duration(self.cooldown_seconds), "cooldown_seconds": self.cooldown_seconds,
                "silenced": self.silenced(now), "silenced_until": self.silenced_until if self.silenced(now) else None,
                "silence_reason": self.silence_reason if self.silenced(now) else None, "created_at": self.created_at}


_RULE_COLUMNS = ("id", "name", "metric", "stat", "by", "op", "threshold", "for_seconds", "severity", "webhook",
                 "webhook_format", "cooldown_seconds", "silenced_until", "silence_reason", "created_at")


def _rule(row: dict) -> Rule:
    from edgectl.timeutil import from_iso

    return Rule(row["name"], row["metric"], row["stat"], row["op"], row["threshold"], row["for_seconds"], row["by"],
                row["severity"], row["webhook"], row["webhook_format"], row["cooldown_seconds"],
                from_iso(row["silenced_until"]), row["silence_reason"], from_iso(row["created_at"]), row["id"])


def add_rule(state, rule: Rule) -> Rule:
    """Store a new rule; a name in use is bad input."""
    from edgectl.timeutil import to_iso, utcnow

    created = utcnow()
    with state.db.atomic():
        if state.db.execute("SELECT 1 FROM alert_rules WHERE name = ?", [rule.name]).fetchone():
            raise UsageError(f"alert {rule.name!r} already exists",
                             hint=f"remove it first (edgectl analytics alerts remove {rule.name}), or pick another name")
        cursor = state.db.execute(
            "INSERT INTO alert_rules (name, metric, stat, by, op, threshold, for_seconds, severity, webhook,"
            " webhook_format, cooldown_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [rule.name, rule.metric, rule.stat, rule.by, rule.op, rule.threshold, rule.for_seconds, rule.severity,
             rule.webhook, rule.webhook_format, rule.cooldown_seconds, to_iso(created)])
    return get_rule(state, rule.name) if cursor.lastrowid else rule


def list_rules(state) -> list[Rule]:
    return [_rule(row) for row in state.db.query(f"SELECT {', '.join(_RULE_COLUMNS)} FROM alert_rules ORDER BY name")]


def get_rule(state, name: str) -> Rule:
    rows = list(state.db.query(f"SELECT {', '.join(_RULE_COLUMNS)} FROM alert_rules WHERE name = ?", [name]))
    if not rows:
        raise NotFound(f"no alert named {name!r}", hint="edgectl analytics alerts list shows them")
    return _rule(rows[0])


def remove_rule(state, name: str) -> Rule:
    """Remove a rule and its instances; its events stay in the history."""
    with state.db.atomic():
        rule = get_rule(state, name)
        state.db.execute("DELETE FROM alert_instances WHERE rule_id = ?", [rule.id])
        state.db.execute("DELETE FROM alert_rules WHERE id = ?", [rule.id])
    return rule


def silence(state, name: str, seconds: float, reason: str | None = None) -> Rule:
    """Mute a rule's notifications until now + seconds; its events are still recorded."""
    from datetime import timedelta

    from edgectl.timeutil import to_iso, utcnow

    with state.db.atomic():
        rule = get_rule(state, name)
        state.db.execute("UPDATE alert_rules SET silenced_until = ?, silence_reason = ? WHERE id = ?",
                         [to_iso(utcnow() + timedelta(seconds=seconds)), reason, rule.id])
    return get_rule(state, name)


def unsilence(state, name: str) -> tuple[Rule, bool]:
    """Lift a rule's silence; the second value says whether it was silenced."""
    from edgectl.timeutil import utcnow

    with state.db.atomic():
        rule = get_rule(state, name)
        state.db.execute("UPDATE alert_rules SET silenced_until = NULL, silence_reason = NULL WHERE id = ?", [rule.id])
    return get_rule(state, name), rule.silenced(utcnow())


# ---- evaluation -------------------------------------------------------------------------------

def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus's label-set fingerprint (FNV-1a 64 over the sorted names and values, each followed
    by 0xff), as Alertmanager writes it: 16 hex digits, the same for the same labels on every run."""
    value = 0xcbf29ce484222325
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8") + b"\xff":
                value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def alert_labels(rule: Rule, group: str) -> dict[str, str]:
    labels = {"alertname": rule.name, "severity": rule.severity}
    if rule.by:
        labels[rule.by] = group
    return labels


@dataclass
class Evaluation:
    """One alert instance at one check: what the minutes of its current run say."""

    rule: Rule
    group: str  # the node, region... it is about; '' for a rule without `by`
    state: str  # firing | pending | ok | nodata
    value: float | None  # the latest minute's value
    held: int  # how many minutes with samples, the latest back, the condition held (as far as read)
    first_ms: int | None  # the start of the earliest of them: the condition has held since then
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)


def data_window_ms(rule: Rule) -> int:
    """How far back a sample keeps an alert in data: its `for`, and at least a minute."""
    return max(rule.for_seconds * 1000, MINUTE_MS)


def evaluated_at(minute: int, now_ms: int) -> int:
    """When the evaluation of a minute is made: at its end, the current minute's at the check."""
    return min(minute + MINUTE_MS, now_ms)


def _stat(histogram, stat: str) -> float | None:
    if not histogram.count:
        return None
    if stat.startswith("p"):
        return histogram.quantile(float(stat[1:]) / 100)
    return {"avg": lambda h: h.sum / h.count, "min": lambda h: h.min, "max": lambda h: h.max,
            "count": lambda h: float(h.count), "sum": lambda h: h.sum}[stat](histogram)


def _grouped(state, metric: str, unit: str, by: str) -> dict[int, str]:
    """Series id -> the group it belongs to (series without a value for `by` belong to none)."""
    from edgectl.analytics.store import series_matching

    series = series_matching(state, metric, unit=unit)
    return {sid: (row[by] if by else "") for sid, row in series.items() if not by or row[by]}


def _minute(state, rule: Rule, series: list[dict[int, str]], minute: int) -> dict[str, float]:
    """The rule's statistic per group over one minute, for the groups with samples in it."""
    from edgectl.analytics.histogram import Histogram
    from edgectl.analytics.store import window_histograms

    if rule.metric in DERIVED:
        sums: dict[str, list[float]] = {}
        for side, groups in enumerate(series):
            for sid, histogram in window_histograms(state, groups, minute, minute + MINUTE_MS).items():
                if histogram.count:
                    sums.setdefault(groups[sid], [0.0, 0.0])[side] += histogram.sum
        return {group: top / bottom for group, (top, bottom) in sums.items() if bottom > 0}
    [groups] = series
    merged: dict[str, Histogram] = {}
    for sid, histogram in window_histograms(state, groups, minute, minute + MINUTE_MS).items():
        if histogram.count:
            merged.setdefault(groups[sid], Histogram()).merge(histogram)
    return {group: _stat(histogram, rule.stat) for group, histogram in merged.items()}


@dataclass
class _Run:
    """A group's run of holding minutes, as read so far from the latest minute back."""

    value: float  # the latest minute's value
    first: int | None = None  # the earliest holding minute read so far
    held: int = 0
    reaches: bool = False  # its first evaluation is `for` ago or more: it fires
    done: bool = False  # no earlier minute can change what the run says


def evaluate(state, rule: Rule, now_ms: int, known_groups: Iterable[str] = ()) -> list[Evaluation]:
    """Each instance of the rule: the groups with samples in the window, and those already known
    (an instance whose samples stopped is `nodata`, not resolved).

    The minutes are read from the latest back, past the window where a run needs it: a group is
    read no further once a minute of it does not hold, once its run's first evaluation is `for`
    ago (it fires), or once more than `for` without samples ends its run (it is pending). A
    healthy estate costs one minute's read, a firing group its `for`, a pending one at most twice.
    """
    from edgectl.analytics.metrics import CATALOGUE

    metric_unit(rule.metric)  # a stored rule on a metric no longer catalogued: bad input, said as such
    metrics = DERIVED[rule.metric][:2] if rule.metric in DERIVED else (rule.metric,)
    series = [_grouped(state, metric, CATALOGUE[metric].unit, rule.by) for metric in metrics]
    for_ms = rule.for_seconds * 1000
    window_start = now_ms - data_window_ms(rule)
    runs: dict[str, _Run] = {}
    minute = (now_ms - 1) - (now_ms - 1) % MINUTE_MS
    while True:
        reading = {group for group, run in runs.items() if not run.done}
        in_window = minute + MINUTE_MS > window_start  # a group first seen here has data
        wanted = [{sid: group for sid, group in groups.items()
                   if group in reading or (in_window and group not in runs)} for groups in series]
        if not any(wanted):
            break
        values = _minute(state, rule, wanted, minute)
        for group, value in values.items():
            run = runs.setdefault(group, _Run(value))
            if not rule.holds(value):
                run.done = True
                continue
            run.first, run.held = minute, run.held + 1
            if evaluated_at(minute, now_ms) <= now_ms - for_ms:
                run.reaches = run.done = True
        for group in reading - set(values):
            run = runs[group]
            if run.first - (minute - MINUTE_MS) > for_ms + MINUTE_MS:  # a gap longer than `for`
                run.done = True
        minute -= MINUTE_MS
    groups = sorted(set(runs) | set(known_groups)) or ([""] if not rule.by else [])
    out = []
    for group in groups:
        run = runs.get(group)
        if run is None:
            status = "nodata"
        elif not run.held:
            status = "ok"
        else:
            status = "firing" if run.reaches else "pending"
        out.append(Evaluation(rule, group, status, run.value if run else None, run.held if run else 0,
                              run.first if run else None, alert_labels(rule, group)))
    return out


# ---- checks: transitions, events, notifications ------------------------------------------------

@dataclass
class Instance:
    """An alert instance as recorded after a check."""

    rule: Rule
    labels: dict[str, str]
    fingerprint: str
    status: str  # firing | inactive: the episode
    evaluation: str  # firing | pending | ok | nodata: what the last check saw
    value: float | None
    starts_at: datetime | None
    ends_at: datetime | None
    evaluated_at: datetime
    notified_status: str | None = None
    notified_at: datetime | None = None
    notify_error: str | None = None
    change: str | None = None  # fired | resolved, when this check recorded the transition
    notification: str | None = None  # sent | failed | claimed | cooldown | silenced, for this check
    held: int | None = None  # minutes with samples, the latest back, that held at this check

    @property
    def group(self) -> str:
        return self.labels.get(self.rule.by, "") if self.rule.by else ""

    @property
    def silenced(self) -> bool:
        return self.rule.silenced(self.evaluated_at)

    def summary(self) -> str:
        """`latency p95 312.4ms on node fra-1 (p95 above 200.0ms for 5m)`."""
        where = f" on {self.rule.by} {self.group}" if self.rule.by else ""
        return f"{self.rule.measure} {format_value(self.value, self.rule.unit)}{where} ({self.rule.condition})"

    def to_record(self) -> dict[str, Any]:
        return {"alert": self.rule.name, "labels": self.labels, "fingerprint": self.fingerprint,
                "group": self.group or None, "status": self.status, "evaluation": self.evaluation,
                "value": self.value, "value_text": format_value(self.value, self.rule.unit),
                "threshold": self.rule.threshold, "unit": self.rule.unit, "condition": self.rule.condition,
                "severity": self.rule.severity, "silenced": self.silenced, "starts_at": self.starts_at,
                "ends_at": self.ends_at, "evaluated_at": self.evaluated_at, "change": self.change,
                "notification": self.notification, "notified_status": self.notified_status,
                "notified_at": self.notified_at, "notify_error": self.notify_error, "held_minutes": self.held}


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _at(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc)


def _instance(rule: Rule, row: dict) -> Instance:
    from edgectl.timeutil import from_iso

    return Instance(rule, json.loads(row["labels"]), row["fingerprint"], row["status"], row["evaluation"],
                    row["value"], from_iso(row["starts_at"]), from_iso(row["ends_at"]), _at(row["evaluated_at"]),
                    row["notified_status"], _at(row["notified_at"]), row["notify_error"])


def _stored(state, rule: Rule) -> dict[str, dict]:
    return {row["fingerprint"]: row for row in
            state.db.query("SELECT * FROM alert_instances WHERE rule_id = ?", [rule.id])}


def instances(state, rule: Rule) -> list[Instance]:
    """A rule's instances as the last check left them."""
    return sorted((_instance(rule, row) for row in _stored(state, rule).values()), key=lambda i: i.group)


@dataclass
class Due:
    """A notification to send: an instance, and whether it says firing or resolved."""

    instance: Instance
    kind: str  # firing | resolved


def _next(evaluation: Evaluation, row: dict | None, now_ms: int) -> tuple[dict, str | None]:
    """The instance row after this evaluation, and the transition it makes (fired, resolved, or None)."""
    from edgectl.timeutil import to_iso

    rule = evaluation.rule
    after = dict(row) if row else {"rule_id": rule.id, "fingerprint": evaluation.fingerprint, "status": "inactive",
                                   "starts_at": None, "ends_at": None, "value": None, "notified_status": None,
                                   "notified_at": None, "notify_error": None, "claim_pid": None, "claim_until": None}
    change = None
    if evaluation.state == "firing" and after["status"] != "firing":
        change = "fired"
        after.update(status="firing", starts_at=to_iso(_at(evaluation.first_ms)), ends_at=None)
    elif evaluation.state in ("ok", "pending") and after["status"] == "firing":
        change = "resolved"
        after.update(status="inactive", ends_at=to_iso(_at(now_ms)))
    after.update(labels=json.dumps(evaluation.labels, sort_keys=True), evaluation=evaluation.state,
                 evaluated_at=now_ms)
    if evaluation.value is not None:
        after["value"] = evaluation.value
    return after, change


def _record(state, evaluation: Evaluation, now_ms: int) -> tuple[Instance, Due | None]:
    """Fold one evaluation into its stored instance, inside the caller's write transaction: the
    transition's event, the instance, and the notification it is due (claimed for this process)."""
    from edgectl.timeutil import to_iso

    rule = evaluation.rule
    conn = state.db.conn
    key = [rule.id, evaluation.fingerprint]
    row = next(state.db.query("SELECT * FROM alert_instances WHERE rule_id = ? AND fingerprint = ?", key), None)
    if row is not None and row["evaluated_at"] > now_ms:  # a later check already recorded a newer evaluation
        return _instance(rule, row), None
    after, change = _next(evaluation, row, now_ms)
    if change:
        conn.execute("INSERT OR IGNORE INTO alert_events (rule, fingerprint, labels, status, value, threshold, unit,"
                     " severity, starts_at, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [rule.name, evaluation.fingerprint, after["labels"], "firing" if change == "fired" else "resolved",
                      evaluation.value, rule.threshold, rule.unit, rule.severity, after["starts_at"],
                      to_iso(_at(now_ms))])
    conn.execute(
        "INSERT INTO alert_instances (rule_id, fingerprint, labels, status, evaluation, value, starts_at, ends_at,"
        " evaluated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule_id, fingerprint) DO UPDATE SET"
        " status = excluded.status, evaluation = excluded.evaluation, value = excluded.value,"
        " starts_at = excluded.starts_at, ends_at = excluded.ends_at, evaluated_at = excluded.evaluated_at",
        [*key, after["labels"], after["status"], after["evaluation"], after["value"], after["starts_at"],
         after["ends_at"], now_ms])
    instance = _instance(rule, after)
    instance.change, instance.held = change, evaluation.held
    due = _due(rule, instance, after, now_ms)
    if due is None:
        return instance, None
    if after["claim_pid"] and after["claim_pid"] != os.getpid() and (after["claim_until"] or 0) > now_ms:
        from edgectl.process import alive

        if alive(after["claim_pid"]):
            instance.notification = "claimed"  # another check is sending it
            return instance, None
    conn.execute("UPDATE alert_instances SET claim_pid = ?, claim_until = ? WHERE rule_id = ? AND fingerprint = ?",
                 [os.getpid(), now_ms + CLAIM_MS, *key])
    return instance, due


def _preview(state, evaluation: Evaluation, now_ms: int) -> Instance:
    """What recording this evaluation would do, written nowhere."""
    key = [evaluation.rule.id, evaluation.fingerprint]
    row = next(state.db.query("SELECT * FROM alert_instances WHERE rule_id = ? AND fingerprint = ?", key), None)
    after, change = _next(evaluation, row, now_ms)
    instance = _instance(evaluation.rule, after)
    instance.change, instance.held = change, evaluation.held
    _due(evaluation.rule, instance, after, now_ms)
    return instance


def _due(rule: Rule, instance: Instance, row: dict, now_ms: int) -> Due | None:
    """What the receiver should be told now. A firing alert is told at most once per cooldown (and
    again after it, while it fires); a resolution is told whenever the receiver was told it fired.
    Silences mute firing notifications only: a receiver that was told never stays believing it."""
    if not rule.webhook:
        return None
    if instance.status == "inactive":
        return Due(instance, "resolved") if row["notified_status"] == "firing" else None
    if instance.evaluation != "firing":
        return None
    if instance.silenced:
        instance.notification = "silenced"
        return None
    last = row["notified_at"]
    if last is not None and now_ms - last < rule.cooldown_seconds * 1000:
        if row["notified_status"] != "firing" or instance.change:
            instance.notification = "cooldown"
        return None
    return Due(instance, "firing")


@dataclass
class CheckReport:
    at: datetime
    rules: int = 0
    instances: list[Instance] = field(default_factory=list)
    deliveries: list = field(default_factory=list)  # edgectl.analytics.notify.Delivery
    errors: list[str] = field(default_factory=list)  # rules that could not be evaluated
    recorded: bool = True

    @property
    def firing(self) -> list[Instance]:
        """Firing and not silenced: what makes the check exit 3."""
        return [i for i in self.instances if i.evaluation == "firing" and not i.silenced]

    @property
    def failed_deliveries(self) -> list:
        return [d for d in self.deliveries if not d.ok]

    def to_record(self) -> dict[str, Any]:
        return {"at": self.at, "rules": self.rules, "recorded": self.recorded,
                "firing": len(self.firing), "silenced": sum(1 for i in self.instances if i.evaluation == "firing"
                                                            and i.silenced),
                "alerts": [i.to_record() for i in self.instances],
                "notifications": [d.to_record() for d in self.deliveries], "errors": self.errors}


def check(state, *, now: datetime | None = None, timeout: float = 60.0, record: bool = True) -> CheckReport:
    """Evaluate every rule, record its transitions, and send what its receiver is due, with retries.

    With record off (a dry run) nothing is written or sent: the report says what would change.
    """
    import time

    from edgectl.analytics.notify import deliver_all
    from edgectl.timeutil import utcnow

    now = now or utcnow()
    now_ms = _ms(now)
    report = CheckReport(now, recorded=record)
    rules = list_rules(state)
    report.rules = len(rules)
    evaluations: list[Evaluation] = []
    for rule in rules:
        try:
            known = [json.loads(row["labels"]).get(rule.by, "") for row in _stored(state, rule).values()]
            evaluations.extend(evaluate(state, rule, now_ms, known if rule.by else ()))
        except UsageError as exc:  # a stored rule this edgectl cannot read (a metric no longer catalogued)
            report.errors.append(f"alert {rule.name}: {exc.message}")
    due: list[Due] = []
    if record:
        with state.db.atomic():
            for evaluation in evaluations:
                instance, wanted = _record(state, evaluation, now_ms)
                report.instances.append(instance)
                if wanted:
                    due.append(wanted)
    else:
        report.instances = [_preview(state, e, now_ms) for e in evaluations]
        return report
    if due:
        report.deliveries = deliver_all(due, deadline=time.monotonic() + timeout)
        _delivered(state, report.deliveries, now_ms)
    return report


def _delivered(state, deliveries: list, now_ms: int) -> None:
    """Record what each receiver was told (or why not), and free the claims."""
    with state.db.atomic():
        for delivery in deliveries:
            for due in delivery.alerts:
                instance = due.instance
                key = [instance.rule.id, instance.fingerprint]
                if delivery.ok:
                    notified_at = now_ms if due.kind == "firing" else _ms(instance.notified_at)
                    state.db.execute(
                        "UPDATE alert_instances SET notified_status = ?, notified_at = ?, notify_error = NULL,"
                        " claim_pid = NULL, claim_until = NULL WHERE rule_id = ? AND fingerprint = ?",
                        [due.kind, notified_at, *key])
                    instance.notified_status, instance.notify_error = due.kind, None
                    instance.notified_at = _at(notified_at)
                else:
                    state.db.execute(
                        "UPDATE alert_instances SET notify_error = ?, claim_pid = NULL, claim_until = NULL"
                        " WHERE rule_id = ? AND fingerprint = ?", [delivery.error, *key])
                    instance.notify_error = delivery.error
                instance.notification = "sent" if delivery.ok else "failed"


# ---- for other readers: what fires now, and what happened ---------------------------------------

def firing(state) -> list[Instance]:
    """The alerts firing at the last check, with their values, the silenced ones included (marked)."""
    rules = {rule.id: rule for rule in list_rules(state)}
    rows = state.db.query("SELECT * FROM alert_instances WHERE evaluation = 'firing' ORDER BY rule_id, fingerprint")
    found = [_instance(rules[row["rule_id"]], row) for row in rows if row["rule_id"] in rules]
    return sorted(found, key=lambda i: (SEVERITIES.index(i.rule.severity), i.rule.name, i.group))


def firing_alerts(state, config=None) -> list[dict[str, Any]]:
    """The firing alerts as a screen or a report lists them: name, severity, the group's labels,
    the value in its unit (`number` holds it bare) and since when (edgectl.analytics.performance)."""
    return [{"name": i.rule.name, "severity": i.rule.severity,
             "labels": {k: v for k, v in i.labels.items() if k not in ("alertname", "severity")},
             "value": format_value(i.value, i.rule.unit), "number": i.value, "unit": i.rule.unit,
             "since": i.starts_at, "condition": i.rule.condition, "silenced": i.silenced,
             "fingerprint": i.fingerprint} for i in firing(state)]


@dataclass(frozen=True)
class Event:
    id: int
    alert: str
    status: str  # firing | resolved
    labels: dict[str, str]
    fingerprint: str
    value: float | None
    threshold: float
    unit: str | None  # None: an event from before units were kept, whose rule is gone
    severity: str
    starts_at: datetime
    at: datetime

    def to_record(self) -> dict[str, Any]:
        def shown(number: float | None) -> str:
            return format_value(number, self.unit) if self.unit else format_value(number, "count")

        return {"id": self.id, "alert": self.alert, "status": self.status, "labels": self.labels,
                "fingerprint": self.fingerprint, "value": self.value, "value_text": shown(self.value),
                "threshold": self.threshold, "threshold_text": shown(self.threshold), "unit": self.unit,
                "severity": self.severity, "starts_at": self.starts_at, "at": self.at}


def history(state, name: str | None = None, *, since: datetime | None = None, limit: int = 100) -> list[Event]:
    """Firing and resolved events, the newest first; a removed rule's events are kept."""
    from edgectl.timeutil import from_iso, to_iso

    sql, params = "SELECT * FROM alert_events WHERE 1 = 1", []
    if name is not None:
        sql += " AND rule = ?"
        params.append(name)
    if since is not None:
        sql += " AND at >= ?"
        params.append(to_iso(since))
    sql += " ORDER BY at DESC, id DESC LIMIT ?"
    params.append(limit)
    units: dict[str, str | None] = {}

    def unit(row: dict) -> str | None:
        """The event's unit; for an event recorded before units were kept, its rule's, if it still has one."""
        if row["unit"] or row["rule"] in units:
            return row["unit"] or units[row["rule"]]
        try:
            units[row["rule"]] = get_rule(state, row["rule"]).unit
        except UsageError:  # gone (NotFound), or on a metric no longer catalogued
            units[row["rule"]] = None
        return units[row["rule"]]

    return [Event(row["id"], row["rule"], row["status"], json.loads(row["labels"]), row["fingerprint"], row["value"],
                  row["threshold"], unit(row), row["severity"], from_iso(row["starts_at"]), from_iso(row["at"]))
            for row in state.db.query(sql, params)]
