"""What the analytics report shows: latency and hit ratio over a window, the nodes' health, and alerts.

`build_report` gathers it from the state into a Report; edgectl.analytics.report_html draws it,
and `write_report` puts the page in place atomically. The firing alerts are those
edgectl.analytics.performance.firing_alerts answers, as on the performance screen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgectl.analytics.charts import Series
from edgectl.analytics.trends import CHART_POINTS
from edgectl.errors import UsageError

OWN_NODES = "own nodes"  # the hit-ratio group of series no provider reported: edgectl's own nodes
TROUBLE = ("failed", "down", "stale")  # healths of a node to look at
# NodeHealth.health, the nodes to look at first: failed by its probes, down at its last probe, stale
# (heartbeats missed), then those an operator set aside, never probed, and up
HEALTH_ORDER = (*TROUBLE, "draining", "maintenance", "inactive", "unchecked", "up")


@dataclass(frozen=True)
class NodeHealth:
    """A node's row in the report: its state now, and how it did over the window."""

    name: str
    region: str | None
    status: str
    stale: bool
    last_check_at: datetime | None
    last_check_ok: bool | None
    last_error: str | None
    latency_p95: float | None  # over the window, from the history
    up_ratio: float | None  # share of probes up over the window
    last_heartbeat: datetime | None = None

    @property
    def health(self) -> str:
        """One word for the row: failed, stale (heartbeats missed, whatever the probes said), the status an
        operator set, or up/down from the last probe."""
        if self.status == "failed":
            return "failed"
        if self.stale:
            return "stale"
        if self.status != "active":
            return self.status
        return {True: "up", False: "down", None: "unchecked"}[self.last_check_ok]

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "region": self.region, "status": self.status, "health": self.health,
                "stale": self.stale, "last_heartbeat": self.last_heartbeat,
                "last_check_at": self.last_check_at, "last_check_ok": self.last_check_ok,
                "last_error": self.last_error, "latency_p95": self.latency_p95, "up_ratio": self.up_ratio}


@dataclass(frozen=True)
class AlertsSection:
    rules: int  # how many alert rules there are
    firing: tuple[dict[str, Any], ...] = ()  # records as edgectl.analytics.alerts.firing_alerts gives them


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    start_ms: int
    end_ms: int
    step_ms: int
    since: str  # the window as the user gave it: 7d
    latency_p95: tuple[Series, ...]
    latency_p50: tuple[Series, ...]
    hit_ratio: tuple[Series, ...]
    latency: dict[str, float | None]  # the whole window: p50, p95, samples
    traffic: dict[str, float | None]  # the whole window: requests, hits, hit_ratio
    nodes: tuple[NodeHealth, ...]
    alerts: AlertsSection = field(default_factory=lambda: AlertsSection(0))
    latency_target_ms: float = 100.0
    hit_ratio_target: float = 0.9

    @property
    def empty(self) -> bool:
        """Whether the window holds no latency sample and no request."""
        return not self.latency["samples"] and not self.traffic["requests"]

    @property
    def nodes_by_health(self) -> dict[str, int]:
        """How many nodes have each health (NodeHealth.health), those in trouble first."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.health] = counts.get(node.health, 0) + 1
        order = {health: n for n, health in enumerate(HEALTH_ORDER)}
        return dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def to_record(self) -> dict[str, Any]:
        def groups(series: tuple[Series, ...]) -> list[str]:
            return [s.name for s in series]

        return {
            "generated_at": self.generated_at,
            "start": datetime.fromtimestamp(self.start_ms / 1000, tz=timezone.utc),
            "end": datetime.fromtimestamp(self.end_ms / 1000, tz=timezone.utc),
            "step_ms": self.step_ms, "empty": self.empty,
            "latency": self.latency, "traffic": self.traffic,
            "charts": {"latency_p95": groups(self.latency_p95), "latency_p50": groups(self.latency_p50),
                       "hit_ratio": groups(self.hit_ratio)},
            "nodes": [n.to_record() for n in self.nodes], "nodes_by_health": self.nodes_by_health,
            "targets": {"latency_ms": self.latency_target_ms, "hit_ratio": self.hit_ratio_target},
            "alerts": {"rules": self.alerts.rules, "firing": list(self.alerts.firing)},
        }


def build_report(state, config, *, start_ms: int, end_ms: int, since: str, points: int = CHART_POINTS,
                 now: datetime | None = None) -> Report:
    """The report over [start, end): charts in round steps of about `points` per window, against the
    config's targets (analytics.latency_target, analytics.hit_ratio_target)."""
    from edgectl.analytics.hitratio import CacheRequest, hit_ratios
    from edgectl.analytics.recommend import Targets
    from edgectl.analytics.trends import choose_step, latency_trends

    targets = Targets.from_config(config)
    step = choose_step(start_ms, end_ms, points)
    latency = latency_trends(state, by="region", start_ms=start_ms, end_ms=end_ms, step_ms=step,
                             percentiles=(50.0, 95.0))
    cache = hit_ratios(state, CacheRequest("provider", start_ms, end_ms, step, targets.hit_ratio))
    ratios = [Series(OWN_NODES if g.name == "-" else g.name, tuple((at, t.hit_ratio) for at, t in g.steps))
              for g in cache.groups]
    total = cache.overall.total
    return Report(
        generated_at=now or datetime.now(timezone.utc), start_ms=start_ms, end_ms=end_ms, step_ms=step,
        since=since, latency_p95=tuple(_with_data(latency[95.0])), latency_p50=tuple(_with_data(latency[50.0])),
        hit_ratio=tuple(_with_data(ratios)), latency=_latency_overall(state, start_ms, end_ms),
        traffic={"requests": total.requests, "hits": total.hits, "hit_ratio": total.hit_ratio},
        nodes=tuple(_node_health(state, start_ms, end_ms, config.setting("nodes.heartbeat_interval"))),
        alerts=report_alerts(state, config),
        latency_target_ms=targets.latency_ms, hit_ratio_target=targets.hit_ratio,
    )


