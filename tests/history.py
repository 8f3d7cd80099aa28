"""What the metrics history holds, read back for assertions: raw samples with their series."""

from __future__ import annotations

import json

SERIES = "SELECT id, metric, unit, node, provider, country, region, labels FROM metric_series"


def history(state, **where: str) -> list[dict]:
    """Raw samples, oldest first, filtered by series columns (metric, node...) or `source`."""
    from edgectl.analytics.store import raw_samples

    series = {}
    for row in state.db.query(SERIES):
        series[row.pop("id")] = {**row, "source": json.loads(row["labels"]).get("source")}
    rows = [{**series[series_id], "at": at, "value": value} for series_id, at, value in raw_samples(state)]
    rows = [r for r in rows if all(r[column] == value for column, value in where.items())]
    return sorted(rows, key=lambda r: (r["at"], r["metric"]))


def raw_samples_table(state) -> None:
    """A temporary table `metric_samples` (series_id, at, value) of the raw samples now kept, for
    assertions written in SQL: the state keeps them packed in hourly blocks."""
    from edgectl.analytics.store import raw_samples

    conn = state.db.conn
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS metric_samples (series_id INTEGER, at INTEGER, value REAL)")
    conn.execute("DELETE FROM temp.metric_samples")
    conn.executemany("INSERT INTO temp.metric_samples VALUES (?, ?, ?)", raw_samples(state))
