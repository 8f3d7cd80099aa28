"""The purge journal: a purge and its batches are written before anything is sent, each step after.

Batch states: pending -> sent -> accepted -> completed, or failed. `sent` means a request is (or was)
on the wire and its outcome is unknown; a resume sends such a batch again, which every provider
makes harmless (purging twice is idempotent, and CloudFront's CallerReference is the batch's
stable reference). A batch that reached `accepted` is never sent again.
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
from edgectl.state import journals
from edgectl.timeutil import from_iso, to_iso, utcnow

BATCH_STATES = ("pending", "sent", "accepted", "completed", "failed")
UNFINISHED = ("pending", "sent", "failed")
FINAL_STATUSES = ("accepted", "completed", "failed", "interrupted")


@dataclass
class JournalBatch:
    id: int
    purge_id: int
    seq: int
    provider: str
    provider_kind: str
    kind: str
    items: tuple[str, ...]
    state: str
    provider_ref: str | None
    detail: str | None
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    accepted_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: dict) -> "JournalBatch":
        return cls(row["id"], row["purge_id"], row["seq"], row["provider"], row["provider_kind"], row["kind"],
                   tuple(json.loads(row["items"])), row["state"], row["provider_ref"], row["detail"],
                   row["attempts"], row["last_error"], from_iso(row["sent_at"]), from_iso(row["accepted_at"]),
                   from_iso(row["completed_at"]))

    def reference(self, uid: str) -> str:
        """Stable across resends, unique across state files (CloudFront keeps CallerReferences for good)."""
        return f"edgectl-{uid}-{self.seq}"

    def to_record(self) -> dict[str, Any]:
        return {"seq": self.seq, "provider": self.provider, "kind": self.kind, "items": len(self.items),
                "state": self.state, "provider_ref": self.provider_ref, "attempts": self.attempts,
                "last_error": self.last_error, "detail": self.detail, "sent_at": self.sent_at,
                "accepted_at": self.accepted_at, "completed_at": self.completed_at}


@dataclass
class Purge:
    id: int
    uid: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    status: str
    reason: str | None
    headers: dict[str, str]
    providers: list[str]
    summary: dict[str, Any]
    owner_pid: int | None

    @classmethod
    def from_row(cls, row: dict) -> "Purge":
        return cls(row["id"], row["uid"], from_iso(row["created_at"]), from_iso(row["updated_at"]),
                   from_iso(row["finished_at"]), row["status"], row["reason"], json.loads(row["headers"]),
                   json.loads(row["providers"]), json.loads(row["summary"]), row["owner_pid"])

    @property
    def shown_status(self) -> str:
        """'running' only while its process lives; a purge whose process died shows as interrupted."""
        if self.status == "running" and not alive(self.owner_pid):
            return "interrupted"
        return self.status

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.shown_status, "created_at": self.created_at,
                "finished_at": self.finished_at, "providers": self.providers, "reason": self.reason,
                "targets": self.summary.get("targets", {}), "batches": self.summary.get("batches", {}),
                "headers": sorted(self.headers)}


def create(state, plan, *, reason: str | None) -> Purge:
    """Write the purge, its targets and every batch as pending, in one transaction."""
    now = to_iso(utcnow())
    db = state.db
    with db.atomic():
        cursor = db.conn.execute(
            "INSERT INTO purges (uid, created_at, updated_at, status, reason, headers, providers, summary, owner_pid)"
            " VALUES (?, ?, ?, 'planned', ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, now, now, reason, json.dumps(plan.headers),
             json.dumps([p.name for p in plan.providers if p.batches]),
             json.dumps({"targets": plan.to_record()["targets"]}), os.getpid()],
        )
        purge_id = cursor.lastrowid
        db.conn.executemany("INSERT INTO purge_targets (purge_id, kind, value) VALUES (?, ?, ?)",
                            [(purge_id, t.kind, t.value) for t in plan.targets])
        rows = []
        seq = 0
        for provider in plan.providers:
            for batch in provider.batches:
                seq += 1
                rows.append((purge_id, seq, provider.name, provider.kind, batch.kind, json.dumps(list(batch.items)),
                             len(batch.items), now))
        db.conn.executemany(
            "INSERT INTO purge_batches (purge_id, seq, provider, provider_kind, kind, items, item_count, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return get(state, purge_id)


def get(state, purge_id: int) -> Purge:
    rows = list(state.db.query("SELECT * FROM purges WHERE id = ?", [purge_id]))
    if not rows:
        raise NotFound(f"no purge with id {purge_id}", hint="edgectl cdn history lists recent purges")
    return Purge.from_row(rows[0])


def parse_id(text: str) -> int:
    return journals.parse_id(text, what="purge", listed_by="edgectl cdn history")


def batches(state, purge_id: int, states: tuple[str, ...] | None = None) -> list[JournalBatch]:
    sql = "SELECT * FROM purge_batches WHERE purge_id = ?"
    params: list[Any] = [purge_id]
    if states:
        sql += f" AND state IN ({', '.join('?' for _ in states)})"
        params.extend(states)
    return [JournalBatch.from_row(r) for r in state.db.query(sql + " ORDER BY seq", params)]


def targets(state, purge_id: int) -> list[tuple[str, str]]:
    return [(r["kind"], r["value"]) for r in
            state.db.query("SELECT kind, value FROM purge_targets WHERE purge_id = ? ORDER BY id", [purge_id])]


def history(state, since: datetime | None = None, limit: int = 50) -> list[Purge]:
    sql, params = "SELECT * FROM purges", []
    if since is not None:
        sql += " WHERE created_at >= ?"
        params.append(to_iso(since))
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return [Purge.from_row(r) for r in state.db.query(sql, params)]


def claim(state, purge: Purge) -> None:
    """Take ownership of a purge to run it; another live process holding it is exit 4."""
    journals.claim(state, "purges", purge.id, what="purge", shown_by="edgectl cdn show")


def set_status(state, purge_id: int, status: str, *, finished: bool = False) -> None:
    now = to_iso(utcnow())
    counts = {r["state"]: r["n"] for r in state.db.query(
        "SELECT state, count(*) AS n FROM purge_batches WHERE purge_id = ? GROUP BY state", [purge_id])}
    row = state.db.execute("SELECT summary FROM purges WHERE id = ?", [purge_id]).fetchone()
    summary = json.loads(row[0]) if row else {}
    summary["batches"] = counts
    with state.db.atomic():
        state.db.conn.execute(
            "UPDATE purges SET status = ?, updated_at = ?, finished_at = ?, summary = ?, owner_pid = ? WHERE id = ?",
            [status, now, now if finished else None, json.dumps(summary), os.getpid(), purge_id])


def record(state, batch_id: int, /, **changes: Any) -> None:
    """One batch step, committed at once: the journal is never behind what was sent."""
    journals.record(state, "purge_batches", batch_id, changes)


def outcome(state, purge_id: int) -> str:
    """The status a finished run leaves: completed, accepted, or failed when any batch is unfinished."""
    counts = {r["state"]: r["n"] for r in state.db.query(
        "SELECT state, count(*) AS n FROM purge_batches WHERE purge_id = ? GROUP BY state", [purge_id])}
    if any(counts.get(s) for s in UNFINISHED):
        return "failed"
    if counts.get("accepted"):
        return "accepted"
    return "completed"
