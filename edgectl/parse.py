"""Parsers for what users type: durations, coordinates, labels, countries, names and URLs.

Each parser returns a plain value or raises UsageError with a line that says what was wrong.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from edgectl.errors import UsageError

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


MAX_DURATION = 3650 * 86400.0  # ten years: anything longer is a typo, and overflows dates


def parse_duration(text: str, *, what: str = "duration") -> float:
    """'1h30m', '250ms', '2.5s', '7d' or a bare number of seconds -> seconds, at most ten years."""
    seconds = _duration(text, what)
    if seconds > MAX_DURATION:
        raise UsageError(f"{what}: {text!r} is longer than ten years", hint="use a value like 10m, 24h or 30d")
    return seconds


def _duration(text: str, what: str) -> float:
    raw = str(text).strip().lower()
    if not raw:
        raise UsageError(f"{what}: empty duration", hint="use a value like 500ms, 2s, 5m, 24h or 7d")
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if value < 0 or value != value or value == float("inf"):
            raise UsageError(f"{what}: {text!r} is not a valid duration")
        return value
    pos, total, last_scale = 0, 0.0, float("inf")
    for match in _DURATION_PART.finditer(raw):
        if match.start() != pos:
            break
        scale = _DURATION_UNITS[match.group(2)]
        if scale >= last_scale:  # '5s1h' or '1h1h' is almost surely a typo
            break
        total += float(match.group(1)) * scale
        last_scale = scale
        pos = match.end()
    if pos != len(raw) or pos == 0:
        raise UsageError(
            f"{what}: {text!r} is not a valid duration",
            hint="use a value like 500ms, 2s, 1m30s, 24h or 7d",
        )
    return total


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration for display: 90 -> '1m30s', 0.25 -> '250ms', 0 -> '0s'."""
    if 0 < seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_coordinates(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    """Both or neither; latitude in [-90, 90], longitude in [-180, 180]."""
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise UsageError("--lat and --lon go together", hint="give both, e.g. --lat 50.11 --lon 8.68")
    for name, value, limit in (("latitude", lat, 90.0), ("longitude", lon, 180.0)):
        if value != value or not -limit <= value <= limit:
            raise UsageError(f"{name} {value} is out of range", hint=f"{name} must be between -{limit:g} and {limit:g}")
    return float(lat), float(lon)


_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")


def parse_label(text: str) -> tuple[str, str]:
    """'k=v' -> ('k', 'v'). Keys are like Kubernetes label keys; values may be empty."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or not _LABEL_KEY.match(key):
        raise UsageError(
            f"label {text!r} is not key=value",
            hint="keys are 1-63 letters, digits, '.', '_', '-' or '/', starting and ending alphanumeric",
        )
    if len(value) > 253 or any(ch in value for ch in "\n\r\t"):
        raise UsageError(f"label {key!r}: the value is too long or holds control characters")
    return key, value


def parse_labels(items: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items or []:
        key, value = parse_label(item)
        labels[key] = value
    return labels


_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")


def parse_name(text: str, *, what: str = "name") -> str:
    """Node and provider names: lower-case, 1-63 characters, safe in URLs, files and shells."""
    if not _NAME.match(str(text)):
        raise UsageError(
            f"{what} {text!r} is not valid",
            hint="use 1-63 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
        )
    return str(text)


_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _valid_host(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def ascii_host(host: str, *, what: str = "host") -> str:
    """A hostname as DNS and HTTP carry it: each unicode label as its IDNA 2008 A-label (xn--...).

    UTS #46 mapping comes first, as in browsers, so 'Bücher.example' and 'bücher。example' are one
    host. ASCII labels are left as written, to the caller's own checks (some allow '_', which IDNA
    does not). UsageError when a label is not valid IDNA 2008.
    """
    if host.isascii():
        return host
    if len(host) > 253:  # no DNS name is longer, and idna should never see more (CVE-2024-3651)
        raise UsageError(f"{what} {host[:40]!r}... is longer than a domain name can be (253 characters)")
    import idna

    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        return ".".join(label if label.isascii() else idna.alabel(label).decode("ascii") for label in mapped.split("."))
    except UnicodeError as exc:  # idna.IDNAError included
        raise UsageError(f"{what} {host!r} is not a valid internationalised domain name: {exc}",
                         hint="each label must be valid IDNA 2008 (RFC 5891): letters, digits and inner "
                              "hyphens; no symbols, emoji or '_'") from None


def ascii_url(text: str, *, what: str = "URL") -> str:
    """The URL with its host as `ascii_host` writes it; the rest exactly as written (paths are
    percent-encoded later, by whoever sends them)."""
    if text.isascii():
        return text
    try:
        parts = urlsplit(text)
        parts.port
    except ValueError:
        return text  # the caller's own parsing says what is wrong with it
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not parts.hostname or hostport.startswith("[") or hostport.isascii():
        return text
    host, colon, port = hostport.partition(":")
    netloc = f"{userinfo}{at}{ascii_host(host, what=f'{what} host')}{colon}{port}"  # never echo credentials
    start = text.find("//") + 2
    if text[start:start + len(parts.netloc)] != parts.netloc:  # urlsplit dropped a tab or line break
        return text
    return text[:start] + netloc + text[start + len(parts.netloc):]


def idna_url_or_none(text: str) -> str | None:
    """`ascii_url`, or None when the host is not valid IDNA: for long URL lists that skip bad lines."""
    try:
        return ascii_url(text)
    except UsageError:
        return None


def parse_url(text: str, *, what: str = "URL", base: bool = False) -> str:
    """An absolute http(s) URL with a valid host, a unicode one in its IDNA form. A base URL (an
    endpoint) has no query or fragment."""
    raw = ascii_url(str(text).strip(), what=what)
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise UsageError(f"{what} {text!r} is not valid: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what} {text!r} is not valid", hint="use an absolute http:// or https:// URL with a host")
    if any(ch.isspace() or ord(ch) < 32 for ch in raw) or port == 0 or not _valid_host(parts.hostname):
        raise UsageError(f"{what} {text!r} is not valid")
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"{what} must not carry credentials", hint="give a bearer token by reference with --token env:NAME")
    if base and (parts.query or parts.fragment):
        raise UsageError(f"{what} {text!r} must not have a query or fragment", hint="it is a base URL; paths are added to it")
    return raw


def check_text(text: str | None, *, what: str, limit: int = 500) -> str | None:
    """Free text (reasons, cities): one line, no control characters, bounded."""
    if text is None:
        return None
    if len(text) > limit or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise UsageError(f"{what} must be one line of at most {limit} characters without control characters")
    return text


def parse_path(text: str, *, what: str = "path") -> str:
    raw = str(text).strip()
    if not raw.startswith("/") or any(ch.isspace() for ch in raw):
        raise UsageError(f"{what} {text!r} must start with '/' and hold no spaces")
    return raw


def parse_country(text: str) -> str:
    """An ISO 3166-1 alpha-2 code, as pycountry's copy of the ISO database has them."""
    import pycountry  # ~0.1 s to import and load, so only when a country is given

    code = str(text).strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        hint = "use an ISO 3166-1 alpha-2 code such as DE, US or JP"
        if code == "UK":
            hint = "the ISO 3166-1 code for the United Kingdom is GB"
        raise UsageError(f"country {text!r} is not an ISO 3166-1 alpha-2 code", hint=hint)
    return code


