"""`edgectl plugins`: what extends edgectl here (provider kinds, built-in and third-party)."""

from __future__ import annotations

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.output import Column, View

app = typer.Typer(help=group_help("plugins"), no_args_is_help=True, add_completion=False)


@app.command("list")
def plugins_list() -> None:
    """Every registered provider kind: its package, its capabilities, and whether it loads."""
    from edgectl.providers.registry import registrations

    ctx = current()
    ctx.out.show(registrations(), View([Column("name", "KIND"), Column("package"), Column("builtin", kind="bool"),
                                        Column("capabilities", kind="list"), Column("purge_kinds", "PURGES", kind="list"),
                                        Column("status", kind="status"), Column("target"), Column("error")]))
