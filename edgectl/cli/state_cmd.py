"""`edgectl state`: where the state file is, its schema, backups, integrity and retention."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.cli.options import DryRun
from edgectl.errors import OperationFailed, UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("state"), no_args_is_help=True, add_completion=False)


@app.command("path")
def state_path() -> None:
    """Print the state file in use."""
    ctx = current()
    path = ctx.state_path()
    ctx.out.show({"path": str(path), "exists": path.is_file()}, View(text=lambda r: r["path"]))


@app.command("status")
def state_status() -> None:
    """Applied and pending schema migrations."""
    from edgectl.state import open_state

    ctx = current()
    path = ctx.state_path()
    if not path.is_file():
        raise UsageError(f"no state file at {path} yet", hint="any command that reads the state creates it")
    state = open_state(path, migrate=False)
    try:
        rows = [m.to_record() for m in state.migration_status()]
    finally:
        state.close()
    pending = [r["name"] for r in rows if not r["applied"]]
    ctx.out.show({"path": str(path), "migrations": rows, "pending": pending}, View(
        [Column("name"), Column("applied", kind="bool"), Column("applied_at")], rows=lambda r: r["migrations"],
        notes=lambda r: [f"{path}: " + (f"{len(pending)} pending migration(s), applied on next use" if pending
                                        else "up to date")]))


@app.command("backup")
def state_backup(
    target: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write the copy.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """A consistent copy of the state, safe while other commands write to it."""
    ctx = current()
    target = target.expanduser()
    ctx.state.backup(target, replace=force)
    ctx.out.note(f"backed up {ctx.state.path} to {target}")
    ctx.out.show({"source": str(ctx.state.path), "backup": str(target), "bytes": target.stat().st_size},
                 View(body=False))


@app.command("check")
def state_check() -> None:
    """SQLite integrity and foreign-key checks; exit 1 on corruption."""
    ctx = current()
    problems = ctx.state.integrity_problems()
    ctx.out.show({"path": str(ctx.state.path), "ok": not problems, "problems": problems}, View(body=False))
    if problems:
        for problem in problems[:20]:
            ctx.out.warn(problem)
        raise OperationFailed(f"{ctx.state.path} is damaged: {len(problems)} problem(s)",
                              hint="restore from edgectl state backup, or copy out what you need with sqlite3 .recover")
    ctx.out.note(f"{ctx.state.path}: ok")


PRUNE_COLUMNS = [Column("resolution"), Column("retention"), Column("older_than", "OLDER THAN"),
                 Column("removed", justify="right"), Column("rolled_up", "MINUTES ROLLED UP", justify="right")]


def _prune_lines(record: dict) -> list[str]:
    removed = sum(r["removed"] for r in record["resolutions"])
    verb = "would remove" if record["dry_run"] else "removed"
    lines = [f"{verb} {removed:,} sample(s) and rollup row(s) past the retention of the metrics history"]
    if not record["complete"]:
        lines.append("stopped before the end: run it again for the rest")
    return lines


@app.command("prune")
def state_prune(dry_run: DryRun = False) -> None:
    """Drop raw samples and rollups past their retention (analytics.retention.raw, minute, hour, day).

    Safe while other commands write: it deletes in short transactions and they take turns.
    """
    import time

    from edgectl.analytics.retention import Retention, prune

    ctx = current()
    retention = Retention.from_config(ctx.config)
    report = prune(ctx.state, retention, int(time.time() * 1000), dry_run=dry_run)
    ctx.out.show(report.to_record(), View(PRUNE_COLUMNS, rows=lambda r: r["resolutions"], notes=_prune_lines,
                                          quiet=True))
