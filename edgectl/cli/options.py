"""Options several commands share, declared once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")]


def _reason(value: Optional[str]) -> Optional[str]:
    from edgectl.parse import check_text

    return check_text(value, what="--reason")


Reason = Annotated[Optional[str], typer.Option("--reason", callback=_reason, help="Why; kept with the record of the change.")]
Since = Annotated[Optional[str], typer.Option("--since", metavar="DURATION", help="Only the last DURATION, e.g. 24h.")]
SinceWindow = Annotated[str, typer.Option("--since", metavar="DURATION", help="The window: the last DURATION.")]


def since_window(since: str) -> tuple[int, int]:
    """--since as the window [now - DURATION, now), in milliseconds since the epoch."""
    import time

    from edgectl.errors import UsageError
    from edgectl.parse import parse_duration

    seconds = parse_duration(since, what="--since")
    if seconds <= 0:
        raise UsageError("--since must be more than zero")
    end = int(time.time() * 1000)
    return end - int(seconds * 1000), end


# how long a run that changes remote state (a purge, a routing apply) may send and wait, in all
Timeout = Annotated[str, typer.Option("--timeout", metavar="DURATION", help="Give up sending and waiting after this long.")]


def overall_timeout(text: str) -> float:
    """--timeout in seconds, more than zero."""
    from edgectl.errors import UsageError
    from edgectl.parse import parse_duration

    seconds = parse_duration(text, what="--timeout")
    if seconds <= 0:
        raise UsageError("--timeout must be more than zero")
    return seconds


Labels = Annotated[Optional[list[str]], typer.Option("--label", "-l", metavar="K=V", help="Label; repeatable.")]


def confirm(question: str, yes: bool) -> None:
    """Go on only with --yes or a 'y' at a terminal."""
    from edgectl.cli.context import current
    from edgectl.errors import OperationFailed, UsageError

    if yes:
        return
    if not current().interactive:
        raise UsageError(f"{question} needs confirmation", hint="pass --yes to go ahead without a terminal")
    if not typer.confirm(question, default=False, err=True):
        raise OperationFailed("nothing changed: not confirmed")


def apply_declared(plan, columns, *, empty: str, apply, yes: bool, dry_run: bool) -> None:
    """A declarative plan at the command line: drawn first, confirmed, applied, then its record.

    `apply()` makes the change; json and csv get the plan and whether it was applied.
    """
    from edgectl.cli.context import current
    from edgectl.output import View

    ctx = current()
    ctx.out.preview(plan.rows(), columns, empty=empty)
    applied = False
    if not plan.empty and not dry_run:
        confirm(f"apply this plan ({plan.summary()})?", yes)
        apply()
        applied = True
    ctx.out.show({"changes": [s.to_record() for s in plan.steps], "counts": plan.counts(), "applied": applied,
                  "dry_run": dry_run}, View(body=False))
    if not plan.empty:
        ctx.out.note(("applied: " if applied else "not applied (dry run): ") + plan.summary())
