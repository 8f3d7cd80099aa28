"""One cache status for any HTTP response, read from whichever cache headers it carries.

Precedence: RFC 9211 `Cache-Status`, then Cloudflare's `CF-Cache-Status`, then `X-Cache` (CloudFront,
Azure, Fastly, Akamai, nginx/Varnish/Squid styles), then `Cache-Control` forbidding storage, then
`Age` alone. A header whose value cannot be read at all is passed over for the next one; a value
that can be read decides, even when what it says is "unknown". Where a header lists several caches
the last one is reported: it is the cache closest to the client, the one a warmer's request met.

A `miss` or `expired` becomes `dynamic` when the response was not stored and its `Cache-Control`
forbids a shared cache to store it (Fastly, for one, reports a pass as MISS): warming it is futile.
Cloudflare is trusted as it is, since it names those cases itself (BYPASS, DYNAMIC).

Called once per response by the warmer, so it parses with plain string methods, touches only the
six headers it needs, and remembers recent parses: a fleet answers with a few hundred distinct values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

# hit: served from cache. miss: went forward, nothing usable was stored. expired: a stale copy was
# replaced from the origin. stale: a stale copy was served (origin down, or refreshing behind).
# revalidated: a stale copy was confirmed by the origin (304) and served. bypass: the cache stepped
# aside for this request. dynamic: the response or the CDN's configuration keeps it out of cache.
STATUSES = ("hit", "miss", "expired", "stale", "revalidated", "bypass", "dynamic", "unknown")
SOURCES = ("cache-status", "cf-cache-status", "x-cache", "cache-control", "age", "none")


@dataclass(frozen=True, slots=True)
class CacheStatus:
    status: str  # one of STATUSES
    source: str  # one of SOURCES: the header that decided
    cache: str | None  # the cache that answered: RFC 9211 cache name, "cloudflare", "cloudfront", a server
    ttl: float | None  # seconds of freshness left, when the response says; negative when stale
    stored: bool | None  # RFC 9211 `stored` of a forwarded request; None when nothing says
    detail: str | None  # the raw value of the header that decided


UNKNOWN = CacheStatus("unknown", "none", None, None, None, None)  # no response to classify (a failed request)

# RFC 9211 section 2.2, `fwd`: why the request went forward (https://www.rfc-editor.org/rfc/rfc9211).
# `stale` is settled by `fwd-status`: 304 means the stored copy was revalidated, anything else that
# it was replaced. A value the RFC does not define still means the request went forward: a miss.
_FWD = {
    "uri-miss": "miss",
    "vary-miss": "miss",
    "miss": "miss",
    "partial": "miss",
    "bypass": "bypass",  # "the cache was configured to not handle this request"
    "method": "bypass",  # "the request method's semantics require the request to be forwarded"
    "request": "bypass",  # a fresh copy existed but the request's directives forbade it
}

# CF-Cache-Status: https://developers.cloudflare.com/cache/concepts/cache-responses/
# UPDATING is an expired copy served while the origin refreshes it in the background.
_CLOUDFLARE = {
    "HIT": "hit",
    "MISS": "miss",
    "EXPIRED": "expired",
    "STALE": "stale",
    "BYPASS": "bypass",
    "REVALIDATED": "revalidated",
    "UPDATING": "stale",
    "DYNAMIC": "dynamic",
    "NONE": "unknown",
    "UNKNOWN": "unknown",
    "NONE/UNKNOWN": "unknown",
}

# X-Cache, by its first word, upper-cased; "<word> from <server>" names the server.
_X_CACHE = {
    # Fastly sets only HIT or MISS, a pass reported as MISS, one entry per server when shielding:
    #   https://www.fastly.com/documentation/reference/http/http-headers/X-Cache/
    # Squid-style proxies write "HIT from <host>" / "MISS from <host>".
    # nginx's $upstream_cache_status, the usual source of a hand-made X-Cache (NGX_HTTP_CACHE_* in
    #   https://docs.rs/crate/nginx-src/latest/source/nginx/src/http/ngx_http_cache.h and
    #   https://nginx.org/pipermail/nginx/2009-June/012839.html): UPDATING serves a stale copy.
    "HIT": "hit",
    "MISS": "miss",
    "EXPIRED": "expired",
    "STALE": "stale",
    "UPDATING": "stale",
    "REVALIDATED": "revalidated",
    "BYPASS": "bypass",
    # CloudFront "<result> from cloudfront", the x-edge-result-type values of its standard logs:
    #   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logs-reference.html
    # Errors, quota refusals and redirects never reached the cache. FunctionGeneratedResponse is not
    # in that list; read like Cloudflare's NONE for a response a Worker made itself.
    "REFRESHHIT": "revalidated",
    "ORIGINSHIELDHIT": "hit",
    "LIMITEXCEEDED": "unknown",
    "CAPACITYEXCEEDED": "unknown",
    "ERROR": "unknown",
    "REDIRECT": "unknown",
    "FUNCTIONGENERATEDRESPONSE": "unknown",
    # Azure Front Door and Azure CDN from Microsoft; N/A is a request refused by signed URL or rules:
    #   https://learn.microsoft.com/azure/frontdoor/front-door-caching#response-headers
    #   https://learn.microsoft.com/azure/cdn/cdn-msft-http-debug-headers
    "TCP_HIT": "hit",
    "TCP_REMOTE_HIT": "hit",  # from the regional (origin shield) tier
    "TCP_MISS": "miss",
    "PRIVATE_NOSTORE": "dynamic",
    "CONFIG_NOCACHE": "dynamic",
    "N/A": "unknown",
    # Azure CDN (Verizon/Edgio) cache status codes:
    #   https://learn.microsoft.com/en-us/previous-versions/azure/mt759237(v=azure.100)
    "TCP_EXPIRED_HIT": "revalidated",  # expired, the origin had nothing newer, served from the POP
    "TCP_EXPIRED_MISS": "expired",
    "TCP_CLIENT_REFRESH_MISS": "bypass",  # the client forced a refetch
    "UNCACHEABLE": "dynamic",
    "NONE": "unknown",
    # Akamai, with Pragma: akamai-x-cache-on ("TCP_HIT from a1-2.deploy.akamaitechnologies.com ..."):
    #   https://techdocs.akamai.com/edge-diagnostics/docs/pragma-headers
    "TCP_MEM_HIT": "hit",
    "TCP_IMS_HIT": "hit",
    "TCP_NEGATIVE_HIT": "hit",
    "TCP_REFRESH_HIT": "revalidated",
    "TCP_REFRESH_MISS": "expired",
    "TCP_REFRESH_FAIL_HIT": "stale",
}

_FORWARDED = frozenset({"miss", "expired"})
_PARAMETERS = frozenset({"hit", "fwd", "fwd-status", "ttl", "stored"})
# The fields read, in every spelling they commonly arrive in (as sent; lower-cased by HTTP/2, h11
# and httpx; canonicalised by Go and aiohttp), str and bytes: most fields then cost one dict lookup.
_FIELDS = ("Cache-Status", "CF-Cache-Status", "X-Cache", "X-Served-By", "Cache-Control", "Age")
_WANTED = frozenset(field.lower() for field in _FIELDS)
_LENGTHS = frozenset(map(len, _WANTED))
_SPELLINGS: dict[str | bytes, str] = {
    spelling: field.lower()
    for field in _FIELDS
    for text in (field, field.lower(), field.title(), field.upper())
    for spelling in (text, text.encode())
}


def classify(headers) -> CacheStatus:
    """The cache status of one response; never raises on malformed values.

    `headers`: a case-insensitive mapping (httpx.Headers, aiohttp's CIMultiDict,
    http.client.HTTPMessage), a dict, or a list of (name, value) pairs (str or bytes).
    Repeated fields count as one comma-joined field, in the order they came.
    """
    get = _reader(headers)
    return _decide(get("cache-status"), get("cf-cache-status"), get("x-cache"), get("x-served-by"),
                   get("cache-control"), get("age"))


@lru_cache(maxsize=4096)
def _decide(cache_status: str | None, cf_cache_status: str | None, x_cache: str | None,
            served_by: str | None, cache_control: str | None, age: str | None) -> CacheStatus:
    """The cache status from the raw values of the six headers that bear on it (None when absent).

    A pure function of short strings that repeat from response to response, so it is memoised;
    a CacheStatus is immutable and safe to share.
    """
    if cache_status:
        found = _from_cache_status(cache_status)
        if found is not None:
            return _settle(*found, cache_control, age)
    if cf_cache_status:
        status = _CLOUDFLARE.get(_last_item(cf_cache_status).upper())
        if status is not None:
            return _settle(status, "cf-cache-status", "cloudflare", None, None, cf_cache_status.strip(),
                           cache_control, age)
    if x_cache:
        found = _x_cache_entry(x_cache)
        if found is not None:
            status, cache = found
            if cache is None and served_by:  # Fastly: one server per X-Cache entry, in the same order
                cache = _last_item(served_by) or None
            return _settle(status, "x-cache", cache, None, None, x_cache.strip(), cache_control, age)
    max_age = None
    if cache_control:
        max_age, unstorable = _cache_control(cache_control)
        if unstorable:
            return CacheStatus("dynamic", "cache-control", None, None, None, cache_control.strip())
    seconds = _seconds(_first_item(age)) if age else None
    ttl = None if max_age is None else max_age - (seconds or 0.0)
    if seconds is not None:
        # Age means a cache, not the origin, produced it: https://www.rfc-editor.org/rfc/rfc9111#section-5.1
        return CacheStatus("hit" if seconds > 0 else "unknown", "age", None, ttl, None, age.strip())
    return CacheStatus("unknown", "none", None, ttl, None, None)


def _settle(status, source, cache, ttl, stored, detail, cache_control, age) -> CacheStatus:
    """Fill the ttl from Cache-Control and Age, and spot a forwarded response no cache may keep."""
    refine = status in _FORWARDED and not stored and source != "cf-cache-status"
    if cache_control and (ttl is None or refine):
        max_age, unstorable = _cache_control(cache_control)
        if unstorable:
            if refine:
                status = "dynamic"
        elif ttl is None and max_age is not None:
            ttl = max_age - ((_seconds(_first_item(age)) or 0.0) if age else 0.0)
    return CacheStatus(status, source, cache, ttl, stored, detail)


@lru_cache(maxsize=4096)
def _from_cache_status(value: str):
    """RFC 9211: a list of caches, the one closest to the client last; each `name; param[=value]...`."""
    member = value
    if "," in value:
        for member in reversed(_split(value, ",")):
            if member.strip():
                break
    pieces = _split(member, ";")
    name = _unquote(pieces[0].strip())
    hit = fwd = stored = False
    ttl = fwd_status = None
    readable = bool(name)
    for piece in pieces[1:]:
        key, eq, raw = piece.partition("=")
        key = key.strip().lower()
        if not key:
            continue
        readable = True
        if key not in _PARAMETERS:  # collapsed, key, detail, extensions: nothing a warmer decides on
            continue
        raw = raw.strip()
        flag = not eq or raw == "?1" or (raw != "?0" and raw)  # a Boolean, or the raw text of a value
        if key == "hit":
            hit = flag
        elif key == "fwd":
            fwd = flag
        elif key == "stored":
            stored = flag
        elif key == "ttl":
            ttl = _number(raw)
        else:
            fwd_status = _number(raw)
    if not readable:
        return None
    cache, detail = name or None, value.strip()
    if hit is not False:
        return ("stale" if ttl is not None and ttl < 0 else "hit"), "cache-status", cache, ttl, None, detail
    if fwd is False:
        return "unknown", "cache-status", cache, ttl, None, detail
    fwd = _unquote(fwd).lower() if isinstance(fwd, str) else ""
    if fwd == "stale":
        status = "revalidated" if fwd_status == 304 else "expired"
    else:
        status = _FWD.get(fwd, "miss")
    return status, "cache-status", cache, ttl, stored is not False, detail


@lru_cache(maxsize=1024)
def _x_cache_entry(value: str) -> tuple[str, str | None] | None:
    """The last entry's status, and the server of "<word> from <server>"."""
    words = _last_item(value).split(None, 1)
    status = _X_CACHE.get(words[0].upper()) if words else None
    if status is None:
        return None
    rest = words[1].split() if len(words) > 1 else ()
    return status, rest[1] if len(rest) > 1 and rest[0].lower() == "from" else None


