"""Cache policies, and the entries warming found each node holding (the edge_cache_entries table).

An entry is one cache key at one node: the URL and the variant it was fetched as (caches key on
Accept-Encoding and the like). `node` is the inventory name, or '' for the public hostname (the
CDN in front). Its expiry comes from the first policy whose glob matches the URL's path, else
from the response's own freshness; its tags from that policy and the response's Surrogate-Key /
Cache-Tag headers.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from edgectl.errors import NotFound, UsageError
from edgectl.timeutil import from_iso, to_iso, utcnow

PUBLIC = ""
TAG_HEADERS = (b"surrogate-key", b"cache-tag", b"edge-cache-tag", b"x-cache-tags")


@dataclass(frozen=True)
class Policy:
    id: int
    match: str
    ttl_s: float
    tags: tuple[str, ...]

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.match)

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "match": self.match, "ttl_s": self.ttl_s, "tags": list(self.tags)}


def policies(state) -> list[Policy]:
    return [Policy(r["id"], r["match"], r["ttl_s"], tuple(json.loads(r["tags"])))
            for r in state.db.query("SELECT * FROM cache_policies ORDER BY id")]


def add_policy(state, match: str, ttl_s: float, tags: list[str]) -> Policy:
    if not match.startswith("/") or any(ord(c) < 33 for c in match):
        raise UsageError(f"--match {match!r} must be a path glob such as /static/*")
    if ttl_s <= 0:
        raise UsageError("--ttl must be more than zero")
    if any(existing.match == match for existing in policies(state)):
        raise UsageError(f"a policy for {match} exists", hint="remove it first: edgectl cache policies remove " + match)
    with state.db.atomic():
        state.db.conn.execute("INSERT INTO cache_policies (match, ttl_s, tags, created_at) VALUES (?, ?, ?, ?)",
                              [match, ttl_s, json.dumps(tags), to_iso(utcnow())])
    return next(p for p in policies(state) if p.match == match)


def remove_policy(state, which: str) -> Policy:
    for policy in policies(state):
        if str(policy.id) == which or policy.match == which:
            with state.db.atomic():
                state.db.conn.execute("DELETE FROM cache_policies WHERE id = ?", [policy.id])
            return policy
    raise NotFound(f"no cache policy {which!r}", hint="edgectl cache policies list shows them")


class Recorder:
    """Upserts entries for a batch of warm outcomes; policies are read once per run."""

    def __init__(self, state):
        self.state = state
        self.policies = policies(state)
        self.node_ids = {r["name"]: r["id"] for r in state.db.query("SELECT id, name FROM nodes WHERE removed_at IS NULL")}

    def rows(self, outcomes, statuses, now: datetime) -> list[tuple]:
        """Entry rows for a batch; one pass over each response's headers, dates formatted once per TTL."""
        rows = []
        stamp = to_iso(now)
        expiry: dict[float, str] = {}
        encoded: dict[tuple, str] = {}
        for outcome, status in zip(outcomes, statuses):
            if outcome.error or outcome.status_code != 200 or status.status in ("dynamic", "bypass"):
                continue
            job = outcome.job
            policy = None
            if self.policies:
                path = urlsplit(job.url).path or "/"
                policy = next((p for p in self.policies if p.matches(path)), None)
            ttl = policy.ttl_s if policy is not None else (max(0.0, status.ttl) if status.ttl is not None else None)
            expires = None
            if ttl is not None:
                expires = expiry.get(ttl)
                if expires is None:
                    expires = expiry[ttl] = to_iso(now + timedelta(seconds=ttl))
            etag = content_type = None
            tags: set[str] = set(policy.tags) if policy is not None else set()
            for key, value in outcome.headers:
                name = key.lower()
                if name == b"etag":
                    etag = value.decode("latin-1").strip('"')
                elif name == b"content-type":
                    content_type = value.decode("latin-1")
                elif name in TAG_HEADERS:
                    tags.update(value.decode("latin-1").replace(",", " ").split())
            tag_key = tuple(sorted(tags))
            tag_text = encoded.get(tag_key)
            if tag_text is None:
                tag_text = encoded[tag_key] = json.dumps(list(tag_key))
            node = job.node or PUBLIC
            key = job.url if job.variant.name == "default" else f"{job.url} [{job.variant.name}]"
            rows.append((key, job.url, job.variant.name, node, self.node_ids.get(node), outcome.digest or etag or None,
                         content_type, outcome.size, expires, tag_text, stamp, stamp))
        return rows

    def record(self, outcomes, statuses) -> None:
        rows = self.rows(outcomes, statuses, utcnow())
        if rows:
            self.state.db.conn.executemany(
                "INSERT INTO edge_cache_entries (cache_key, url, variant, node, node_id, content_hash, content_type,"
                " content_size, expires_at, tags, created_at, last_accessed, access_count) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)"
                " ON CONFLICT (cache_key, node) DO UPDATE SET content_hash = excluded.content_hash,"
                " content_type = excluded.content_type, content_size = excluded.content_size,"
                " expires_at = excluded.expires_at, tags = excluded.tags, last_accessed = excluded.last_accessed,"
                " access_count = access_count + 1, invalidated_at = NULL", rows)


