"""Fastly: purge one service's cache by URL, surrogate key or everything through the API, one request a batch; pull its stats.

From https://www.fastly.com/documentation/reference/api/purging/:
- a URL: `POST /purge/{host}/{path}` (the documented form has no scheme: the default cache key is
  the host and the path, so one purge covers http and https). A URL purge is not scoped to the
  service: whichever Fastly service caches that URL is purged. One URL per request.
- surrogate keys (edgectl's tags): `POST /service/{id}/purge` with `{"surrogate_keys": [...]}`, up
  to 256 keys a request, answered with a map of each key to its purge id.
- everything: `POST /service/{id}/purge_all`, answered `{"status": "ok"}`. It cannot be soft.
Purges are instant: accepted means done. With `soft_purge`, URL and key purges carry
`Fastly-Soft-Purge: 1` and mark objects stale rather than removing them
(https://www.fastly.com/documentation/guides/full-site-delivery/purging/soft-purges/); a soft purge
of everything is refused before anything is sent.

Limits: Fastly does not rate-limit URL and key purges; edgectl paces them at `purge_rate` requests a
second (100 unless set) to be a good citizen. Purge-all counts against the key's 1,000 non-read
requests an hour (`hourly_limit` when Fastly has granted more), and the budget Fastly reports in its
answers is honoured (edgectl_fastly.client). Surrogate keys are at most 1 KB each and are separated by
spaces, so none holds one (https://www.fastly.com/documentation/reference/vcl/constraints-and-limitations/).

The service's historical stats are pulled by edgectl_fastly.stats with the same key, which then
needs the global:read scope; purging needs purge_select (URLs and keys) and purge_all, which
`test` checks: a token that can purge nothing fails it, one that lacks either scope is told so.
A URL is purged as clients ask for it: without the port when it is the scheme's default.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from edgectl.providers.base import (PATH_SAFE, AuthError, Batch, Bucket, InvalidTarget, Limits, ProviderError,
                                    PurgeAccepted, PurgeProvider, percent_encode)
from edgectl.parse import ascii_host
from edgectl.errors import UsageError

from edgectl_fastly.client import DEFAULT_ENDPOINT, FastlyApi, said
from edgectl_fastly.stats import ServiceStats

KEYS_PER_REQUEST = 256
MAX_KEY_BYTES = 1024
MAX_URL_BYTES = 8192  # Fastly's own limit on a request's URL
DEFAULT_PURGE_RATE = 100.0
DOCUMENTED_HOURLY_LIMIT = 1000
_SERVICE_ID = re.compile(r"[A-Za-z0-9]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_QUERY_SAFE = PATH_SAFE | {"?"}
DEFAULT_PORTS = {"http": 80, "https": 443}
# The token scopes that purge (https://www.fastly.com/documentation/reference/api/auth-tokens/user/):
# purge_select URLs and surrogate keys, purge_all everything, and global all of it; global:read none.
PURGE_SCOPES = (("purge_select", "URLs or surrogate keys"), ("purge_all", "everything"))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class FastlyProvider(PurgeProvider, ServiceStats):
    kind = "fastly"
    capabilities = frozenset({"purge", "analytics"})
    purge_kinds = frozenset({"url", "tag", "everything"})
    async_completion = False
    required_settings = ("service_id", "api_token")
    optional_settings = ("endpoint", "soft_purge", "purge_rate", "hourly_limit")
    secret_settings = ("api_token",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._api = FastlyApi(self.settings.get("endpoint") or DEFAULT_ENDPOINT, lambda: self.secret("api_token"),
                              self.context.timeout)

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings) -> list[str]:
        problems = super().check_settings(settings)
        service = settings.get("service_id")
        if service not in (None, "") and not (isinstance(service, str) and _SERVICE_ID.fullmatch(service)):
            problems.append("service_id: must be the service's alphanumeric id, such as SU1Z0isxPaozGVKXdv0eY")
        endpoint = settings.get("endpoint")
        if endpoint is not None:
            parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
                problems.append(f"endpoint: must be an http(s) URL such as {DEFAULT_ENDPOINT}")
        soft = settings.get("soft_purge")
        if soft is not None and not isinstance(soft, bool):
            problems.append("soft_purge: must be true or false")
        rate = settings.get("purge_rate")
        if rate is not None and not (_is_number(rate) and 0 < rate <= 10_000):
            problems.append("purge_rate: must be requests per second, above 0 and at most 10000")
        hourly = settings.get("hourly_limit")
        if hourly is not None and not (isinstance(hourly, int) and not isinstance(hourly, bool)
                                       and 1 <= hourly <= 1_000_000):
            problems.append("hourly_limit: must be a whole number of requests an hour, from 1 to 1000000")
        return problems

    @property
    def soft(self) -> bool:
        return self.settings.get("soft_purge") is True

    # -- what it can do --------------------------------------------------------
    def limits(self) -> Limits:
        rate = float(self.settings.get("purge_rate") or DEFAULT_PURGE_RATE)
        hourly = int(self.settings.get("hourly_limit") or DOCUMENTED_HOURLY_LIMIT)
        return Limits(
            batch_size={"url": 1, "tag": KEYS_PER_REQUEST, "everything": 1},
            buckets={"purges": Bucket(rate=rate, burst=max(1.0, rate)),
                     "api": Bucket(rate=hourly / 3600, burst=hourly)},
            bucket_for={"url": "purges", "tag": "purges", "everything": "api"},
            max_in_flight=self.max_in_flight(8),
            notes=("one URL a request; up to 256 surrogate keys (tags) a request",
                   f"URL and key purges are not rate-limited by Fastly: paced at {rate:g}/s by edgectl",
                   f"everything (purge_all) counts against the key's {hourly} non-read API requests an hour; "
                   "Fastly-RateLimit-Remaining and -Reset are honoured",
                   "a URL purge purges that URL in whichever Fastly service caches it",
                   "soft purges mark objects stale; everything cannot be purged softly",
                   "purges are instant: accepted means done"),
        )

    def normalise(self, kind: str, value: str) -> str:
        if kind == "url":
            return self._normalise_url(value)
        if kind == "tag":
            key = value.strip() if isinstance(value, str) else ""
            if not key:
                raise InvalidTarget("a surrogate key cannot be empty")
            if not all(33 <= ord(ch) <= 126 for ch in key):
                raise InvalidTarget(f"surrogate key {key[:60]!r} must be printable ASCII without spaces "
                                    "(Surrogate-Key headers separate keys with spaces)")
            if len(key) > MAX_KEY_BYTES:
                raise InvalidTarget(f"surrogate key {key[:40]!r}... is longer than Fastly's {MAX_KEY_BYTES} bytes")
            return key
        if kind == "everything":
            if self.soft:
                raise InvalidTarget("Fastly cannot soft-purge everything (purge_all is always hard): unset "
                                    "soft_purge, or purge a surrogate key every object carries")
            return "*"
        raise InvalidTarget(f"fastly cannot purge by {kind!r}")

    @staticmethod
    def _normalise_url(value: str) -> str:
        text = value.strip() if isinstance(value, str) else ""
        if not text or _CONTROL.search(text):
            raise InvalidTarget(f"URL {value!r} is empty or holds a control character")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise InvalidTarget(f"URL {value!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidTarget(f"URL {value!r} is not an absolute http(s) URL")
        if "@" in parts.netloc:
            raise InvalidTarget(f"URL {value!r} must not carry a user name or password")
        try:
            host = ascii_host(parts.hostname, what="hostname").lower().rstrip(".")
            path = percent_encode(parts.path or "/")
            query = f"?{percent_encode(parts.query, _QUERY_SAFE)}" if parts.query else ""
        except (UsageError, UnicodeError):
            raise InvalidTarget(f"URL {value!r} does not name a valid host or cannot be encoded") from None
        # clients send no port in Host for a scheme's default, and Fastly caches by Host
        netloc = host if port in (None, DEFAULT_PORTS[parts.scheme]) else f"{host}:{port}"
        url = f"{parts.scheme}://{netloc}{path}{query}"  # a fragment is never sent, so never cached
        if len(url.encode()) > MAX_URL_BYTES:
            raise InvalidTarget(f"URL {url[:60]!r}... is longer than Fastly's {MAX_URL_BYTES} bytes")
        return url

    # -- calls -----------------------------------------------------------------
    def prepare(self) -> None:
        self._api.client()

    def _soft_header(self) -> dict[str, str]:
        return {"Fastly-Soft-Purge": "1"} if self.soft else {}

    def purge(self, batch: Batch) -> PurgeAccepted:
        if batch.kind not in self.purge_kinds:
            raise ProviderError(f"fastly cannot purge by {batch.kind!r}")
        service = self.service_id
        if batch.kind == "url":
            (url,) = batch.items
            parts = urlsplit(url)
            target = f"/purge/{parts.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
            doc = self._api.request("purge URL", "POST", target, headers=self._soft_header()).doc
            _check_ok("purge URL", doc)
            return PurgeAccepted(provider_ref=_text(doc, "id"), completed=True,
                                 detail=("soft-purged (marked stale)" if self.soft else "purged"))
        if batch.kind == "tag":
            keys = list(batch.items)
            doc = self._api.request("purge surrogate keys", "POST", f"/service/{service}/purge",
                                    headers=self._soft_header(), json={"surrogate_keys": keys}).doc
            if not isinstance(doc, dict):
                raise ProviderError("fastly: purge surrogate keys: the answer is not the map of keys to purge ids")
            ids = [doc.get(key) for key in keys]
            named = sum(1 for i in ids if i)
            noun = "surrogate key" if len(keys) == 1 else "surrogate keys"
            detail = f"{len(keys)} {noun} {'soft-purged' if self.soft else 'purged'}"
            if named < len(keys):
                detail += f"; Fastly's answer named a purge id for {named} of them"
            return PurgeAccepted(provider_ref=next((str(i) for i in ids if i), None), completed=True, detail=detail)
        doc = self._api.request("purge everything", "POST", f"/service/{service}/purge_all", counted=True).doc
        _check_ok("purge everything", doc)
        return PurgeAccepted(provider_ref=_text(doc, "id"), completed=True, detail=f"service {service}: all purged")

    def test(self) -> str:
        """The key (GET /tokens/self) and the service (GET /service/{id}): two reads, which the hourly limit does not count.

        A key whose scopes cannot purge at all fails, since every purge would be refused (403); one that
        lacks purge_select or purge_all passes, with what it cannot purge said.
        """
        service = self.service_id
        token = self._api.request("token check", "GET", "/tokens/self").doc
        token = token if isinstance(token, dict) else {}
        scope = str(token.get("scope") or "").strip() or "unknown scope"
        services = token.get("services") if isinstance(token.get("services"), list) else []
        if services and service not in services:
            raise AuthError(f"fastly: the API token is limited to {len(services)} service(s), not service {service}")
        line = f"token accepted (scope {scope})"
        scopes = set(scope.split())
        if token.get("scope"):
            line += _purge_scope_problems(scope, scopes)
        if not scopes & {"global", "global:read"} and token:
            # without a read scope the service itself cannot be read: say what was not checked
            return f"{line}; service {service} not read: the token's scope cannot read services (stats need global:read)"
        found = self._api.request("service check", "GET", f"/service/{service}").doc
        name = _text(found, "name") if isinstance(found, dict) else None
        return f"{line}; service {name or service} (id {service}) found"

    def close(self) -> None:
        self._api.close()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "service_id": self.service_id, "soft_purge": self.soft}


def _purge_scope_problems(scope: str, scopes: set[str]) -> str:
    """What the token's scopes cannot purge, to add to test()'s line; AuthError when they purge nothing."""
    missing = [(name, what) for name, what in PURGE_SCOPES if not scopes & {"global", name}]
    if len(missing) == len(PURGE_SCOPES):
        raise AuthError(f"fastly: the API token (scope {scope}) cannot purge: URLs and surrogate keys need the "
                        "purge_select scope, everything purge_all (global has both)"
                        + ("; its stats can still be pulled" if "global:read" in scopes else ""))
    return "".join(f"; it cannot purge {what}: the scope lacks {name}" for name, what in missing)


def _check_ok(what: str, doc: Any) -> None:
    """A 200 whose body says it did not work is a failure; a body without a status (the API drifting) is not."""
    if isinstance(doc, dict) and doc.get("status") not in (None, "ok"):
        raise ProviderError(f"fastly: {what}: {said(doc) or 'status ' + repr(doc.get('status'))}")


def _text(doc: Any, name: str) -> str | None:
    value = doc.get(name) if isinstance(doc, dict) else None
    return str(value) if value not in (None, "") else None
