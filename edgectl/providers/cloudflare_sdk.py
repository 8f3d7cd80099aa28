"""What the Cloudflare kinds share: an SDK client with the configured token, its errors as provider errors, the zone.

The client is built on first use (thread-safe) with the SDK's own retries off: edgectl retries,
and counts and journals each try. The zone is named by `zone_id`, or by `zone` (its name), looked
up once with `GET /zones?name=`.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from edgectl.providers.base import AuthError, ProviderError, RateLimited, RetryableError, parse_retry_after

DEFAULT_ENDPOINT = "https://api.cloudflare.com/client/v4"
SETTINGS = ("zone_id", "zone", "endpoint_url")
# Cloudflare's codes for a token that is missing, malformed, unknown or not allowed; some come with 400
AUTH_CODES = frozenset({1000, 6003, 6111, 9106, 9109, 10000})
ZONE_ID = re.compile(r"[0-9a-f]{32}")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def normalise_hostname(value: str) -> str:
    """A hostname lower-cased, IDNA-encoded and checked; ValueError when it is not one."""
    host = value.strip().rstrip(".").lower()
    if not host.isascii():
        host = host.encode("idna").decode("ascii")  # UnicodeError is a ValueError
    labels = host.split(".")
    if (len(host) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels)
            or labels[-1].isdigit()):
        raise ValueError(value)
    return host


def hostname_or_none(value: Any) -> str | None:
    """`value` as normalise_hostname writes it, or None when it is not a hostname."""
    try:
        return normalise_hostname(value) if isinstance(value, str) else None
    except ValueError:
        return None


def check_settings(settings: Mapping[str, Any], problems: list[str], kind: str) -> list[str]:
    """The zone and endpoint settings' problems added to `problems`: one of zone_id or zone, each well formed."""
    zone_id, zone = settings.get("zone_id"), settings.get("zone")
    if zone_id in ("", None) and zone in ("", None):
        problems.append(f"zone_id: required for kind {kind!r} (or zone, the zone's name)")
    elif zone_id not in ("", None) and zone not in ("", None):
        problems.append("zone: give zone_id or zone, not both")
    if zone_id not in ("", None) and not (isinstance(zone_id, str) and ZONE_ID.fullmatch(zone_id)):
        problems.append("zone_id: must be the zone's ID, 32 lower-case hexadecimal characters")
    if zone not in ("", None) and hostname_or_none(zone) is None:
        problems.append(f"zone: {zone!r} is not a domain name such as example.com")
    endpoint = settings.get("endpoint_url")
    if endpoint is not None and not (isinstance(endpoint, str) and urlsplit(endpoint).scheme in ("http", "https")
                                     and urlsplit(endpoint).hostname):
        problems.append("endpoint_url: must be an http(s) URL such as https://api.cloudflare.com/client/v4")
    return problems


class CloudflareApi:
    """One SDK client for a provider, calls whose failures are provider errors, and its zone."""

    def __init__(self, settings: Mapping[str, Any], timeout: float, token: Callable[[], str]):
        self.settings = settings
        self.timeout = timeout
        self._token = token  # resolves the api_token reference, only when the client is built
        self._lock = threading.Lock()  # guards building the client
        self._zone_lock = threading.Lock()  # guards the one zone lookup
        self._sdk = None
        self._zone_id: str | None = settings.get("zone_id") or None

    def client(self):
        with self._lock:
            if self._sdk is None:
                import cloudflare

                client = cloudflare.Cloudflare(api_token=self._token(),
                                               base_url=self.settings.get("endpoint_url") or DEFAULT_ENDPOINT,
                                               max_retries=0, timeout=self.timeout)
                # The SDK also picks up CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL from the environment and
                # sends them instead of the token; only the configured token may speak for this provider.
                client.api_key = client.api_email = client.user_service_key = None
                self._sdk = client
            return self._sdk

    def scrub(self, text: str) -> str:
        token = getattr(self._sdk, "api_token", None)
        return text.replace(token, "********") if token else text

    def status_error(self, exc) -> ProviderError:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        listed = body.get("errors")
        errors = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
        said = "; ".join(_describe(e) for e in errors) or f"HTTP {status}"
        message = self.scrub(f"cloudflare: {said} (HTTP {status})")
        codes = {e.get("code") for e in errors} | {c.get("code") for e in errors for c in e.get("error_chain") or []
                                                    if isinstance(c, dict)}
        if status == 429 or status >= 500:
            kind = RateLimited if status == 429 else RetryableError
            error = kind(message, parse_retry_after(exc.response.headers.get("retry-after")))
        elif status in (401, 403) or codes & AUTH_CODES:
            error = AuthError(message)
        else:
            error = ProviderError(message)
        error.status = status  # type: ignore[attr-defined]
        error.codes = frozenset(c for c in codes if c is not None)  # type: ignore[attr-defined]
        return error

    def call(self, what: str, call: Callable[[], Any]):
        """One SDK call, its failures turned into the provider errors the executor understands.

        The error is raised after the `except` block, so it carries no SDK exception as context:
        those hold Cloudflare's raw answer, which is not scrubbed of the token.
        """
        import cloudflare

        try:
            return call()
        except cloudflare.APITimeoutError:
            failure = RetryableError(f"cloudflare: {what} timed out after {self.timeout:g}s")
        except cloudflare.APIConnectionError as exc:
            cause = exc.__cause__
            reason = f"{type(cause).__name__}: {cause}" if cause else "connection error"
            failure = RetryableError(self.scrub(f"cloudflare: {what}: connection failed ({reason})"))
        except cloudflare.APIStatusError as exc:
            failure = self.status_error(exc)
        raise failure

    def _lookup_zone(self, client) -> Any:
        """The zone named by `zone`, found through GET /zones?name=; its id is kept."""
        name = normalise_hostname(self.settings["zone"])
        page = self.call(f"zone lookup for {name}", lambda: client.zones.list(name=name, per_page=50))
        found = [z for z in page.result or [] if (z.name or "").lower() == name]
        active = [z for z in found if z.status == "active"]
        if not found:
            raise ProviderError(f"cloudflare: no zone named {name!r} is visible to this API token")
        if len(active or found) > 1:
            raise ProviderError(f"cloudflare: {len(active or found)} zones are named {name!r}; set zone_id instead")
        zone = (active or found)[0]
        self._zone_id = zone.id
        return zone

    def zone_id(self) -> str:
        """The zone's id: configured, or looked up once by name for every thread."""
        if self._zone_id:
            return self._zone_id
        client = self.client()
        with self._zone_lock:
            if not self._zone_id:
                self._lookup_zone(client)
            return self._zone_id

    def zone(self):
        """The zone itself, read now."""
        client = self.client()
        if self.settings.get("zone_id"):
            zone_id = self.settings["zone_id"]
            zone = self.call(f"zone {zone_id}", lambda: client.zones.get(zone_id=zone_id))
            if zone is None:
                raise ProviderError(f"cloudflare: zone {zone_id} was not found")
            return zone
        with self._zone_lock:
            return self._lookup_zone(client)

    def close(self) -> None:
        with self._lock:
            if self._sdk is not None:
                self._sdk.close()
                self._sdk = None


def _describe(error: dict) -> str:
    # GraphQL errors carry a message and no code
    text = f"{error.get('code', '?' if 'message' not in error else '')} {error.get('message', '')}".strip()
    chain = [c for c in error.get("error_chain") or [] if isinstance(c, dict)]
    if chain:
        text += " (" + "; ".join(f"{c.get('code', '?')} {c.get('message', '')}".strip() for c in chain) + ")"
    return text
