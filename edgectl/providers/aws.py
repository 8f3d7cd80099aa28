"""What the AWS kinds share: a boto3 client from the standard credential chain, and AWS errors as provider errors.

Credentials come only from the standard AWS chain (environment, shared config and credentials
files, an optional `profile`, SSO, container and instance roles), never from the edgectl config.
botocore's own retries are off (one attempt): edgectl retries, and counts and journals each try.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from edgectl.providers.base import AuthError, ProviderError, RateLimited, RetryableError, parse_retry_after

THROTTLED = {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded",
             "RequestThrottled", "RequestThrottledException", "SlowDown"}
TRANSIENT = {"ServiceUnavailable", "InternalError", "InternalFailure", "InternalServerError", "RequestTimeout",
             "RequestTimeoutException"}
REFUSED = {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
           "ExpiredTokenException", "UnrecognizedClientException", "InvalidAccessKeyId", "MissingAuthenticationToken",
           "IncompleteSignature", "AuthFailure", "RequestExpired", "InvalidSignatureException"}
CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "access_key_id",
                   "secret_access_key", "access_key", "secret_key")
CHAIN = ("environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE), ~/.aws/credentials and "
         "~/.aws/config, SSO, or a container or instance role")
SETTINGS = ("profile", "region", "endpoint_url")

# an AWS error code -> the provider error to raise, for what a service means by its own codes
Special = Callable[[str, str, "float | None"], "ProviderError | None"]


def check_settings(settings: Mapping[str, Any], problems: list[str], service: str) -> list[str]:
    """The AWS settings' problems added to `problems`: no credentials in the config, a usable profile, region, endpoint."""
    for key in settings:
        if key.lower() in CREDENTIAL_KEYS:
            problems = [p for p in problems if not p.startswith(f"{key}:")]
            problems.append(f"{key}: credentials never go in the edgectl config; {service} uses the AWS "
                            f"credential chain: {CHAIN} (choose a profile with `profile`)")
    for key in ("profile", "region"):
        value = settings.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            problems.append(f"{key}: must be a non-empty string")
    endpoint = settings.get("endpoint_url")
    if endpoint is not None:
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append("endpoint_url: must be an http(s) URL")
    return problems


def _redact_credentials(session) -> None:
    """The chain's keys and session token, as --debug logs must never show them (botocore logs headers).

    The access key id is redacted too: it is half of the pair, and it names the account it belongs to
    (sts get-access-key-info), so a debug log pasted into an issue must not carry it either.
    """
    from edgectl.logs import register_secret

    try:
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except Exception:  # noqa: BLE001 - no credentials yet: the call that needs them says so
        return
    if frozen is not None:
        register_secret(frozen.access_key or "")
        register_secret(frozen.secret_key or "")
        register_secret(frozen.token or "")


class AwsApi:
    """One boto3 client, built on first use (thread-safe), and calls whose errors are provider errors."""

    def __init__(self, service: str, label: str, settings: Mapping[str, Any], timeout: float,
                 where: Callable[[], str], special: Special | None = None):
        self.service = service
        self.label = label  # "CloudFront", "Route 53"
        self.settings = settings
        self.timeout = timeout
        self.where = where  # " on E2QW..." for messages
        self.special = special
        self._lock = threading.Lock()
        self._client = None

    def client(self):
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config
                from botocore.exceptions import ProfileNotFound

                from edgectl import __version__

                region = self.settings.get("region") or "us-east-1"  # CloudFront and Route 53 are global
                try:
                    session = boto3.session.Session(profile_name=self.settings.get("profile") or None,
                                                    region_name=region)
                except ProfileNotFound as exc:
                    raise AuthError(f"{exc}; set `profile` to one defined in ~/.aws/config or "
                                    f"~/.aws/credentials, or remove it to use {CHAIN}") from None
                _redact_credentials(session)
                config = Config(region_name=region, retries={"total_max_attempts": 1, "mode": "standard"},
                                connect_timeout=self.timeout, read_timeout=self.timeout,
                                user_agent_extra=f"edgectl/{__version__}")
                self._client = session.client(self.service, endpoint_url=self.settings.get("endpoint_url") or None,
                                              config=config)
            return self._client

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        from botocore import exceptions as bx

        api = "".join(part.title() for part in operation.split("_"))
        client = self.client()
        try:
            return getattr(client, operation)(**params)
        except bx.ClientError as exc:
            raise self.error(api, exc) from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError,
                bx.TokenRetrievalError, bx.SSOError) as exc:
            raise AuthError(f"{self.label} {api}: no usable AWS credentials ({exc}); edgectl looks in {CHAIN}") from exc
        except bx.SSLError as exc:
            raise ProviderError(f"{self.label} {api}: TLS failed: {exc}") from exc
        except (bx.ConnectionError, bx.HTTPClientError) as exc:
            raise RetryableError(f"{self.label} {api}: {exc.__class__.__name__}: {exc}") from exc
        except bx.BotoCoreError as exc:
            raise ProviderError(f"{self.label} {api}: {exc}") from exc

    def error(self, api: str, exc) -> ProviderError:
        response = exc.response or {}
        error = response.get("Error") or {}
        code = str(error.get("Code") or "")
        message = str(error.get("Message") or "").strip()
        if not code and response.get("Messages"):  # Route 53's <InvalidChangeBatch><Messages> body
            code, message = "InvalidChangeBatch", "; ".join(map(str, response["Messages"]))
        meta = response.get("ResponseMetadata") or {}
        status = int(meta.get("HTTPStatusCode") or 0)
        headers = {k.lower(): v for k, v in (meta.get("HTTPHeaders") or {}).items()}
        retry_after = parse_retry_after(headers.get("retry-after"))
        text = f"{self.label} {api}{self.where()}: {code or f'HTTP {status}'}"
        if message:
            text += f": {message}"
        err = self.special(code, text, retry_after) if self.special else None
        if err is None:
            if code in THROTTLED or status == 429:
                err = RateLimited(text, retry_after)
            elif code in TRANSIENT or status >= 500:
                err = RetryableError(text, retry_after)
            elif code in REFUSED or status in (401, 403):
                err = AuthError(text)
            else:
                err = ProviderError(text)
        err.aws_code = code  # type: ignore[attr-defined]
        return err

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            client.close()


