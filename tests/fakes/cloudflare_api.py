"""A local stand-in for the Cloudflare v4 API's purge, zone and token endpoints, for tests and bench.

It answers in Cloudflare's envelope (`success`, `errors`, `messages`, `result`) and refuses what the
real API refuses: a missing or wrong token, a body without exactly one purge key, too many items
in one request, a file that is not an absolute URL, a prefix with a scheme or query string. With
`url_rate` or `bulk_rate` it paces requests by token bucket the way Cloudflare does (URLs per
second for files, requests per second for tags, hosts, prefixes and everything) and answers 429
with a whole-second `Retry-After`. With `api_limit` it also holds every request to the global
limit, `api_limit` requests in any `api_window` seconds (Cloudflare's is 1,200 per five minutes
per user), and tells the client where it stands in `Ratelimit` and `Ratelimit-Policy` headers.

It is an `edgectl.testing.FakeAPI`: every request is in `requests` (a list of `Seen`), and faults are
queued and each is spent by the next request, whatever its path:
  fail_next(status=500, count=2)            answer with an error envelope
  fail_next(status=429, retry_after=1)      answer 429 with Retry-After
  reset_next_connection()                   read the request, then drop the connection unanswered
  drop_next()                               purge as asked, then drop the connection unanswered
  delay_next(seconds)                       answer late (for client timeouts)

In-process: `fake = FakeCloudflare().start()`, point the SDK at `fake.url`, `fake.stop()`.
As a program it serves until SIGTERM or SIGINT, writes its port to --port-file (the API is at
http://127.0.0.1:PORT/client/v4) and, on exit, counters as JSON to --stats-file:

  python -m tests.fakes.cloudflare_api --port-file F --url-rate 800 --stats-file S
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edgectl.testing import Answer, FakeAPI, Seen

API_PREFIX = "/client/v4"
DEFAULT_TOKEN = "cf-test-token"
DEFAULT_ZONES = {"example.com": "023e105f4ecef8ad9ca31a8372d0c353"}
DEFAULT_ACCOUNT_ID = "01a7362d577a6c3019a474fd6f485823"  # the account that owns every zone
# the global limit, requests per window in seconds (developers.cloudflare.com/fundamentals/api/reference/limits)
GLOBAL_LIMIT, GLOBAL_WINDOW = 1200, 300.0
FLEX_PER_REQUEST = 100  # tags, hosts and prefixes per request
MAX_TAG_LENGTH = 1024

# Error codes and messages as the real API sends them, where they could be confirmed from its
# answers quoted in public issues and tests. The code for "too many items" could not be confirmed:
# the provider maps errors by HTTP status and reports Cloudflare's text, never by this number.
_MISSING_AUTH = (9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
_BAD_AUTH_FORMAT = (6003, "Invalid request headers")
_BAD_AUTH_FORMAT_CHAIN = (6111, "Invalid format for Authorization header")
_INVALID_TOKEN = (1000, "Invalid API Token")  # /user/tokens/verify
_AUTH_ERROR = (10000, "Authentication error")  # any other endpoint
_RATE_LIMITED = (971, "Please wait and consider throttling your request speed")
_NO_PURGE_KEY = (1012, 'Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes"')
_TOO_MANY = 1099  # unconfirmed, see above
_BAD_ITEM = 1012
_NO_ROUTE = 7003
_NO_URI = (7000, "No route for that URI")
_PURGE_KEYS = ("files", "tags", "hosts", "prefixes", "purge_everything")


def _envelope(result=None, errors=(), messages=(), **extra) -> dict:
    return {"success": not errors, "errors": list(errors), "messages": list(messages), "result": result, **extra}


def _error(code: int, message: str, chain: tuple[int, str] | None = None) -> dict:
    error = {"code": code, "message": message}
    if chain:
        error["error_chain"] = [{"code": chain[0], "message": chain[1]}]
    return error


@dataclass
class _Fault:
    """A queued `fail_next`, as `fault_document` is handed it."""
    kind: str  # fail
    status: int = 500
    retry_after: float | None = None
    errors: list[dict] | None = None


@dataclass
class _TokenBucket:
    rate: float
    burst: float
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self):
        self.tokens = self.burst
        self.stamp = time.monotonic()

    def take(self, cost: float) -> float:
        """Spend `cost` tokens and return 0, or spend nothing and return the seconds until it could."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