def report_alerts(state, config) -> AlertsSection:
    """The alert rules there are, and the alerts firing now as the performance screen lists them."""
    from edgectl.analytics.alerts import list_rules
    from edgectl.analytics.performance import firing_alerts

    rules = len(list_rules(state))
    return AlertsSection(rules, tuple(firing_alerts(state, config) or ()) if rules else ())


def _with_data(series: list[Series]) -> list[Series]:
    """The groups with at least one step of data in natural order (r2 before r10), the region "-" (nodes
    without one) last."""
    from edgectl.names import natural_key

    return sorted((s for s in series if s.present), key=lambda s: (s.name == "-", natural_key(s.name)))


def _latency_overall(state, start_ms: int, end_ms: int) -> dict[str, float | None]:
    from edgectl.analytics.queries import histograms_by

    merged = histograms_by(state, "latency", None, start_ms, end_ms)[0].get("all")
    if merged is None:
        return {"p50": None, "p95": None, "samples": 0}
    p50, p95 = merged.quantiles([0.5, 0.95])
    return {"p50": p50, "p95": p95, "samples": merged.count}


def _node_health(state, start_ms: int, end_ms: int, heartbeat_interval: float) -> list[NodeHealth]:
    from edgectl.analytics.queries import histograms_by
    from edgectl.nodes.inventory import list_nodes

    latency = {name: h.quantile(0.95) for name, h in histograms_by(state, "latency", "node", start_ms, end_ms)[0].items()}
    up = {name: h.sum / h.count for name, h in histograms_by(state, "up", "node", start_ms, end_ms)[0].items()}
    rows = [NodeHealth(n.name, n.region, n.status, n.stale, n.last_check_at, n.last_check_ok, n.last_error,
                       latency.get(n.name), up.get(n.name), n.last_heartbeat)
            for n in list_nodes(state, heartbeat_interval=heartbeat_interval)]
    trouble = {health: n for n, health in enumerate(TROUBLE)}
    return sorted(rows, key=lambda r: trouble.get(r.health, len(TROUBLE)))  # the nodes to look at first; stable by name


def write_report(path: Path, text: str) -> Path:
    """Write the page atomically: a temporary file beside it, renamed over it when complete. The directory
    must exist: a mistyped path is an error, not a new directory."""
    import tempfile

    path = Path(path).expanduser()
    if path.is_dir():
        raise UsageError(f"{path} is a directory", hint="give the path of a file, e.g. --html report.html")
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: no such directory {path.parent}",
                         hint="create the directory first, or name a file in one that exists")
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # a page to share, made as any new file would be
        os.replace(partial, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return path
