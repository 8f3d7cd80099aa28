"""Amazon CloudFront: one invalidation per batch, of paths, wildcard prefixes or everything; its CloudWatch metrics.

Each batch is one CreateInvalidation whose CallerReference is the batch's stable reference, so a
resend returns the invalidation made the first time instead of making another (and paying for
it twice). Invalidations finish minutes later; completion() polls GetInvalidation until
"Completed", and asks to be called again after `poll_interval()`.

CloudFront allows 3,000 file paths and, separately, 15 wildcard paths in progress per
distribution. Past that it answers TooManyInvalidationsInProgress, which we report as
Backpressure: the executor waits and resends without counting a failed attempt. We do not count
in-progress paths ourselves before sending: that costs a ListInvalidations plus one
GetInvalidation per running invalidation on every batch, against the same unpublished API rate
limit, and could still race other clients; the refusal is free, changes nothing and is exact.

Credentials come only from the standard AWS chain (environment, shared config and credentials
files, an optional `profile`, SSO, container and instance roles), never from the edgectl config.

Analytics come from CloudWatch (`GetMetricData` in us-east-1, namespace AWS/CloudFront, dimensions
DistributionId and Region=Global), at the finest period CloudWatch still keeps for the window's
age (1 minute for 15 days, 5 minutes for 63, 1 hour for 455). Every metric is a figure per
interval, and what edgectl stores is chosen so that windows add up:

  Requests (Sum)              requests     the interval's count
  BytesDownloaded (Sum)       bytes        bytes viewers downloaded (GET, HEAD, OPTIONS)
  4xxErrorRate (Average)      errors.4xx   a count: rate / 100 x the interval's Requests
  5xxErrorRate (Average)      errors.5xx   a count, the same way
  CacheHitRate (Average)      cache.hits   a count: rate / 100 x the interval's Requests
  OriginLatency (pNN, avg)    origin.latency  a gauge per statistic (`stat` label), never merged

The rates become counts because a percentage of one minute cannot be merged with another's: the
day's 5xx share is not the mean of its minutes' shares when traffic varies, while counts add up,
and a count is what the other providers report (Cloudflare's status classes) and what the
catalogue's errors.4xx/5xx and hit ratio (hits over requests) are made of. Both error rates are
shares of all viewer requests, so the counts are exact up to rounding. CacheHitRate is a share of
the *cacheable* requests (POST, PUT and errors are not), which CloudWatch does not count apart, so
`cache.hits` is the rate applied to all requests: it overstates hits by the rate times the
uncacheable requests. TotalErrorRate is 4xx plus 5xx by definition, so it adds nothing and is not
read. At 5-minute and 1-hour periods CloudWatch averages the rates over the interval; the counts
from them are as good as that average. CacheHitRate and OriginLatency exist only for a
distribution with additional metrics turned on; without them CloudWatch returns no points and
edgectl stores none (the hit ratio of such a distribution is unknown, not 0).

Sources:
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/programming-cloudwatch-metrics.html
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/InvalidationLimits.html
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/invalidation-specifying-objects.html
  https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateInvalidation.html
"""

from __future__ import annotations

import re
import string
import time
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from edgectl.providers import aws
from edgectl.providers.analytics import AnalyticsProvider, Point, PullWindow
from edgectl.providers.base import (Backpressure, Batch, Bucket, Completion, InvalidTarget, Limits, ProviderError,
                                    PurgeAccepted, PurgeProvider, percent_encode)

FILE_PATHS_IN_PROGRESS = 3000  # per distribution; also the most one request may carry
WILDCARD_PATHS_IN_PROGRESS = 15  # per distribution, counted apart from file paths
MAX_PATH_LENGTH = 4000

# AWS publishes no request rate for CreateInvalidation (the quotas page lists none:
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html), yet
# accounts report "Throttling: Rate exceeded" after a handful of quick calls
# (https://github.com/aws/aws-sdk-js/issues/3983). A conservative choice of ours, not AWS's number.
CREATE_RATE = 2.0
CREATE_BURST = 5.0

_DISTRIBUTION_ID = re.compile(r"[A-Z0-9]+")

NAMESPACE = "AWS/CloudFront"
METRICS_REGION = "us-east-1"  # "you must use the US East (N. Virginia) Region" for CloudFront's metrics
# CloudWatch statistic of OriginLatency -> the `stat` label edgectl stores it under
DEFAULT_LATENCY_STATS = ("p50", "p95", "p99")
_PERCENTILE = re.compile(r"p(?:100|\d{1,2}(?:\.\d{1,2})?)")
# query id -> (CloudWatch metric, statistic); ids must match ^[a-z][a-zA-Z0-9_]*$
_COUNT_QUERIES = {"requests": ("Requests", "Sum"), "bytes": ("BytesDownloaded", "Sum"),
                  "e4xx": ("4xxErrorRate", "Average"), "e5xx": ("5xxErrorRate", "Average"),
                  "hits": ("CacheHitRate", "Average")}
