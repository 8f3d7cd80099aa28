"""The metrics history in the state: series, raw samples, and rollups kept on ingest.

Every sample lands in `metric_samples` and in the rollups of its minute, hour and day: count,
sum, min, max and an exponential histogram (edgectl.analytics.histogram). A batch is aggregated
in memory first and merged into the rows it touches in one transaction, so ingesting is a few
statements per series-bucket, not per sample. Merging is a sum, so the order samples arrive in
and how they were batched never change a rollup.

Gauges (percentiles a provider computed, kind "gauge") keep their raw samples and a last value
per bucket; their histograms are never merged, as a p95 of p95s means nothing.

Windows are answered from the coarsest rollups that fit: whole days, then whole hours, then
minutes at the edges, so a week's percentiles read a few hundred rows per series.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

from edgectl.analytics.histogram import Histogram
from edgectl.analytics.samples import Sample, SeriesKey

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000  # milliseconds
RESOLUTIONS = (MINUTE, HOUR, DAY)
BATCH = 50_000


class SeriesIndex:
    """Series ids by key, created on first sight, cached for the run."""

    def __init__(self, state):
        self.state = state
        self.ids: dict[SeriesKey, int] = {}

    def id_of(self, key: SeriesKey) -> int:
        found = self.ids.get(key)
        if found is not None:
            return found
        conn = self.state.db.conn
        values = [key.metric, key.unit, key.node, key.provider, key.country, key.region, key.labels, key.kind]
        conn.execute("INSERT OR IGNORE INTO metric_series (metric, unit, node, provider, country, region, labels, kind)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
        row = conn.execute("SELECT id FROM metric_series WHERE metric = ? AND unit = ? AND node = ? AND provider = ?"
                           " AND country = ? AND region = ? AND labels = ? AND kind = ?", values).fetchone()
        self.ids[key] = row[0]
        return row[0]


@dataclass
class IngestResult:
    samples: int = 0
    series: int = 0

    def to_record(self) -> dict:
        return {"samples": self.samples, "series": self.series}


def ingest(state, samples: Iterable[Sample], *, batch: int = BATCH) -> IngestResult:
    """Store samples and fold them into the rollups, a batch per transaction."""
    index = SeriesIndex(state)
    result = IngestResult()
    # the rollups' b-trees are written all over at once (a week of minutes): keep their pages in
    # memory for the run rather than SQLite's default 2 MiB
    state.db.conn.execute("PRAGMA cache_size = -262144")
    pending: list[Sample] = []
    for sample in samples:
        pending.append(sample)
        if len(pending) >= batch:
            _write(state, index, pending)
            result.samples += len(pending)
            pending = []
    if pending:
        _write(state, index, pending)
        result.samples += len(pending)
    result.series = len(index.ids)
    return result


def _write(state, index: SeriesIndex, samples: list[Sample]) -> None:
    """One batch: the raw rows, and each sample folded into its minute, hour and day in memory first,
    so the rollup rows are written once per series-bucket of the batch, not once per sample."""
    from edgectl.analytics.histogram import bucket_index

    with state.db.atomic():
        conn = state.db.conn
        rows = [(index.id_of(s.series), s.at_ms, s.value) for s in samples]
        rows.sort()  # series then time: neighbouring keys for the rollups' b-trees
        conn.executemany("INSERT INTO metric_samples (series_id, at, value) VALUES (?, ?, ?)", rows)
        summary: dict[tuple[int, int, int], list] = {}  # key -> [count, sum, min, max, zero_count]
        buckets: dict[tuple[int, int, int, int], int] = {}
        for series, at, value in rows:
            bucket = bucket_index(value) if value > 0 else None
            for resolution in RESOLUTIONS:
                key = (resolution, at - at % resolution, series)
                row = summary.get(key)
                if row is None:
                    summary[key] = [1, value, value, value, 0 if bucket is not None else 1]
                else:
                    row[0] += 1
                    row[1] += value
                    if value < row[2]:
                        row[2] = value
                    elif value > row[3]:
                        row[3] = value
                    if bucket is None:
                        row[4] += 1
                if bucket is not None:
                    cell = (*key, bucket)
                    buckets[cell] = buckets.get(cell, 0) + 1
        conn.executemany(
            "INSERT INTO metric_rollups (resolution, start, series_id, count, sum, min, max, zero_count)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (resolution, start, series_id) DO UPDATE SET"
            " count = count + excluded.count, sum = sum + excluded.sum, min = min(min, excluded.min),"
            " max = max(max, excluded.max), zero_count = zero_count + excluded.zero_count",
            [(*key, *row) for key, row in summary.items()])
        conn.executemany(
            "INSERT INTO metric_buckets (resolution, start, series_id, bucket, count) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (resolution, start, series_id, bucket) DO UPDATE SET count = count + excluded.count",
            [(*cell, count) for cell, count in buckets.items()])


def series_matching(state, metric: str, **where: str) -> dict[int, dict]:
    """Series of a metric (histograms), by id, with what they are about."""
    sql = "SELECT * FROM metric_series WHERE metric = ? AND kind = 'histogram'"
    params: list = [metric]
    for key, value in where.items():
        sql += f" AND {key} = ?"
        params.append(value)
    return {row["id"]: {**row, "labels": json.loads(row["labels"])} for row in state.db.query(sql, params)}


def spans(start: int, end: int) -> list[tuple[int, int, int]]:
    """[start, end) as (resolution, first bucket start, end of the last): whole days inside, whole
    hours around them, minutes at the edges. The window is widened to whole minutes."""
    start -= start % MINUTE
    end += (-end) % MINUTE
    out: list[tuple[int, int, int]] = []

    def cover(lo: int, hi: int, resolutions: tuple[int, ...]) -> None:
        if lo >= hi:
            return
        coarse, finer = resolutions[0], resolutions[1:]
        if not finer:
            out.append((coarse, lo, hi))
            return
        first, last = lo + (-lo) % coarse, hi - hi % coarse
        if first < last:
            cover(lo, first, finer)
            out.append((coarse, first, last))
            cover(last, hi, finer)
        else:
            cover(lo, hi, finer)

    cover(start, end, (DAY, HOUR, MINUTE))
    return out


def window_histograms(state, series_ids: Iterable[int], start_ms: int, end_ms: int) -> dict[int, Histogram]:
    """Each series' histogram over [start, end), summed from its rollups: each span read by its key range."""
    from edgectl.analytics.histogram import HistogramRecord

    ids = list(series_ids)
    out: dict[int, Histogram] = {i: Histogram() for i in ids}
    if not ids:
        return out
    marks = ", ".join("?" for _ in ids)
    conn = state.db.conn
    summary: dict[int, list] = {}
    buckets: dict[int, dict[int, int]] = {}
    for resolution, lo, hi in spans(start_ms, end_ms):
        where = f"resolution = ? AND start >= ? AND start < ? AND series_id IN ({marks})"
        params = [resolution, lo, hi, *ids]
        for series, count, total, low, high, zero in conn.execute(
                f"SELECT series_id, sum(count), sum(sum), min(min), max(max), sum(zero_count) FROM metric_rollups"
                f" WHERE {where} GROUP BY series_id", params):
            seen = summary.get(series)
            if seen is None:
                summary[series] = [count, total, low, high, zero]
            else:
                seen[0] += count
                seen[1] += total
                seen[2] = min(seen[2], low)
                seen[3] = max(seen[3], high)
                seen[4] += zero
        for series, bucket, count in conn.execute(
                f"SELECT series_id, bucket, sum(count) FROM metric_buckets WHERE {where} GROUP BY series_id, bucket",
                params):
            cells = buckets.setdefault(series, {})
            cells[bucket] = cells.get(bucket, 0) + count
    for series, (count, total, low, high, zero) in summary.items():
        out[series] = Histogram.from_rows(HistogramRecord(count, total, low, high, zero),
                                          buckets.get(series, {}).items())
    return out
