"""Sending a provider call again when it failed for now: after its Retry-After, else with backoff, within a deadline.

Providers never retry by themselves (providers/base.py); the domain that calls them does, here,
so every attempt is counted by the caller. Throttling (RateLimited) does not use up attempts,
only time: the provider said when to come back.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


def backoff(attempt: int) -> float:
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(attempt - 1, 16))


def retrying(call: Callable[[], Any], *, deadline: float, what: str, on_retry: Callable[[str], None] | None = None,
             attempts: int = MAX_ATTEMPTS):
    """`call()`, sent again on a retryable error until it succeeds, `attempts` tries fail, or the deadline."""
    from edgectl.providers.base import RateLimited, RetryableError

    attempt = throttled = 0
    while True:
        try:
            return call()
        except RetryableError as exc:
            if isinstance(exc, RateLimited):
                throttled += 1
            else:
                attempt += 1
            delay = exc.retry_after if exc.retry_after is not None else backoff(max(attempt, throttled))
            if attempt >= attempts or time.monotonic() + delay > deadline:
                raise
            log.info("%s: %s; again in %.1fs", what, exc.message, delay)
            if on_retry:
                on_retry(exc.message)
            time.sleep(delay)
