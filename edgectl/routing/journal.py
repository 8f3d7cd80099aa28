"""The routing apply journal: an approved plan and its steps, written before anything is sent and each step after.

Step states: pending -> sent -> applied -> synced, or failed. `sent` means a request is (or was) on
the wire with its outcome unknown; a resume sends it again with `resend` set, which every steering
provider makes harmless (its steps are absolute: create-or-replace, delete-if-present). A step
that reached `applied` is never sent again; `synced` says the provider reported it propagated.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgectl.errors import NotFound
from edgectl.process import alive
from edgectl.providers.steering import Change, Step
from edgectl.state import journals
from edgectl.timeutil import from_iso, to_iso, utcnow

DONE = ("applied", "synced")


@dataclass
class JournalStep:
    id: int
    apply_id: int
    seq: int
    provider: str
    provider_kind: str
    summary: str
    changes: tuple[Change, ...]
    state: str
    provider_ref: str | None
    detail: str | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    applied_at: datetime | None
    synced_at: datetime | None

    @classmethod
    def from_row(cls, row: dict) -> "JournalStep":
        return cls(row["id"], row["apply_id"], row["seq"], row["provider"], row["provider_kind"], row["summary"],
                   tuple(Change.from_record(c) for c in json.loads(row["changes"])), row["state"],
                   row["provider_ref"], row["detail"], row["attempts"], row["last_error"], from_iso(row["sent_at"]),
                   from_iso(row["applied_at"]), from_iso(row["synced_at"]))

    @property
    def step(self) -> Step:
        return Step(self.summary, self.changes)

    def to_record(self) -> dict[str, Any]:
        return {"seq": self.seq, "provider": self.provider, "summary": self.summary, "changes": len(self.changes),
                "state": self.state, "provider_ref": self.provider_ref, "attempts": self.attempts,
                "last_error": self.last_error, "detail": self.detail, "sent_at": self.sent_at,
                "applied_at": self.applied_at, "synced_at": self.synced_at}


@dataclass
class Apply:
    id: int
    uid: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    status: str
    actor: str
    reason: str | None
    providers: list[str]
    plan: dict[str, Any]
    owner_pid: int | None

    @classmethod
    def from_row(cls, row: dict) -> "Apply":
        return cls(row["id"], row["uid"], from_iso(row["created_at"]), from_iso(row["updated_at"]),
                   from_iso(row["finished_at"]), row["status"], row["actor"], row["reason"],
                   json.loads(row["providers"]), json.loads(row["plan"]), row["owner_pid"])

    @property
    def shown_status(self) -> str:
        """`running` only while its process lives; a dead owner's apply reads as interrupted."""
        if self.status == "running" and not alive(self.owner_pid):
            return "interrupted"
        return self.status

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at, "status": self.shown_status, "actor": self.actor,
                "reason": self.reason, "providers": self.providers, "counts": self.plan.get("counts", {}),
                "finished_at": self.finished_at}


def create(state, plan, *, actor: str, reason: str | None) -> Apply:
    """The approved plan and every step as pending, in one transaction."""
    now = to_iso(utcnow())
    with state.db.atomic():
        cursor = state.db.conn.execute(
            "INSERT INTO routing_applies (uid, created_at, updated_at, status, actor, reason, providers, plan,"
            " owner_pid) VALUES (?, ?, ?, 'planned', ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, now, now, actor, reason,
             json.dumps([p.name for p in plan.providers if p.steps]),
             json.dumps(plan.to_record(), default=str), os.getpid()])
        apply_id = cursor.lastrowid
        rows, seq = [], 0
        for provider in plan.providers:
            for step in provider.steps:
                seq += 1
                rows.append((apply_id, seq, provider.name, provider.kind, step.summary,
                             json.dumps([c.to_record() for c in step.changes]), now))
        state.db.conn.executemany(
            "INSERT INTO routing_apply_steps (apply_id, seq, provider, provider_kind, summary, changes, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return get(state, apply_id)


def get(state, apply_id: int) -> Apply:
    rows = list(state.db.query("SELECT * FROM routing_applies WHERE id = ?", [apply_id]))
    if not rows:
        raise NotFound(f"no routing apply with id {apply_id}", hint="edgectl routing history lists recent applies")
    return Apply.from_row(rows[0])


def parse_id(text: str) -> int:
    return journals.parse_id(text, what="apply", listed_by="edgectl routing history")


def steps(state, apply_id: int) -> list[JournalStep]:
    return [JournalStep.from_row(r) for r in
            state.db.query("SELECT * FROM routing_apply_steps WHERE apply_id = ? ORDER BY seq", [apply_id])]


def history(state, limit: int = 50) -> list[Apply]:
    return [Apply.from_row(r) for r in
            state.db.query("SELECT * FROM routing_applies ORDER BY id DESC LIMIT ?", [limit])]


def claim(state, apply: Apply) -> None:
    """Take an apply to run it; another live process running it is exit 4."""
    journals.claim(state, "routing_applies", apply.id, what="routing apply", shown_by="edgectl routing show")


def set_status(state, apply_id: int, status: str, *, finished: bool = False) -> None:
    now = to_iso(utcnow())
    with state.db.atomic():
        state.db.conn.execute("UPDATE routing_applies SET status = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                              [status, now, now if finished else None, apply_id])


def record(state, step_id: int, /, **changes: Any) -> None:
    """One step's progress, committed at once: the journal is never behind what was sent."""
    journals.record(state, "routing_apply_steps", step_id, changes)
