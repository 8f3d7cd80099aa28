"""Options several commands share, declared once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do it without asking.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")]


def _reason(value: Optional[str]) -> Optional[str]:
    from edgectl.parse import check_text

    return check_text(value, what="--reason")


Reason = Annotated[Optional[str], typer.Option("--reason", callback=_reason, help="Why; kept in the node's events.")]
Since = Annotated[Optional[str], typer.Option("--since", metavar="DURATION", help="Only the last DURATION, e.g. 24h.")]
Labels = Annotated[Optional[list[str]], typer.Option("--label", "-l", metavar="K=V", help="Label; repeatable.")]
