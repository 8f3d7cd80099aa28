"""Resource use by node from the metrics history: cpu, memory, disk and network, average, p95 and max."""

from __future__ import annotations

from typing import Any

RESOURCES = ("cpu", "memory", "disk", "network")  # the catalogue's names, as heartbeats record them


def resource_usage(state, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """One record per node and resource with samples in [start, end): samples, avg, p95, max.

    The average and the max are exact (the rollups keep sums and maxima); p95 comes from the
    merged histograms, within their 0.54%.
    """
    from edgectl.analytics.queries import histograms_by
    from edgectl.names import natural_key

    rows = []
    for metric in RESOURCES:
        groups, units = histograms_by(state, metric, "node", start_ms, end_ms)
        for node, histogram in groups.items():
            rows.append({"node": node, "metric": metric, "unit": units[node], "samples": histogram.count,
                         "avg": histogram.sum / histogram.count, "p95": histogram.quantile(0.95),
                         "max": histogram.max})
    order = {metric: i for i, metric in enumerate(RESOURCES)}
    return sorted(rows, key=lambda r: (natural_key(r["node"]), order[r["metric"]]))
