"""The metrics history in the state: series, raw samples in blocks, and rollups kept on ingest.

Three tables (m015):
- `metric_blocks`: the raw samples, one block per series per hour per ingest: each sample's
  milliseconds into the hour and its value, packed (uint32 and float64, little-endian), in the
  order they came.
- `metric_rollups`: per series per hour and per day, count, sum, min, max, zero_count and the
  exponential histogram's buckets in one BLOB (edgectl.analytics.histogram.pack_buckets, with the
  exact sum), merged on ingest by an upsert. Per minute only for minutes whose raw samples have
  passed their retention: edgectl.analytics.retention rolls each such hour up into its minutes
  just before it drops the block.
- `metric_marks`: small facts about the history (when retention last ran).

A minute of a sparse series holds about one sample, so a rollup row per minute costs about as much
as a row per sample: the raw block of the hour is the smallest true record of its minutes, and a
window's edge minutes are read from it. An ingest deals a batch's samples into a list per
series-hour (C-speed passes, no Python step per sample), then writes one block and one hour row
per series-hour and one day row per series-day. Merging is a sum of counts and of exact sums, so
the order samples arrive in and how they are batched never change a rollup.

Gauges (percentiles a provider computed, kind "gauge") are stored the same way; their histograms
are never merged across series by the questions, as a p95 of p95s means nothing.

Windows are answered from the coarsest rollups that fit: whole days, then whole hours, then
minutes at the edges, so a week's percentiles read a few hundred rows per series.
"""

from __future__ import annotations

import gc
import json
from array import array
from collections import defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress, islice, repeat
from math import fsum, isfinite
from operator import add, and_, attrgetter, floordiv, ge, is_, itemgetter, lt, mul, sub
from typing import Iterable, Iterator

from edgectl.analytics.histogram import Accumulator, Histogram, packed, unpacked
from edgectl.analytics.samples import Sample, SeriesKey

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000  # milliseconds
RESOLUTIONS = (MINUTE, HOUR, DAY)
BATCH = 1_000_000  # samples sorted and written together: one block and one hour row per series-hour
_TAKE = 65_536  # samples read from the source at a time while a batch fills
_SHIFT = 1 << 32  # a series id and an hour (or day) number as one int: id * _SHIFT + number
COMPACT_AT = 16  # blocks of one series-hour at which an ingest merges them into one
_LOOK_FOR_COMPACTION = 2_000  # series-hours in a batch up to which an ingest counts their blocks
_SERIES, _AT, _VALUE = attrgetter("series"), attrgetter("at_ms"), attrgetter("value")
_KNOWN_BY_OBJECT = 100_000  # SeriesKey objects remembered by identity for a run

UPSERT_ROLLUPS = (
    "INSERT INTO metric_rollups (resolution, start, series_id, count, sum, min, max, zero_count, buckets)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (resolution, start, series_id) DO UPDATE SET"
    " count = count + excluded.count,"
    " sum = edgectl_merged_sum(sum, buckets, excluded.sum, excluded.buckets),"
    " min = min(min, excluded.min), max = max(max, excluded.max),"
    " zero_count = zero_count + excluded.zero_count,"
    " buckets = edgectl_merged_blob(sum, buckets, excluded.sum, excluded.buckets)")
INSERT_BLOCK = "INSERT INTO metric_blocks (start, series_id, count, offsets, vals) VALUES (?, ?, ?, ?, ?)"


def register_functions(conn) -> None:
    """The SQL functions the rollups' upsert calls to add two histograms' BLOBs and exact sums."""
    from edgectl.analytics.histogram import merged_blob, merged_sum

    conn.create_function("edgectl_merged_blob", 4, merged_blob, deterministic=True)
    conn.create_function("edgectl_merged_sum", 4, merged_sum, deterministic=True)


