"""Azure CDN and Azure Front Door (Standard/Premium) purges through Azure Resource Manager, and their Azure Monitor metrics.

Analytics come from Azure Monitor's Metrics - List for the profile (`Microsoft.Cdn/profiles`),
through azure-mgmt-monitor, at its finest time grain (PT1M; platform metrics are kept 93 days),
filtered to the endpoint's host name (the `Endpoint` dimension) so that two providers on one
profile do not count each other's traffic:

  RequestCount (Total)        requests         by client country
  ResponseSize (Total)        bytes            by client country
  Percentage4XX/5XX (Average) errors.4xx/5xx   counts: share / 100 x that minute's and country's
                                               requests, as the cloudfront kind does with its rates
  TotalLatency (Average)      latency          a gauge (stat avg) by client country: request
                                               received to the client's acknowledgement of the last byte
  OriginLatency (Average)     origin.latency   a gauge (stat avg); Front Door only
  ByteHitRatio (Average)      cache.byte_hit_ratio  a gauge: the share of response *bytes* served
                                               from the cache, not of requests, so it is never
                                               turned into cache.hits; Azure reports no request hits

ClientCountry comes as a country name ("United States") or code and is stored as its ISO 3166-1
alpha-2 code; a value that names no country ("Unknown") is stored without one, so the countries
still add up to the endpoint's total.

Sources:
  https://learn.microsoft.com/rest/api/monitor/metrics/list
  https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-cdn-profiles-metrics
  https://learn.microsoft.com/azure/azure-monitor/essentials/data-platform-metrics (retention)
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import string
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar, Iterator, Mapping
from urllib.parse import urlsplit

from edgectl.providers.analytics import AnalyticsProvider, Point, PullWindow
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

METRICS_NAMESPACE = "Microsoft.Cdn/profiles"
METRICS_RETENTION_MS = 93 * 86_400_000  # "platform and custom metrics are stored for 93 days"
METRICS_SPAN_MS = 6 * 3_600_000  # one Metrics - List request covers at most this much of a window
# series one answer may hold when split by ClientCountry (the service's default is 10)
METRICS_TOP = 300
_BY_COUNTRY = ("RequestCount", "ResponseSize", "Percentage4XX", "Percentage5XX", "TotalLatency")
# country names the service may write that are not the ISO names or common names pycountry knows
_COUNTRY_ALIASES = {"russia": "RU", "turkey": "TR", "south korea": "KR", "korea": "KR", "laos": "LA",
                    "syria": "SY", "macau": "MO", "hong kong sar": "HK", "vatican city": "VA", "ivory coast": "CI"}


class _AzureProvider(PurgeProvider, AnalyticsProvider):
    """What Azure CDN and Front Door share: settings, the ARM client, errors, the long-running purge, metrics.

    A purge is an ARM long-running operation: the POST answers 202 with an Azure-AsyncOperation URL.
    `purge` returns the poller's continuation token without waiting; `completion` rebuilds the poller
    from that token, which sends no new purge, and looks at the operation once.
    """

    capabilities = frozenset({"purge", "analytics"})
    # metrics of the profile read without a client-country split
    whole_metrics: ClassVar[tuple[str, ...]] = ("ByteHitRatio",)
    # Front Door "sends its metrics in 60-second intervals" and they "can take up to 3 minutes to get
    # processed" (https://learn.microsoft.com/azure/frontdoor/front-door-diagnostics): 5 minutes covers it.
    settle_ms = 5 * 60_000
    async_completion = True
    required_settings = ("subscription_id", "resource_group", "profile", "endpoint")
    optional_settings: ClassVar[tuple[str, ...]] = ("endpoint_url", "access_token")
    secret_settings = ("access_token",)

    def __init__(self, name: str, settings: Mapping[str, Any], context):
        super().__init__(name, settings, context)
        self._lock = threading.Lock()
        self._client = None
        self._monitor = None
        self._credential = None
        self._options: dict[str, Any] | None = None
        self._endpoint_host: str | None = None

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
            clients, credential = (self._client, self._monitor), self._credential
            self._client = self._monitor = self._credential = self._options = None
        for client in clients:
            if client is not None:
                client.close()
        if credential is not None and hasattr(credential, "close"):
            credential.close()

    # -- analytics -------------------------------------------------------------
    def oldest_ms(self, now_ms: int) -> int | None:
        # an hour's margin, so a pull that starts a little later never asks for a minute already gone
        return -(-(now_ms - METRICS_RETENTION_MS + 3_600_000) // 60_000) * 60_000

    def pull(self, window: PullWindow) -> Iterator[Point]:
        host = self._metrics_endpoint()
        for start in range(window.start_ms, window.end_ms, METRICS_SPAN_MS):
            end = min(start + METRICS_SPAN_MS, window.end_ms)
            by_country = self._metric_series(start, end, _BY_COUNTRY, "Total,Average",
                                             f"Endpoint eq '{host}' and ClientCountry eq '*'")
            yield from _country_points(by_country)
            whole = self._metric_series(start, end, self.whole_metrics, "Average", f"Endpoint eq '{host}'")
            for at, value in sorted(whole.get(("ByteHitRatio", ""), {}).get("average", {}).items()):
                yield Point("cache.byte_hit_ratio", at, value, kind="gauge", labels={"stat": "avg"})
            for at, value in sorted(whole.get(("OriginLatency", ""), {}).get("average", {}).items()):
                yield Point("origin.latency", at, value, kind="gauge", labels={"stat": "avg"})

    def _mapped(self, call):
        with _mapped_errors(f"{self.kind} {self.name}: metrics"):
            return call()

    def _metrics_endpoint(self) -> str:
        """The endpoint's host name, which is what the Endpoint dimension holds; read once."""
        if self._endpoint_host is None:
            client = self._arm_client()
            resource = self.send("read the endpoint", lambda: self._mapped(lambda: self._get_endpoint(client)))
            host = getattr(getattr(resource, "properties", None), "host_name", None)
            if not host:
                raise ProviderError(f"{self.kind} {self.name}: endpoint {self.settings['endpoint']} has no host name "
                                    "to read its metrics by")
            self._endpoint_host = str(host).lower()
        return self._endpoint_host

    def _metric_series(self, start_ms: int, end_ms: int, names: tuple[str, ...], aggregation: str,
                       where: str) -> dict[tuple[str, str], dict[str, dict[int, float]]]:
        """(metric, ClientCountry as written) -> aggregation -> {minute ms: value}, for [start, end)."""
        resource = (f"subscriptions/{self.settings['subscription_id']}/resourceGroups/{self.settings['resource_group']}"
                    f"/providers/Microsoft.Cdn/profiles/{self.settings['profile']}")
        client = self._monitor_client()
        answer = self.send(f"metrics {_iso(start_ms)}..{_iso(end_ms)}", lambda: self._mapped(
            lambda: client.metrics.list(resource, timespan=f"{_iso(start_ms)}/{_iso(end_ms)}", interval="PT1M",
                                        metricnames=",".join(names), aggregation=aggregation, filter=where,
                                        top=METRICS_TOP, metricnamespace=METRICS_NAMESPACE)))
        found: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
        for metric in answer.value or []:
            name = metric.name.value if metric.name is not None else ""
            if metric.error_code not in (None, "", "Success"):
                raise ProviderError(f"{self.kind} {self.name}: metrics: {name}: {metric.error_code}: "
                                    f"{metric.error_message or ''}".rstrip(": "))
            for series in metric.timeseries or []:
                written = ""
                for meta in series.metadatavalues or []:
                    if meta.name is not None and str(meta.name.value).lower() == "clientcountry":
                        written = str(meta.value or "")
                slot = found.setdefault((name, written), {})
                for point in series.data or []:
                    at = int(point.time_stamp.timestamp() * 1000)
                    if not start_ms <= at < end_ms:
                        continue
                    for key in ("total", "average"):
                        value = getattr(point, key)
                        if value is not None:
                            slot.setdefault(key, {})[at] = float(value)
        return found

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
                from azure.mgmt.cdn import CdnManagementClient

                self._client = CdnManagementClient(self._credential_locked(), str(self.settings["subscription_id"]),
                                                   **self._options)
            return self._client

    def _monitor_client(self):
        with self._lock:
            if self._monitor is None:
                from azure.mgmt.monitor import MonitorManagementClient

                self._monitor = MonitorManagementClient(self._credential_locked(),
                                                        str(self.settings["subscription_id"]), **self._options)
            return self._monitor

    def _credential_locked(self):
        """The credential and client options both clients share; called with the lock held."""
        if self._credential is None:
            self._credential, self._options = self._build_session()
        return self._credential

    def _build_session(self):
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
        return credential, options


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
    # OriginLatency is Front Door's ("sent by AFDX edge to the backend"); Azure CDN does not list it
    whole_metrics = ("ByteHitRatio", "OriginLatency")
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


