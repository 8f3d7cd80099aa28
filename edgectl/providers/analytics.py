"""The analytics capability's part of the provider contract: the figures a provider reports, pulled into the history.

The analytics domain asks an `AnalyticsProvider` for a window (whole minutes, UTC, already ended
and settled) and stores what comes back in the metrics history. A provider answers with `Point`s
in edgectl's metric names (edgectl.analytics.metrics: `requests`, `cache.hits`, `bytes`,
`errors.4xx`, `errors.5xx`, `latency`, `origin.latency`), each the value of one interval that
starts at `at_ms`:

- `value`: a count or an amount for that interval (requests in the minute), added up over windows;
- `gauge`: a figure the provider already computed (a p95, an average latency, a ratio), kept as
  it came and never merged into a histogram; its `stat` label says which (p50, p95, avg);
- `counter`: a running total read now (the `http` kind's `/.edge/stats`), which the domain turns
  into the interval's increase against the reading before it.

The provider splits the window as its API requires (Cloudflare's `maxDuration`, CloudWatch's
points per call) and says how far back it can see (`oldest_ms`) and how long its figures take to
settle (`settle_ms`); the domain never asks for more. Pulls are idempotent because the domain
keeps one value per series and interval: pulling a window twice changes nothing.

Every API request of a pull (and of `oldest_ms`, when it has to ask) goes through `self.send(what,
call)`: the domain counts it and retries a RetryableError the way the purge executor does (after
Retry-After, else with backoff, throttling bounded only by --timeout), so a provider never retries
by itself. `self.note(text)` tells the people reading the pull something that is not a failure (a
figure the plan does not offer, a node that could not be read this time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterator, Mapping, TypeVar

from edgectl.providers.base import Provider

POINT_KINDS = ("value", "gauge", "counter")
T = TypeVar("T")


@dataclass(frozen=True)
class Point:
    metric: str  # a name from edgectl.analytics.metrics.CATALOGUE
    at_ms: int  # the start of the interval, milliseconds since the epoch, UTC
    value: float
    kind: str = "value"  # value | gauge | counter
    # the interval's length; a counter's at_ms is the moment it was read and step_ms is not used
    step_ms: int = 60_000
    unit: str | None = None  # the catalogue's unit when None
    node: str = ""
    country: str = ""  # ISO 3166-1 alpha-2, upper case
    region: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PullWindow:
    start_ms: int  # inclusive, a whole minute
    end_ms: int  # exclusive, a whole minute
    now_ms: int | None = None  # the clock the window was cut by, for judging how far back each dataset reaches


def _send_once(what: str, call: Callable[[], Any], retry: bool = True) -> Any:
    return call()


@dataclass
class PullLog:
    """What the domain hands a provider before a pull: how its requests are sent, and where notes go."""

    # send(what, call, retry=True) -> call()'s answer; retry=False sends once (a running total read again next time)
    send: Callable[..., Any] = _send_once
    notes: list[str] = field(default_factory=list)


class AnalyticsProvider(Provider):
    """A kind whose analytics edgectl pulls into its history."""

    # how long after an interval its figures stop changing: windows end this long before now
    settle_ms: ClassVar[int] = 5 * 60_000
    # the finest interval the kind reports, in milliseconds
    step_ms: ClassVar[int] = 60_000

    _pull_log: PullLog | None = None

    def pulling(self, log: PullLog) -> None:
        """The domain's sender and notes for the requests that follow (set before oldest_ms and pull)."""
        self._pull_log = log

    def send(self, what: str, call: Callable[[], T], *, retry: bool = True) -> T:
        """One API request, through the domain's sender (counted, retried); sent once when there is none."""
        log = self._pull_log
        return log.send(what, call, retry) if log is not None else call()

    def note(self, text: str) -> None:
        if self._pull_log is not None and text not in self._pull_log.notes:
            self._pull_log.notes.append(text)

    def oldest_ms(self, now_ms: int) -> int | None:
        """The earliest moment the provider can still report, or None when it does not say."""
        return None

    def pull(self, window: PullWindow) -> Iterator[Point]:
        """Every point the provider has in the window; may make several requests."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "analytics": {"step_s": self.step_ms // 1000, "settle_s": self.settle_ms // 1000}}
