"""What the metrics history holds, read back for assertions: raw samples with their series."""

from __future__ import annotations

RAW = ("SELECT s.metric, s.unit, s.node, s.provider, s.country, s.region, s.labels,"
       " json_extract(s.labels, '$.source') AS source, m.at, m.value"
       " FROM metric_samples m JOIN metric_series s ON s.id = m.series_id")


def history(state, **where: str) -> list[dict]:
    """Raw samples, oldest first, filtered by series columns (metric, node...) or `source`."""
    sql = f"SELECT * FROM ({RAW})"
    if where:
        sql += " WHERE " + " AND ".join(f"{column} = ?" for column in where)
    return list(state.db.query(sql + " ORDER BY at, metric", list(where.values())))
