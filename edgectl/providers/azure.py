"""Azure CDN and Azure Front Door (Standard/Premium) purges through Azure Resource Manager."""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import string
import threading
import time
import uuid
from typing import Any, ClassVar, Mapping
from urllib.parse import urlsplit

from edgectl.providers.base import (
    AuthError,
    Batch,
    Bucket,
    Completion,
    InvalidTarget,
    Limits,
    ProviderError,
    PurgeAccepted,
    PurgeProvider,
    RateLimited, RetryableError,
    parse_retry_after,
)

ARM_URL = "https://management.azure.com"

# Characters Azure accepts in a purge path, from the rule the CDN purge page published
# (`^\/(?>(?:[a-zA-Z0-9-_.%=\(\)\u0020]+\/?)*)$` for a single resource,
# `^\/(?:[a-zA-Z0-9-_.%=\(\)\u0020]+\/)*\*$` for a wildcard):
# https://github.com/MicrosoftDocs/azure-docs/blob/main/articles/cdn/cdn-purge-endpoint.md (2018-2023 revisions).
# Still enforced: https://github.com/Azure/azure-cli/issues/26025 ("/$web/*" refused with BadRequest, 2023).
_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "-_.%=()/")
# Legal unencoded in a URL path (RFC 3986) but refused by Azure. Percent-encoding them would send a
# path other than the one clients request and cache under, so a purge of it could silently miss.
_REFUSED_CHARS = frozenset("~!$&'+,;:@")
_HEX = frozenset(string.hexdigits)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
_NAME = re.compile(r"^[^/?#\s]+$")