@dataclass
class _WindowLimit:
    """At most `limit` requests in any `window` seconds, counted by the times of those let through."""
    limit: int
    window: float
    stamps: deque = field(default_factory=deque)

    def take(self) -> tuple[float, int, float]:
        """(seconds until there is room or 0 if this request was let through, requests left, seconds to reset)."""
        now = time.monotonic()
        while self.stamps and self.stamps[0] <= now - self.window:
            self.stamps.popleft()
        if len(self.stamps) >= self.limit:
            reset = self.stamps[0] + self.window - now
            return reset, 0, reset
        self.stamps.append(now)
        return 0.0, self.limit - len(self.stamps), self.stamps[0] + self.window - now


class _Refusal(Exception):
    def __init__(self, status: int, errors: list[dict], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.errors = errors
        self.headers = headers or {}


def _no_route(path: str) -> _Refusal:
    return _Refusal(404, [_error(_NO_ROUTE, f"Could not route to {path}, perhaps your object identifier is invalid?")])


def _read_json(body: bytes, code: int):
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise _Refusal(400, [_error(code, "Malformed JSON in request body")]) from None


def _query_int(query: dict[str, list[str]], name: str, default: int) -> int:
    # refused in the words the Load Balancing API uses for a bad field; no list's own answer was found quoted
    text = (query.get(name) or [None])[0]
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise _Refusal(400, [_error(1002, f"{name}: must be a whole number of at least 1: validation failed")])
    return int(text)


def _page(items: list, query: dict[str, list[str]], default_per_page: int) -> dict:
    """The envelope for one page of `items`, as `page` and `per_page` in the query choose it."""
    per_page = _query_int(query, "per_page", default_per_page)
    page = _query_int(query, "page", 1)
    chosen = items[(page - 1) * per_page: page * per_page]
    info = {"page": page, "per_page": per_page, "count": len(chosen), "total_count": len(items),
            "total_pages": max(1, math.ceil(len(items) / per_page))}
    return _envelope(chosen, result_info=info)


def _is_http_url(value) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def _is_hostname(value) -> bool:
    if not isinstance(value, str) or not value or len(value) > 253:
        return False
    labels = value.rstrip(".").split(".")
    return len(labels) >= 2 and all(
        0 < len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label) and label[0] != "-" and label[-1] != "-"
        for label in labels)