class SeriesIndex:
    """Series ids by key, created on first sight, cached for the run.

    Sources hand the same SeriesKey object for many samples, so ids are looked up by the object's
    identity first, at C speed (the objects are kept alive meanwhile, so an identity is never
    reused); a key seen for the first time is looked up by value, and created when new.
    """

    def __init__(self, state):
        self.state = state
        self.ids: dict[SeriesKey, int] = {}
        self._by_object: dict[int, int] = {}
        self._alive: list[SeriesKey] = []

    def id_of(self, key: SeriesKey) -> int:
        found = self.ids.get(key)
        if found is not None:
            return found
        conn = self.state.db.conn
        values = [key.metric, key.unit, key.node, key.provider, key.country, key.region, key.labels, key.kind]
        conn.execute("INSERT OR IGNORE INTO metric_series (metric, unit, node, provider, country, region, labels, kind)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
        row = conn.execute("SELECT id, unit FROM metric_series WHERE metric = ? AND node = ? AND provider = ?"
                           " AND country = ? AND region = ? AND labels = ? AND kind = ?",
                           [key.metric, *values[2:]]).fetchone()
        if row[1] != key.unit:  # one series, one unit: a figure in another would be read in this one's
            from edgectl.errors import UsageError

            raise UsageError(f"{key.metric} is recorded in {row[1]} for this series, not {key.unit}",
                             hint=f"convert the values to {row[1]}, or give the metric another name")
        self.ids[key] = row[0]
        return row[0]

    def ids_of(self, keys: list[SeriesKey]) -> list[int]:
        by_object = self._by_object
        found = list(map(by_object.get, map(id, keys)))
        if None not in found:
            return found
        missing = list(compress(keys, map(is_, found, repeat(None))))
        for key in dict(zip(map(id, missing), missing)).values():
            if len(by_object) < _KNOWN_BY_OBJECT:
                by_object[id(key)] = self.id_of(key)
                self._alive.append(key)
        found = list(map(by_object.get, map(id, keys)))
        if None in found:  # more distinct key objects than are remembered: by value, one by one
            for i in compress(range(len(keys)), map(is_, found, repeat(None))):
                found[i] = self.id_of(keys[i])
        return found


@dataclass
class IngestResult:
    samples: int = 0
    series: int = 0
    oldest_ms: int | None = None  # the earliest sample's time

    def to_record(self) -> dict:
        return {"samples": self.samples, "series": self.series}


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off while a batch's lists are built: they hold no cycles, and
    its passes over a million new objects would cost more than the rest of the ingest."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def ingest(state, samples: Iterable[Sample], *, batch: int = BATCH, retention=None,
           now_ms: int | None = None) -> IngestResult:
    """Store samples and fold them into the rollups, a batch per transaction.

    With a retention (edgectl.analytics.retention.Retention), what has passed it is pruned after
    the ingest when it is due (retention.prune_if_due): cheap when nothing is.
    """
    index = SeriesIndex(state)
    result = IngestResult()
    register_functions(state.db.conn)
    # the rollups' b-trees are written all over at once (a week of hours): keep their pages in
    # memory for the run rather than SQLite's default 2 MiB
    state.db.conn.execute("PRAGMA cache_size = -262144")
    source = iter(samples)
    with _collector_paused():
        while True:
            keys, ats, values = _take(source, batch)
            if not keys:
                break
            oldest = _write(state, index, keys, ats, values)
            result.samples += len(keys)
            result.oldest_ms = oldest if result.oldest_ms is None else min(oldest, result.oldest_ms)
            del keys, ats, values
    result.series = len(index.ids)
    if retention is not None and result.samples:
        from edgectl.analytics.retention import prune_if_due

        prune_if_due(state, retention, now_ms, oldest_ms=result.oldest_ms)
    return result


