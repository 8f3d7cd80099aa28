"""UTC timestamps as edgectl stores and shows them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def to_iso(moment: datetime | None) -> str | None:
    """Fixed-width ISO-8601 UTC ('2026-11-22T19:30:00.123Z'), so text order is time order."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def ago(seconds: float) -> str:
    """ISO text of the moment `seconds` before now (for --since filters)."""
    return to_iso(utcnow() - timedelta(seconds=seconds))


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """'3m ago', 'in 2h', 'just now'; '-' for never."""
    if moment is None:
        return "-"
    delta = ((now or utcnow()) - moment).total_seconds()
    future, delta = delta < 0, abs(delta)
    if delta < 1:
        return "just now"
    for size, unit in ((86400 * 365, "y"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if delta >= size:
            text = f"{int(delta // size)}{unit}"
            break
    return f"in {text}" if future else f"{text} ago"