def parse_secret_ref(text: str, *, what: str = "token") -> str:
    """A secret is only ever named by reference: 'env:NAME' or 'file:PATH'."""
    raw = str(text).strip()
    scheme, sep, rest = raw.partition(":")
    if not sep or scheme not in ("env", "file") or not rest:
        raise UsageError(
            f"{what} must be a reference, not a literal secret",
            hint="use env:VARIABLE or file:/path/to/secret; secrets never enter the state file",
        )
    if scheme == "env" and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", rest):
        raise UsageError(f"{what}: {rest!r} is not an environment variable name")
    return raw


def parse_positive_int(value: int | None, *, what: str, maximum: int = 10**9) -> int | None:
    if value is not None and not 1 <= value <= maximum:
        raise UsageError(f"{what} must be between 1 and {maximum}, not {value}")
    return value


# Headers a cache key may vary on are kept with a purge or a warm run, to send again on resume;
# credentials are not, so they are refused rather than stored.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-auth-key", "x-auth-email",
                                "x-api-key"})


def parse_headers(values: list[str] | None, *, what: str = "--header") -> dict[str, str]:
    """'Name: value' lines into a dict; malformed lines and credential headers are refused."""
    headers = {}
    for value in values or []:
        key, sep, text = value.partition(":")
        key, text = key.strip(), text.strip()
        if not sep or not key or any(ch.isspace() for ch in key) or any(ord(c) < 32 for c in value):
            raise UsageError(f"{what} {value!r} is not 'Name: value'")
        if key.lower() in CREDENTIAL_HEADERS:
            raise UsageError(f"{what} {key} carries credentials, which edgectl does not keep in its journal",
                             hint="purge headers are the ones the cache key varies on, e.g. CF-Device-Type: mobile")
        headers[key] = text
    return headers


def closest_name(word: str, known, synonyms=None) -> str | None:
    """The known name a mistyped one most likely meant, or None.

    A synonym wins first: difflib finds 'fial_after' for 'fail_after', never 'kind' for 'type'.
    """
    import difflib

    names = list(dict.fromkeys(known))
    lowered = str(word).lower()
    meant = (synonyms or {}).get(lowered)
    if meant in names:
        return meant
    by_case = {name.lower(): name for name in names}
    if lowered in by_case:
        return by_case[lowered]
    close = difflib.get_close_matches(lowered, names, n=1)
    return close[0] if close else None


def unknown_setting(key: str, known, synonyms=None, *, where: str = "", meant: str | None = None) -> str:
    """'unknown setting 'type' (did you mean 'kind'?)', or the settings there are when nothing is close."""
    meant = meant or closest_name(key, known, synonyms)
    if meant is not None:
        return f"unknown setting {key!r} (did you mean {meant!r}?)"
    return f"unknown setting {key!r}{where} (known: {', '.join(sorted(known))})"


def parse_address(text: str, *, what: str = "--address") -> str:
    """A node's published address: an IPv4 or IPv6 address (brackets optional), or a hostname."""
    import ipaddress

    raw = str(text).strip()
    bare = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        return str(ipaddress.ip_address(bare))  # IPv6 in its compressed form, so plans compare alike
    except ValueError:
        pass
    host = ascii_host(raw.rstrip("."), what=what).lower()
    if not host or not _valid_host(host) or host.replace(".", "").isdigit():
        raise UsageError(f"{what} {text!r} is not an IP address or a hostname",
                         hint="e.g. 192.0.2.10, 2001:db8::10 or edge-fra-1.example.net")
    return host


def address_record_type(address: str) -> str:
    """The DNS record a published address takes: A, AAAA or CNAME."""
    import ipaddress

    try:
        return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
    except ValueError:
        return "CNAME"
