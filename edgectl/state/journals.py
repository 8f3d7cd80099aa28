"""What every journal of remote changes shares (purges, routing applies): ids, claiming a run, recording a step.

A journal is a run row (`status`, `owner_pid`, `updated_at`) and its step rows; each step's
progress is committed at once, so the journal is never behind what was sent.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from edgectl.errors import LockHeld, UsageError
from edgectl.process import alive
from edgectl.timeutil import to_iso, utcnow


def parse_id(text: str, *, what: str, listed_by: str) -> int:
    """A run's id as typed (`7`, `#7`); bad input names the command that lists them."""
    hint = f"{listed_by} shows {what} ids"
    try:
        value = int(str(text).strip().lstrip("#"))
    except ValueError:
        raise UsageError(f"{what} id {text!r} is not a number", hint=hint) from None
    if not 1 <= value < 2**63:
        raise UsageError(f"{what} id {text!r} is not valid", hint=hint)
    return value


def claim(state, table: str, run_id: int, *, what: str, shown_by: str) -> None:
    """Take a run to send it; another live process running it is exit 4.

    The check and the take happen under SQLite's write lock (BEGIN IMMEDIATE), so two resumes
    started together cannot both win.
    """
    with state.db.atomic():
        status, owner = state.db.conn.execute(f"SELECT status, owner_pid FROM {table} WHERE id = ?",
                                              [run_id]).fetchone()
        if status == "running" and owner != os.getpid() and alive(owner):
            raise LockHeld(f"{what} {run_id} is being run by process {owner}",
                           hint=f"wait for it to finish, or check it with {shown_by} {run_id}")
        state.db.conn.execute(f"UPDATE {table} SET status = 'running', owner_pid = ?, updated_at = ? WHERE id = ?",
                              [os.getpid(), to_iso(utcnow()), run_id])


def record(state, table: str, step_id: int, changes: dict[str, Any]) -> None:
    """One step's progress, committed at once; datetimes are stored as ISO 8601."""
    changes = {key: to_iso(value) if isinstance(value, datetime) else value for key, value in changes.items()}
    changes["updated_at"] = to_iso(utcnow())
    columns = ", ".join(f"{key} = ?" for key in changes)
    with state.db.atomic():
        state.db.conn.execute(f"UPDATE {table} SET {columns} WHERE id = ?", [*changes.values(), step_id])
