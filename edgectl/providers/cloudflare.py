"""Cloudflare: purge one zone's cache through the v4 API with the official SDK, one call per batch; pull its analytics.

Every batch is one `POST /zones/{zone_id}/purge_cache` carrying exactly one of `files`, `tags`,
`hosts`, `prefixes` or `purge_everything`. Purges are instant, so an accepted purge is a completed
one. The zone is named by `zone_id`, or by `zone` (its name), looked up once with `GET /zones?name=`.

Limits, from https://developers.cloudflare.com/cache/how-to/purge-cache/ (per account): single-file
purges are paced by URLs per second; tag, host, prefix and purge-everything requests share a token
bucket of requests.

The zone's analytics come from the GraphQL Analytics API (providers/cloudflare_analytics.py) with
the same token, which then also needs the zone's Analytics Read permission.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from edgectl.providers import cloudflare_sdk
from edgectl.providers.base import (AuthError, Batch, Bucket, InvalidTarget, Limits, ProviderError, PurgeProvider,
                                    PurgeAccepted, PATH_SAFE, percent_encode)
from edgectl.providers.cloudflare_analytics import ZoneAnalytics
from edgectl.providers.cloudflare_sdk import normalise_hostname

PLANS = ("free", "pro", "business", "enterprise")

# Single-file purges: URLs a second, a moving average over the account.
URLS_PER_SECOND = {"free": 800, "pro": 1500, "business": 1500, "enterprise": 3000}
# Tag, host, prefix and everything: (requests a second, bucket size), one bucket for the account.
BULK_BUCKET = {"free": (5 / 60, 25), "pro": (5, 25), "business": (10, 50), "enterprise": (50, 500)}
# The current docs allow 100 files a request (500 on Enterprise), but many accounts are still held
# to the older 30. The URL rate, not the number of calls, bounds how long a purge takes, so a
# smaller batch costs nothing in time and is never refused; `files_per_request` raises it.
DEFAULT_FILES_PER_REQUEST = 30
ENTERPRISE_FILES_PER_REQUEST = 500
MAX_FILES_PER_REQUEST = 500
FLEX_PER_REQUEST = 100  # tags, hosts or prefixes in one request
MAX_TAG_LENGTH = 1024
MAX_PREFIX_SEPARATORS = 31

_BODY_KEY = {"url": "files", "prefix": "prefixes", "tag": "tags", "host": "hosts"}
_NOUNS = {"url": ("URL", "URLs"), "prefix": ("prefix", "prefixes"), "tag": ("tag", "tags"), "host": ("host", "hosts")}
_QUERY_SAFE = PATH_SAFE | {"?"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(value: str) -> bool:
    return _CONTROL.search(value) is not None


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class CloudflareProvider(PurgeProvider, ZoneAnalytics):
    kind = "cloudflare"
    capabilities = frozenset({"purge", "analytics"})
    purge_kinds = frozenset({"url", "prefix", "tag", "host", "everything"})
    async_completion = False
    purge_headers = True
    required_settings = ("api_token",)
    optional_settings = ("plan", "files_per_request", *cloudflare_sdk.SETTINGS)
    secret_settings = ("api_token",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._api = cloudflare_sdk.CloudflareApi(self.settings, self.context.timeout, lambda: self.secret("api_token"))

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings) -> list[str]:
        problems = cloudflare_sdk.check_settings(settings, super().check_settings(settings), cls.kind)
        plan = settings.get("plan")
        if plan is not None and plan not in PLANS:
            problems.append(f"plan: {plan!r} is not one of {', '.join(PLANS)}")
        per_request = settings.get("files_per_request")
        if per_request is not None and not (_is_whole(per_request) and 1 <= per_request <= MAX_FILES_PER_REQUEST):
            problems.append(f"files_per_request: must be a whole number from 1 to {MAX_FILES_PER_REQUEST}")
        return problems

    @property
    def plan(self) -> str:
        return self.settings.get("plan") or "free"

    # -- what it can do --------------------------------------------------------
    def limits(self) -> Limits:
        default_files = ENTERPRISE_FILES_PER_REQUEST if self.plan == "enterprise" else DEFAULT_FILES_PER_REQUEST
        files = int(self.settings.get("files_per_request") or default_files)
        urls_per_second = URLS_PER_SECOND[self.plan]
        bulk_rate, bulk_burst = BULK_BUCKET[self.plan]
        return Limits(
            batch_size={"url": files, "prefix": FLEX_PER_REQUEST, "tag": FLEX_PER_REQUEST, "host": FLEX_PER_REQUEST,
                        "everything": 1},
            buckets={"files": Bucket(rate=urls_per_second, burst=urls_per_second, per_item=True),
                     "bulk": Bucket(rate=bulk_rate, burst=bulk_burst)},
            bucket_for={"url": "files", "prefix": "bulk", "tag": "bulk", "host": "bulk", "everything": "bulk"},
            max_in_flight=self.max_in_flight(4),
            notes=(f"URLs are paced by count, {urls_per_second}/s on the {self.plan} plan, whatever the batch size",
                   "tags, hosts, prefixes and everything share one bucket of requests for the whole account",
                   "prefixes are host/path without scheme (www.example.com/blog/); no query string, fragment or '*'",
                   "tags are printable ASCII without spaces or commas, up to 1,024 characters; case does not matter",
                   "a URL cached under request headers (device type, country, language) is purged with those headers",
                   "everything purges the whole zone",
                   "purges are instant: accepted means done"),
        )

    def normalise(self, kind: str, value: str) -> str:
        if kind == "url":
            return self._normalise_url(value)
        if kind == "prefix":
            return self._normalise_prefix(value)
        if kind == "host":
            if not isinstance(value, str) or _has_control(value.strip()) or any(c in value for c in "/:@?#*"):
                raise InvalidTarget(f"host {value!r} must be a bare hostname such as www.example.com")
            try:
                return normalise_hostname(value)
            except ValueError:
                raise InvalidTarget(f"host {value!r} is not a hostname") from None
        if kind == "tag":
            tag = value.strip() if isinstance(value, str) else ""
            if not tag:
                raise InvalidTarget("a tag cannot be empty")
            if len(tag) > MAX_TAG_LENGTH:
                raise InvalidTarget(f"tag {tag[:40]!r}... is longer than {MAX_TAG_LENGTH} characters")
            if "," in tag:
                raise InvalidTarget(f"tag {tag!r} holds a comma: Cache-Tag headers use commas between tags")
            if not all(33 <= ord(ch) <= 126 for ch in tag):
                raise InvalidTarget(f"tag {tag!r} must be printable ASCII without spaces")
            return tag
        if kind == "everything":
            return "*"
        raise InvalidTarget(f"cloudflare cannot purge by {kind!r}")

    @staticmethod
    def _split(value: str, what: str):
        text = value.strip() if isinstance(value, str) else ""
        if not text or _has_control(text):
            # urlsplit would quietly drop tabs and line breaks; a target holding them is a mistake
            raise InvalidTarget(f"{what} {value!r} is empty or holds a control character")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise InvalidTarget(f"{what} {value!r} is not a valid URL") from None
        if "@" in parts.netloc:
            raise InvalidTarget(f"{what} {value!r} must not carry a user name or password")
        try:
            host = normalise_hostname(parts.hostname or "")
        except ValueError:
            raise InvalidTarget(f"{what} {value!r} does not name a valid host") from None
        return parts, host, port

    def _normalise_url(self, value: str) -> str:
        parts, host, port = self._split(value, "URL")
        if parts.scheme not in ("http", "https"):
            raise InvalidTarget(f"URL {value!r} is not an absolute http(s) URL")
        try:
            path = percent_encode(parts.path or "/")
            query = f"?{percent_encode(parts.query, _QUERY_SAFE)}" if parts.query else ""
        except UnicodeEncodeError:
            raise InvalidTarget(f"URL {value!r} holds characters that cannot be encoded") from None
        netloc = host if port is None else f"{host}:{port}"
        return f"{parts.scheme}://{netloc}{path}{query}"  # a fragment is never sent, so never cached

    def _normalise_prefix(self, value: str) -> str:
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and "://" in text:
            if urlsplit(text).scheme not in ("http", "https"):
                raise InvalidTarget(f"prefix {value!r} must be host/path or an http(s) URL")
        elif isinstance(text, str):
            text = "//" + text  # host/path, Cloudflare's own form
        if isinstance(text, str) and ("?" in text or "#" in text or "*" in text):
            raise InvalidTarget(f"prefix {value!r} cannot hold a query string, fragment or '*'")
        parts, host, port = self._split(text, "prefix")
        if port is not None:
            raise InvalidTarget(f"prefix {value!r} cannot name a port: prefixes are host/path")
        try:
            path = percent_encode(parts.path)
        except UnicodeEncodeError:
            raise InvalidTarget(f"prefix {value!r} holds characters that cannot be encoded") from None
        if path.count("/") > MAX_PREFIX_SEPARATORS:
            raise InvalidTarget(f"prefix {value!r} has more than {MAX_PREFIX_SEPARATORS} path separators")
        return host + path

    # -- calls -----------------------------------------------------------------
    def prepare(self) -> None:
        self._api.client()

    def purge(self, batch: Batch) -> PurgeAccepted:
        if batch.kind not in self.purge_kinds:
            raise ProviderError(f"cloudflare cannot purge by {batch.kind!r}")
        client = self._api.client()
        zone_id = self._api.zone_id()
        if batch.kind == "everything":
            body: dict[str, Any] = {"purge_everything": True}
        elif batch.kind == "url" and batch.headers:
            body = {"files": [{"url": url, "headers": dict(batch.headers)} for url in batch.items]}
        else:
            body = {_BODY_KEY[batch.kind]: list(batch.items)}
        result = self._api.call("purge", lambda: client.cache.purge(zone_id=zone_id, **body))
        if batch.kind == "everything":
            detail = "the whole zone purged"
        else:
            one, many = _NOUNS[batch.kind]
            detail = f"{len(batch.items)} {one if len(batch.items) == 1 else many} purged"
        # The id in Cloudflare's answer is the zone's in its examples, not one for this request: a
        # reference for the journal, never something to poll.
        return PurgeAccepted(provider_ref=getattr(result, "id", None), completed=True, detail=detail)

    def test(self) -> str:
        client = self._api.client()
        refused = None
        try:
            verified = self._api.call("token check", client.user.tokens.verify)
        except AuthError as exc:
            verified, refused = None, exc
        if verified is not None and verified.status != "active":
            raise AuthError(f"cloudflare: the API token is {verified.status or 'not active'}")
        try:
            zone = self._api.zone()
        except ProviderError:
            if refused is None:
                raise
            zone = None
        if zone is None:
            raise refused
        if refused is None:
            token_line = "token active"
        else:
            # An account-owned token is verified at /accounts/{id}/tokens/verify and refused at
            # /user/tokens/verify, yet may purge fine: the zone accepting it is what counts.
            token_line = "token accepted by the zone (not a user token, so not verifiable at /user/tokens/verify)"
        state = "" if zone.status in (None, "active") else f", status {zone.status}"
        return f"{token_line}; zone {zone.name} (id {zone.id}{state}) reachable"

    def close(self) -> None:
        self._api.close()
