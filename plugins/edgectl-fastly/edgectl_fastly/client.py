"""A thin client over the Fastly API endpoints edgectl uses: the key in Fastly-Key, Fastly's error bodies, its rate limit.

Each `FastlyApi.request` is one HTTP request; nothing here sends anything twice (the purge executor
and the analytics domain retry, and count every attempt). Fastly answers errors with
`{"msg": ..., "detail": ...}` (the historical stats API with `{"status": "error", "msg": ...}`); they
become the provider contract's errors carrying that text, never the key.

The rate limit (https://www.fastly.com/documentation/reference/api/#rate-limiting): 1,000 non-read
requests an hour per user or token. GET and HEAD, URL purges and surrogate-key purges are not
counted; purge-all is. A counted request's answer carries Fastly-RateLimit-Remaining (requests left
in the current window) and Fastly-RateLimit-Reset (when the window resets, Unix time in seconds).
Once an answer says none remain, counted requests are held until the reset instead of being sent,
and a 429 to a counted request waits for the reset the same way (BudgetSpent); any other 429 is
throttling (RateLimited). The budget belongs to the key, so every provider in the process with the
same key and endpoint shares what any of them learned.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from edgectl.providers.base import (AuthError, Backpressure, ProviderError, RateLimited, RetryableError,
                                    parse_retry_after)

DEFAULT_ENDPOINT = "https://api.fastly.com"
REMAINING = "Fastly-RateLimit-Remaining"
RESET = "Fastly-RateLimit-Reset"
USER_AGENT = "edgectl-fastly"
# Reset is a whole second on Fastly's clock: a request sent at it by ours may still land in the spent window
RESET_MARGIN_S = 1.0


class BudgetSpent(Backpressure, RateLimited):
    """Fastly said no counted request remains before its reset: the request is held there, not sent.

    A Backpressure, so the purge executor waits without spending the batch's attempts or slowing the
    purge kinds the limit does not count; a RateLimited, so the analytics domain waits the same way.
    """


@dataclass
class Budget:
    """What the last counted answer said of a key's hourly budget."""

    remaining: int | None = None
    reset: float | None = None  # Unix time

    def held_for(self, now: float) -> float | None:
        """Seconds until a counted request may be sent, or None when it may go now."""
        if self.remaining is None or self.remaining > 0 or self.reset is None or self.reset <= now:
            return None
        return self.reset - now + RESET_MARGIN_S


_budgets: dict[tuple[str, str], Budget] = {}
_budgets_lock = threading.Lock()


def budget_for(endpoint: str, key: str) -> Budget:
    """The budget of this key at this endpoint, shared in the process; keyed by a digest, not the key."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    with _budgets_lock:
        return _budgets.setdefault((endpoint.rstrip("/"), digest), Budget())


@dataclass(frozen=True)
class Answer:
    status: int
    doc: Any  # the JSON body, or None when there was none


class FastlyApi:
    """Lazily built, thread-safe; `key` is called once, when the client is built."""

    def __init__(self, endpoint: str, key: Callable[[], str], timeout: float):
        self.endpoint = endpoint.rstrip("/")
        self._key = key
        self.timeout = timeout
        self._lock = threading.Lock()
        self._http = None
        self.budget: Budget | None = None

    def client(self):
        with self._lock:
            if self._http is None:
                import httpx

                key = self._key()
                self.budget = budget_for(self.endpoint, key)
                self._http = httpx.Client(base_url=self.endpoint, timeout=self.timeout,
                                          headers={"Fastly-Key": key, "Accept": "application/json",
                                                   "User-Agent": USER_AGENT})
            return self._http

    def request(self, what: str, method: str, path: str, *, counted: bool = False, headers=None,
                params=None, json=None, ok=(200,)) -> Answer:
        """One request; `counted` ones (non-read, not a URL or key purge) wait out a spent budget unsent."""
        import httpx

        client = self.client()
        if counted:
            wait = self.budget.held_for(time.time())
            if wait is not None:
                raise BudgetSpent(f"fastly: {what}: no API requests left this hour; the limit resets in "
                                  f"{math.ceil(wait)}s", retry_after=wait)
        try:
            response = client.request(method, path, headers=headers, params=params, json=json)
        except httpx.TimeoutException:
            raise RetryableError(f"fastly: {what}: no answer within {self.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"fastly: {what}: {exc.__class__.__name__}: {exc}") from None
        self._note_budget(response.headers)
        doc = _json(response)
        if response.status_code in ok:
            return Answer(response.status_code, doc)
        raise self._error(what, response, doc, counted)

    def _note_budget(self, headers) -> None:
        remaining, reset = _whole(headers.get(REMAINING)), _whole(headers.get(RESET))
        if remaining is not None and reset is not None:
            with _budgets_lock:
                self.budget.remaining, self.budget.reset = remaining, float(reset)

    def _error(self, what: str, response, doc, counted: bool) -> ProviderError:
        status = response.status_code
        message = f"fastly: {what}: {said(doc) or response.reason_phrase or 'error'} (HTTP {status})"
        if status == 429:
            reset = _whole(response.headers.get(RESET))
            wait = max(0.0, reset - time.time()) + RESET_MARGIN_S if reset is not None else None
            if wait is None:
                wait = parse_retry_after(response.headers.get("Retry-After"))
            # a counted request refused: the hourly budget is spent, which holds that request and
            # not the URL and key purges beside it that Fastly does not count
            return (BudgetSpent if counted else RateLimited)(message, wait)
        if status >= 500 and status not in (501, 505):  # 501 and 505: it never does this, sending again cannot help
            return RetryableError(message, parse_retry_after(response.headers.get("Retry-After")))
        if status in (401, 403):
            return AuthError(message)
        return ProviderError(message)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None


def said(doc: Any) -> str:
    """Fastly's own words from an error body: `msg`, then `detail` when it adds something."""
    if not isinstance(doc, dict):
        return ""
    parts = [str(doc.get(name)).strip() for name in ("msg", "detail") if doc.get(name) not in (None, "")]
    text = ": ".join(dict.fromkeys(p for p in parts if p))
    return " ".join(text.split())[:500]  # one line, whatever the body held


def _json(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _whole(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None
