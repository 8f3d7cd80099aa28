"""Running a journaled purge: paced by each provider's token buckets, concurrent up to its in-flight cap.

Provider calls run in one thread pool per provider; only the main thread touches SQLite, and it
journals every step as it happens: a batch is marked `sent` before its request goes out and
`accepted`, `completed`, `pending` (to retry) or `failed` when the answer comes back.
"""

from __future__ import annotations

import heapq
import itertools
import random
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from edgectl.cdn import journal
from edgectl.logs import log, redact

__all__ = ["PurgeRun", "RunStats", "Settings", "TokenBucket", "effective_burst", "poll_delay"]
from edgectl.timeutil import utcnow

MAX_ATTEMPTS = 6  # failed sends of one batch before it fails; 429s and in-progress waits do not count
BACKOFF_BASE = 0.5
BACKOFF_MAX = 30.0
POLL_FIRST = 2.0  # first completion poll after acceptance, doubling up to POLL_MAX ...
POLL_MAX = 15.0
# ... unless the provider says when to ask (ARM's Retry-After, CloudFront's waiter delay). Its word is
# kept within these: no batch is polled more than once a second, and none waits so long that --wait
# hears of a finished purge minutes late.
POLL_FLOOR = 1.0
POLL_CEILING = 120.0
LAST_LOOK = 0.5  # a poll due after --timeout is sent this long before it, so its answer still counts
DRAIN_GRACE = 15.0  # after Ctrl-C, how long requests already on the wire may take to answer
# Tokens leave our bucket when a request is handed to a worker but the provider's bucket only when
# the request arrives, and arrivals bunch up (client-side work, scheduling). So our bucket is kept
# shallower than the provider's by what can be in flight plus this much of its rate: pacing at the
# documented rate then draws no 429s.
JITTER_RESERVE_S = 0.05


def effective_burst(limits, name: str) -> float:
    """The depth our bucket keeps: the provider's, less what can be in flight and the jitter reserve."""
    bucket = limits.buckets[name]
    largest = max((size for kind, size in limits.batch_size.items() if limits.bucket_for.get(kind) == name), default=1)
    in_flight = max(1, int(limits.max_in_flight)) * (largest if bucket.per_item else 1)
    return max(1.0, bucket.burst - in_flight - bucket.rate * JITTER_RESERVE_S)


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.capacity = max(1.0, burst)
        self.tokens = self.capacity
        self.at = now

    def _refill(self, now: float) -> None:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now

    def wait_time(self, cost: float, now: float) -> float:
        """Seconds until `cost` tokens are there (0 when they are now)."""
        cost = min(cost, self.capacity)
        self._refill(now)
        if now < self.at:  # drained until a Retry-After has passed
            return (self.at - now) + max(0.0, cost - self.tokens) / self.rate
        return 0.0 if self.tokens >= cost else (cost - self.tokens) / self.rate

    def take(self, cost: float) -> None:
        self.tokens -= min(cost, self.capacity)

    def slow_down(self) -> None:
        """A quarter slower after each 429, down to a twentieth of where it started."""
        self.floor = getattr(self, "floor", self.rate / 20)
        self.rate = max(self.floor, self.rate * 0.75)

    def drain_until(self, moment: float, leave: float = 1.0) -> None:
        """The provider said to wait (429): nothing saved up and no refill before `moment`, when there
        is `leave` (the request told to wait), so that it goes at `moment` and not a token later."""
        self.tokens = min(self.capacity, leave)
        self.at = max(self.at, moment)


@dataclass
class Work:
    batch: journal.JournalBatch
    call: str = "purge"  # or "completion"
    tries: int = 0  # failed sends this run (in-progress waits excluded)
    polls: int = 0
    sent: float = 0.0  # monotonic time of the last send, for how long its answer took


@dataclass
class Lane:
    """One provider: its pool, its buckets and the work waiting for it."""

    provider: object
    pool: ThreadPoolExecutor
    buckets: dict[str, TokenBucket]
    cap: int
    ready: deque = field(default_factory=deque)
    in_flight: int = 0
    closed_reason: str | None = None


@dataclass
class Settings:
    wait: bool = False
    timeout: float = 600.0
    max_attempts: int = MAX_ATTEMPTS