# ---- metrics ----------------------------------------------------------------------

def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=512)
def country_code(value: str) -> str:
    """ISO 3166-1 alpha-2 for a ClientCountry value (a name or a code); "" when it names no country."""
    import pycountry

    text = value.strip()
    if not text:
        return ""
    alias = _COUNTRY_ALIASES.get(text.lower())
    if alias:
        return alias
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return ""


def _country_points(found: dict[tuple[str, str], dict[str, dict[int, float]]]) -> Iterator[Point]:
    """The by-country metrics as points, for every minute that had requests.

    Series are keyed by ClientCountry as Azure wrote it; the values that map to one code (or to
    none) are added up, and their latency is the mean weighted by requests.
    """
    counts: dict[tuple[str, str, int], float] = {}
    latency: dict[tuple[str, int], list[float]] = {}  # (country, minute) -> [latency x requests, requests]
    for (metric, written), aggregations in found.items():
        if metric != "RequestCount":
            continue
        country = country_code(written)
        requests = {at: value for at, value in aggregations.get("total", {}).items() if value > 0}

        def add(name: str, at: int, value: float) -> None:
            counts[(name, country, at)] = counts.get((name, country, at), 0.0) + value

        for at, value in requests.items():
            add("requests", at, value)
        for at, value in found.get(("ResponseSize", written), {}).get("total", {}).items():
            if at in requests:
                add("bytes", at, value)
        for name, point_metric in (("Percentage4XX", "errors.4xx"), ("Percentage5XX", "errors.5xx")):
            for at, share in found.get((name, written), {}).get("average", {}).items():
                if at in requests:
                    add(point_metric, at, float(round(share / 100 * requests[at])))
        for at, value in found.get(("TotalLatency", written), {}).get("average", {}).items():
            if at in requests:
                weighted = latency.setdefault((country, at), [0.0, 0.0])
                weighted[0] += value * requests[at]
                weighted[1] += requests[at]
    for (metric, country, at), value in sorted(counts.items()):
        yield Point(metric, at, value, country=country)
    for (country, at), (total, requests) in sorted(latency.items()):
        yield Point("latency", at, total / requests, kind="gauge", country=country, labels={"stat": "avg"})


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