def _take(source: Iterator[Sample], batch: int) -> tuple[list, list, list]:
    """Up to batch samples as three lists (keys, times, values), without keeping the Sample objects."""
    keys: list = []
    ats: list = []
    values: list = []
    while len(keys) < batch:
        part = list(islice(source, min(_TAKE, batch - len(keys))))
        if not part:
            break
        if set(map(type, part)) == {Sample}:  # tuples: unzipped in one C call
            for column, taken in zip((keys, ats, values), zip(*part)):
                column += taken
        else:
            keys += map(_SERIES, part)
            ats += map(_AT, part)
            values += map(_VALUE, part)
    return keys, ats, values


def _check(ats: list, values: list) -> None:
    """Times whole milliseconds since the epoch, values finite numbers: a few C-speed passes."""
    if not set(map(type, ats)) <= {int} or min(ats) < 0:
        bad = next(a for a in ats if type(a) is not int or a < 0)
        raise ValueError(f"sample time {bad!r} is not whole milliseconds since the epoch")
    try:
        finite = isfinite(fsum(values))
    except OverflowError:
        finite = True  # finite values whose sum is past the largest float
    except (ValueError, TypeError):  # fsum refuses inf + -inf, and what is no number
        finite = False
    if not finite or not set(map(type, values)) <= {float, int}:
        bad = next(v for v in values if type(v) not in (float, int) or not isfinite(v))
        raise ValueError(f"sample value {bad!r} is not a finite number")


def _write(state, index: SeriesIndex, keys: list, ats: list, values: list) -> int:
    """One batch: a block and an hour row per series-hour, a day row per series-day, in one
    transaction. Returns the earliest sample's time."""
    from edgectl.analytics.histogram import Tally, indices_of

    _check(ats, values)
    # each sample's series-hour as one int (id * 2**32 + hour number); the samples' positions are
    # dealt into a list per series-hour by list.append mapped over them (a C-speed pass, no sort),
    # and each series-hour's samples gathered by one itemgetter from packed arrays, so that what
    # is read next lies together in memory: samples come in any order, and reading a million
    # scattered objects costs more here than the rest of the ingest
    hours = list(map(add, map(mul, index.ids_of(keys), repeat(_SHIFT)), map(floordiv, ats, repeat(HOUR))))
    positions: defaultdict[int, list[int]] = defaultdict(list)
    deque(map(list.append, map(positions.__getitem__, hours), range(len(hours))), 0)
    del hours
    columns = array("q", ats), array("d", values), array("i", indices_of(values))
    groups = sorted(positions)  # series, then time: neighbouring keys for the b-trees
    blocks, rollups, day, day_key = [], [], ([], []), None
    for key in groups:
        series_id, start = divmod(key, _SHIFT)
        start *= HOUR
        where = positions.pop(key)
        take = itemgetter(*where) if len(where) > 1 else lambda column, at=where[0]: (column[at],)
        times, part, indices = map(take, columns)
        tally = Tally.of(part, indices)
        blocks.append((start, series_id, len(part), packed("I", list(map(sub, times, repeat(start)))), packed("d", part)))
        rollups.append((HOUR, start, series_id, *tally.row()))
        this_day = (series_id, start - start % DAY)
        if this_day != day_key and day_key is not None:
            rollups.append((DAY, day_key[1], day_key[0], *Tally.summed(*day).row()))
            day = ([], [])
        day_key = this_day
        day[0].append(tally)
        day[1].append(indices)
    if day_key is not None:
        rollups.append((DAY, day_key[1], day_key[0], *Tally.summed(*day).row()))
    blocks.sort(key=_KEY)
    rollups.sort(key=_ROLLUP_KEY)
    with state.db.atomic():
        conn = state.db.conn
        conn.executemany(INSERT_BLOCK, blocks)
        conn.executemany(UPSERT_ROLLUPS, rollups)
        if len(blocks) <= _LOOK_FOR_COMPACTION:
            for start, series_id, *_ in blocks:
                if conn.execute("SELECT count(*) FROM metric_blocks WHERE start = ? AND series_id = ?",
                                [start, series_id]).fetchone()[0] >= COMPACT_AT:
                    compact(conn, start, series_id)
    return min(ats)


