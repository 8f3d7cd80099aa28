"""A local stand-in for the Fastly API's purge, token, service and historical stats endpoints, written from Fastly's docs.

Answers as the real API does, as far as its reference and recorded answers show:
- `POST /purge/{host/path}` and `POST /service/{id}/purge/{key}`: `{"status": "ok", "id": "..."}`;
- `POST /service/{id}/purge` with `{"surrogate_keys": [...]}` or a `Surrogate-Key: k1 k2` header:
  a map of each key to its purge id; more than 256 keys, or a key over 1 KB, is a 400;
- `POST /service/{id}/purge_all`: `{"status": "ok"}`. Purge-all cannot be soft: Fastly purges hard
  whatever Fastly-Soft-Purge says, so this fake answers that header with a 400 instead, for a test
  to see that it was sent;
- `GET /tokens/self`, `GET /service/{id}`: the token's scope and services; the service;
- `GET /stats/service/{id}?from=&to=&by=`: `{"data": [...], "meta": {...}, "status": "success",
  "msg": null}`, rows by `start_time`; a `from`/`to` that is not a Unix time, `from` after `to`, an
  unknown `by`, or minutes older than 35 days is a 400 `{"status": "error", "msg": ...}`.
Errors are `{"msg": ..., "detail": ...}`: 401 `Provided credentials are missing or invalid` for a
missing or wrong Fastly-Key, 403 for a token whose scope or services do not cover the request, 404
`Record not found` for an unknown service.

The hourly limit counts purge-all only (GETs, URL and key purges are not counted): each counted
answer carries Fastly-RateLimit-Remaining and Fastly-RateLimit-Reset (Unix seconds), and once
`budget` requests were counted in the current `window` seconds the next is a 429 until the reset.
Faults queued with fail_next/drop_next/delay_next (edgectl.testing.FakeAPI) come first; a queued
429 answers with the same headers, its reset `retry_after` seconds away.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edgectl.testing import Answer, FakeAPI, Seen

KEY = "k-1234567890"
SERVICE = "SU1Z0isxPaozGVKXdv0eY"
MAX_KEYS = 256
MAX_KEY_BYTES = 1024
MINUTE_RETENTION_S = 35 * 86_400
BAD_KEY = {"msg": "Provided credentials are missing or invalid"}
BY = {"minute": 60, "hour": 3600, "day": 86_400}


@dataclass
class Token:
    scope: str = "global"
    services: list[str] = field(default_factory=list)  # empty: every service


@dataclass(frozen=True)
class Purged:
    """One purge the fake applied: kind (url, key, keys, all), what it named, and whether it was soft."""

    kind: str
    items: tuple[str, ...]
    soft: bool
    service: str | None


class FakeFastly(FakeAPI):
    def __init__(self, *, tokens: dict[str, Token] | None = None, services: dict[str, str] | None = None,
                 budget: int = 1000, window: float = 3600.0, clock=time.time):
        super().__init__()
        self.tokens = tokens if tokens is not None else {KEY: Token()}
        self.services = services if services is not None else {SERVICE: "www.example.com"}
        self.budget, self.window = budget, window
        self.clock = clock
        self.applied: list[Purged] = []
        self.stats: dict[str, dict[int, dict[str, float]]] = {}  # service -> minute start (s) -> row
        self._state = threading.Lock()
        self._ids = itertools.count(1)
        self._window_reset: int | None = None
        self._counted = 0

    # -- what tests set and read ---------------------------------------------------------
    def add_minute(self, service: str, start_s: int, row: dict[str, float]) -> None:
        with self._state:
            self.stats.setdefault(service, {})[int(start_s)] = dict(row)

    def purged(self) -> list[Purged]:
        with self._state:
            return list(self.applied)

    @property
    def window_reset(self) -> int | None:
        """When the current rate-limit window resets (Unix seconds), once a counted request opened one."""
        with self._state:
            return self._window_reset

    # -- the API -------------------------------------------------------------------------------
    def handle(self, seen: Seen) -> Answer:
        token = self.tokens.get(seen.headers.get("fastly-key", ""))
        if token is None:
            return Answer(401, BAD_KEY)
        parts = [p for p in seen.path.split("/") if p]
        soft = "fastly-soft-purge" in seen.headers
        if seen.method == "GET" and parts == ["tokens", "self"]:
            return Answer(200, {"id": "t1", "user_id": "u1", "name": "edgectl", "scope": token.scope,
                                "services": token.services, "expires_at": None})
        if seen.method == "POST" and parts[:1] == ["purge"] and len(parts) >= 2:
            denied = self._refused(token, "purge_select", None)
            if denied:
                return denied
            cached = seen.target.split("/purge/", 1)[1]  # host/path?query, as it was sent
            return self._ok(Purged("url", (cached,), soft, None))
        if len(parts) >= 2 and parts[0] in ("service", "stats"):
            return self._service_call(seen, token, parts, soft)
        return Answer(404, {"msg": "Record not found", "detail": f"no route for {seen.method} {seen.path}"})

    def _service_call(self, seen: Seen, token: Token, parts: list[str], soft: bool) -> Answer:
        if parts[0] == "stats":
            if seen.method != "GET" or len(parts) != 3 or parts[1] != "service":
                return Answer(404, {"msg": "Record not found"})
            service = parts[2]
        else:
            service = parts[1]
        scope = "global:read" if seen.method == "GET" else ("purge_all" if parts[2:] == ["purge_all"] else "purge_select")
        denied = self._refused(token, scope, service)
        if denied:
            return denied
        if service not in self.services:
            return Answer(404, {"msg": "Record not found", "detail": f"Cannot find service '{service}'"})
        if parts[0] == "stats":
            return self._stats(seen, service)
        rest = parts[2:]
        if seen.method == "GET" and not rest:
            return Answer(200, {"id": service, "name": self.services[service], "type": "vcl", "paused": False})
        if seen.method == "POST" and rest == ["purge_all"]:
            return self._purge_all(service, soft)
        if seen.method == "POST" and len(rest) == 2 and rest[0] == "purge":
            return self._keys(service, [rest[1]], soft, single=True)
        if seen.method == "POST" and rest == ["purge"]:
            keys = None
            if seen.body:
                try:
                    body = seen.json()
                except ValueError:
                    return Answer(400, {"msg": "Bad request", "detail": "the body is not JSON"})
                keys = body.get("surrogate_keys") if isinstance(body, dict) else None
                if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
                    return Answer(400, {"msg": "Bad request", "detail": "surrogate_keys must be a list of strings"})
            elif "surrogate-key" in seen.headers:
                keys = seen.headers["surrogate-key"].split()
            if not keys:
                return Answer(400, {"msg": "Bad request",
                                    "detail": "give surrogate_keys in the body or a Surrogate-Key header"})
            return self._keys(service, keys, soft)
        return Answer(404, {"msg": "Record not found", "detail": f"no route for {seen.method} {seen.path}"})

    def _refused(self, token: Token, needed: str, service: str | None) -> Answer | None:
        scopes = set(token.scope.split())
        if "global" not in scopes and needed not in scopes:
            return Answer(403, {"msg": "Forbidden", "detail": f"the token's scope does not include {needed}"})
        if service is not None and token.services and service not in token.services:
            return Answer(403, {"msg": "Forbidden", "detail": f"the token is not allowed to use service {service}"})
        return None

    def _next_id(self) -> str:
        return f"4133-{int(self.clock())}-{next(self._ids)}"

    def _ok(self, purged: Purged) -> Answer:
        with self._state:
            self.applied.append(purged)
            return Answer(200, {"status": "ok", "id": self._next_id()})

    def _keys(self, service: str, keys: list[str], soft: bool, single: bool = False) -> Answer:
        if len(keys) > MAX_KEYS:
            return Answer(400, {"msg": "Bad request",
                                "detail": f"{len(keys)} surrogate keys: at most {MAX_KEYS} can be purged at once"})
        long = [k for k in keys if len(k.encode()) > MAX_KEY_BYTES]
        if long:
            return Answer(400, {"msg": "Bad request", "detail": f"surrogate key longer than {MAX_KEY_BYTES} bytes"})
        if single:
            return self._ok(Purged("key", tuple(keys), soft, service))
        with self._state:
            self.applied.append(Purged("keys", tuple(keys), soft, service))
            return Answer(200, {key: self._next_id() for key in keys})

    def _purge_all(self, service: str, soft: bool) -> Answer:
        with self._state:
            now = self.clock()
            if self._window_reset is None or now >= self._window_reset:
                self._window_reset, self._counted = math.ceil(now + self.window), 0
            if self._counted >= self.budget:
                return Answer(429, {"msg": "Too many requests", "detail": "the hourly API rate limit is spent"},
                              self._limit_headers(0, self._window_reset))
            self._counted += 1
            headers = self._limit_headers(self.budget - self._counted, self._window_reset)
            if soft:
                return Answer(400, {"msg": "Bad request", "detail": "Purge-all requests cannot be done in soft mode"},
                              headers)
            self.applied.append(Purged("all", (), False, service))
            return Answer(200, {"status": "ok"}, headers)

    @staticmethod
    def _limit_headers(remaining: int, reset: int) -> dict[str, str]:
        return {"Fastly-RateLimit-Remaining": str(remaining), "Fastly-RateLimit-Reset": str(reset)}

    def fault_answer(self, seen: Seen, status: int, retry_after: float | None) -> Answer:
        import http.client

        reason = http.client.responses.get(status, "Error")
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        if status == 429:
            headers.update(self._limit_headers(0, math.ceil(self.clock() + (retry_after if retry_after is not None
                                                                             else 1.0))))
        if status in (401, 403):
            return Answer(status, BAD_KEY if status == 401 else {"msg": "Forbidden"}, headers)
        return Answer(status, {"msg": reason, "detail": "injected by the test"}, headers)

    # -- historical stats ------------------------------------------------------------------
    def _stats(self, seen: Seen, service: str) -> Answer:
        query = {name: values[-1] for name, values in seen.query.items()}
        by = query.get("by", "day")
        if by not in BY:
            return _stats_error(f"by must be one of {', '.join(BY)}, not {by!r}")
        now = int(self.clock())
        moments = {}
        for name, default in (("from", now - {"minute": 1800, "hour": 86_400, "day": 30 * 86_400}[by]),
                              ("to", now)):
            text = query.get(name)
            if text is None:
                moments[name] = default
            elif text.strip().isdigit():
                moments[name] = int(text)
            else:  # the real API also reads "10 days ago" through Chronic; edgectl only sends Unix times
                return _stats_error(f"could not parse {name} {text!r} as a time")
        start, end = moments["from"], moments["to"]
        if start > end:
            return _stats_error("from must not be after to")
        if by == "minute" and start < now - MINUTE_RETENTION_S:
            return _stats_error("minutely data older than 35 days cannot be retrieved")
        step = BY[by]
        with self._state:
            minutes = dict(self.stats.get(service, {}))
        buckets: dict[int, dict[str, float]] = {}
        for at, row in minutes.items():
            # only periods that have ended are reported
            if start <= at < end and at + 60 <= now:
                cell = buckets.setdefault(at - at % step, {})
                for name, value in row.items():
                    cell[name] = cell.get(name, 0) + value
        data = [{**row, "service_id": service, "start_time": at} for at, row in sorted(buckets.items())]
        meta = {"to": _utc(end), "from": _utc(start), "by": by, "region": query.get("region", "all")}
        return Answer(200, {"data": data, "meta": meta, "status": "success", "msg": None})


def _stats_error(message: str) -> Answer:
    return Answer(400, {"status": "error", "msg": message, "meta": {}, "data": []})


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def minute_row(rng, *, shielded: bool = True) -> dict[str, float]:
    """A minute of plausible traffic: the edge figures and, with shielding, the larger POP-to-POP totals."""
    edge = rng.randint(50, 500)
    hits = rng.randint(0, edge)
    body = edge * rng.randint(2_000, 40_000)
    header = edge * rng.randint(200, 600)
    misses = edge - hits - rng.randint(0, (edge - hits) // 4)
    extra = rng.randint(0, 40) if shielded else 0
    row = {"edge_requests": edge, "edge_hit_requests": hits, "edge_miss_requests": misses,
           "edge_resp_body_bytes": body, "edge_resp_header_bytes": header,
           "requests": edge + extra, "hits": hits + extra // 2, "miss": misses + extra - extra // 2,
           "bandwidth": body + header + extra * 1_000,
           "hits_time": round(hits * rng.uniform(0.0002, 0.002), 6),
           "miss_time": round(misses * rng.uniform(0.02, 0.3), 6),
           "status_2xx": edge - 7, "status_4xx": rng.randint(0, 5), "status_5xx": rng.randint(0, 2)}
    return row


def expected(rows: list[dict[str, float]]) -> dict[str, float]:
    """The totals edgectl should store for these rows, by catalogued metric."""
    return {"requests": sum(r["edge_requests"] for r in rows),
            "cache.hits": sum(r["edge_hit_requests"] for r in rows),
            "bytes": sum(r["edge_resp_header_bytes"] + r["edge_resp_body_bytes"] for r in rows),
            "errors.4xx": sum(r["status_4xx"] for r in rows),
            "errors.5xx": sum(r["status_5xx"] for r in rows)}


def seed(fake: FakeFastly, service: str, start_s: int, end_s: int, rng) -> dict[str, float]:
    """Traffic for every minute of [start, end) and the totals edgectl should store for it."""
    rows = []
    for at in range(start_s - start_s % 60, end_s, 60):
        row = minute_row(rng)
        fake.add_minute(service, at, row)
        rows.append(row)
    return expected(rows)
