"""Amazon CloudFront: one invalidation per batch, of paths, wildcard prefixes or everything.

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

Sources:
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/InvalidationLimits.html
  https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/invalidation-specifying-objects.html
  https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateInvalidation.html
"""

from __future__ import annotations

import re
import string
import threading
from typing import Any, Mapping
from urllib.parse import urlsplit

from edgectl.providers.base import (AuthError, Backpressure, Batch, Bucket, Completion, InvalidTarget, Limits,
                                    ProviderError, PurgeAccepted, PurgeProvider, RateLimited, RetryableError,
                                    parse_retry_after, percent_encode)

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
# Left as written in a path: RFC 1738's safe characters and its reserved ones used as such. The
# guide says to encode non-ASCII and RFC 1738 "unsafe" characters (space " < > # % { } | \ ^ ~ [ ] `)
# and nothing else, or the old object is not invalidated.
_KEEP = frozenset(string.ascii_letters + string.digits + "$-_.+!*'()," + ";/?:@=&")

_THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
              "RequestThrottled", "RequestThrottledException", "SlowDown"}
_TRANSIENT = {"ServiceUnavailable", "InternalError", "InternalFailure", "InternalServerError", "RequestTimeout",
              "RequestTimeoutException"}
_REFUSED = {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
            "ExpiredTokenException", "UnrecognizedClientException", "InvalidAccessKeyId", "MissingAuthenticationToken",
            "IncompleteSignature", "AuthFailure", "RequestExpired", "InvalidSignatureException"}
_CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "access_key_id",
                    "secret_access_key", "access_key", "secret_key")
_CHAIN = ("environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE), ~/.aws/credentials and "
          "~/.aws/config, SSO, or a container or instance role")


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


class CloudFrontProvider(PurgeProvider):
    kind = "cloudfront"
    capabilities = frozenset({"purge"})
    purge_kinds = frozenset({"url", "prefix", "everything"})
    async_completion = True
    required_settings = ("distribution_id",)
    optional_settings = ("profile", "region", "endpoint_url", "poll_interval")

    def __init__(self, name: str, settings: Mapping[str, Any], context):
        super().__init__(name, settings, context)
        self._lock = threading.Lock()
        self._cf = None
        self._waiter_delay: float | None = None

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[str]:
        problems = super().check_settings(settings)
        for key in settings:
            if key.lower() in _CREDENTIAL_KEYS:
                problems = [p for p in problems if not p.startswith(f"{key}:")]
                problems.append(f"{key}: credentials never go in the edgectl config; CloudFront uses the AWS "
                                f"credential chain: {_CHAIN} (choose a profile with `profile`)")
        dist = settings.get("distribution_id")
        if dist not in ("", None) and not (isinstance(dist, str) and _DISTRIBUTION_ID.fullmatch(dist)):
            problems.append("distribution_id: must be a CloudFront distribution ID, uppercase letters and digits "
                            "(like E2QWRUHAPOMQZL)")
        for key in ("profile", "region"):
            value = settings.get(key)
            if value is not None and not (isinstance(value, str) and value.strip()):
                problems.append(f"{key}: must be a non-empty string")
        endpoint = settings.get("endpoint_url")
        if endpoint is not None:
            parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append("endpoint_url: must be an http(s) URL")
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
        with self._lock:
            if self._cf is None:
                import boto3
                from botocore.config import Config
                from botocore.exceptions import ProfileNotFound

                from edgectl import __version__

                region = self.settings.get("region") or "us-east-1"  # CloudFront is global; us-east-1 signs it
                try:
                    session = boto3.session.Session(profile_name=self.settings.get("profile") or None,
                                                    region_name=region)
                except ProfileNotFound as exc:
                    raise AuthError(f"{exc}; set `profile` to one defined in ~/.aws/config or "
                                    f"~/.aws/credentials, or remove it to use {_CHAIN}") from None
                config = Config(
                    region_name=region,
                    retries={"total_max_attempts": 1, "mode": "standard"},  # the executor retries, and counts
                    connect_timeout=self.context.timeout,
                    read_timeout=self.context.timeout,
                    user_agent_extra=f"edgectl/{__version__}",
                )
                self._cf = session.client("cloudfront", endpoint_url=self.settings.get("endpoint_url") or None,
                                          config=config)
            return self._cf

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        from botocore import exceptions as bx

        api = "".join(part.title() for part in operation.split("_"))
        client = self._client()
        try:
            return getattr(client, operation)(**params)
        except bx.ClientError as exc:
            raise self._from_client_error(api, exc) from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError,
                bx.TokenRetrievalError, bx.SSOError) as exc:
            raise AuthError(f"CloudFront {api}: no usable AWS credentials ({exc}); edgectl looks in {_CHAIN}") from exc
        except bx.SSLError as exc:
            raise ProviderError(f"CloudFront {api}: TLS failed: {exc}") from exc
        except (bx.ConnectionError, bx.HTTPClientError) as exc:
            raise RetryableError(f"CloudFront {api}: {exc.__class__.__name__}: {exc}") from exc
        except bx.BotoCoreError as exc:
            raise ProviderError(f"CloudFront {api}: {exc}") from exc

    def _from_client_error(self, api: str, exc) -> ProviderError:
        response = exc.response or {}
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or "").strip()
        meta = response.get("ResponseMetadata") or {}
        status = int(meta.get("HTTPStatusCode") or 0)
        headers = {k.lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
        retry_after = parse_retry_after(headers.get("retry-after"))
        text = f"CloudFront {api} on {self.distribution_id}: {code or f'HTTP {status}'}"
        if message:
            text += f": {message}"
        if code == "TooManyInvalidationsInProgress":
            err: ProviderError = Backpressure(text, max(retry_after or 0.0, self.poll_interval()))
        elif code in _THROTTLED or status == 429:
            err = RateLimited(text, retry_after)
        elif code in _TRANSIENT or status >= 500:
            err = RetryableError(text, retry_after)
        elif code in _REFUSED or status in (401, 403):
            err = AuthError(text)
        else:
            err = ProviderError(text)
        err.aws_code = code  # type: ignore[attr-defined]
        return err

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

    def close(self) -> None:
        with self._lock:
            client, self._cf = self._cf, None
        if client is not None and hasattr(client, "close"):
            client.close()
