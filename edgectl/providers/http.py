"""Self-hosted edges (the sandbox, Varnish or nginx set up the same way): purge each node directly.

A batch of one URL goes as a `PURGE` request; bigger batches, prefixes, tags and everything go as
one `POST /.edge/purge` per node, with a JSON body of `urls`, `prefixes`, `tags` or `all`. A batch
is accepted when every node has accepted it, so a resend after a partial failure purges the nodes
that already had it once more, which is harmless.

The nodes come from the inventory, chosen by the `nodes` setting (`label:k=v` or a list of names);
the caller resolves them and hands them over in the context.

Analytics: each node's `GET /.edge/stats` answers running totals since it started, as the sandbox's
nodes do: `requests`, `hits`, `bytes_served`, `responses_4xx`, `responses_5xx` (a total it does not
keep is left out; `requests` may be `hits` + `misses`). They are pulled as counters per node, which
the analytics domain turns into the increase since the reading before. A node that cannot be read
is noted and read again next time (its totals keep counting meanwhile); a node that refuses the
token fails the pull.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator
from urllib.parse import urlsplit

from edgectl.providers.analytics import AnalyticsProvider, Point
from edgectl.providers.base import (PATH_SAFE, AuthError, Batch, Bucket, InvalidTarget, Limits, ProviderError,
                                    PurgeAccepted, PurgeProvider, RateLimited, RetryableError, parse_retry_after,
                                    percent_encode)

_BODY_KEYS = {"url": "urls", "prefix": "prefixes", "tag": "tags"}
# /.edge/stats' running totals and the catalogue's metric each counts
STATS_COUNTERS = (("requests", "requests"), ("hits", "cache.hits"), ("bytes_served", "bytes"),
                  ("responses_4xx", "errors.4xx"), ("responses_5xx", "errors.5xx"))


class HttpProvider(PurgeProvider, AnalyticsProvider):
    kind = "http"
    capabilities = frozenset({"purge", "analytics"})
    settle_ms = 0  # a running total read now is final
    purge_kinds = frozenset({"url", "prefix", "tag", "everything"})
    required_settings = ("nodes",)
    optional_settings = ("token", "batch_size", "rate")
    secret_settings = ("token",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._http = None

    @classmethod
    def check_settings(cls, settings) -> list[str]:
        problems = super().check_settings(settings)
        nodes = settings.get("nodes")
        if nodes is not None and not (isinstance(nodes, str) and nodes.startswith("label:")
                                      or isinstance(nodes, list) and all(isinstance(n, str) for n in nodes)):
            problems.append("nodes: must be 'label:key=value' or a list of node names")
        size = settings.get("batch_size")
        if size is not None and not (isinstance(size, int) and 1 <= size <= 10_000):
            problems.append("batch_size: must be a whole number from 1 to 10000")
        rate = settings.get("rate")
        if rate is not None and not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate <= 10_000):
            problems.append("rate: must be requests per second, above 0 and at most 10000")
        return problems

    def limits(self) -> Limits:
        size = int(self.settings.get("batch_size", 100))
        rate = float(self.settings.get("rate", 50))
        return Limits(
            batch_size={"url": size, "prefix": size, "tag": size, "everything": 1},
            buckets={"requests": Bucket(rate=rate, burst=max(1.0, rate))},
            bucket_for={kind: "requests" for kind in self.purge_kinds},
            max_in_flight=self.max_in_flight(8),
            notes=("each batch goes to every node; a request counts once however many nodes",
                   "prefixes are paths ('/docs/'); a single URL is sent as a PURGE request"),
        )

    def normalise(self, kind: str, value: str) -> str:
        if kind == "url":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidTarget(f"{value!r} is not an absolute http(s) URL")
            query = f"?{percent_encode(parts.query, PATH_SAFE | {'?'})}" if parts.query else ""
            path = percent_encode(parts.path or "/") + query
            return f"{parts.scheme}://{parts.netloc.lower()}{path}"
        if kind == "prefix":
            parts = urlsplit(value)
            path = parts.path if parts.scheme else value
            if not path.startswith("/") or "?" in value or "*" in value:
                raise InvalidTarget(f"prefix {value!r} must be a path such as /docs/ (no query or '*')")
            return percent_encode(path)
        return value

    # -- calls -----------------------------------------------------------------
    def _client(self):
        with self._lock:
            if self._http is None:
                import httpx

                headers = {"User-Agent": "edgectl-purge"}
                if self.settings.get("token"):
                    headers["Authorization"] = "Bearer " + self.secret("token")
                self._http = httpx.Client(timeout=self.context.timeout, headers=headers, trust_env=False)
            return self._http

    def _nodes(self):
        if not self.context.nodes:
            raise ProviderError(f"no live nodes match nodes = {self.settings.get('nodes')!r}")
        return self.context.nodes

    def _send(self, node, method: str, url: str, body: dict[str, Any] | None) -> dict:
        import httpx

        try:
            response = self._client().request(method, url, json=body)
        except httpx.TimeoutException:
            raise RetryableError(f"node {node.name}: timed out") from None
        except httpx.TransportError as exc:
            raise RetryableError(f"node {node.name}: {exc.__class__.__name__}: {exc}") from None
        status = response.status_code
        # 501 and 505 say the node does not do this at all: sending again cannot help
        if status == 429 or (status >= 500 and status not in (501, 505)):
            kind = RateLimited if status == 429 else RetryableError
            raise kind(f"node {node.name}: HTTP {status}", parse_retry_after(response.headers.get("Retry-After")))
        if status in (401, 403):
            raise AuthError(f"node {node.name} refused the token (HTTP {status})")
        if status >= 400 and not (method == "PURGE" and status == 404):  # 404: nothing cached there
            raise ProviderError(f"node {node.name}: HTTP {status}: {response.text.strip()[:200]}")
        try:
            doc = response.json()
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def prepare(self) -> None:
        self._client()

    def purge(self, batch: Batch) -> PurgeAccepted:
        """Every node is tried, whatever happens at the others; one failure fails the batch after.

        A resend purges the nodes that succeeded once more, which is harmless; a refused token or a
        permanent error wins over a retryable one, since sending again would not help.
        """
        purged = 0
        nodes = self._nodes()
        failures: list[ProviderError] = []
        for node in nodes:
            base = node.url.rstrip("/")
            try:
                if batch.kind == "url" and len(batch.items) == 1:
                    parts = urlsplit(batch.items[0])
                    doc = self._send(node, "PURGE", base + parts.path + (f"?{parts.query}" if parts.query else ""), None)
                else:
                    body = {"all": True} if batch.kind == "everything" else {_BODY_KEYS[batch.kind]: list(batch.items)}
                    doc = self._send(node, "POST", base + "/.edge/purge", body)
            except ProviderError as exc:
                failures.append(exc)
                continue
            purged += int(doc.get("purged", 0) or 0)
        if failures:
            done = len(nodes) - len(failures)
            summary = f"{len(failures)} of {len(nodes)} nodes failed ({done} purged): " + "; ".join(
                f.message for f in failures[:3]) + (" ..." if len(failures) > 3 else "")
            for kind in (AuthError, ProviderError):
                if any(type(f) is kind for f in failures):
                    raise kind(summary)
            kind = RateLimited if any(isinstance(f, RateLimited) for f in failures) else RetryableError
            raise kind(summary, max((getattr(f, "retry_after", None) or 0 for f in failures), default=0) or None)
        noun = "node" if len(nodes) == 1 else "nodes"
        return PurgeAccepted(provider_ref=None, completed=True,
                             detail=f"{len(nodes)} {noun}, {purged} entries removed")

    def test(self) -> str:
        import httpx

        for node in self._nodes():
            # an empty purge is refused as empty (400) once the token is accepted, and changes nothing
            try:
                response = self._client().post(node.url.rstrip("/") + "/.edge/purge", json={})
            except httpx.HTTPError as exc:
                raise ProviderError(f"node {node.name}: {exc.__class__.__name__}: {exc}") from None
            if response.status_code in (401, 403):
                raise AuthError(f"node {node.name} refused the token (HTTP {response.status_code})")
            if response.status_code >= 500 or response.status_code == 404:
                raise ProviderError(f"node {node.name}: HTTP {response.status_code} from /.edge/purge")
        return f"{len(self._nodes())} node(s) reachable; token accepted"

    # -- analytics -------------------------------------------------------------
    def pull(self, window) -> Iterator[Point]:
        """Each node's running totals, read now, as counters."""
        nodes = self._nodes()
        refused: list[ProviderError] = []
        unread: list[ProviderError] = []
        for node in nodes:
            url = node.url.rstrip("/") + "/.edge/stats"
            try:
                doc = self.send(f"node {node.name}: stats", lambda: self._stats(node, url))
            except AuthError as exc:
                refused.append(exc)
                continue
            except ProviderError as exc:
                unread.append(exc)
                self.note(f"{exc.message}: not read; its traffic counts from the next reading")
                continue
            read_at = int(time.time() * 1000)
            totals = dict(doc)
            if "requests" not in totals and _whole(totals.get("hits")) and _whole(totals.get("misses")):
                totals["requests"] = totals["hits"] + totals["misses"]
            found = [(metric, float(totals[key])) for key, metric in STATS_COUNTERS if _whole(totals.get(key))]
            if not found:
                self.note(f"node {node.name}: /.edge/stats holds none of {', '.join(k for k, _ in STATS_COUNTERS)}")
            for metric, reading in found:
                yield Point(metric, read_at, reading, kind="counter", node=node.name)
        if refused:
            raise AuthError("; ".join(e.message for e in refused[:3]))
        if unread and len(unread) == len(nodes):
            raise unread[0]

    def _stats(self, node, url: str) -> dict:
        """/.edge/stats read once. A node that is down or failing is not read again (a total missed now
        is in the next reading), so only throttling stays retryable: a node that says when to come back
        (429, Retry-After) is waited for, as every other pull waits."""
        try:
            return self._send(node, "GET", url, None)
        except RateLimited:
            raise
        except RetryableError as exc:
            raise ProviderError(exc.message) from None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def _whole(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
