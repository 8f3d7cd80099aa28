"""Active health probes and the up/down hysteresis that turns them into node status."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from edgectl.nodes.inventory import parse_health_report, record_event, record_metrics
from edgectl.nodes.model import HELD_STATUSES, Node
from edgectl.timeutil import to_iso, utcnow

MAX_BODY_BYTES = 64 * 1024  # a health document is small; a bigger body is read no further
DOWN_WORDS = {"fail", "failed", "failing", "down", "error", "unhealthy", "critical"}
USER_AGENT = "edgectl-health/1"


@dataclass
class ProbeTarget:
    name: str
    url: str
    token: str | None = None  # the resolved secret, held only in memory

    def __repr__(self) -> str:  # never let the token reach a log or a traceback
        return f"ProbeTarget(name={self.name!r}, url={self.url!r})"


@dataclass
class ProbeResult:
    name: str
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str | None
    report: dict[str, Any] = field(default_factory=dict)


def _describe(exc: BaseException, timeout: float) -> str:
    import aiohttp

    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect: {cause.strerror or cause}" if isinstance(cause, OSError) else "cannot connect"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"bad response: {exc.message}"
    if isinstance(exc, aiohttp.ClientError):
        return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
    return f"{exc.__class__.__name__}: {exc}"


def _judge(status_code: int, body: bytes, truncated: bool) -> tuple[bool, str | None, dict[str, Any]]:
    """Up when 2xx and the document, if JSON, does not say otherwise."""
    if not 200 <= status_code < 300:
        return False, f"HTTP {status_code}", {}
    if truncated or not body.lstrip().startswith(b"{"):
        return True, None, {}
    try:
        doc = json.loads(body)
    except ValueError:
        return True, None, {}
    if not isinstance(doc, dict):
        return True, None, {}
    said = str(doc.get("status", "")).lower()
    if said in DOWN_WORDS:
        return False, f"reports status {said!r}", doc
    return True, None, doc


async def _probe(session, target: ProbeTarget, timeout: float, gate: asyncio.Semaphore) -> ProbeResult:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    async with gate:
        started = time.perf_counter()
        status_code = None
        try:
            async with asyncio.timeout(timeout):
                async with session.get(target.url, headers=headers, allow_redirects=False) as response:
                    status_code = response.status
                    chunks, size, truncated = [], 0, False
                    async for chunk in response.content.iter_any():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > MAX_BODY_BYTES:
                            truncated = True
                            break
            latency = (time.perf_counter() - started) * 1000
        except Exception as exc:  # every failure of a probe is a result, not a crash
            return ProbeResult(target.name, False, status_code, None, _describe(exc, timeout))
    ok, error, doc = _judge(status_code, b"".join(chunks), truncated)
    return ProbeResult(target.name, ok, status_code, round(latency, 3), error, doc)


async def probe_all(targets: list[ProbeTarget], *, timeout: float, concurrency: int) -> list[ProbeResult]:
    """Probe every target, at most `concurrency` at once, each bounded by `timeout` in all.

    aiohttp rather than httpx's own pool: probing 900 loopback nodes took 1.75 s of CPU
    through httpx, 1.2 s through httpx over aiohttp, and 0.6 s through aiohttp, and only
    the last leaves room for the one-second timeouts of the nodes that never answer.
    """
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    # trust_env off: a proxy meant for the internet must not stand between us and our own nodes
    async with aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True) as session:
        return list(await asyncio.gather(*(_probe(session, t, timeout, gate) for t in targets)))


def run_probes(targets: list[ProbeTarget], *, timeout: float, concurrency: int) -> list[ProbeResult]:
    return asyncio.run(probe_all(targets, timeout=timeout, concurrency=concurrency))


@dataclass
class CheckOutcome:
    """One node after one probe: what was seen and what its status became."""

    node: str
    ok: bool
    status: str
    previous_status: str
    status_code: int | None
    latency_ms: float | None
    error: str | None
    fail_streak: int
    ok_streak: int
    checked_at: Any

    @property
    def changed(self) -> bool:
        return self.status != self.previous_status

    def to_record(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "result": "up" if self.ok else "down",
            "status": self.status,
            "previous_status": self.previous_status,
            "changed": self.changed,
            "http_status": self.status_code,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "fail_streak": self.fail_streak,
            "ok_streak": self.ok_streak,
            "checked_at": self.checked_at,
        }


def next_status(status: str, fail_streak: int, ok_streak: int, fail_after: int, recover_after: int) -> str:
    """The hysteresis: N failures in a row take a node down, M successes bring it back."""
    if status in HELD_STATUSES:
        return status
    if status == "active" and fail_streak >= fail_after:
        return "failed"
    if status == "failed" and ok_streak >= recover_after:
        return "active"
    return status


def record_probe_results(state, nodes: list[Node], results: list[ProbeResult], *,
                         fail_after: int, recover_after: int) -> list[CheckOutcome]:
    """Write every probe's result, metrics and any status change in one transaction."""
    by_name = {n.name: n for n in nodes}
    now = utcnow()
    at = to_iso(now)
    outcomes = []
    with state.db.atomic():
        for result in results:
            node = by_name[result.name]
            fail_streak = 0 if result.ok else node.fail_streak + 1
            ok_streak = node.ok_streak + 1 if result.ok else 0
            status = next_status(node.status, fail_streak, ok_streak, fail_after, recover_after)
            metrics, resources = {}, {}
            if result.report:
                try:
                    metrics, resources = parse_health_report(result.report, f"node {node.name} health")
                except Exception:
                    metrics = {}
            health = {**node.health_metrics, **metrics} if metrics else node.health_metrics
            state.db.execute(
                "UPDATE nodes SET status = ?, last_check_at = ?, last_check_ok = ?, last_latency_ms = ?, "
                "last_error = ?, fail_streak = ?, ok_streak = ?, health_metrics = ?, resources = ? WHERE id = ?",
                [status, at, int(result.ok), result.latency_ms, result.error, fail_streak, ok_streak,
                 json.dumps(health, sort_keys=True), json.dumps({**node.resources, **resources}, sort_keys=True),
                 node.id],
            )
            if status != node.status:
                streak = fail_streak if status == "failed" else ok_streak
                record_event(state, node.id, "health", old=node.status, new=status,
                             reason=f"{streak} {'failed' if status == 'failed' else 'good'} probes in a row"
                             + (f": {result.error}" if result.error else ""), at=at)
            probe_metrics = {"probe_up": 1.0 if result.ok else 0.0, **metrics}
            if result.latency_ms is not None:
                probe_metrics["latency"] = result.latency_ms
            record_metrics(state, node.id, probe_metrics, source="probe", at=at,
                           units={"probe_up": "bool", "latency": "ms"})
            outcomes.append(CheckOutcome(node.name, result.ok, status, node.status, result.status_code,
                                         result.latency_ms, result.error, fail_streak, ok_streak, now))
    return outcomes


@dataclass
class CheckSettings:
    timeout: float
    concurrency: int
    fail_after: int
    recover_after: int
    default_path: str


def check_nodes(state, config, nodes: list[Node], settings: CheckSettings) -> list[CheckOutcome]:
    """Probe the nodes, record what was seen, and return each node's outcome."""
    targets = [
        ProbeTarget(
            node.name,
            node.health_url(settings.default_path),
            config.resolve_secret(f"node {node.name} token", node.token) if node.token else None,
        )
        for node in nodes
    ]
    results = run_probes(targets, timeout=settings.timeout, concurrency=settings.concurrency)
    return record_probe_results(state, nodes, results, fail_after=settings.fail_after,
                                recover_after=settings.recover_after)