_RATES = {"e4xx": "errors.4xx", "e5xx": "errors.5xx", "hits": "cache.hits"}
# Left as written in a path: RFC 1738's safe characters and its reserved ones used as such. The
# guide says to encode non-ASCII and RFC 1738 "unsafe" characters (space " < > # % { } | \ ^ ~ [ ] `)
# and nothing else, or the old object is not invalidated.
_KEEP = frozenset(string.ascii_letters + string.digits + "$-_.+!*'()," + ";/?:@=&")

def encode_path(path: str) -> str:
    """Percent-encode what CloudFront wants encoded (non-ASCII, RFC 1738 unsafe), keeping %XX escapes.

    '~' is unsafe in RFC 1738 and CloudFront refuses it raw (InvalidArgument), so it goes as %7E.
    """
    return percent_encode(path, _KEEP)


def _host_forms(host: str) -> set[str]:
    forms = {host}
    try:
        forms.add(host.encode("idna").decode("ascii"))
    except UnicodeError:
        pass
    return forms


class CloudFrontProvider(PurgeProvider, AnalyticsProvider):
    kind = "cloudfront"
    capabilities = frozenset({"purge", "analytics"})
    purge_kinds = frozenset({"url", "prefix", "everything"})
    async_completion = True
    required_settings = ("distribution_id",)
    optional_settings = (*aws.SETTINGS, "poll_interval", "metrics_endpoint_url", "origin_latency_stats")
    # CloudFront sends its metrics to CloudWatch once a minute and they show there a few minutes
    # later; ten minutes leaves room for the late ones before a window is read as final.
    settle_ms = 10 * 60_000

    def __init__(self, name: str, settings: Mapping[str, Any], context):
        super().__init__(name, settings, context)
        self._api = aws.AwsApi("cloudfront", "CloudFront", self.settings, context.timeout,
                               lambda: f" on {self.distribution_id}", self._special)
        metrics_settings = {**self.settings, "region": METRICS_REGION,
                            "endpoint_url": self.settings.get("metrics_endpoint_url") or self.settings.get("endpoint_url")}
        self._metrics = aws.AwsApi("cloudwatch", "CloudWatch", metrics_settings, context.timeout,
                                   lambda: f" for {self.distribution_id}")
        self._waiter_delay: float | None = None

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = aws.check_settings(settings, super().check_settings(settings), "CloudFront")
        dist = settings.get("distribution_id")
        if dist not in ("", None) and not (isinstance(dist, str) and _DISTRIBUTION_ID.fullmatch(dist)):
            problems.append("distribution_id: must be a CloudFront distribution ID, uppercase letters and digits "
                            "(like E2QWRUHAPOMQZL)")
        stats = settings.get("origin_latency_stats")
        if stats is not None and not (isinstance(stats, list) and all(
                isinstance(s, str) and (s == "avg" or _PERCENTILE.fullmatch(s)) for s in stats)):
            problems.append("origin_latency_stats: must be a list of CloudWatch statistics for OriginLatency, "
                            "\"avg\" or percentiles such as \"p50\", \"p95\", \"p99.9\" (an empty list reads none)")
        metrics_url = settings.get("metrics_endpoint_url")
        if metrics_url is not None:
            problems += [p.replace("endpoint_url", "metrics_endpoint_url", 1)
                         for p in aws.check_settings({"endpoint_url": metrics_url}, [], "CloudWatch")]
        poll = settings.get("poll_interval")
        if poll is not None and not (isinstance(poll, (int, float)) and not isinstance(poll, bool)
                                     and 0 < poll <= 3600):
            problems.append("poll_interval: must be seconds, above 0 and at most 3600")
        return problems

    @property
    def distribution_id(self) -> str:
        return str(self.settings["distribution_id"])

    def poll_interval(self) -> float:
        """Seconds between looks at an invalidation: `poll_interval`, else the delay of the SDK's own
        InvalidationCompleted waiter (botocore's waiters-2.json for CloudFront: 20 s, 30 attempts;
        https://docs.aws.amazon.com/cli/latest/reference/cloudfront/wait/invalidation-completed.html)."""
        if "poll_interval" in self.settings:
            return float(self.settings["poll_interval"])
        if self._waiter_delay is None:  # two threads may both read it: botocore caches the model
            self._waiter_delay = float(self._client().get_waiter("invalidation_completed").config.delay)
        return self._waiter_delay

    # -- what it can do --------------------------------------------------------
    def limits(self) -> Limits:
        return Limits(
            batch_size={"url": FILE_PATHS_IN_PROGRESS, "prefix": WILDCARD_PATHS_IN_PROGRESS, "everything": 1},
            buckets={"create_invalidation": Bucket(rate=CREATE_RATE, burst=CREATE_BURST)},
            bucket_for={kind: "create_invalidation" for kind in self.purge_kinds},
            max_in_flight=self.max_in_flight(2),
            notes=(
                "at most 3,000 file paths and, separately, 15 wildcard paths in progress per distribution; "
                "past that CloudFront refuses new invalidations until earlier ones complete (backpressure)",
                "one request carries at most 3,000 paths, so a full URL batch fills the file-path cap by itself",
                "'*' only as the last character: a prefix becomes '<path>*', everything becomes '/*'",
                "paths are case sensitive; non-ASCII and RFC 1738 unsafe characters (including '~') are "
                "percent-encoded, nothing else",
                "a query string is part of the path; it only matches when the cache key includes query strings "
                "(otherwise purge the URL without it, or a prefix such as '/page*')",
                "no documented API rate for CreateInvalidation; 2 requests/s, burst 5 is edgectl's choice",
            ),
        )

    def normalise(self, kind: str, value: str) -> str:
        if kind not in self.purge_kinds:
            raise InvalidTarget(f"CloudFront cannot purge by {kind}; it purges by url, prefix or everything")
        if kind == "everything":
            return "/*"
        path = self._path_of(value)
        if kind == "url":
            if "*" in path:
                raise InvalidTarget(f"{value!r}: '*' would make a wildcard invalidation; purge a prefix instead")
        else:
            body = path[:-1] if path.endswith("*") else path
            if "*" in body:
                raise InvalidTarget(f"{value!r}: CloudFront allows '*' only as the last character")
            path = body + "*"
        path = encode_path(path)
        if len(path) > MAX_PATH_LENGTH:
            raise InvalidTarget(f"{value[:80]!r}...: longer than CloudFront's {MAX_PATH_LENGTH} characters "
                                f"once encoded")
        return path

    def _path_of(self, value: str) -> str:
        """The path (and query) of a URL or a bare path; the URL's host must be one of ours."""
        text = value.strip()
        if not text:
            raise InvalidTarget("an empty target")
        if text.startswith("/") and not text.startswith("//"):
            return text.split("#", 1)[0]
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise InvalidTarget(f"{value!r} is neither an http(s) URL nor a path starting with '/'")
        host = parts.hostname.rstrip(".").lower()
        hosts = self.hosts()
        if hosts and not _host_forms(host) & {form for h in hosts for form in _host_forms(h)}:
            raise InvalidTarget(f"{host} is not a host of provider {self.name!r} (hosts: {', '.join(hosts)})")
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    # -- calls -----------------------------------------------------------------
    def _client(self):
        return self._api.client()

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return self._api.call(operation, **params)

    def _special(self, code: str, text: str, retry_after: float | None) -> ProviderError | None:
        if code == "TooManyInvalidationsInProgress":
            return Backpressure(text, max(retry_after or 0.0, self.poll_interval()))
        return None

    def prepare(self) -> None:
        self._client()

    def purge(self, batch: Batch) -> PurgeAccepted:
        if batch.kind not in self.purge_kinds:
            raise InvalidTarget(f"CloudFront cannot purge by {batch.kind}")
        paths = list(dict.fromkeys(batch.items))  # CloudFront counts (and bills) every path it is sent
        if not paths:
            raise ProviderError("an empty batch")
        stray = [p for p in paths if not p.startswith("/")]
        if stray:
            raise InvalidTarget(f"{stray[0]!r}: CloudFront invalidation paths start with '/' (normalise first)")
        wildcards = sum(1 for p in paths if p.endswith("*"))
        if wildcards > WILDCARD_PATHS_IN_PROGRESS or len(paths) - wildcards > FILE_PATHS_IN_PROGRESS:
            # waiting would never help: CloudFront refuses this batch even with nothing in progress
            raise ProviderError(f"a batch of {len(paths) - wildcards} file and {wildcards} wildcard paths exceeds "
                                f"CloudFront's {FILE_PATHS_IN_PROGRESS} / {WILDCARD_PATHS_IN_PROGRESS}; split it")
        result = self._call("create_invalidation", DistributionId=self.distribution_id, InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths},
            "CallerReference": batch.reference,
        })
        invalidation = result["Invalidation"]
        status = str(invalidation.get("Status") or "")
        return PurgeAccepted(provider_ref=invalidation["Id"], completed=status.lower() == "completed",
                             detail=f"invalidation {invalidation['Id']} {status} ({len(paths)} paths)",
                             retry_after=self.poll_interval())

    def completion(self, provider_ref: str) -> Completion:
        try:
            result = self._call("get_invalidation", DistributionId=self.distribution_id, Id=provider_ref)
        except ProviderError as exc:
            if getattr(exc, "aws_code", "") == "NoSuchInvalidation":
                return Completion("failed", exc.message)
            raise
        status = str(result["Invalidation"].get("Status") or "")
        if status.lower() == "completed":
            return Completion("completed", f"invalidation {provider_ref} {status}")
        return Completion("in_progress", f"invalidation {provider_ref} {status or 'status unknown'}",
                          retry_after=self.poll_interval())

    def test(self) -> str:
        dist = self._call("get_distribution", Id=self.distribution_id)["Distribution"]
        listing = self._call("list_invalidations", DistributionId=self.distribution_id,
                             MaxItems="100")["InvalidationList"]
        items = listing.get("Items") or []
        running = [i for i in items if str(i.get("Status", "")).lower() != "completed"]
        more = "+" if listing.get("IsTruncated") and items and len(running) == len(items) else ""
        count = f"{len(running)}{more} invalidation{'' if len(running) == 1 and not more else 's'}"
        return (f"distribution {self.distribution_id} ({dist.get('Status', '?')}, {dist.get('DomainName', '?')}) "
                f"reachable; {count} in progress")

    # -- analytics -------------------------------------------------------------
    def origin_latency_stats(self) -> tuple[str, ...]:
        stats = self.settings.get("origin_latency_stats")
        return DEFAULT_LATENCY_STATS if stats is None else tuple(dict.fromkeys(stats))

    def oldest_ms(self, now_ms: int) -> int | None:
        return aws.cloudwatch_oldest_ms(now_ms)

    def _queries(self, period_s: int) -> list[dict[str, Any]]:
        dimensions = [{"Name": "DistributionId", "Value": self.distribution_id}, {"Name": "Region", "Value": "Global"}]
        wanted = dict(_COUNT_QUERIES)
        for stat in self.origin_latency_stats():
            wanted[f"lat_{stat.replace('.', '_')}"] = ("OriginLatency", "Average" if stat == "avg" else stat)
        return [{"Id": query_id, "ReturnData": True, "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                    "Period": period_s, "Stat": stat}}
                for query_id, (metric, stat) in wanted.items()]

    def pull(self, window: PullWindow) -> Iterator[Point]:
        now_ms = int(time.time() * 1000)
        served = {"requests": False, "additional": False}
        for start_ms, end_ms, period_s in aws.cloudwatch_segments(window.start_ms, window.end_ms, now_ms,
                                                                  len(self._queries(60))):
            found = aws.metric_data(self._metrics, self._queries(period_s), start_ms, end_ms, send=self.send)
            served["requests"] |= bool(found.get("requests"))
            served["additional"] |= any(found.get(key) for key in found if key == "hits" or key.startswith("lat_"))
            yield from self._points(found, period_s * 1000)
        if served["requests"] and not served["additional"]:
            self.note(f"distribution {self.distribution_id}: no CacheHitRate or OriginLatency in CloudWatch; they "
                      "exist only with the distribution's additional metrics turned on, so its hit ratio is unknown")

    def _points(self, found: dict[str, dict[int, float]], step_ms: int) -> Iterator[Point]:
        requests = found.get("requests", {})
        for at, value in sorted(requests.items()):
            yield Point("requests", at, value, step_ms=step_ms)
        for at, value in sorted(found.get("bytes", {}).items()):
            yield Point("bytes", at, value, step_ms=step_ms)
        for query_id, metric in _RATES.items():
            for at, rate in sorted(found.get(query_id, {}).items()):
                if at in requests:  # a rate with no requests to apply it to says nothing countable
                    yield Point(metric, at, float(round(rate / 100 * requests[at])), step_ms=step_ms)
        for stat in self.origin_latency_stats():
            for at, value in sorted(found.get(f"lat_{stat.replace('.', '_')}", {}).items()):
                yield Point("origin.latency", at, value, kind="gauge", step_ms=step_ms, labels={"stat": stat})

    def close(self) -> None:
        self._api.close()
        self._metrics.close()