@lru_cache(maxsize=1024)
def _cache_control(value: str) -> tuple[float | None, bool]:
    """(freshness a shared cache may give it, or None; whether a shared cache must not store it)."""
    shared = plain = None
    for part in value.lower().split(","):
        name, eq, arg = part.partition("=")
        name = name.strip()
        # private="field" only withholds those fields: https://www.rfc-editor.org/rfc/rfc9111#section-5.2.2.7
        if name == "no-store" or (name == "private" and not eq):
            return None, True
        if name == "s-maxage":
            shared = _seconds(arg.strip().strip('"'))
        elif name == "max-age":
            plain = _seconds(arg.strip().strip('"'))
    return (shared if shared is not None else plain), False


def _reader(headers) -> Callable[[str], str | None]:
    """A lower-case name -> the field's value, repeated fields comma-joined, or None.

    One pass over the fields, whatever their number: cheaper than six case-insensitive lookups.
    """
    if isinstance(headers, (list, tuple)):
        return _wanted(headers).get
    raw = getattr(headers, "raw", None)  # httpx.Headers: bytes pairs, far cheaper than its decoding views
    if isinstance(raw, list):
        return _wanted(raw).get
    # dict, multidict and email.message.Message (http.client) yield repeated fields one by one
    return _wanted(headers.items()).get