class FakeCloudflare(FakeAPI):
    """The fake API; every public method is safe to call from any thread while it serves."""

    def __init__(self, token: str = DEFAULT_TOKEN, zones: dict[str, str] | None = None, files_per_request: int = 30,
                 url_rate: float | None = None, bulk_rate: float | None = None, bulk_burst: float | None = None,
                 api_limit: int | None = None, api_window: float = GLOBAL_WINDOW,
                 account_id: str = DEFAULT_ACCOUNT_ID, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.token = token
        self.account_id = account_id
        self.token_status = "active"  # what /user/tokens/verify reports for the right token
        self.user_token = True  # False: an account-owned token, which /user/tokens/verify refuses
        self.zones = dict(DEFAULT_ZONES if zones is None else zones)
        self.files_per_request = files_per_request
        self._url_bucket = _TokenBucket(url_rate, url_rate) if url_rate else None
        self._bulk_bucket = _TokenBucket(bulk_rate, bulk_burst or bulk_rate) if bulk_rate else None
        self._global_limit = _WindowLimit(api_limit, api_window) if api_limit else None
        self._purged: list[dict] = []
        self._calls: list[tuple[str, str]] = []
        self._rejected_429 = 0
        self._urls = 0

    @property
    def url(self) -> str:
        return f"{super().url}{API_PREFIX}"

    # -- faults ----------------------------------------------------------------
    def fail_next(self, status: int = 500, count: int = 1, retry_after: float | None = None,
                  errors: list[dict] | None = None) -> None:
        """The next `count` requests get `status` with an error envelope (and Retry-After if given)."""
        super().fail_next(status, count, retry_after, detail=errors)

    def reset_next_connection(self, count: int = 1) -> None:
        self.reset_next(count)

    # -- what reached it -------------------------------------------------------
    @property
    def purged(self) -> list[dict]:
        """Every accepted purge, in order: {"zone_id", "kind", "items", "headers", "body"}."""
        with self._lock:
            return [dict(p) for p in self._purged]

    @property
    def calls(self) -> list[tuple[str, str]]:
        """(method, path below /client/v4, query included) of every request that was answered normally."""
        with self._lock:
            return list(self._calls)

    def stats(self) -> dict:
        requests = len(self.requests)
        with self._lock:
            return {"requests": requests, "purge_calls": len(self._purged), "urls": self._urls,
                    "rejected_429": self._rejected_429}

    # -- answering -------------------------------------------------------------
    def fault_document(self, target: str, fault: _Fault) -> dict:
        """The body a queued `fail_next` fault answers `target` with; a fake of another API reshapes it."""
        errors = fault.errors or ([_error(*_RATE_LIMITED)] if fault.status == 429
                                  else [_error(10001, "Service unavailable, please try again")])
        return _envelope(errors=errors)

    def handle(self, seen: Seen) -> Answer:
        return Answer(*self.answer(seen.method, seen.target, seen.headers, seen.body))

    def fault_answer(self, seen: Seen, status: int, retry_after: float | None, detail=None) -> Answer:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return Answer(status, self.fault_document(seen.target, _Fault("fail", status, retry_after, detail)), headers)

    def answer(self, method: str, target: str, headers, body: bytes) -> tuple[int, dict, dict[str, str]]:
        """(status, JSON document, extra headers) for one request."""
        parts = urlsplit(target)
        if not parts.path.startswith(API_PREFIX + "/"):
            return 404, _envelope(errors=[_error(*_NO_URI)]), {}
        path = parts.path[len(API_PREFIX):].rstrip("/")
        with self._lock:
            self._calls.append((method, target[len(API_PREFIX):]))
        try:
            limit_headers = self._count_against_global_limit()
            if path == "/user/tokens/verify" and method == "GET":
                self._authenticate(headers, verifying=True)
                return 200, _envelope({"id": uuid.uuid5(uuid.NAMESPACE_OID, self.token).hex, "status": self.token_status},
                                      messages=[{"code": 10000, "message": "This API Token is valid and active",
                                                 "type": None}]), limit_headers
            self._authenticate(headers)
            status, doc = self._route(method, path, parse_qs(parts.query), body)
            return status, doc, limit_headers
        except _Refusal as refusal:
            return refusal.status, _envelope(errors=refusal.errors), refusal.headers

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, dict]:
        """(status, JSON document) for an authenticated request; `path` is below /client/v4."""
        if path == "/zones" and method == "GET":
            return 200, self._list_zones(query)
        segments = path.strip("/").split("/")
        if len(segments) >= 2 and segments[0] == "zones":
            zone_name = self._zone_name(segments[1], path)
            if len(segments) == 2 and method == "GET":
                return 200, _envelope(self._zone_doc(zone_name))
            if segments[2:] == ["purge_cache"] and method == "POST":
                return 200, _envelope(self._purge(segments[1], body))
        raise _Refusal(404, [_error(*_NO_URI)])

    def _count_against_global_limit(self) -> dict[str, str]:
        """The rate-limit headers for a request let through; a 429 refusal for one over the limit."""
        if self._global_limit is None:
            return {}
        limit = self._global_limit
        with self._lock:
            wait, left, reset = limit.take()
            if wait:
                self._rejected_429 += 1
        headers = {"Ratelimit": f'"default";r={left};t={math.ceil(reset)}',
                   "Ratelimit-Policy": f'"default";q={limit.limit};w={limit.window:g}'}
        if wait:
            raise _Refusal(429, [_error(*_RATE_LIMITED)], {**headers, "Retry-After": str(max(1, math.ceil(wait)))})
        return headers

    def _authenticate(self, headers, verifying: bool = False) -> None:
        value = headers.get("authorization")
        if not value:
            raise _Refusal(400, [_error(*_MISSING_AUTH)])
        scheme, _, token = value.partition(" ")
        if scheme != "Bearer" or not token or not all(c.isalnum() or c in "-_" for c in token):
            raise _Refusal(400, [_error(*_BAD_AUTH_FORMAT, chain=_BAD_AUTH_FORMAT_CHAIN)])
        if token != self.token or (verifying and not self.user_token):
            raise _Refusal(401, [_error(*_INVALID_TOKEN)]) if verifying else _Refusal(403, [_error(*_AUTH_ERROR)])
        if not verifying and self.token_status != "active":
            raise _Refusal(403, [_error(*_AUTH_ERROR)])

    def _zone_name(self, zone_id: str, path: str) -> str:
        for name, known in self.zones.items():
            if known == zone_id:
                return name
        raise _no_route(path)

    def _zone_doc(self, name: str) -> dict:
        stamp = "2024-01-01T00:00:00Z"
        return {"id": self.zones[name], "name": name, "status": "active", "paused": False, "type": "full",
                "development_mode": 0, "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
                "original_name_servers": None, "original_registrar": None, "original_dnshost": None,
                "created_on": stamp, "modified_on": stamp, "activated_on": stamp,
                "meta": {"step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3, "phishing_detected": False},
                "owner": {"id": None, "type": "user", "email": None},
                "account": {"id": self.account_id, "name": "Test account"},
                "permissions": ["#cache_purge:edit", "#zone:read"],
                "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "price": 0, "currency": "USD",
                         "frequency": "", "is_subscribed": False, "can_subscribe": False, "legacy_id": "free",
                         "legacy_discount": False, "externally_managed": False}}

    def _list_zones(self, query: dict[str, list[str]]) -> dict:
        wanted = (query.get("name") or [None])[0]
        names = [n for n in self.zones if wanted is None or n.lower() == wanted.lower().rstrip(".")]
        return _page([self._zone_doc(n) for n in names], query, 20)

    def _purge(self, zone_id: str, body: bytes) -> dict:
        doc = _read_json(body, _BAD_ITEM)
        keys = [k for k in _PURGE_KEYS if isinstance(doc, dict) and k in doc]
        if len(keys) != 1 or (keys == ["purge_everything"] and doc["purge_everything"] is not True):
            raise _Refusal(400, [_error(*_NO_PURGE_KEY)])
        key = keys[0]
        if key == "purge_everything":
            kind, items, headers = "everything", [], {}
        else:
            items = doc[key]
            if not isinstance(items, list) or not items:
                raise _Refusal(400, [_error(_BAD_ITEM, f"{key}: must be a non-empty list")])
            kind, items, headers = self._check_items(key, items)
        self._pace(kind, len(items))
        with self._lock:
            self._purged.append({"zone_id": zone_id, "kind": kind, "items": items, "headers": headers, "body": doc})
            if kind == "url":
                self._urls += len(items)
        # as in Cloudflare's examples, the id answered is the zone's, not one for the request
        return {"id": zone_id}

    def _check_items(self, key: str, items: list) -> tuple[str, list[str], dict]:
        if key == "files":
            if len(items) > self.files_per_request:
                raise _Refusal(400, [_error(_TOO_MANY, f"Only {self.files_per_request} files may be purged per "
                                                       f"request, got {len(items)}")])
            urls, headers = [], {}
            for item in items:
                if isinstance(item, dict):
                    url, item_headers = item.get("url"), item.get("headers", {})
                    if not isinstance(item_headers, dict) or not all(
                            isinstance(k, str) and isinstance(v, str) for k, v in item_headers.items()):
                        raise _Refusal(400, [_error(_BAD_ITEM, f"files: headers of {url!r} must map names to strings")])
                    headers = dict(item_headers)
                else:
                    url = item
                if not _is_http_url(url):
                    raise _Refusal(400, [_error(_BAD_ITEM, f"files: {url!r} is not a valid absolute URL")])
                urls.append(url)
            return "url", urls, headers
        kind = {"tags": "tag", "hosts": "host", "prefixes": "prefix"}[key]
        if len(items) > FLEX_PER_REQUEST:
            raise _Refusal(400, [_error(_TOO_MANY, f"Only {FLEX_PER_REQUEST} {key} may be purged per request, "
                                                   f"got {len(items)}")])
        for item in items:
            if not isinstance(item, str) or not item:
                raise _Refusal(400, [_error(_BAD_ITEM, f"{key}: {item!r} is not a non-empty string")])
            if kind == "tag" and (len(item) > MAX_TAG_LENGTH or "," in item):
                raise _Refusal(400, [_error(_BAD_ITEM, f"tags: {item[:40]!r} is longer than {MAX_TAG_LENGTH} "
                                                       "characters or holds a comma")])
            if kind == "host" and not _is_hostname(item):
                raise _Refusal(400, [_error(_BAD_ITEM, f"hosts: {item!r} is not a hostname")])
            if kind == "prefix" and ("://" in item or "?" in item or "#" in item
                                     or not _is_hostname(item.split("/", 1)[0])):
                raise _Refusal(400, [_error(_BAD_ITEM, f"prefixes: {item!r} must be host/path, with no scheme, "
                                                       "query string or fragment")])
        return kind, list(items), {}

    def _pace(self, kind: str, count: int) -> None:
        bucket, cost = (self._url_bucket, count) if kind == "url" else (self._bulk_bucket, 1)
        if bucket is None:
            return
        with self._lock:
            wait = bucket.take(cost)
            if wait:
                self._rejected_429 += 1
        if wait:
            raise _Refusal(429, [_error(*_RATE_LIMITED)], {"Retry-After": str(max(1, math.ceil(wait)))})


