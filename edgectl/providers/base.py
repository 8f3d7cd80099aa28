"""The contract every provider kind keeps: its capabilities as data, and the parts of the contract they need.

A kind declares `capabilities`, a subset of CAPABILITIES, and implements only those parts: every
kind has settings, hosts and `test`; a kind with `purge` is a `PurgeProvider` and also states what
it purges and its limits, and makes one call per request; a kind with `routing` is a
`RoutingProvider` (providers/steering.py); a kind with `analytics` is an `AnalyticsProvider`
(providers/analytics.py).

The planner batches and paces from `Limits` alone and knows nothing provider-specific. A provider
imports nothing from edgectl's domain packages: what it needs from the state (the `http` kind's
node endpoints) comes in its `ProviderContext`, and secrets are resolved through the context at the
moment a client is built, never stored on the instance as settings.

A provider's methods are synchronous and may be called from several threads at once (up to
`Limits.max_in_flight`); clients are built lazily and must be thread-safe. A provider never retries
by itself: the SDK's own retries are turned off so that every attempt is counted and journaled by
the executor, which retries `RetryableError` with backoff that honours `retry_after`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from edgectl.errors import UsageError
from edgectl.parse import ascii_host, unknown_setting

CAPABILITIES = ("purge", "routing", "analytics")
PURGE_KINDS = ("url", "prefix", "tag", "host", "everything")
COMPLETION_STATES = ("completed", "in_progress", "failed")
# RFC 3986 pchar and '/': kept as written in a path; anything else is percent-encoded as UTF-8
PATH_SAFE = frozenset(string.ascii_letters + string.digits + "-._~" + "!$&'()*+,;=" + ":@/")
_HEX = frozenset(string.hexdigits)


def in_order(names, order: tuple[str, ...]) -> list[str]:
    """The names found in `order` (CAPABILITIES, PURGE_KINDS), in its order, so output reads the same everywhere."""
    return [name for name in order if name in names]


def percent_encode(text: str, safe: frozenset[str] = PATH_SAFE) -> str:
    """Encode once: spaces and unicode become %XX, valid %XX escapes stay, a stray '%' becomes %25."""
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%" and text[i + 1:i + 2] in _HEX and text[i + 2:i + 3] in _HEX:
            out.append(text[i:i + 3])
            i += 3
            continue
        out.append(ch if ch in safe else "".join(f"%{byte:02X}" for byte in ch.encode("utf-8")))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Bucket:
    """A token bucket: `rate` tokens a second, at most `burst` saved up.

    A request costs one token, or one per item when `per_item` (Cloudflare counts URLs, not calls).
    """

    rate: float
    burst: float
    per_item: bool = False

    def to_record(self) -> dict[str, Any]:
        return {"rate_per_s": self.rate, "burst": self.burst, "unit": "item" if self.per_item else "request"}


@dataclass(frozen=True)
class Limits:
    """How much one request may carry and how fast requests may go, by purge kind."""

    batch_size: Mapping[str, int]  # items per request, by purge kind
    buckets: Mapping[str, Bucket]  # token buckets by name
    bucket_for: Mapping[str, str]  # purge kind -> bucket name; kinds may share a bucket
    max_in_flight: int = 4  # requests outstanding at once
    notes: tuple[str, ...] = ()  # wildcard rules, in-progress caps and the like, for people

    def bucket(self, kind: str) -> Bucket:
        return self.buckets[self.bucket_for[kind]]

    def to_record(self) -> dict[str, Any]:
        return {"batch_size": dict(self.batch_size),
                "buckets": {name: bucket.to_record() for name, bucket in self.buckets.items()},
                "bucket_for": dict(self.bucket_for), "max_in_flight": self.max_in_flight, "notes": list(self.notes)}


@dataclass(frozen=True)
class NodeEndpoint:
    """An edge node as the `http` kind needs it: a name and the base URL of its admin API."""

    name: str
    url: str


@dataclass
class ProviderContext:
    """What the caller hands a provider.

    resolve_secret(key, reference) turns `env:NAME` / `file:PATH` into the secret and registers it
    for redaction; it raises edgectl.errors.ConfigError when the reference cannot be resolved.
    """

    resolve_secret: Callable[[str, str], str]
    nodes: list[NodeEndpoint] = field(default_factory=list)
    timeout: float = 30.0


@dataclass(frozen=True)
class Batch:
    """One request's worth of targets, all of one kind.

    `reference` is stable across resends of the same batch (journal id and sequence), so a provider
    with idempotency keys (CloudFront's CallerReference) can make a resend harmless.
    """

    kind: str
    items: tuple[str, ...]
    reference: str
    headers: Mapping[str, str] = field(default_factory=dict)  # for URL purges keyed on request headers


@dataclass(frozen=True)
class PurgeAccepted:
    provider_ref: str | None  # the provider's id for the request (or LRO continuation), when it has one
    completed: bool  # True when the purge is already done, not only accepted
    detail: str = ""
    retry_after: float | None = None  # seconds the provider says to wait before the first completion poll


@dataclass(frozen=True)
class Completion:
    state: str  # one of COMPLETION_STATES
    detail: str = ""
    retry_after: float | None = None  # seconds the provider says to wait before asking again


class ProviderError(Exception):
    """A request failed for a reason that sending it again will not fix."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class AuthError(ProviderError):
    """Credentials were refused (401/403 and the like): nothing else for this provider will succeed."""


class InvalidTarget(ProviderError):
    """A target this provider cannot purge as written (raised by normalise, before anything is sent)."""


class RetryableError(ProviderError):
    """A request failed for now: 429, 5xx, a timeout, a dropped connection."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """The provider said to slow down (429, Throttling). The executor lowers that provider's pace
    and sends again; these retries do not use up a batch's attempts, only the overall timeout."""


class Backpressure(RetryableError):
    """The provider is busy with earlier work (an in-progress cap): wait and send again.

    Unlike other retryable errors this does not count as a failed attempt; the caller waits at
    most its overall timeout.
    """


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime
    from datetime import datetime, timezone

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class Provider:
    """Base class for a provider kind: settings, hosts and `test`, whatever its capabilities."""

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()  # from CAPABILITIES
    required_settings: ClassVar[tuple[str, ...]] = ()
    optional_settings: ClassVar[tuple[str, ...]] = ()
    secret_settings: ClassVar[tuple[str, ...]] = ()  # settings that must be env:/file: references
    # settings every kind accepts
    common_settings: ClassVar[tuple[str, ...]] = ("kind", "hosts", "max_in_flight", "description")
    # names people write for a setting that difflib would not match to it
    setting_synonyms: ClassVar[Mapping[str, str]] = {"type": "kind", "provider": "kind", "hostnames": "hosts",
                                                     "domains": "hosts", "domain": "hosts"}

    def __init__(self, name: str, settings: Mapping[str, Any], context: ProviderContext):
        self.name = name
        self.settings = dict(settings)
        self.context = context

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        """Problems with a provider's config table, one line each (key first); empty when fine."""
        problems = []
        allowed = set(cls.common_settings) | set(cls.required_settings) | set(cls.optional_settings)
        for key in settings:
            if key not in allowed:
                problems.append(f"{key}: " + unknown_setting(key, sorted(allowed), cls.setting_synonyms,
                                                             where=f" for kind {cls.kind!r}"))
        for key in cls.required_settings:
            if key not in settings or settings[key] in ("", None):
                problems.append(f"{key}: required for kind {cls.kind!r}")
        for key in cls.secret_settings:
            value = settings.get(key)
            if value not in ("", None) and not (isinstance(value, str) and value.startswith(("env:", "file:"))):
                problems.append(f"{key}: must be a reference, env:NAME or file:PATH, not the secret itself")
        hosts = settings.get("hosts")
        if hosts is not None and not (isinstance(hosts, list) and all(isinstance(h, str) and h for h in hosts)):
            problems.append("hosts: must be a list of hostnames")
        for host in hosts if isinstance(hosts, list) else []:
            try:
                ascii_host(str(host), what="hostname")
            except UsageError as exc:
                problems.append(f"hosts: {exc.message}")
        in_flight = settings.get("max_in_flight")
        if in_flight is not None and not (isinstance(in_flight, int) and not isinstance(in_flight, bool)
                                          and 1 <= in_flight <= 64):
            problems.append("max_in_flight: must be a whole number from 1 to 64")
        return problems

    @classmethod
    def contract_problem(cls) -> str | None:
        """Why this class cannot serve as a provider kind, or None: its declaration and its parts agree."""
        if not isinstance(cls.capabilities, frozenset):
            return f"capabilities must be a frozenset of names from: {', '.join(CAPABILITIES)}"
        unknown = sorted(set(cls.capabilities) - set(CAPABILITIES))
        if unknown:
            return f"declares unknown capabilities {', '.join(unknown)} (known: {', '.join(CAPABILITIES)})"
        declared = "purge" in cls.capabilities
        if issubclass(cls, PurgeProvider):
            agree = declared
        else:  # purge_kinds on a plain Provider: a kind written before capabilities were declared
            agree = not declared and not hasattr(cls, "purge_kinds")
        if not agree:
            return ("the purge part of the contract and its declaration disagree: a kind that purges subclasses "
                    "PurgeProvider and declares capabilities = frozenset({'purge'})")
        from edgectl.providers.steering import RoutingProvider

        if ("routing" in cls.capabilities) != issubclass(cls, RoutingProvider):
            return ("the routing part of the contract and its declaration disagree: a kind that steers subclasses "
                    "RoutingProvider and declares 'routing' in its capabilities")
        from edgectl.providers.analytics import AnalyticsProvider

        if ("analytics" in cls.capabilities) != issubclass(cls, AnalyticsProvider):
            return ("the analytics part of the contract and its declaration disagree: a kind whose analytics are "
                    "pulled subclasses AnalyticsProvider and declares 'analytics' in its capabilities")
        return None

    def secret(self, key: str) -> str:
        """Resolve a secret setting now; the value is never kept in `settings`."""
        return self.context.resolve_secret(f"providers.{self.name}.{key}", self.settings[key])

    # -- what it can do --------------------------------------------------------
    def max_in_flight(self, default: int) -> int:
        return int(self.settings.get("max_in_flight", default))

    def hosts(self) -> list[str]:
        """Hostnames whose URLs this provider serves, for mapping URLs to providers."""
        hosts = self.settings.get("hosts") or []
        # targets name unicode hosts in their IDNA form, so the hosts they are matched to must too
        return [ascii_host(h).lower().rstrip(".") for h in hosts] if isinstance(hosts, list) else []

    # -- calls -----------------------------------------------------------------
    def prepare(self) -> None:
        """Build the client and resolve secrets now, contacting nothing.

        Called before a purge is journaled, so a missing credential stops it before anything is
        recorded as sent, and the SDK's import is not charged to the first request.
        """

    def test(self) -> str:
        """Check credentials and reachability, changing nothing; one line saying what was checked."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind,
                "capabilities": in_order(self.capabilities, CAPABILITIES), "hosts": self.hosts()}


class PurgeProvider(Provider):
    """The purge capability's part of the contract: what a kind purges, its limits, one request per batch."""

    purge_kinds: ClassVar[frozenset[str]]
    async_completion: ClassVar[bool] = False
    purge_headers: ClassVar[bool] = False  # URL purges may carry the request headers the cache keys on

    def limits(self) -> Limits:
        raise NotImplementedError

    def normalise(self, kind: str, value: str) -> str:
        """A target as this provider's API wants it written; raise InvalidTarget when it cannot be."""
        return value

    def purge(self, batch: Batch) -> PurgeAccepted:
        """One API request for one batch."""
        raise NotImplementedError

    def completion(self, provider_ref: str) -> Completion:
        """Where an accepted asynchronous purge stands, and how long the provider says to wait before asking again."""
        return Completion("completed")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "purge_kinds": in_order(self.purge_kinds, PURGE_KINDS),
                "async_completion": self.async_completion, "limits": self.limits().to_record()}
