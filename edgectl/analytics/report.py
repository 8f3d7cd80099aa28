"""What the analytics report shows: latency and hit ratio over a window, the nodes' health, and alerts.

`build_report` gathers it from the state into a Report; edgectl.analytics.report_html draws it,
and `write_report` puts the page in place atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgectl.analytics.charts import Series
from edgectl.analytics.trends import CHART_POINTS, HIT_RATIO_TARGET, LATENCY_TARGET_MS
from edgectl.errors import UsageError

OWN_NODES = "own nodes"  # the hit-ratio group of series no provider reported: edgectl's own nodes


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

    @property
    def health(self) -> str:
        """One word for the row: failed, stale, the status an operator set, or up/down from the last probe."""
        if self.status == "failed":
            return "failed"
        if self.stale:
            return "stale"
        if self.status != "active":
            return self.status
        return {True: "up", False: "down", None: "unchecked"}[self.last_check_ok]

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "region": self.region, "status": self.status, "health": self.health,
                "stale": self.stale, "last_check_at": self.last_check_at, "last_check_ok": self.last_check_ok,
                "last_error": self.last_error, "latency_p95": self.latency_p95, "up_ratio": self.up_ratio}


@dataclass(frozen=True)
class FiringAlert:
    name: str
    severity: str
    subject: str  # what it fires for: a node, a region, or everything
    since: datetime | None
    value: str  # the figure that broke the threshold, as text
    summary: str


@dataclass(frozen=True)
class AlertsSection:
    rules: int | None  # how many rules there are; None when the state has no alert rules at all
    firing: tuple[FiringAlert, ...] = ()


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
    alerts: AlertsSection = field(default_factory=lambda: AlertsSection(None))
    latency_target_ms: float = LATENCY_TARGET_MS
    hit_ratio_target: float = HIT_RATIO_TARGET

    @property
    def empty(self) -> bool:
        """Whether the window holds no latency sample and no request."""
        return not self.latency["samples"] and not self.traffic["requests"]

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
            "nodes": [n.to_record() for n in self.nodes],
            "alert_rules": self.alerts.rules, "alerts_firing": [a.name for a in self.alerts.firing],
        }


def build_report(state, *, start_ms: int, end_ms: int, since: str, heartbeat_interval: float = 30.0,
                 points: int = CHART_POINTS, now: datetime | None = None) -> Report:
    """The report over [start, end): charts in round steps of about `points` per window."""
    from edgectl.analytics.trends import choose_step, hit_ratio_trend, latency_trends

    step = choose_step(start_ms, end_ms, points)
    window = dict(start_ms=start_ms, end_ms=end_ms, step_ms=step)
    latency = latency_trends(state, by="region", percentiles=(50.0, 95.0), **window)
    p50, p95 = _with_data(latency[50.0]), _with_data(latency[95.0])
    ratios = _with_data(hit_ratio_trend(state, by="provider", **window))
    ratios = [Series(OWN_NODES, s.points) if s.name == "-" else s for s in ratios]
    return Report(
        generated_at=now or datetime.now(timezone.utc), start_ms=start_ms, end_ms=end_ms, step_ms=step,
        since=since, latency_p95=tuple(p95), latency_p50=tuple(p50), hit_ratio=tuple(ratios),
        latency=_latency_overall(state, start_ms, end_ms), traffic=_traffic_overall(state, start_ms, end_ms),
        nodes=tuple(_node_health(state, start_ms, end_ms, heartbeat_interval)), alerts=report_alerts(state),
    )


def _with_data(series: list[Series]) -> list[Series]:
    """The groups with at least one step of data in natural order (r2 before r10), the region "-" (nodes
    without one) last."""
    import re

    kept = [s for s in series if s.present]
    return sorted(kept, key=lambda s: (s.name == "-", [(int(p) if p.isdigit() else 0, p)
                                                       for p in re.split(r"(\d+)", s.name)]))


def _merged(state, metric: str, start_ms: int, end_ms: int, by: str | None = None):
    """The window's histogram of a metric, all series merged, or per value of the `by` column."""
    from edgectl.analytics.histogram import Histogram
    from edgectl.analytics.store import series_matching, window_histograms

    series = series_matching(state, metric)
    out: dict[str, Histogram] = {}
    for series_id, histogram in window_histograms(state, series, start_ms, end_ms).items():
        if histogram.count:
            out.setdefault(series[series_id][by] if by else "all", Histogram()).merge(histogram)
    return out