class _AzureProvider(PurgeProvider):
    """What Azure CDN and Front Door share: settings, the ARM client, errors and the long-running purge.

    A purge is an ARM long-running operation: the POST answers 202 with an Azure-AsyncOperation URL.
    `purge` returns the poller's continuation token without waiting; `completion` rebuilds the poller
    from that token, which sends no new purge, and looks at the operation once.
    """

    capabilities = frozenset({"purge"})
    async_completion = True
    required_settings = ("subscription_id", "resource_group", "profile", "endpoint")
    optional_settings: ClassVar[tuple[str, ...]] = ("endpoint_url", "access_token")
    secret_settings = ("access_token",)

    def __init__(self, name: str, settings: Mapping[str, Any], context):
        super().__init__(name, settings, context)
        self._lock = threading.Lock()
        self._client = None
        self._credential = None

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = super().check_settings(settings)
        subscription = settings.get("subscription_id")
        if subscription not in ("", None):
            try:
                uuid.UUID(str(subscription))
            except ValueError:
                problems.append("subscription_id: must be a subscription GUID "
                                "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
        for key in ("resource_group", "profile", "endpoint"):
            value = settings.get(key)
            if value not in ("", None) and not (isinstance(value, str) and _NAME.match(value)):
                problems.append(f"{key}: must be a resource name (no '/', '?', '#' or spaces)")
        endpoint_url = settings.get("endpoint_url")
        if endpoint_url is not None:
            problem = _endpoint_url_problem(endpoint_url)
            if problem:
                problems.append(f"endpoint_url: {problem}")
        return problems

    # -- what it can do --------------------------------------------------------
    def limits(self) -> Limits:
        # 100 paths a request: "URLs in a single cache purge call: 100" (Front Door, every tier),
        # https://learn.microsoft.com/azure/azure-resource-manager/management/azure-subscription-service-limits
        # (includes/front-door-limits.md). Azure CDN publishes no figure of its own; the same 100 is used.
        #
        # Pace: "Azure CDN has a limit of 50 concurrent purge requests at any given time at the profile
        # level", each taking about 10 minutes (Azure CDN from Microsoft), in earlier revisions of
        # https://learn.microsoft.com/azure/cdn/cdn-purge-endpoint (the 2024 page no longer says it, and
        # Front Door never published a cap); Front Door purges take up to 10 minutes
        # (https://learn.microsoft.com/azure/frontdoor/cache-purge). 50 requests at once, then one per
        # 600/50 = 12 s, keeps under that cap, for one edgectl provider per profile. ARM's own limit for
        # writes (a POST action is one), a bucket of 200 refilled at 10/s per subscription and principal
        # (https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling),
        # is far above it and shared with everything else the principal does.
        kinds = sorted(self.purge_kinds)
        return Limits(
            batch_size={kind: 1 if kind == "everything" else 100 for kind in kinds},
            buckets={"purge_requests": Bucket(rate=50 / 600, burst=50)},
            bucket_for={kind: "purge_requests" for kind in kinds},
            max_in_flight=self.max_in_flight(4),
            notes=self._notes(),
        )

    def _notes(self) -> tuple[str, ...]:
        return (
            "a path is one resource (/a/b.css) or a directory wildcard (/dir/*); /* purges everything",
            "query strings are ignored by Azure: purging a path purges every query-string variant of it",
            "paths may hold letters, digits, - _ . = ( ) and %-escapes; ~ ! $ & ' + , ; : @ are refused",
            "at most 50 purges in progress per profile; each takes up to about 10 minutes",
        )

    def normalise(self, kind: str, value: str) -> str:
        if kind not in self.purge_kinds:
            raise InvalidTarget(f"{self.kind} cannot purge by {kind}")
        if not isinstance(value, str):
            raise InvalidTarget(f"{value!r}: expected a string")
        if kind == "everything":
            return "/*"
        if kind == "url":
            return _content_path(value)
        if kind == "prefix":
            return _wildcard_path(value)
        return _domain(value)

    # -- calls -----------------------------------------------------------------
    def prepare(self) -> None:
        self._arm_client()

    def purge(self, batch: Batch) -> PurgeAccepted:
        paths, domains = self._targets(batch)
        client = self._arm_client()
        with _mapped_errors(f"{self.kind} {self.name}: purge"):
            poller = self._begin_purge(client, self._parameters(paths, domains), polling=_single_look())
            method = poller.polling_method()
            finished = method.finished()
            state = method.status()
            token = poller.continuation_token()
        # A 200 (rather than 202) means Azure finished the purge before answering.
        completed = finished and str(state).lower() == "succeeded"
        return PurgeAccepted(provider_ref=token, completed=completed,
                             detail=f"{len(paths)} path(s) accepted" + (f" on {', '.join(domains)}" if domains else ""),
                             retry_after=method.retry_after())

    def completion(self, provider_ref: str) -> Completion:
        client = self._arm_client()
        with _mapped_errors(f"{self.kind} {self.name}: purge status"):
            try:
                poller = self._begin_purge(client, None, continuation_token=provider_ref, polling=_single_look())
            except (ValueError, KeyError, TypeError):
                raise ProviderError(f"{self.kind} {self.name}: {provider_ref[:20]}... is not a purge "
                                    "reference this provider made") from None
            method = poller.polling_method()
            status, body = method.look()
        lowered = status.lower()
        if lowered == "succeeded":
            return Completion("completed")
        if lowered in ("failed", "canceled"):
            return Completion("failed", _operation_error(status, body))
        return Completion("in_progress", status, retry_after=method.retry_after())

    def test(self) -> str:
        client = self._arm_client()
        with _mapped_errors(f"{self.kind} {self.name}: test"):
            resource = self._get_endpoint(client)
        properties = getattr(resource, "properties", None)
        state = getattr(properties, "provisioning_state", None) or "unknown"
        state = getattr(state, "value", state)  # an SDK enum prints as its class name otherwise
        host = getattr(properties, "host_name", None)
        where = f", {host}" if host else ""
        return f"endpoint {self.settings['endpoint']} found (provisioningState {state}{where})"

    def close(self) -> None:
        with self._lock:
            client, credential = self._client, self._credential
            self._client = self._credential = None
        if client is not None:
            client.close()
        if credential is not None and hasattr(credential, "close"):
            credential.close()

    # -- for subclasses --------------------------------------------------------
    def _targets(self, batch: Batch) -> tuple[list[str], list[str]]:
        """contentPaths and domains for one batch."""
        if batch.kind == "everything":
            return ["/*"], []
        return list(batch.items), []

    def _parameters(self, paths: list[str], domains: list[str]):
        raise NotImplementedError

    def _begin_purge(self, client, body, **kwargs):
        raise NotImplementedError

    def _get_endpoint(self, client):
        raise NotImplementedError

    # -- the client --------------------------------------------------------------
    def _endpoint_url(self) -> str:
        return str(self.settings.get("endpoint_url") or ARM_URL).rstrip("/")

    def _arm_client(self):
        with self._lock:
            if self._client is None:
                self._client, self._credential = self._build_client()
            return self._client

    def _build_client(self):
        from azure.mgmt.cdn import CdnManagementClient

        base_url = self._endpoint_url()
        problem = _endpoint_url_problem(base_url)
        if problem:
            raise ProviderError(f"{self.kind} {self.name}: endpoint_url: {problem}")
        loopback = _is_loopback_http(base_url)
        # The token's audience is the ARM host itself (management.azure.com, or a sovereign cloud's);
        # a loopback fake accepts any token, so the public audience does there.
        scope = f"{ARM_URL if loopback else base_url}/.default"
        if self.settings.get("access_token"):
            credential: Any = _StaticToken(self.secret("access_token"))
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        options: dict[str, Any] = {
            "base_url": base_url,
            "credential_scopes": [scope],
            # edgectl's executor retries and journals every attempt; the SDK must not retry behind it.
            "retry_total": 0,
            "connection_timeout": self.context.timeout,
            "read_timeout": self.context.timeout,
            "polling_interval": 0,
        }
        if loopback:
            # azure-core's BearerTokenCredentialPolicy raises ServiceRequestError for any non-https
            # URL. Its per-call `enforce_https=False` option would have to reach every operation and
            # every status request the poller makes; `authentication_policy` is a client option and
            # is used only for plain http to 127.0.0.0/8, ::1 or localhost (the test fake), so a
            # bearer token is never sent in clear over a network. TLS verification is untouched.
            options["authentication_policy"] = _loopback_bearer_policy()(credential, scope)
        client = CdnManagementClient(credential, str(self.settings["subscription_id"]), **options)
        return client, credential


class AzureCdnProvider(_AzureProvider):
    """Azure CDN (classic) endpoints: `endpoints.begin_purge_content` with `PurgeParameters`."""

    kind = "azure_cdn"
    purge_kinds = frozenset({"url", "prefix", "everything"})

    def _parameters(self, paths, domains):
        from azure.mgmt.cdn.models import PurgeParameters

        return PurgeParameters(content_paths=paths)

    def _begin_purge(self, client, body, **kwargs):
        return client.endpoints.begin_purge_content(
            self.settings["resource_group"], self.settings["profile"], self.settings["endpoint"],
            content_file_paths=body, **kwargs)

    def _get_endpoint(self, client):
        return client.endpoints.get(self.settings["resource_group"], self.settings["profile"],
                                    self.settings["endpoint"])


class AzureFrontDoorProvider(_AzureProvider):
    """Azure Front Door Standard/Premium endpoints: `afd_endpoints.begin_purge_content` with `AfdPurgeParameters`.

    Front Door purges "all assets for the selected domains" with contentPaths ["/*"] and the domains
    named (https://learn.microsoft.com/azure/frontdoor/cache-purge), which is exactly a purge by
    host, so `host` is supported: a host batch is one request with its hosts as `domains`. Other
    kinds purge under the `domains` setting, or every domain of the endpoint when it is not set.
    """

    kind = "azure_frontdoor"
    purge_kinds = frozenset({"url", "prefix", "host", "everything"})
    optional_settings = _AzureProvider.optional_settings + ("domains",)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = super().check_settings(settings)
        domains = settings.get("domains")
        if domains is not None:
            if not (isinstance(domains, list) and domains and all(isinstance(d, str) for d in domains)):
                problems.append("domains: must be a list of hostnames (leave it out to purge every domain)")
            else:
                for domain in domains:
                    try:
                        _domain(domain)
                    except InvalidTarget as exc:
                        problems.append(f"domains: {exc.message}")
        return problems

    def _notes(self) -> tuple[str, ...]:
        return super()._notes() + (
            "purges are case-insensitive",
            "a host purge is /* on the domains named; wildcard domains cannot be purged, name subdomains",
        )

    def _targets(self, batch: Batch) -> tuple[list[str], list[str]]:
        if batch.kind == "host":
            return ["/*"], list(batch.items)
        paths, _ = super()._targets(batch)
        return paths, [_domain(d) for d in self.settings.get("domains") or []]

    def _parameters(self, paths, domains):
        from azure.mgmt.cdn.models import AfdPurgeParameters

        return AfdPurgeParameters(content_paths=paths, domains=domains or None)

    def _begin_purge(self, client, body, **kwargs):
        return client.afd_endpoints.begin_purge_content(
            self.settings["resource_group"], self.settings["profile"], self.settings["endpoint"],
            contents=body, **kwargs)

    def _get_endpoint(self, client):
        return client.afd_endpoints.get(self.settings["resource_group"], self.settings["profile"],
                                        self.settings["endpoint"])


# ---- targets ------------------------------------------------------------------

def _split_target(value: str) -> str:
    """The path of a URL or of a path, without query string or fragment."""
    text = value.strip()
    if not text:
        raise InvalidTarget("empty target")
    parts = urlsplit(text)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidTarget(f"{value}: not an http(s) URL")
        return parts.path or "/"
    if not parts.path.startswith("/"):
        raise InvalidTarget(f"{value}: expected a URL (https://host/path) or a path starting with /")
    return parts.path


def _encode_path(path: str, original: str) -> str:
    """A path as Azure accepts it: %-escapes kept, what a client would escape escaped, the rest refused."""
    out = []
    for index, char in enumerate(path):
        if char == "%":
            escape = path[index + 1:index + 3]
            out.append("%" if len(escape) == 2 and set(escape) <= _HEX else "%25")
        elif char in _PATH_CHARS:
            out.append(char)
        elif char == "*":
            raise InvalidTarget(f"{original}: a wildcard can only end a directory prefix (/dir/*); "
                                "purge it as a prefix")
        elif char in _REFUSED_CHARS:
            raise InvalidTarget(f"{original}: Azure refuses {char!r} in a purge path; "
                                "purge the directory holding it as a prefix instead")
        else:
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8")))
    encoded = "".join(out)
    if "//" in encoded:
        raise InvalidTarget(f"{original}: empty path segment (//) in the path")
    return encoded


def _content_path(value: str) -> str:
    return _encode_path(_split_target(value), value)


def _wildcard_path(value: str) -> str:
    path = _split_target(value)
    if path.endswith("/*"):
        path = path[:-1]
    elif not path.endswith("/"):
        path += "/"
    return _encode_path(path, value) + "*"


def _domain(value: str) -> str:
    host = value.strip().lower().rstrip(".")
    if host.startswith("*."):
        raise InvalidTarget(f"{value}: wildcard domains cannot be purged; name the subdomains")
    if not _HOSTNAME.match(host):
        raise InvalidTarget(f"{value}: not a hostname")
    return host


def _operation_error(status: str, body: Mapping[str, Any]) -> str:
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and (error.get("code") or error.get("message")):
        return f"{error.get('code') or status}: {error.get('message') or ''}".rstrip(": ")
    return f"operation {status.lower()}"


# ---- ARM plumbing ---------------------------------------------------------------

def _endpoint_url_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a URL such as https://management.azure.com"
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{value!r} is not an http(s) URL"
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        return f"{value!r}: give the ARM base URL alone, with no path or query"
    if parts.scheme == "http" and not _is_loopback_http(value):
        return "plain http is allowed only for a loopback address (a local fake); use https"
    return None


def _is_loopback_http(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class _StaticToken:
    """A TokenCredential for a token fetched beforehand (`az account get-access-token` in a pipeline).

    Its real expiry is unknown; when it lapses ARM answers 401 and the purge fails with AuthError.
    """

    def __init__(self, token: str):
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def __repr__(self) -> str:
        return "_StaticToken(<redacted>)"


@functools.cache
def _loopback_bearer_policy():
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class LoopbackBearerPolicy(SansIOHTTPPolicy):
        """Sets `Authorization: Bearer` from a credential; only ever installed for loopback http."""

        def __init__(self, credential, scope: str):
            super().__init__()
            self._credential = credential
            self._scope = scope

        def on_request(self, request) -> None:
            token = self._credential.get_token(self._scope).token
            request.http_request.headers["Authorization"] = f"Bearer {token}"

    return LoopbackBearerPolicy


@functools.cache
def _single_look_class():
    from azure.core.exceptions import HttpResponseError
    from azure.core.polling.base_polling import BadResponse, BadStatus, OperationFailed
    from azure.mgmt.core.exceptions import ARMErrorFormat
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    class SingleLook(ARMPolling):
        """ARM polling that never waits: LROPoller's thread finds nothing to do, and `look` asks once.

        The executor, not the SDK, decides when to ask again, so no thread is left polling behind it.
        """

        def run(self) -> None:
            pass

        def look(self) -> tuple[str, dict]:
            """Ask the operation where it stands: (status, body). Errors as `run` would raise them."""
            try:
                self.update_status()
            except (BadStatus, BadResponse, OperationFailed) as exc:
                raise HttpResponseError(response=self._pipeline_response.http_response,
                                        error_format=ARMErrorFormat) from exc
            response = self._pipeline_response.http_response
            try:
                body = json.loads(response.text() or "{}")
            except ValueError:
                body = {}
            return str(self.status()), body if isinstance(body, dict) else {}

        def retry_after(self) -> float | None:
            """The wait the last answer asks for before the next status request, None when it names none.

            ARM sends Retry-After on the 202 and on each status answer, "to schedule how often to check
            the status" (https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations).
            azure-core reads it (and retry-after-ms) the way its own poller does; with timeout=0 a missing
            header or Retry-After: 0 reads as 0, which leaves the executor's schedule in charge.
            """
            return self._extract_delay() or None

    return SingleLook


def _single_look():
    return _single_look_class()(timeout=0)


class _mapped_errors:
    """Turns azure-core exceptions into the contract's errors, with Azure's own code and message."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if exc is None:
            return False
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            IncompleteReadError,
            ServiceRequestError,
            ServiceResponseError,
        )

        if not isinstance(exc, AzureError):
            return False
        if isinstance(exc, (ServiceRequestError, ServiceResponseError, IncompleteReadError)):
            raise RetryableError(f"{self.what}: {exc.__class__.__name__}: {_message(exc)}") from None
        if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
            # the credential could not produce a token (no login, no managed identity...)
            raise AuthError(f"{self.what}: no Azure credential: {_message(exc)}") from None
        if isinstance(exc, HttpResponseError):
            status = exc.status_code
            detail = f"{self.what}: HTTP {status}: {_arm_error(exc)}"
            if status in (401, 403):
                raise AuthError(detail) from None
            if status == 429 or (status is not None and status >= 500) or status == 408:
                headers = exc.response.headers if exc.response is not None else {}
                kind = RateLimited if status == 429 else RetryableError
                raise kind(detail, retry_after=parse_retry_after(headers.get("Retry-After"))) from None
            raise ProviderError(detail) from None
        raise ProviderError(f"{self.what}: {exc.__class__.__name__}: {_message(exc)}") from None


def _arm_error(exc) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if code or message:
        return f"{code or 'error'}: {message or ''}".rstrip(": ")
    return _message(exc)


def _message(exc) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message.splitlines()[0] if message else exc.__class__.__name__