@dataclass
class RunStats:
    sends: int = 0
    retries: int = 0
    rate_limited: int = 0
    polls: int = 0
    timed_out: bool = False
    interrupted: bool = False
    first_sent: float | None = None  # monotonic times bracketing the requests, for how long sending took
    last_answer: float | None = None
    refused: set[str] = field(default_factory=set)  # providers whose credentials were refused

    @property
    def sending_seconds(self) -> float:
        if self.first_sent is None or self.last_answer is None:
            return 0.0
        return self.last_answer - self.first_sent


Progress = Callable[[str, journal.JournalBatch], None]


class PurgeRun:
    def __init__(self, state, purge: journal.Purge, providers: dict, settings: Settings,
                 progress: Progress | None = None):
        self.state = state
        self.purge = purge
        self.providers = providers
        self.settings = settings
        self.progress = progress or (lambda event, batch: None)
        self.stats = RunStats()
        self._delayed: list = []  # heap of (ready_at, tiebreak, lane name, Work)
        self._tiebreak = itertools.count()
        self._futures: dict[Future, tuple[str, Work]] = {}
        self._answers: list = []  # metrics-history samples: each purge request's duration and outcome

    # -- set-up ------------------------------------------------------------------
    def _lanes(self) -> dict[str, Lane]:
        now = time.monotonic()
        lanes = {}
        for name, provider in self.providers.items():
            limits = provider.limits()
            cap = max(1, int(limits.max_in_flight))
            buckets = {key: TokenBucket(bucket.rate, effective_burst(limits, key), now)
                       for key, bucket in limits.buckets.items()}
            pool = ThreadPoolExecutor(max_workers=cap, thread_name_prefix=f"purge-{name}")
            lanes[name] = Lane(provider, pool, buckets, cap)
        return lanes

    def _later(self, lane: str, work: Work, delay: float) -> None:
        heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._tiebreak), lane, work))

    # -- the loop ------------------------------------------------------------------
    def run(self, todo: list[journal.JournalBatch]) -> RunStats:
        self.lanes = self._lanes()
        for batch in todo:
            if batch.state == "accepted":
                if self.settings.wait:
                    self._later(batch.provider, Work(batch, "completion"), 0.0)
            else:
                self.lanes[batch.provider].ready.append(Work(batch))
        deadline = self._deadline = time.monotonic() + self.settings.timeout
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._loop(deadline)
        except KeyboardInterrupt:
            self.stats.interrupted = True
            self._drain()
        finally:
            signal.signal(signal.SIGTERM, previous)
            for lane in self.lanes.values():
                lane.pool.shutdown(wait=False, cancel_futures=True)
            self._record_answers()
        return self.stats

    def _answered(self, work: Work, outcome: str) -> None:
        """A purge request's answer, for the metrics history: how long it took and how it ended."""
        from edgectl.analytics.metrics import key
        from edgectl.analytics.samples import Sample

        batch = work.batch
        labels = {"source": "purge", "outcome": outcome, "kind": batch.kind}
        at = int(time.time() * 1000)
        self._answers.append(Sample(key("purge.duration", provider=batch.provider, labels=labels), at,
                                    round((time.monotonic() - work.sent) * 1000, 3)))
        if outcome == "accepted":
            self._answers.append(Sample(key("purge.items", provider=batch.provider, labels=labels), at,
                                        len(batch.items)))

    def _record_answers(self) -> None:
        import sqlite3

        from edgectl.analytics.record import record
        from edgectl.errors import StateError

        try:
            with self.state.db.atomic():
                record(self.state, self._answers)
        except (StateError, sqlite3.Error) as exc:  # the purge itself is journaled: a lost figure must not fail it
            log.warning("purge durations not recorded in the metrics history: %s", exc)
        self._answers = []

    def _loop(self, deadline: float) -> None:
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, name, work = heapq.heappop(self._delayed)
                self.lanes[name].ready.append(work)
            if now >= deadline:
                if self._futures or any(lane.ready for lane in self.lanes.values()) or self._delayed:
                    self.stats.timed_out = True
                self._settle()
                return
            wake = deadline
            for name, lane in self.lanes.items():
                wake = min(wake, self._dispatch(name, lane, now))
            if self._delayed:
                wake = min(wake, self._delayed[0][0])
            if not self._futures and not self._delayed and not any(lane.ready for lane in self.lanes.values()):
                return
            self._collect(timeout=max(0.0, wake - time.monotonic()))

    def _dispatch(self, name: str, lane: Lane, now: float) -> float:
        """Send what the lane's buckets and cap allow; return when it could send more."""
        limits = lane.provider.limits()
        while lane.ready and lane.in_flight < lane.cap:
            work = lane.ready[0]
            if work.call == "purge":
                bucket = lane.buckets[limits.bucket_for[work.batch.kind]]
                cost = len(work.batch.items) if limits.bucket(work.batch.kind).per_item else 1
                delay = bucket.wait_time(cost, now)
                if delay > 0:
                    return now + delay
                bucket.take(cost)
            lane.ready.popleft()
            lane.in_flight += 1
            if work.call == "purge":
                self.stats.sends += 1
                if self.stats.first_sent is None:
                    self.stats.first_sent = time.monotonic()
                journal.record(self.state, work.batch.id, state="sent", attempts=work.batch.attempts + 1,
                               sent_at=utcnow())
                work.batch.attempts += 1
                work.sent = time.monotonic()
                future = lane.pool.submit(lane.provider.purge, self._request(work.batch))
            else:
                self.stats.polls += 1
                future = lane.pool.submit(lane.provider.completion, work.batch.provider_ref)
            self._futures[future] = (name, work)
        return float("inf")  # waiting on the cap: an answer wakes the loop

    def _request(self, batch: journal.JournalBatch):
        from edgectl.providers.base import Batch

        return Batch(batch.kind, batch.items, batch.reference(self.purge.uid), dict(self.purge.headers))

    def _collect(self, timeout: float) -> None:
        """Record the answers that arrive within `timeout`; with nothing on the wire, just wait."""
        if not self._futures:
            if timeout > 0:
                time.sleep(min(timeout, 5.0))
            return
        done, _ = wait(list(self._futures), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            name, work = self._futures.pop(future)
            lane = self.lanes[name]
            lane.in_flight -= 1
            self.stats.last_answer = time.monotonic()
            if work.call == "purge":
                self._purged(name, lane, work, future)
            else:
                self._polled(name, lane, work, future)

    def _settle(self) -> None:
        """Send nothing more; record what the requests already on the wire answer, for a while."""
        deadline = time.monotonic() + DRAIN_GRACE
        while self._futures and time.monotonic() < deadline:
            for lane in self.lanes.values():
                lane.ready.clear()
            self._delayed.clear()
            self._collect(timeout=max(0.0, deadline - time.monotonic()))

    # -- outcomes ------------------------------------------------------------------
    def _purged(self, name: str, lane: Lane, work: Work, future: Future) -> None:
        from edgectl.providers.base import AuthError, Backpressure, ProviderError, RateLimited, RetryableError

        batch = work.batch
        try:
            accepted = future.result()
        except RetryableError as exc:
            self._answered(work, "retried")
            if lane.closed_reason:  # the provider refused our credentials meanwhile: send nothing more
                self._fail(batch, f"{lane.closed_reason} (after: {exc.message})")
                return
            if isinstance(exc, Backpressure):
                self._retry_later(name, work, f"waiting: {exc.message}", exc.retry_after if exc.retry_after is not None else 10.0)
                return
            if isinstance(exc, RateLimited):
                # Told to slow down: the provider's limit is lower than documented, or shared with
                # others. Pace lower and send again, as long as --timeout allows; not a failure.
                self.stats.rate_limited += 1
                delay = exc.retry_after if exc.retry_after is not None else _backoff(self.stats.rate_limited)
                limits = lane.provider.limits()
                own = limits.bucket_for[batch.kind]
                cost = len(batch.items) if limits.bucket(batch.kind).per_item else 1
                for bucket_name, bucket in lane.buckets.items():
                    bucket.slow_down()
                    bucket.drain_until(time.monotonic() + delay, leave=cost if bucket_name == own else 1.0)
                self.stats.retries += 1
                self._retry_later(name, work, exc.message, delay)
                return
            work.tries += 1
            if work.tries >= self.settings.max_attempts:
                self._fail(batch, f"{exc.message} (gave up after {work.tries} attempts)")
                # what failed six times in a row will fail for the batches behind it too
                self._close_lane(lane, f"not sent: {lane.provider.name} kept failing: {exc.message}")
                return
            self.stats.retries += 1
            delay = exc.retry_after if exc.retry_after is not None else _backoff(work.tries)
            self._retry_later(name, work, exc.message, delay)
            return
        except AuthError as exc:
            self._answered(work, "refused")
            self.stats.refused.add(name)
            self._fail(batch, exc.message)
            self._close_lane(lane, f"not sent: {exc.message}")
            return
        except ProviderError as exc:
            self._answered(work, "failed")
            self._fail(batch, exc.message)
            return
        except Exception as exc:  # an SDK raising something unexpected: fail the batch, keep the run going
            self._answered(work, "failed")
            log.debug("purge batch %s: unexpected %r", batch.seq, exc, exc_info=True)
            self._fail(batch, f"unexpected error: {exc.__class__.__name__}: {exc}")
            return
        self._answered(work, "accepted")
        done = accepted.completed or not lane.provider.async_completion
        now = utcnow()
        batch.state = "completed" if done else "accepted"
        batch.provider_ref = accepted.provider_ref
        journal.record(self.state, batch.id, state=batch.state, provider_ref=accepted.provider_ref,
                       detail=redact(accepted.detail) or None, last_error=None, accepted_at=now,
                       completed_at=now if done else None)
        self.progress(batch.state, batch)
        if not done and self.settings.wait:
            self._later(name, Work(batch, "completion"), self._poll_delay(accepted.retry_after, POLL_FIRST))

    def _polled(self, name: str, lane: Lane, work: Work, future: Future) -> None:
        from edgectl.providers.base import ProviderError, RetryableError

        batch = work.batch
        work.polls += 1
        # the exponent is bounded: a float overflows at 2 ** 1024, some 17 minutes of polls at the floor
        delay = min(POLL_MAX, POLL_FIRST * 2 ** min(work.polls, 16))
        try:
            completion = future.result()
        except RetryableError as exc:  # a refused status request waits as a poll does, floor and timeout kept
            self._later(name, work, self._poll_delay(exc.retry_after, delay))
            return
        except ProviderError as exc:
            journal.record(self.state, batch.id, last_error=redact(f"completion unknown: {exc.message}"))
            return
        except Exception as exc:
            journal.record(self.state, batch.id, last_error=redact(f"completion unknown: {exc.__class__.__name__}: {exc}"))
            return
        if completion.state == "completed":
            batch.state = "completed"
            journal.record(self.state, batch.id, state="completed", completed_at=utcnow(),
                           detail=redact(completion.detail) or batch.detail)
            self.progress("completed", batch)
        elif completion.state == "failed":
            # the provider gave up on an accepted purge: send it again on resume
            batch.state = "failed"
            journal.record(self.state, batch.id, state="failed", last_error=redact(completion.detail or "failed at the provider"))
            self.progress("failed", batch)
        else:
            self._later(name, work, self._poll_delay(completion.retry_after, delay))

    def _poll_delay(self, suggested: float | None, fallback: float) -> float:
        return poll_delay(suggested, fallback, self._deadline - time.monotonic())

    def _retry_later(self, name: str, work: Work, message: str, delay: float) -> None:
        work.batch.state = "pending"
        journal.record(self.state, work.batch.id, state="pending", last_error=redact(message))
        self.progress("retry", work.batch)
        self._later(name, work, delay)

    def _fail(self, batch: journal.JournalBatch, message: str) -> None:
        batch.state = "failed"
        journal.record(self.state, batch.id, state="failed", last_error=redact(message))
        self.progress("failed", batch)

    def _close_lane(self, lane: Lane, message: str) -> None:
        """Credentials refused: fail what is still waiting for this provider without sending it."""
        lane.closed_reason = message
        waiting = list(lane.ready)
        lane.ready.clear()
        kept = []
        for entry in self._delayed:
            if self.lanes[entry[2]] is lane:
                waiting.append(entry[3])
            else:
                kept.append(entry)
        heapq.heapify(kept)
        self._delayed = kept
        for work in waiting:
            if work.call == "purge":
                self._fail(work.batch, message)

    def _drain(self) -> None:
        """Ctrl-C or SIGTERM: stop sending and record the answers in flight; a second one leaves them `sent`."""
        try:
            self._settle()
        except KeyboardInterrupt:
            pass


def poll_delay(suggested: float | None, fallback: float, remaining: float) -> float:
    """Seconds until the next completion poll, with `remaining` seconds left of --timeout.

    The provider's suggestion within POLL_FLOOR..POLL_CEILING, else our own schedule (`fallback`). A
    poll that would fall after the timeout is brought forward to LAST_LOOK before it. That happens
    once: LAST_LOOK is below the floor, so the poll after that one is past the timeout and not sent.
    """
    delay = fallback if suggested is None else min(POLL_CEILING, max(POLL_FLOOR, suggested))
    last_look = remaining - LAST_LOOK
    return max(POLL_FLOOR, last_look) if delay > last_look else delay


def _backoff(tries: int) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4 s..., at most 30 s."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (tries - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