def _latency_overall(state, start_ms: int, end_ms: int) -> dict[str, float | None]:
    merged = _merged(state, "latency", start_ms, end_ms).get("all")
    if merged is None:
        return {"p50": None, "p95": None, "samples": 0}
    p50, p95 = merged.quantiles([0.5, 0.95])
    return {"p50": p50, "p95": p95, "samples": merged.count}


def _traffic_overall(state, start_ms: int, end_ms: int) -> dict[str, float | None]:
    requests = _merged(state, "requests", start_ms, end_ms).get("all")
    hits = _merged(state, "cache.hits", start_ms, end_ms).get("all")
    total = requests.sum if requests else 0.0
    hit = hits.sum if hits else 0.0
    return {"requests": total, "hits": hit, "hit_ratio": hit / total if total > 0 else None}


def _node_health(state, start_ms: int, end_ms: int, heartbeat_interval: float) -> list[NodeHealth]:
    from edgectl.nodes.inventory import list_nodes

    latency = {name: h.quantile(0.95) for name, h in _merged(state, "latency", start_ms, end_ms, "node").items()}
    up = {name: h.sum / h.count for name, h in _merged(state, "up", start_ms, end_ms, "node").items()}
    rows = [NodeHealth(n.name, n.region, n.status, n.stale, n.last_check_at, n.last_check_ok, n.last_error,
                       latency.get(n.name), up.get(n.name))
            for n in list_nodes(state, heartbeat_interval=heartbeat_interval)]
    trouble = {"failed": 0, "down": 1, "stale": 2}
    return sorted(rows, key=lambda r: trouble.get(r.health, 3))  # the nodes to look at first; stable by name


def _table_exists(state, name: str) -> bool:
    return state.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]).fetchone() \
        is not None


def report_alerts(state) -> AlertsSection:
    """The alerts section: how many rules there are and which alerts fire now.

    The one place the report reads alerts. Rules live in the `alert_rules` table and firing alerts
    come from edgectl.analytics.alerts.firing_alerts(state), each with name, severity, subject (or
    labels), since (or starts_at), value and summary; without the table there are no rules.
    """
    if not _table_exists(state, "alert_rules"):
        return AlertsSection(None)
    rules = state.db.execute("SELECT count(*) FROM alert_rules").fetchone()[0]
    try:
        from edgectl.analytics.alerts import firing_alerts
    except ImportError:
        return AlertsSection(rules)
    return AlertsSection(rules, tuple(_firing(alert) for alert in firing_alerts(state)))


def _firing(alert: Any) -> FiringAlert:
    """A firing alert as the report shows it, from a record or an object with those fields."""
    def get(name: str, default: Any = None) -> Any:
        return alert.get(name, default) if isinstance(alert, dict) else getattr(alert, name, default)

    labels = get("labels") or {}
    subject = get("subject") or ", ".join(f"{k}={v}" for k, v in labels.items() if k != "alertname") or "all"
    since = get("since") or get("starts_at")
    if isinstance(since, str):
        from edgectl.timeutil import from_iso

        since = from_iso(since)
    value = get("value")
    return FiringAlert(str(get("name") or get("rule") or labels.get("alertname") or "alert"),
                       str(get("severity") or labels.get("severity") or "warning"), str(subject), since,
                       "" if value is None else f"{value:g}" if isinstance(value, float) else str(value),
                       str(get("summary") or ""))


def write_report(path: Path, text: str) -> Path:
    """Write the page atomically: a temporary file beside it, renamed over it when complete."""
    import tempfile

    path = Path(path).expanduser()
    if path.is_dir():
        raise UsageError(f"{path} is a directory", hint="give the path of a file, e.g. --html report.html")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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
