"""Self-run Varnish caches: every node purged directly, through the VCL this plugin ships (vcl/edgectl.vcl).

The nodes come from edgectl's inventory, chosen by the `nodes` setting (`label:cache=varnish` or a
list of names); the caller resolves them and hands them over in the context, as for the `http`
kind. Requests go to each node's endpoint (its scheme and port replaced by `scheme` and `port` when
the cache answers purges elsewhere), and a batch is accepted when every node has accepted it: a
resend after a partial failure purges the nodes that had it once more, which is harmless.

What each purge kind sends (the VCL's header comment is the protocol's reference):
  url         PURGE /path?query with the URL's Host: the object and all its variants (return(purge))
  prefix      BAN with the path, regex-escaped, in X-Edgectl-Match (and X-Edgectl-Host for a full URL);
              the VCL bans `obj.http.x-host == HOST && obj.http.x-url ~ ^PATH`
  host        BAN with X-Edgectl-Host; the VCL bans `obj.http.x-host == HOST`
  tag         BAN with the tags in X-Edgectl-Keys for vmod_xkey (purge, or softpurge with soft_purge)
              and/or in X-Edgectl-Match, regex-escaped and joined by '|', for a ban on the xkey header;
              never with soft_purge, so that a node without xkey refuses the purge rather than hard-purge
  everything  BAN; the VCL bans `obj.status != 0`
Every ban tests obj.* only, so the ban lurker retires it in the background.

Where values are checked, since a ban expression is split on whitespace (a '"' starts a quoted
word) and a tag is user input spliced into a regex:
  1. `normalise`, before anything is journaled or sent: URLs and prefixes keep their path and query as
     written, since Varnish matches req.url as the client sent it, but for whitespace, '"', '#', control
     and non-ASCII characters, which are percent-encoded; hosts must be lower-case DNS names, and a tag
     must be 1 to 128 printable ASCII characters without space, comma or '"'; anything else is
     InvalidTarget. `&&` in a tag is kept: with no whitespace around it, it is not a ban operator.
  2. `regex_literal`, when a batch is sent: every regex metacharacter of a path or tag is escaped,
     so a value only ever matches itself.
  3. `_header`, as each request is built: no header value reaches a node with whitespace, a '"'
     or a non-ASCII character in it, whatever called `purge`.
  4. the VCL, on the node: it refuses X-Edgectl-Match with whitespace or a '"', and an
     X-Edgectl-Host that is not a lower-case hostname, before it builds the ban.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

from edgectl.errors import UsageError
from edgectl.providers.base import (PURGE_KINDS, AuthError, Batch, Bucket, InvalidTarget, Limits, ProviderError,
                                    PurgeAccepted, PurgeProvider, RateLimited, RetryableError, parse_retry_after,
                                    percent_encode)

VCL_VERSION = "1"  # the X-Edgectl-Vcl edgectl.vcl answers; a VCL of another version speaks another protocol
XKEY_MODES = ("auto", "on", "off")
MAX_TAG = 128
MAX_TAG_BATCH = 64  # 64 tags of 128 characters, twice (keys and match), stay under http_req_hdr_len (8k)
_TAG = re.compile(r"[\x21\x23-\x2b\x2d-\x7e]+")  # printable ASCII but space, '"' and ','
_HOST = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*")
_HEADER = re.compile(r"[\x21\x23-\x7e]*")  # what may be spliced into a ban: no whitespace, no '"'
_REGEX_META = frozenset("\\^$.|?*+()[]{}")
# What may stay as written on a request line: h11 takes any visible ASCII there, and Varnish keys objects
# by req.url exactly as the client sent it. '"' cannot reach a ban and every browser sends it as %22;
# '#' would start a fragment.
_TARGET_SAFE = frozenset(map(chr, range(0x21, 0x7F))) - {'"', "#"}
ACL_HINT = "add the address edgectl purges from to acl edgectl_purgers in the node's edgectl.vcl"


def regex_literal(text: str) -> str:
    """`text` as a PCRE pattern that matches only itself: each metacharacter behind a backslash."""
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in text)


def request_target(text: str) -> str:
    """A path or query as the client wrote it, percent-encoding only what cannot go on the request line
    (spaces, control and non-ASCII characters) and '"' and '#'; %XX escapes stay as they are."""
    return percent_encode(text, _TARGET_SAFE)


def _header(value: str) -> str:
    if not _HEADER.fullmatch(value):
        raise ProviderError(f"refusing to send {value[:60]!r}: whitespace, a double quote or a non-ASCII character "
                            "would reach a ban expression")
    return value


class VarnishProvider(PurgeProvider):
    kind = "varnish"
    capabilities = frozenset({"purge"})
    purge_kinds = frozenset(PURGE_KINDS)
    required_settings = ("nodes",)
    optional_settings = ("port", "scheme", "xkey", "soft_purge", "rate", "ban_rate", "tag_batch_size")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._http = None

    # -- configuration ---------------------------------------------------------
    @classmethod
    def check_settings(cls, settings) -> list[str]:
        problems = super().check_settings(settings)
        problem = _nodes_problem(settings.get("nodes"))
        if problem:
            problems.append(f"nodes: {problem}")
        port = settings.get("port")
        if port is not None and not (_whole(port) and 1 <= port <= 65535):
            problems.append("port: must be a TCP port, 1 to 65535 (where the nodes answer purges)")
        scheme = settings.get("scheme")
        if scheme is not None and scheme not in ("http", "https"):
            problems.append("scheme: must be 'http' or 'https'")
        xkey = settings.get("xkey")
        if xkey is not None and xkey not in XKEY_MODES and not isinstance(xkey, bool):
            problems.append("xkey: must be 'auto' (xkey where the node's VCL has it), 'on' or 'off'")
        soft = settings.get("soft_purge")
        if soft is not None and not isinstance(soft, bool):
            problems.append("soft_purge: must be true or false")
        if soft is True and _mode(xkey) == "off":
            problems.append("soft_purge: needs xkey (vmod_xkey's softpurge); a ban cannot be soft, and xkey is 'off'")
        for key, what in (("rate", "PURGE and xkey requests"), ("ban_rate", "BAN requests")):
            rate = settings.get(key)
            if rate is not None and not (isinstance(rate, (int, float)) and not isinstance(rate, bool)
                                         and 0 < rate <= 10_000):
                problems.append(f"{key}: must be {what} per second, above 0 and at most 10000")
        size = settings.get("tag_batch_size")
        if size is not None and not (_whole(size) and 1 <= size <= MAX_TAG_BATCH):
            problems.append(f"tag_batch_size: must be a whole number from 1 to {MAX_TAG_BATCH}")
        return problems

    @property
    def xkey(self) -> str:
        return _mode(self.settings.get("xkey"))

    @property
    def soft(self) -> bool:
        return self.settings.get("soft_purge") is True

    def limits(self) -> Limits:
        rate = float(self.settings.get("rate", 50))
        ban_rate = float(self.settings.get("ban_rate", 10))
        tags = int(self.settings.get("tag_batch_size", 32))
        return Limits(
            batch_size={"url": 1, "prefix": 1, "tag": tags, "host": 1, "everything": 1},
            buckets={"purge": Bucket(rate=rate, burst=max(1.0, rate)),
                     "ban": Bucket(rate=ban_rate, burst=max(1.0, ban_rate))},
            bucket_for={"url": "purge", "tag": "purge" if self.xkey == "on" or self.soft else "ban",
                        "prefix": "ban", "host": "ban", "everything": "ban"},
            max_in_flight=self.max_in_flight(4),
            notes=("each batch goes to every node; a request counts once however many nodes",
                   "a URL is one PURGE (all its variants); a prefix, host or everything is one BAN on obj.* "
                   "fields, which the ban lurker retires in the background",
                   f"up to {tags} tags a request: through xkey where the node's VCL has it "
                   f"(xkey = {self.xkey!r}), else " + ("refused, as soft_purge is set" if self.soft
                                                         else "one ban matching any of them"),
                   "a ban stays on a node's ban list until every older object has been tested: "
                   "ban_rate keeps the list short"),
        )

    def normalise(self, kind: str, value: str) -> str:
        if kind == "url":
            base, path, query = _split_url(value, "URL")
            return base + request_target(path or "/") + (f"?{request_target(query)}" if query else "")
        if kind == "prefix":
            if "://" in value:
                base, path, query = _split_url(value, "prefix")
            else:
                base, (path, _, query) = "", value.strip().partition("?")
            if query:
                raise InvalidTarget(f"prefix {value!r} has a query: a prefix is a path such as /docs/")
            if not path.startswith("/") or "*" in path:
                raise InvalidTarget(f"prefix {value!r} must be a path such as /docs/, without '*' "
                                    "(everything under it is banned)")
            return base + request_target(path)
        if kind == "tag":
            if len(value) > MAX_TAG or not _TAG.fullmatch(value):
                raise InvalidTarget(f"tag {value[:40]!r} cannot be purged on Varnish: a tag is 1 to {MAX_TAG} "
                                    "printable ASCII characters without spaces, commas or double quotes (vmod_xkey "
                                    "splits its header on spaces and commas; a double quote would end a word of "
                                    "a ban)")
            return value
        if kind == "host":
            return _hostname(value)
        return "*"

    # -- calls -----------------------------------------------------------------
    def _client(self):
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(timeout=self.context.timeout, trust_env=False,
                                          headers={"User-Agent": "edgectl-varnish"})
            return self._http

    def prepare(self) -> None:
        self._client()

    def _nodes(self):
        if not self.context.nodes:
            raise ProviderError(f"no nodes match nodes = {self.settings.get('nodes')!r}: register them with "
                                "edgectl nodes add NAME --endpoint URL --label cache=varnish")
        return self.context.nodes

    def _base(self, node) -> str:
        """Where the node answers purges: its endpoint's host, with `scheme` and `port` when set."""
        parts = urlsplit(node.url)
        host = parts.hostname or "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        scheme = self.settings.get("scheme") or parts.scheme or "http"
        port = self.settings.get("port") or parts.port
        return f"{scheme}://{host}" + (f":{port}" if port else "")

    def _requests(self, batch: Batch) -> list[tuple[str, str, dict[str, str]]]:
        """(method, path, headers) of each request one node gets for the batch."""
        if batch.kind == "url":
            sent = []
            for url in batch.items:
                parts = urlsplit(url)
                target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                sent.append(("PURGE", _header(target), {"Host": _header(parts.hostname or "")}))
            return sent
        headers = {"X-Edgectl-Ban": batch.kind}
        if batch.kind == "prefix":
            (item,) = batch.items
            if item.startswith("/"):
                path = item
            else:
                parts = urlsplit(item)
                path = parts.path
                headers["X-Edgectl-Host"] = parts.hostname or ""
            headers["X-Edgectl-Match"] = regex_literal(path)
        elif batch.kind == "host":
            (headers["X-Edgectl-Host"],) = batch.items
        elif batch.kind == "tag":
            headers["X-Edgectl-Ban"] = "tags"
            if self.xkey != "off":  # vmod_xkey splits keys on spaces, never spliced into a ban
                headers["X-Edgectl-Keys"] = " ".join(_header(tag) for tag in batch.items)
                if self.soft:
                    headers["X-Edgectl-Soft"] = "1"
            if self.xkey != "on" and not self.soft:  # a ban is never soft: without xkey a node refuses it
                headers["X-Edgectl-Match"] = "|".join(regex_literal(tag) for tag in batch.items)
        return [("BAN", "/", {name: value if name == "X-Edgectl-Keys" else _header(value)
                              for name, value in headers.items()})]

    def _send(self, node, method: str, target: str, headers: dict[str, str]):
        import httpx

        try:
            # httpx would re-encode '{', '}' and others in a path: the target extension sends it as it is
            response = self._client().request(method, self._base(node) + "/", headers=headers,
                                              extensions={"target": target.encode("ascii")})
        except httpx.TimeoutException:
            raise RetryableError(f"node {node.name}: timed out") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"node {node.name}: {exc.__class__.__name__}: {exc}") from None
        status = response.status_code
        said = _said(response)
        # 501 and 505 say the node does not do this at all: sending again cannot help
        if status == 429 or (status >= 500 and status not in (501, 505)):
            kind = RateLimited if status == 429 else RetryableError
            raise kind(f"node {node.name}: HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
        if status in (401, 403, 405):
            raise AuthError(f"node {node.name} refused the {method} (HTTP {status}{': ' + said if said else ''}); "
                            f"{ACL_HINT}")
        if status == 501 and "X-Edgectl-Soft" in headers:
            raise ProviderError(_soft_needs_xkey(node.name, "nothing was purged there"))
        if status >= 400:
            raise ProviderError(f"node {node.name}: HTTP {status}{': ' + said if said else ''}")
        if "X-Edgectl-Vcl" not in response.headers:
            # a cache without edgectl.vcl passes PURGE and BAN to its origin, which may well answer 200
            raise ProviderError(f"node {node.name} answered {method} without X-Edgectl-Vcl: it does not run "
                                "edgectl.vcl, so nothing was purged (edgectl varnish vcl prints it)")
        return response

    def purge(self, batch: Batch) -> PurgeAccepted:
        """Every node is tried, whatever happens at the others; one failure fails the batch after.

        A refused purge or a permanent error wins over a retryable one, since sending again would not help.
        """
        nodes = self._nodes()
        requests = self._requests(batch)
        failures: list[ProviderError] = []
        methods: dict[str, list[str]] = {}
        count = 0
        for node in nodes:
            try:
                for method, target, headers in requests:
                    response = self._send(node, method, target, headers)
                    how = response.headers.get("X-Edgectl-Method") or ("purge" if method == "PURGE" else "ban")
                    methods.setdefault(how, []).append(node.name)
                    count += _whole_header(response.headers.get("X-Edgectl-Count"))
            except ProviderError as exc:
                failures.append(exc)
        if failures:
            raise _summary(failures, len(nodes), "purged")
        noun = "node" if len(nodes) == 1 else "nodes"
        detail = f"{len(nodes)} {noun}: " + ", ".join(sorted(methods))
        if "xkey" in methods or "xkey-soft" in methods:
            detail += f", {count} objects"
        return PurgeAccepted(provider_ref=None, completed=True, detail=detail)

    def test(self) -> str:
        """Each node answers edgectl.vcl's probe (a BAN that bans nothing), so its ACL, VCL and xkey are known now."""
        nodes = self._nodes()
        problems: list[ProviderError] = []
        with_xkey = []
        for node in nodes:
            try:
                response = self._send(node, "BAN", "/", {"X-Edgectl-Ban": "probe"})
            except ProviderError as exc:
                problems.append(exc)
                continue
            version = response.headers["X-Edgectl-Vcl"]
            if version != VCL_VERSION:
                problems.append(ProviderError(f"node {node.name} runs edgectl.vcl version {version}, and this plugin "
                                              f"speaks version {VCL_VERSION}: install what edgectl varnish vcl prints"))
                continue
            if response.headers.get("X-Edgectl-Xkey") == "yes":
                with_xkey.append(node.name)
            elif self.xkey == "on":
                problems.append(ProviderError(f"node {node.name}: its VCL has no xkey, and xkey = 'on': include "
                                              "edgectl-xkey.vcl (needs varnish-modules) or set xkey = 'auto'"))
            elif self.soft:
                problems.append(ProviderError(_soft_needs_xkey(node.name, "a tag purge fails there")))
        if problems:
            raise _summary(problems, len(nodes), "fine")
        xkey = "all" if len(with_xkey) == len(nodes) else (", ".join(with_xkey) if with_xkey else "none")
        return (f"{len(nodes)} node(s) run edgectl.vcl v{VCL_VERSION} and admit purges from here; "
                f"xkey on {xkey}" + (" (tags are banned where it is missing)" if xkey != "all" and
                                     self.xkey == "auto" else ""))

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def _soft_needs_xkey(node: str, outcome: str) -> str:
    return (f"node {node}: soft_purge needs xkey, and its VCL has none: {outcome}; include edgectl-xkey.vcl "
            "(needs varnish-modules) or set soft_purge = false")


def _mode(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    return value if value in XKEY_MODES else "auto"


def _nodes_problem(nodes: Any) -> str | None:
    """Why `nodes` cannot choose nodes from the inventory, or None: a `label:key=value` or a list of names."""
    from edgectl.parse import parse_label

    if nodes is None or isinstance(nodes, list) and nodes and all(isinstance(n, str) and n for n in nodes):
        return None
    if isinstance(nodes, str) and nodes.startswith("label:"):
        try:
            parse_label(nodes[len("label:"):])
        except UsageError as exc:
            return exc.message
        return None
    return "must be 'label:key=value' (e.g. 'label:cache=varnish') or a list of node names"


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole_header(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _hostname(value: str) -> str:
    from edgectl.parse import ascii_host

    try:
        host = ascii_host(value.strip()).lower().rstrip(".")
    except UsageError as exc:
        raise InvalidTarget(exc.message) from None
    if not _HOST.fullmatch(host) or len(host) > 253:
        raise InvalidTarget(f"host {value!r} is not a DNS name Varnish can ban on (letters, digits, '-' and '.')")
    return host


def _split_url(value: str, what: str) -> tuple[str, str, str]:
    """(scheme://host[:port], path, query) of an absolute http(s) URL, its host checked; InvalidTarget otherwise."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise InvalidTarget(f"{what} {value!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidTarget(f"{what} {value!r} is not an absolute http(s) URL")
    host = _hostname(parts.hostname)
    return f"{parts.scheme}://{host}" + (f":{port}" if port else ""), parts.path, parts.query


def _said(response) -> str:
    """What the node said, in one short line: edgectl.vcl puts its reason in the body (a proxy may drop the reason phrase)."""
    text = response.text.strip().splitlines()[0] if response.text.strip() else ""
    if not text or text.startswith("<") or len(text) > 200:
        text = response.reason_phrase or ""
    return text.strip()


def _summary(failures: list[ProviderError], nodes: int, done_as: str) -> ProviderError:
    """One error for the nodes that failed: a refusal or a permanent error wins over a retryable one."""
    done = nodes - len(failures)
    summary = f"{len(failures)} of {nodes} nodes failed ({done} {done_as}): " if nodes > 1 else ""
    summary += "; ".join(f.message for f in failures[:3]) + (" ..." if len(failures) > 3 else "")
    for kind in (AuthError, ProviderError):
        if any(type(f) is kind for f in failures):
            return kind(summary)
    kind = RateLimited if any(isinstance(f, RateLimited) for f in failures) else RetryableError
    return kind(summary, max((getattr(f, "retry_after", None) or 0 for f in failures), default=0) or None)