# ---- CloudWatch metrics ---------------------------------------------------------------------------
# How long CloudWatch keeps each resolution, and the period a GetMetricData query must use for data
# of that age ("Start time between 3 hours and 15 days ago - use a multiple of 60 seconds; between 15
# and 63 days ago - 300 seconds; greater than 63 days ago - 3600 seconds"; 1-hour data is kept 455 days):
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
RETENTION = ((15 * DAY_MS, 60), (63 * DAY_MS, 300), (455 * DAY_MS, 3600))  # (kept for, period s)
# a band's edge is moved this far towards now (and onto a whole hour), so that a request made a
# little later than planned never asks a resolution for data it no longer holds
RETENTION_MARGIN_MS = HOUR_MS
MAX_DATAPOINTS = 100_800  # per GetMetricData call, over all its queries; more pages via NextToken
MAX_QUERIES = 500  # MetricDataQuery structures in one call


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


def _floor(value: int, step: int) -> int:
    return value // step * step


def cloudwatch_oldest_ms(now_ms: int) -> int:
    """The earliest moment CloudWatch still holds data for (its 1-hour data, 455 days)."""
    return _ceil(now_ms - RETENTION[-1][0] + RETENTION_MARGIN_MS, HOUR_MS)


def cloudwatch_segments(start_ms: int, end_ms: int, now_ms: int, queries: int) -> list[tuple[int, int, int]]:
    """[start, end) cut into (start_ms, end_ms, period_s) pieces that each fit one GetMetricData call.

    Each piece asks the finest period CloudWatch still keeps for its age, covers whole periods only
    (the minutes of an hour older than 63 days exist only as that hour), and holds at most
    MAX_DATAPOINTS over `queries` queries.
    """
    pieces = []
    newer = end_ms
    for kept_ms, period_s in RETENTION:
        edge = max(start_ms, _ceil(now_ms - kept_ms + RETENTION_MARGIN_MS, HOUR_MS))
        step = period_s * 1000
        band_start, band_end = _ceil(edge, step), _floor(newer, step)
        span = max(1, MAX_DATAPOINTS // max(1, queries)) * step
        for piece in range(band_start, band_end, span):
            pieces.append((piece, min(piece + span, band_end), period_s))
        newer = min(newer, edge)
        if newer <= start_ms:
            break
    return sorted(pieces)


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _send_once(what: str, call: Callable[[], Any]) -> Any:
    return call()


def metric_data(api: AwsApi, queries: list[dict[str, Any]], start_ms: int, end_ms: int,
                send: Callable[[str, Callable[[], Any]], Any] = _send_once) -> dict[str, dict[int, float]]:
    """Every data point of `queries` in [start, end): query Id -> {interval start ms: value}.

    Follows NextToken until the last page; a query CloudWatch could not answer fails the call.
    Each page's request goes through `send(what, call)`, the caller's way of counting and retrying.
    """
    from datetime import datetime, timezone

    found: dict[str, dict[int, float]] = {query["Id"]: {} for query in queries}
    params: dict[str, Any] = {"MetricDataQueries": queries, "ScanBy": "TimestampAscending",
                              "StartTime": datetime.fromtimestamp(start_ms / 1000, timezone.utc),
                              "EndTime": datetime.fromtimestamp(end_ms / 1000, timezone.utc)}
    for _ in range(10_000):  # a bound, far above any real answer's pages
        page = send(f"GetMetricData {_iso(start_ms)}..{_iso(end_ms)}", lambda: api.call("get_metric_data", **params))
        for result in page.get("MetricDataResults") or []:
            status = str(result.get("StatusCode") or "Complete")
            if status == "InternalError":
                raise RetryableError(f"{api.label} GetMetricData{api.where()}: {result.get('Id')}: "
                                     f"CloudWatch could not read the metric (InternalError)")
            if status == "Forbidden":
                raise AuthError(f"{api.label} GetMetricData{api.where()}: {result.get('Id')}: "
                                f"not allowed to read the metric (Forbidden)")
            values = found.setdefault(str(result.get("Id")), {})
            for moment, value in zip(result.get("Timestamps") or [], result.get("Values") or []):
                at = _ms(moment)
                if start_ms <= at < end_ms:
                    values[at] = float(value)
        token = page.get("NextToken")
        if not token:
            return found
        params["NextToken"] = token
    raise ProviderError(f"{api.label} GetMetricData{api.where()}: NextToken never ended")
