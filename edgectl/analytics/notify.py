"""Alert notifications: Alertmanager's webhook payload (version 4) or Slack's, posted with bounded retries.

One post per rule and check carries every alert of the rule that is due (firing, resolved), as
Alertmanager groups by `alertname`. A webhook named by reference (env:NAME, file:PATH) is resolved
just before it is sent and registered with the log redaction; errors and --debug lines show a URL
as scheme, host and port only, since a path or query string may be its secret. A URL from a
reference may carry credentials (https://user:password@host/...): they are taken off the URL and
sent as basic auth, so no error or log line that shows the URL can hold them.

Retries: 408, 429, 5xx and transport errors are sent again, at most ATTEMPTS times, after the
receiver's Retry-After when it gives one and exponential backoff with jitter otherwise, all
within the check's deadline; a wait past the deadline (or past MAX_WAIT) ends the attempt for
this check, and the next check sends it again.
"""

from __future__ import annotations

import json
import logging
import random
import time
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from edgectl.analytics.alerts import Due

SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
# an incoming webhook's path, /services/T<team id>/B<channel id>/<key>, wherever it is served from
_SLACK_PATH = re.compile(r"/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{12,}/?")
RECEIVER = "edgectl"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: what Alertmanager sends as a firing alert's endsAt
ATTEMPTS = 4
BACKOFF_BASE, BACKOFF_MAX = 0.5, 8.0
MAX_WAIT = 60.0
REQUEST_TIMEOUT = 10.0
log = logging.getLogger("edgectl.alerts")


def masked_url(url: str) -> str:
    """`https://hooks.slack.com/********`: where a request goes, without what may be its secret."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "********"
    if not parts.scheme or not host:
        return "********"
    where = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
    return where + ("/********" if parts.path not in ("", "/") or parts.query or parts.fragment else "/")


def is_slack_host(host: str | None) -> bool:
    return bool(host) and host.lower().rstrip(".") in SLACK_HOSTS


def slack_secret_path(path: str) -> bool:
    """Whether a URL path is shaped like a Slack incoming webhook's, whose last part is its key."""
    return bool(_SLACK_PATH.fullmatch(path or ""))


@dataclass(frozen=True)
class Webhook:
    """Where to post: the URL without credentials, and the basic auth its reference carried."""

    url: str
    auth: tuple[str, str] | None = None


def resolve_webhook(reference: str, *, alert: str) -> Webhook:
    """The webhook to post to, read at the last moment from env:/file: references, and checked."""
    from urllib.parse import unquote, urlunsplit

    from edgectl.config import is_reference, resolve_secret
    from edgectl.errors import ConfigError, UsageError
    from edgectl.logs import register_secret
    from edgectl.parse import parse_url

    key = f"alert {alert} webhook"
    secret = is_reference(reference)
    url = resolve_secret(reference, key=key) if secret else reference
    shown = reference if secret else masked_url(url)
    auth = None
    try:
        parts = urlsplit(url)
        if secret and "@" in parts.netloc:  # credentials, in a URL only a secret holds
            auth = (unquote(parts.username or ""), unquote(parts.password or ""))
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
            url = urlunsplit(parts)
        parse_url(url, what=key)
    except (UsageError, ValueError):  # parse_url's message would quote the URL
        raise ConfigError(f"{key}: {shown} is not an http(s) URL with a host",
                          hint="give it as http(s)://[user:password@]host[:port]/path") from None
    for piece in (parts.path + (f"?{parts.query}" if parts.query else ""), parts.query, *(auth or ())):
        if piece not in ("", "/"):
            register_secret(piece)
    return Webhook(url, auth)


def webhook_problem(reference: str, *, alert: str) -> str | None:
    """Why this webhook could not be posted to from here (a variable not set, a file missing,
    what they hold not a URL), or None."""
    from edgectl.errors import EdgectlError

    try:
        resolve_webhook(reference, alert=alert)
    except EdgectlError as exc:
        return exc.message
    return None


def payload_format(url: str, chosen: str) -> str:
    if chosen != "auto":
        return chosen
    parts = urlsplit(url)
    return "slack" if is_slack_host(parts.hostname) or slack_secret_path(parts.path) else "alertmanager"


# ---- payloads ---------------------------------------------------------------------------------

def _annotations(due: Due) -> dict[str, str]:
    from edgectl.analytics.alerts import format_value
    from edgectl.parse import format_duration

    instance = due.instance
    rule = instance.rule
    threshold = format_value(rule.threshold, rule.unit)
    window = format_duration(rule.for_seconds)
    if due.kind == "firing":
        description = f"{rule.measure} has been {rule.op} {threshold} at every evaluation for {window} or more"
    else:
        description = f"{rule.measure} is no longer {rule.op} {threshold}"
    return {"summary": instance.summary(), "description": description,
            "value": f"{instance.value:g}" if instance.value is not None else "",
            "threshold": f"{rule.threshold:g}", "unit": rule.unit}


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def _iso(moment: datetime | None) -> str:
    from edgectl.timeutil import to_iso

    return to_iso(moment) if moment is not None else ZERO_TIME


def alertmanager_payload(alerts: list[Due]) -> dict[str, Any]:
    """Alertmanager's webhook body, version 4, for the due alerts of one rule."""
    name = alerts[0].instance.rule.name
    items = []
    for due in alerts:
        instance = due.instance
        items.append({"status": due.kind, "labels": instance.labels, "annotations": _annotations(due),
                      "startsAt": _iso(instance.starts_at),
                      "endsAt": _iso(instance.ends_at) if due.kind == "resolved" else ZERO_TIME,
                      "generatorURL": "", "fingerprint": instance.fingerprint})
    group_labels = {"alertname": name}
    return {
        "version": "4",
        "groupKey": "{}:{alertname=%s}" % json.dumps(name),
        "truncatedAlerts": 0,
        "status": "firing" if any(d.kind == "firing" for d in alerts) else "resolved",
        "receiver": RECEIVER,
        "groupLabels": group_labels,
        "commonLabels": _common([i["labels"] for i in items]),
        "commonAnnotations": _common([i["annotations"] for i in items]),
        "externalURL": "",
        "alerts": items,
    }