def _zone_arg(text: str) -> tuple[str, str]:
    name, sep, zone_id = text.partition("=")
    if not sep or not name or not zone_id:
        raise argparse.ArgumentTypeError(f"expected NAME=ID, got {text!r}")
    return name, zone_id


def arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every fake of the v4 API takes as a program."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--stats-file", help="write counters here as JSON on exit")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--zone", type=_zone_arg, action="append", metavar="NAME=ID",
                        help=f"a zone (repeatable; default {next(iter(DEFAULT_ZONES.items()))})")
    parser.add_argument("--account", default=DEFAULT_ACCOUNT_ID, help="the account ID that owns the zones")
    parser.add_argument("--api-limit", type=int, help=f"requests per --api-window (Cloudflare's: {GLOBAL_LIMIT})")
    parser.add_argument("--api-window", type=float, default=GLOBAL_WINDOW, help="seconds")
    return parser


def serve(fake: FakeCloudflare, port_file: str | None, stats_file: str | None) -> int:
    """Serve until SIGTERM or SIGINT, with the port written to `port_file` and counters to `stats_file` on exit."""
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    fake.start()
    if port_file:
        partial = f"{port_file}.part"
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(f"{fake.port}\n")
        os.replace(partial, port_file)  # a reader never sees half a file
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()
        if stats_file:
            with open(stats_file, "w", encoding="utf-8") as handle:
                json.dump(fake.stats(), handle)
    return 0