_KEY = itemgetter(0, 1)  # a block's (start, series_id)
_ROLLUP_KEY = itemgetter(0, 1, 2)  # a rollup's (resolution, start, series_id)


def block_samples(start: int, offsets: bytes, vals: bytes) -> tuple[list[int], list[float]]:
    """A block's sample times (ms) and values, in the order they came."""
    return list(map(add, unpacked("I", offsets), repeat(start))), unpacked("d", vals).tolist()


def compact(conn, start: int, series_id: int) -> None:
    """The blocks of one series-hour merged into one, by time (within the caller's transaction)."""
    rows = conn.execute("SELECT id, offsets, vals FROM metric_blocks WHERE start = ? AND series_id = ?",
                        [start, series_id]).fetchall()
    if len(rows) < 2:
        return
    pairs = sorted(pair for _, offsets, vals in rows
                   for pair in zip(unpacked("I", offsets), unpacked("d", vals)))
    conn.executemany("DELETE FROM metric_blocks WHERE id = ?", [(row[0],) for row in rows])
    conn.execute(INSERT_BLOCK, [start, series_id, len(pairs), packed("I", (o for o, _ in pairs)),
                                packed("d", (v for _, v in pairs))])


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


_FEW_SERIES = 500  # up to this many, a read names them (series_id IN ...); past it, filters in Python


def window_histograms(state, series_ids: Iterable[int], start_ms: int, end_ms: int) -> dict[int, Histogram]:
    """Each series' histogram over [start, end), widened to whole minutes: the days' and hours'
    rollups inside, and at the edges the minutes' rollups and the raw blocks still kept."""
    ids = list(series_ids)
    out: dict[int, Histogram] = {i: Histogram() for i in ids}
    if not ids:
        return out
    wanted = set(ids)
    named = len(ids) <= _FEW_SERIES
    among = f" AND series_id IN ({', '.join('?' for _ in ids)})" if named else ""
    conn = state.db.conn
    sums: dict[int, Accumulator] = {}
    for resolution, lo, hi in spans(start_ms, end_ms):
        for series_id, *row in conn.execute(
                "SELECT series_id, count, sum, min, max, zero_count, buckets FROM metric_rollups"
                f" WHERE resolution = ? AND start >= ? AND start < ?{among}", [resolution, lo, hi, *(ids if named else ())]):
            if named or series_id in wanted:
                sum_of = sums.get(series_id)
                if sum_of is None:
                    sum_of = sums[series_id] = Accumulator()
                sum_of.add_stored(*row)
        if resolution == MINUTE:
            for series_id, histogram in _raw_histograms(conn, ids if named else None, wanted, lo, hi).items():
                sums.setdefault(series_id, Accumulator()).add(histogram)
    for series_id, sum_of in sums.items():
        out[series_id] = sum_of.histogram()
    return out


def _raw_histograms(conn, ids: list[int] | None, wanted: set[int], lo: int, hi: int) -> dict[int, Histogram]:
    """Each series' histogram of its raw samples in [lo, hi), from the blocks of the hours it touches."""
    values: dict[int, list[float]] = {}
    among = f" AND series_id IN ({', '.join('?' for _ in ids)})" if ids else ""
    for series_id, start, offsets, vals in conn.execute(
            f"SELECT series_id, start, offsets, vals FROM metric_blocks WHERE start >= ? AND start < ?{among}",
            [lo - lo % HOUR, hi, *(ids or ())]):
        if series_id not in wanted:
            continue
        part = unpacked("d", vals)
        if lo > start or hi < start + HOUR:
            at = unpacked("I", offsets)
            part = compress(part, map(and_, map(ge, at, repeat(lo - start)), map(lt, at, repeat(hi - start))))
        values.setdefault(series_id, []).extend(part)
    return {series_id: Histogram.of(part) for series_id, part in values.items() if part}