def slack_payload(alerts: list[Due]) -> dict[str, Any]:
    """Slack's incoming-webhook body: one `text`, a line per alert."""
    rule = alerts[0].instance.rule
    firing = [d for d in alerts if d.kind == "firing"]
    resolved = [d for d in alerts if d.kind == "resolved"]
    counts = ", ".join(part for part in (f"FIRING:{len(firing)}" if firing else "",
                                         f"RESOLVED:{len(resolved)}" if resolved else "") if part)
    lines = [f"[{counts}] {rule.name} ({rule.severity})"]
    for due in firing + resolved:
        since = due.instance.starts_at.strftime("%Y-%m-%d %H:%M UTC") if due.instance.starts_at else "-"
        state = "firing since" if due.kind == "firing" else "resolved; it fired at"
        lines.append(f"• {due.instance.summary()}: {state} {since}")
    return {"text": "\n".join(lines)}


# ---- delivery ---------------------------------------------------------------------------------

@dataclass
class Delivery:
    """One rule's post to its receiver: what was sent and how it went."""

    alert: str
    receiver: str  # the webhook as it may be shown: the reference, or a masked URL
    format: str
    alerts: list = field(default_factory=list)  # the Due notifications it carried
    ok: bool = False
    attempts: int = 0
    status: int | None = None
    error: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"alert": self.alert, "receiver": self.receiver, "format": self.format,
                "firing": sum(1 for d in self.alerts if d.kind == "firing"),
                "resolved": sum(1 for d in self.alerts if d.kind == "resolved"),
                "ok": self.ok, "attempts": self.attempts, "status": self.status, "error": self.error}


def _backoff(tries: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (tries - 1)) * random.uniform(0.5, 1.0)


def post(client, url: str, body: dict, delivery: Delivery, *, deadline: float, auth: tuple[str, str] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> None:
    """POST the body until it is accepted, it is refused for good, or the attempts or time run out."""
    import httpx

    from edgectl.logs import redact
    from edgectl.providers.base import parse_retry_after

    shown = masked_url(url)
    content = json.dumps(body, separators=(",", ":")).encode()
    while True:
        delivery.attempts += 1
        remaining = deadline - time.monotonic()
        retry_after = None
        try:
            response = client.post(url, content=content, timeout=max(1.0, min(REQUEST_TIMEOUT, remaining)),
                                   **({"auth": auth} if auth else {}))
        except httpx.TimeoutException:
            delivery.status, delivery.error, retryable = None, f"{shown}: timed out", True
        except httpx.HTTPError as exc:
            detail = redact(str(exc)).replace(url, shown)
            delivery.status, delivery.error, retryable = None, f"{shown}: {exc.__class__.__name__}: {detail}", True
        else:
            delivery.status = response.status_code
            if response.is_success:
                delivery.ok, delivery.error = True, None
                log.debug("alert %s: %s accepted the notification (HTTP %s, attempt %s)", delivery.alert, shown,
                          response.status_code, delivery.attempts)
                return
            said = " ".join(response.text.split())[:120]
            said = redact(said).replace(url, shown)
            delivery.error = f"{shown}: HTTP {response.status_code}" + (f": {said}" if said else "")
            retryable = response.status_code in (408, 429) or response.status_code >= 500
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        log.debug("alert %s: attempt %s: %s", delivery.alert, delivery.attempts, delivery.error)
        if not retryable or delivery.attempts >= ATTEMPTS:
            return
        wait = retry_after if retry_after is not None else _backoff(delivery.attempts)
        if wait > MAX_WAIT or wait > deadline - time.monotonic():
            delivery.error += f" (asked to wait {wait:.0f}s, past this check's time; the next check sends it again)"
            return
        sleep(wait)


def deliver_all(due: list[Due], *, deadline: float) -> list[Delivery]:
    """Post each rule's due notifications to its webhook, one rule after another."""
    import httpx

    from edgectl import __version__
    from edgectl.config import is_reference
    from edgectl.errors import EdgectlError

    by_rule: dict[str, list[Due]] = {}
    for item in due:
        by_rule.setdefault(item.instance.rule.name, []).append(item)
    deliveries = []
    headers = {"Content-Type": "application/json", "User-Agent": f"edgectl/{__version__}"}
    with httpx.Client(headers=headers, trust_env=False, follow_redirects=False) as client:
        for name, alerts in by_rule.items():
            rule = alerts[0].instance.rule
            reference = rule.webhook
            shown = reference if is_reference(reference) else masked_url(reference)
            delivery = Delivery(name, shown, rule.webhook_format, alerts)
            deliveries.append(delivery)
            try:
                webhook = resolve_webhook(reference, alert=name)
            except EdgectlError as exc:
                delivery.error = exc.message
                continue
            delivery.format = payload_format(webhook.url, rule.webhook_format)
            body = slack_payload(alerts) if delivery.format == "slack" else alertmanager_payload(alerts)
            if time.monotonic() >= deadline:
                delivery.error = f"{masked_url(webhook.url)}: not sent, the check ran out of time"
                continue
            post(client, webhook.url, body, delivery, deadline=deadline, auth=webhook.auth)
    return deliveries