def launch(module: str, port_file: Path, *options: str, wait: float = 10.0) -> tuple[subprocess.Popen, int]:
    """Run `python -m module --port-file port_file *options` from the project root: the process and, once it
    listens, its port. Stop it with SIGTERM."""
    process = subprocess.Popen([sys.executable, "-m", module, "--port-file", str(port_file), *options],
                               cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + wait
    while not port_file.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    if not port_file.exists():
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"{module} did not start: {err.decode(errors='replace') or 'no port file'}")
    return process, int(port_file.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = arguments("python -m tests.fakes.cloudflare_api", __doc__.splitlines()[0])
    parser.add_argument("--files-per-request", type=int, default=30)
    parser.add_argument("--url-rate", type=float, help="URLs per second (token bucket, burst the same)")
    parser.add_argument("--bulk-rate", type=float, help="tag/host/prefix/everything requests per second")
    parser.add_argument("--bulk-burst", type=float, help="bulk bucket size (default: the rate)")
    args = parser.parse_args(argv)

    fake = FakeCloudflare(token=args.token, zones=dict(args.zone) if args.zone else None,
                          files_per_request=args.files_per_request, url_rate=args.url_rate,
                          bulk_rate=args.bulk_rate, bulk_burst=args.bulk_burst, api_limit=args.api_limit,
                          api_window=args.api_window, account_id=args.account, port=args.port)
    return serve(fake, args.port_file, args.stats_file)


if __name__ == "__main__":
    raise SystemExit(main())
