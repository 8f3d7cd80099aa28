"""The estate at a glance, as one record: latency by region, the hit ratio, nodes in trouble, firing alerts.

`analytics performance` draws this record on one screen and `--watch` reads it again each round;
gathering it changes nothing in the state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

PERCENTILES = (50.0, 95.0, 99.0)


def firing_alerts(state, config) -> list[dict[str, Any]] | None:
    """The alerts firing now (edgectl.analytics.alerts.firing_alerts), or None where there are no
    alert rules: "no alert rules" is not the same answer as "none firing"."""
    from edgectl.analytics import alerts

    if not alerts.list_rules(state):
        return None
    return alerts.firing_alerts(state, config)


@dataclass
class PerformanceSnapshot:
    at: datetime
    start_ms: int
    end_ms: int
    target: float
    latency_by_region: list[dict[str, Any]]
    hit_ratio: dict[str, Any]  # the whole estate's: requests, hits, misses, hit_ratio, bytes, below_target
    hit_ratio_by_node: list[dict[str, Any]]
    nodes: int  # live nodes in the inventory
    nodes_by_status: dict[str, int]
    troubled_nodes: list[dict[str, Any]]  # failed or stale
    alerts: list[dict[str, Any]] | None  # None: no alert rules to ask

    def to_record(self) -> dict[str, Any]:
        return {"at": self.at, "window_s": (self.end_ms - self.start_ms) // 1000,
                "latency_by_region": self.latency_by_region,
                "hit_ratio": {**self.hit_ratio, "target": self.target, "by_node": self.hit_ratio_by_node},
                "nodes": {"total": self.nodes, "by_status": self.nodes_by_status, "troubled": self.troubled_nodes},
                "alerts": {"rules": self.alerts is not None, "firing": self.alerts or []}}


def performance_snapshot(state, config, start_ms: int, end_ms: int) -> PerformanceSnapshot:
    from edgectl.analytics.hitratio import Tally, tallies_by
    from edgectl.analytics.queries import PercentileRequest, percentiles_by
    from edgectl.names import natural_key
    from edgectl.nodes.inventory import list_nodes
    from edgectl.timeutil import utcnow

    at = utcnow()
    target = config.setting("analytics.hit_ratio_target")
    # a sample without a region (a probe of a node with none) is on no row
    latency = [r for r in percentiles_by(state, PercentileRequest("latency", "region", start_ms, end_ms, PERCENTILES))
               if r["region"] != "-"]
    by_node = tallies_by(state, "node", start_ms, end_ms)
    overall = Tally()
    for tally in by_node.values():
        if tally.known:  # a group that reports no hits would count its requests as misses
            overall.merge(tally)
    nodes = list_nodes(state, heartbeat_interval=config.setting("nodes.heartbeat_interval"))
    by_status: dict[str, int] = {}
    for node in nodes:
        by_status[node.status] = by_status.get(node.status, 0) + 1
    troubled = [{"name": n.name, "status": n.status, "stale": n.stale, "region": n.region,
                 "last_heartbeat": n.last_heartbeat, "last_check_at": n.last_check_at, "last_error": n.last_error}
                for n in nodes if n.status == "failed" or n.stale]
    node_rows = [{"node": name, **tally.to_record(target)}
                 for name, tally in sorted(by_node.items(), key=lambda kv: natural_key(kv[0]))]
    return PerformanceSnapshot(at, start_ms, end_ms, target, latency, overall.to_record(target), node_rows,
                               len(nodes), by_status, troubled, firing_alerts(state, config))