def _wanted(pairs) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in pairs:
        key = _SPELLINGS.get(name)
        if key is None:  # mostly a field of no interest: lower-case it only when its length could be ours
            if len(name) not in _LENGTHS:
                continue
            key = _SPELLINGS.get(name.lower())
            if key is None:
                continue
        if not isinstance(value, str):
            value = value.decode("latin-1") if isinstance(value, bytes) else _text(value)
            if value is None:
                continue
        found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return value.decode("latin-1")
    return str(value)


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quoted strings (keys and details may quote commas and semicolons)."""
    if '"' not in text:
        return text.split(sep)
    parts, start, quoted, escaped = [], 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == sep:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
        if "\\" in text:
            text = text.replace('\\"', '"').replace("\\\\", "\\")
    return text


def _last_item(value: str) -> str:
    item = value.rpartition(",")[2].strip()
    if item or "," not in value:
        return item
    for item in reversed(value.split(",")):
        if item.strip():
            return item.strip()
    return ""


def _first_item(value: str) -> str:
    return value.partition(",")[0]


def _number(text) -> float | None:
    """An integer parameter (sf-integer), leniently; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return float(int(text))
    except (ValueError, OverflowError):
        return None


def _seconds(text) -> float | None:
    """delta-seconds (Age, max-age): a non-negative integer, or None."""
    number = _number(text)
    return number if number is not None and number >= 0 else None