def entries(state, *, node: str | None = None, tag: str | None = None, expired: bool = False,
            within: float = 0.0, limit: int = 100) -> list[dict[str, Any]]:
    clauses, params = [], []
    if node is not None:
        clauses.append("node = ?")
        params.append(PUBLIC if node == "public" else node)
    if tag:
        clauses.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)")
        params.append(tag)
    if expired:
        clauses.append("(invalidated_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= ?))")
        params.append(to_iso(utcnow() + timedelta(seconds=within)))
    sql = "SELECT * FROM edge_cache_entries" + (" WHERE " + " AND ".join(clauses) if clauses else "")
    rows = state.db.query(sql + " ORDER BY node COLLATE natural_order, cache_key LIMIT ?", [*params, limit])
    now = utcnow()
    out = []
    for r in rows:
        expires = from_iso(r["expires_at"])
        out.append({"node": r["node"] or "(public)", "cache_key": r["cache_key"], "url": r["url"], "variant": r["variant"],
                    "content_hash": r["content_hash"], "content_type": r["content_type"], "size": r["content_size"],
                    "expires_at": expires, "expired": bool(r["invalidated_at"] or (expires and expires <= now)),
                    "invalidated_at": from_iso(r["invalidated_at"]), "tags": json.loads(r["tags"]),
                    "last_accessed": from_iso(r["last_accessed"]), "access_count": r["access_count"]})
    return out


def stats(state, recent_runs: int = 5) -> list[dict[str, Any]]:
    now = to_iso(utcnow())
    rows = {r["node"]: {"node": r["node"] or "(public)", "entries": r["n"], "bytes": r["bytes"] or 0,
                        "expired": r["expired"] or 0, "hit_ratio": None}
            for r in state.db.query(
                "SELECT node, count(*) AS n, sum(content_size) AS bytes,"
                " sum(invalidated_at IS NOT NULL OR (expires_at IS NOT NULL AND expires_at <= ?)) AS expired"
                " FROM edge_cache_entries GROUP BY node ORDER BY node COLLATE natural_order", [now])}
    for r in state.db.query(
            "SELECT coalesce(node, '') AS node, avg(cache_status = 'hit') AS ratio FROM warm_results"
            " WHERE run_id IN (SELECT id FROM warm_runs ORDER BY id DESC LIMIT ?) GROUP BY 1", [recent_runs]):
        row = rows.setdefault(r["node"], {"node": r["node"] or "(public)", "entries": 0, "bytes": 0, "expired": 0})
        row["hit_ratio"] = round(r["ratio"], 4)
    return list(rows.values())


def matching(state, *, urls=(), prefixes=(), tags=()) -> list[dict[str, Any]]:
    """(url, node) of the entries a URL, prefix or tag names, changing nothing."""
    where, params = _where(urls, prefixes, tags)
    return [dict(r) for r in state.db.query(f"SELECT url, node FROM edge_cache_entries WHERE {where}", params)]


def mark_invalidated(state, *, urls=(), prefixes=(), tags=()) -> list[dict[str, Any]]:
    """Mark matching entries invalidated; returns (url, node) of each."""
    found = matching(state, urls=urls, prefixes=prefixes, tags=tags)
    where, params = _where(urls, prefixes, tags)
    with state.db.atomic():
        state.db.conn.execute(f"UPDATE edge_cache_entries SET invalidated_at = ? WHERE {where}",
                              [to_iso(utcnow()), *params])
    return found


def _where(urls, prefixes, tags) -> tuple[str, list]:
    clauses, params = [], []
    for url in urls:
        clauses.append("url = ?")
        params.append(url)
    for prefix in prefixes:
        if "://" in prefix:
            clauses.append("substr(url, 1, length(?)) = ?")
            params.extend([prefix, prefix])
        else:  # a path prefix on any host
            clauses.append("instr(url, ?) > 0 AND substr(url, instr(substr(url, 9), '/') + 8, length(?)) = ?")
            params.extend([prefix, prefix, prefix])
    for tag in tags:
        clauses.append("EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)")
        params.append(tag)
    if not clauses:
        raise UsageError("nothing to invalidate", hint="give --url, --prefix or --tag")
    return " OR ".join(f"({c})" for c in clauses), params