def raw_samples(state, series_ids: Iterable[int] | None = None, start_ms: int | None = None,
                end_ms: int | None = None, *, by_time: bool = False) -> Iterator[tuple[int, int, float]]:
    """The raw samples still kept, as (series id, time ms, value), hour by hour; optionally only
    some series and [start, end). Within an hour, series by series in the order they came, or with
    by_time by time, then series."""
    wanted = set(series_ids) if series_ids is not None else None
    lo = 0 if start_ms is None else max(0, start_ms)
    hi = 1 << 62 if end_ms is None else end_ms
    hour_rows: list[tuple[int, int, float]] = []
    current = None
    for series_id, start, offsets, vals in state.db.conn.execute(
            "SELECT series_id, start, offsets, vals FROM metric_blocks WHERE start >= ? AND start < ?"
            " ORDER BY start, series_id, id", [lo - lo % HOUR, hi]):
        if wanted is not None and series_id not in wanted:
            continue
        times, values = block_samples(start, offsets, vals)
        rows = [(series_id, at, value) for at, value in zip(times, values) if lo <= at < hi]
        if not by_time:
            yield from rows
            continue
        if start != current:
            hour_rows.sort(key=_BY_TIME)
            yield from hour_rows
            hour_rows, current = [], start
        hour_rows += rows
    hour_rows.sort(key=_BY_TIME)
    yield from hour_rows


_BY_TIME = itemgetter(1, 0)


def latest_samples(state, series_ids: Iterable[int], start_ms: int, end_ms: int) -> dict[int, tuple[int, float]]:
    """Each series' latest raw sample in [start, end) as (time ms, value), reading back hour by hour
    from the end until every series has one (of two at the same moment, the larger value)."""
    wanted = set(series_ids)
    found: dict[int, tuple[int, float]] = {}
    done_before = None
    for series_id, start, offsets, vals in state.db.conn.execute(
            "SELECT series_id, start, offsets, vals FROM metric_blocks WHERE start >= ? AND start < ?"
            " ORDER BY start DESC", [start_ms - start_ms % HOUR, end_ms]):
        if start != done_before and wanted <= set(found):
            break  # every series found in a later hour than this one
        done_before = start
        if series_id not in wanted or (series_id in found and found[series_id][0] >= start + HOUR):
            continue
        times, values = block_samples(start, offsets, vals)
        inside = [(at, value) for at, value in zip(times, values) if start_ms <= at < end_ms]
        if inside:
            best = max(inside)
            if series_id not in found or best > found[series_id]:
                found[series_id] = best
    return found


def newest_sample_ms(state) -> int | None:
    """When the newest raw sample still kept was taken."""
    rows = state.db.conn.execute("SELECT start, offsets FROM metric_blocks WHERE start = "
                                 "(SELECT max(start) FROM metric_blocks)").fetchall()
    return max((start + max(unpacked("I", offsets)) for start, offsets in rows), default=None)


def minutes_held(conn, hour: int) -> set[tuple[int, int]]:
    """(series id, minute start) of each minute of an hour that holds a sample, raw or rolled up."""
    held = {(series_id, start) for start, series_id in conn.execute(
        "SELECT start, series_id FROM metric_rollups WHERE resolution = ? AND start >= ? AND start < ?",
        [MINUTE, hour, hour + HOUR])}
    for series_id, offsets in conn.execute("SELECT series_id, offsets FROM metric_blocks WHERE start = ?", [hour]):
        held.update((series_id, hour + minute * MINUTE)
                    for minute in set(map(floordiv, unpacked("I", offsets), repeat(MINUTE))))
    return held


def oldest_minute_ms(conn) -> int | None:
    """Where the history's minute by minute knowledge begins (raw blocks or minute rollups): before
    it, minutes were pruned or never were."""
    known = [m for m in conn.execute("SELECT (SELECT min(start) FROM metric_blocks),"
                                     " (SELECT min(start) FROM metric_rollups WHERE resolution = ?)",
                                     [MINUTE]).fetchone() if m is not None]
    return min(known) if known else None
