"""The worst of the estate over a window: slowest nodes and regions, lowest hit ratios, most missed paths.

Regions are the client regions samples carry; a sample without a node, region or prefix belongs
to no list here. Misses by path are requests less hits by the `prefix` label; beside them, the
cache warms' own results name whole URLs, where a miss is a `miss` or `expired` status (the
request went to the origin for something cacheable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from edgectl.timeutil import from_iso, to_iso

MISSED_STATUSES = ("miss", "expired")
LISTS = ("slowest_nodes", "slowest_regions", "lowest_hit_ratio_regions", "most_missed_prefixes", "most_missed_urls")


@dataclass(frozen=True)
class TopRequest:
    start_ms: int
    end_ms: int
    limit: int = 10


def top_lists(state, request: TopRequest) -> dict[str, list[dict[str, Any]]]:
    """Each list of LISTS, worst first, at most `limit` long."""
    return {"slowest_nodes": _slowest(state, "node", request),
            "slowest_regions": _slowest(state, "region", request),
            "lowest_hit_ratio_regions": _hit_ratios(state, "region", request,
                                                    key=lambda r: (r["hit_ratio"], -r["requests"])),
            "most_missed_prefixes": _hit_ratios(state, "prefix", request, key=lambda r: (-r["misses"], r["hit_ratio"])),
            "most_missed_urls": _missed_urls(state, request)}


def _slowest(state, by: str, request: TopRequest) -> list[dict[str, Any]]:
    from edgectl.analytics.queries import PercentileRequest, percentiles_by

    rows = percentiles_by(state, PercentileRequest("latency", by, request.start_ms, request.end_ms, (50.0, 95.0)))
    return [{by: r[by], "samples": r["samples"], "p50": r["p50"], "p95": r["p95"], "max": r["max"]}
            for r in rows if r[by] != "-"][:request.limit]  # percentiles_by sorts by p95, highest first


def _hit_ratios(state, by: str, request: TopRequest, key) -> list[dict[str, Any]]:
    from edgectl.analytics.hitratio import tallies_by

    rows = []
    for name, tally in tallies_by(state, by, request.start_ms, request.end_ms).items():
        if name != "-" and tally.requests > 0:
            record = tally.to_record(0.0)
            rows.append({by: name, **{k: record[k] for k in ("requests", "hits", "misses", "hit_ratio")}})
    rows.sort(key=lambda r: (*key(r), r[by]))
    return rows[:request.limit]


def _missed_urls(state, request: TopRequest) -> list[dict[str, Any]]:
    start, end = (to_iso(datetime.fromtimestamp(ms / 1000, timezone.utc)) for ms in (request.start_ms, request.end_ms))
    marks = ", ".join("?" for _ in MISSED_STATUSES)
    rows = state.db.query(
        f"SELECT url, count(*) AS fetches, sum(cache_status IN ({marks})) AS misses, sum(cache_status = 'hit') AS hits,"
        " count(DISTINCT coalesce(node, '')) AS nodes, max(at) AS last_fetched"
        " FROM warm_results WHERE at >= ? AND at < ?"
        " GROUP BY url HAVING misses > 0 ORDER BY misses DESC, url LIMIT ?",
        [*MISSED_STATUSES, start, end, request.limit])
    return [{"url": r["url"], "fetches": r["fetches"], "misses": r["misses"], "hits": r["hits"],
             "hit_ratio": r["hits"] / r["fetches"], "nodes": r["nodes"], "last_fetched": from_iso(r["last_fetched"])}
            for r in rows]
