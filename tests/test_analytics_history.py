"""The metrics history: `analytics ingest` keeps good rows and names bad ones; percentiles come from the rollups."""

from __future__ import annotations

import json
import random
import time

import pytest

HOUR_MS = 3_600_000
# every column of every rollup, BLOB included (the exact sums make them equal bit for bit), by the
# series' node: ids are handed out in the order series are first seen
ROLLUPS = ("SELECT r.resolution, r.start, s.node, r.count, r.sum, r.min, r.max, r.zero_count, r.buckets"
           " FROM metric_rollups r JOIN metric_series s ON s.id = r.series_id ORDER BY 1, 2, 3")


def exact(values: list[float], q: float) -> float:
    """The nearest-rank quantile: the ceil(q n)-th smallest."""
    ordered = sorted(values)
    rank = max(1, -(-int(round(q * 1_000_000)) * len(ordered) // 1_000_000))
    return ordered[rank - 1]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def latencies(tmp_path):
    """Three days of latency samples for three nodes in two regions, with a heavy tail."""
    rng = random.Random(7)
    now = time.time()
    rows, by_node = [], {}
    for node, region, scale in (("fra-1", "eu", 30.0), ("ams-1", "eu", 45.0), ("iad-1", "us", 80.0)):
        for _ in range(6000):
            value = round(rng.lognormvariate(0, 0.6) * scale, 3)
            at = now - rng.uniform(0, 3 * 86400)
            rows.append({"time": at, "metric": "latency", "value": value, "unit": "ms", "node": node,
                         "region": region, "country": "DE" if region == "eu" else "US"})
            by_node.setdefault(node, []).append((at, value))
    return rows, by_node


def test_ingest_then_percentiles_by_node_within_the_bound(cli, tmp_path, latencies):
    rows, by_node = latencies
    run = cli("analytics", "ingest", write_jsonl(tmp_path / "s.jsonl", rows), "--format", "jsonl", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["samples"] == len(rows) and run.json()["series"] == 3
    shown = cli("analytics", "latency", "--by", "node", "--since", "7d", "--percentiles", "50,95,99", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    answer = {r["node"]: r for r in shown.json()}
    assert set(answer) == {"fra-1", "ams-1", "iad-1"}
    for node, samples in by_node.items():
        values = [v for _, v in samples]
        assert answer[node]["samples"] == len(values)
        for p in (50, 95, 99):
            truth = exact(values, p / 100)
            assert abs(answer[node][f"p{p}"] - truth) / truth <= 0.006, (node, p)
        assert answer[node]["max"] == max(values) and answer[node]["min"] == min(values)


def test_a_window_that_cuts_hours_and_days_uses_the_minutes_at_its_edges(cli, tmp_path, latencies):
    rows, by_node = latencies
    cli("analytics", "ingest", write_jsonl(tmp_path / "s.jsonl", rows), "--format", "jsonl")
    shown = cli("analytics", "latency", "--since", "37h13m", "-o", "json").json()
    cutoff = time.time() - (37 * 3600 + 13 * 60)
    for row in shown:
        values = [v for at, v in by_node[row["node"]] if at >= cutoff]
        # the window is widened to whole minutes: a minute's samples more at most
        assert abs(row["samples"] - len(values)) <= 50
        truth = exact(values, 0.95)
        assert abs(row["p95"] - truth) / truth <= 0.01


def test_by_region_merges_the_nodes_histograms(cli, tmp_path, latencies):
    rows, by_node = latencies
    cli("analytics", "ingest", write_jsonl(tmp_path / "s.jsonl", rows), "--format", "jsonl")
    shown = {r["region"]: r for r in cli("analytics", "latency", "--by", "region", "--since", "7d", "-o", "json").json()}
    eu = [v for node in ("fra-1", "ams-1") for _, v in by_node[node]]
    assert shown["eu"]["samples"] == len(eu)
    assert abs(shown["eu"]["p99"] - exact(eu, 0.99)) / exact(eu, 0.99) <= 0.006


def test_ingesting_in_pieces_gives_the_same_rollups_as_at_once(cli, tmp_path, latencies, state_path):
    import sqlite3

    rows, _ = latencies
    cli("analytics", "ingest", write_jsonl(tmp_path / "all.jsonl", rows), "--format", "jsonl")
    with sqlite3.connect(state_path) as db:
        whole = db.execute(ROLLUPS).fetchall()
    state_path.unlink()
    shuffled = rows[:]
    random.Random(3).shuffle(shuffled)
    for i in range(0, len(shuffled), 4000):
        cli("analytics", "ingest", write_jsonl(tmp_path / f"p{i}.jsonl", shuffled[i:i + 4000]), "--format", "jsonl")
    with sqlite3.connect(state_path) as db:
        pieces = db.execute(ROLLUPS).fetchall()
    assert pieces == whole and {r[0] for r in whole} == {3_600_000, 86_400_000}


def test_bad_rows_are_named_by_line_and_the_good_ones_kept(cli, tmp_path):
    text = ("time,metric,value,unit,node,country\n"
            "2026-12-01T10:00:00Z,latency,12.5,ms,fra-1,DE\n"
            "yesterday,latency,12.5,ms,fra-1,DE\n"
            "2026-12-01T10:00:01Z,latency,abc,ms,fra-1,DE\n"
            "2026-12-01T10:00:02Z,latency,nan,ms,fra-1,DE\n"
            "2026-12-01T10:00:03Z,latency,14,ms,fra-1,Germany\n"
            "1764583204,latency,13,ms,fra-1,de\n")
    path = tmp_path / "s.csv"
    path.write_text(text)
    run = cli("analytics", "ingest", str(path), "-o", "json")
    assert run.exit_code == 0, run.stderr
    record = run.json()
    assert record["samples"] == 2 and record["bad"] == 4 and record["rows"] == 6
    assert record["problems"][0].startswith("line 3: time 'yesterday'")
    assert any(p.startswith("line 4: value 'abc'") for p in record["problems"])
    assert any(p.startswith("line 6: country") for p in record["problems"])


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_values_outside_their_unit_a_catalogued_metric_in_another_unit_and_the_future_are_bad_rows(cli, tmp_path, fmt):
    now = int(time.time())
    rows = [  # the first row of each series is good, so the later ones take the fast path
        (now - 60, "latency", 120, "ms", "n1"), (now - 59, "latency", 1e308, "ms", "n1"),
        (now - 58, "latency", -5, "ms", "n1"), (now - 57, "latency", 0.2, "s", "n1"),
        (now - 56, "cpu", 40, "percent", "n1"), (now - 55, "cpu", 250, "percent", "n1"),
        (now - 54, "up", 7, "bool", "n1"), (now - 53, "latency", 130, "ms", "n1"),
        (now + 86_400 * 365, "latency", 125, "ms", "n1"), (now - 52, "queue_depth", -3, "jobs", "n1"),
    ]
    path = tmp_path / f"s.{fmt}"
    if fmt == "csv":
        path.write_text("time,metric,value,unit,node\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    else:
        write_jsonl(path, [dict(zip(("time", "metric", "value", "unit", "node"), r)) for r in rows])
    record = cli("analytics", "ingest", str(path), "--format", fmt, "-o", "json").json()
    first = 2 if fmt == "csv" else 1  # the line of the first row: a CSV file's header is line 1
    problems = {int(p.split(": ", 1)[0][5:]) - first: p.split(": ", 1)[1] for p in record["problems"]}
    assert record["samples"] == 4 and record["bad"] == 6  # 120 and 130 ms, cpu 40, the custom metric
    assert problems[1].startswith("value 1e+308 is outside 0 to 1e+15")
    assert problems[2].startswith("value -5 is outside 0 to")
    assert problems[3] == "latency is in ms, not s (convert 0.2 s to ms)"
    assert problems[5] == "value 250 is outside 0 to 100 for percent"
    assert problems[6] == "value 7 is outside 0 to 1 for bool"
    assert problems[8].endswith("is in the future")
    shown = cli("analytics", "latency", "--since", "1h", "-o", "json").json()
    assert [(r["samples"], r["max"]) for r in shown] == [(2, 130.0)]


def test_a_metric_recorded_in_one_unit_is_refused_in_another(cli, tmp_path):
    now = int(time.time())
    first = tmp_path / "a.csv"
    first.write_text(f"time,metric,value,unit,node\n{now - 10},queue_depth,3,jobs,n1\n")
    assert cli("analytics", "ingest", str(first)).exit_code == 0
    second = tmp_path / "b.csv"
    second.write_text(f"time,metric,value,unit,node\n{now - 5},queue_depth,30,percent,n1\n")
    run = cli("analytics", "ingest", str(second))
    assert run.exit_code == 2
    assert run.stderr.splitlines()[0] == "error: queue_depth is recorded in jobs for this series, not percent"


def test_a_wholly_bad_file_is_exit_2_and_stores_nothing(cli, tmp_path, state_path):
    path = tmp_path / "s.csv"
    path.write_text("when,what\n1,2\n")
    run = cli("analytics", "ingest", str(path))
    assert run.exit_code == 2 and "no sample could be read (line 1: the header lacks time, metric, value, unit" in run.stderr
    run = cli("analytics", "ingest", "-", "--format", "jsonl", input="{not json}\n[1]\n")
    assert run.exit_code == 2 and "line 1: not JSON" in run.stderr
    assert cli("analytics", "latency", "-o", "json").json() == []


def test_percentiles_are_checked(cli):
    for bad in ("0", "101", "x", ","):
        run = cli("analytics", "latency", "--percentiles", bad)
        assert run.exit_code == 2 and run.stderr.startswith("error: --percentiles")
    assert cli("analytics", "latency", "--by", "planet").exit_code == 2


def _rollups(state) -> list[tuple]:
    return state.db.execute(ROLLUPS).fetchall()


def test_any_batches_in_any_order_give_the_same_rows(tmp_path):
    """Batches of any size, in any order, of samples with zeros, negatives, repeats and a gauge."""
    from edgectl.analytics.samples import Sample, SeriesKey
    from edgectl.analytics.store import ingest, raw_samples
    from edgectl.state import open_state

    rng = random.Random(11)
    keys = [SeriesKey("latency", "ms", f"n{i}") for i in range(3)] + [
        SeriesKey("latency", "ms", "cf", provider="cf", labels='{"stat":"p95"}', kind="gauge")]
    base = 1_790_000_000_000
    samples = [Sample(rng.choice(keys), base + rng.randrange(3 * 86_400_000),
                      rng.choice([0.0, -2.0, 17.0, round(rng.lognormvariate(3, 1), 3), rng.random()]))
               for _ in range(20_000)]
    whole = open_state(tmp_path / "whole.db")
    ingest(whole, samples)
    for name, batch, order in (("small", 700, 1), ("odd", 4_999, 2), ("one", 1, None)):
        part = samples[:3000] if batch == 1 else samples[:]
        if order is not None:
            random.Random(order).shuffle(part)
        state = open_state(tmp_path / f"{name}.db")
        ingest(state, part, batch=batch)
        reference = whole if batch != 1 else open_state(tmp_path / "head.db")
        if batch == 1:
            ingest(reference, samples[:3000])
        assert _rollups(state) == _rollups(reference), name
        assert sorted(v for _, _, v in raw_samples(state)) == sorted(v for _, _, v in raw_samples(reference))
    # one block a series-hour however small the ingests: they are merged as they pile up
    blocks = state.db.execute("SELECT max(n) FROM (SELECT count(*) AS n FROM metric_blocks GROUP BY start, series_id)")
    assert blocks.fetchone()[0] < 16


def test_an_older_history_moves_into_blocks_and_blobs(state_path):
    """m015: a state written by m010's tables answers the same afterwards."""
    from sqlite_utils import Database

    from edgectl.analytics.histogram import Histogram, bucket_index
    from edgectl.analytics.store import raw_samples, window_histograms
    from edgectl.state import migrations, open_state

    db = Database(str(state_path))
    migrations.migrations.apply(db, stop_before="m015_pack_metric_history")
    db.execute("INSERT INTO metric_series (metric, unit, node) VALUES ('latency', 'ms', 'fra-1')")
    base = 1_790_000_000_000
    values = [(base + i * 7_919, round(random.Random(i).lognormvariate(3, 0.5), 2)) for i in range(2_000)]
    values.append((base + 3_000, 0.0))
    db.conn.executemany("INSERT INTO metric_samples (series_id, at, value) VALUES (1, ?, ?)", values)
    rows, cells = {}, {}
    for at, value in values:
        for resolution in (60_000, 3_600_000, 86_400_000):
            key = (resolution, at - at % resolution)
            row = rows.setdefault(key, [0, 0.0, value, value, 0])
            row[0] += 1
            row[1] += value
            row[2], row[3] = min(row[2], value), max(row[3], value)
            if value > 0:
                cells[(*key, bucket_index(value))] = cells.get((*key, bucket_index(value)), 0) + 1
            else:
                row[4] += 1
    db.conn.executemany("INSERT INTO metric_rollups (resolution, start, series_id, count, sum, min, max, zero_count)"
                        " VALUES (?, ?, 1, ?, ?, ?, ?, ?)", [(*k, *r) for k, r in rows.items()])
    db.conn.executemany("INSERT INTO metric_buckets (resolution, start, series_id, bucket, count) VALUES (?, ?, 1, ?, ?)",
                        [(*k, c) for k, c in cells.items()])
    db.conn.commit()
    db.close()

    state = open_state(state_path)
    assert {"metric_samples", "metric_buckets"}.isdisjoint(state.db.table_names())
    assert sorted((at, v) for _, at, v in raw_samples(state)) == sorted(values)
    assert not state.db.execute("SELECT count(*) FROM metric_rollups WHERE resolution = 60000").fetchone()[0]
    for start, end in ((base, base + 86_400_000), (base + 3_000_000, base + 9_000_000), (base - 1, base + 2 * 86_400_000)):
        (got,) = window_histograms(state, [1], start, end).values()
        lo, hi = start - start % 60_000, end + (-end) % 60_000
        want = Histogram.of([v for at, v in values if lo <= at < hi])
        assert (got.count, got.zero_count, got.min, got.max, got.buckets) == (
            want.count, want.zero_count, want.min, want.max, want.buckets)
        assert got.quantiles([0.5, 0.99]) == want.quantiles([0.5, 0.99])
        assert abs(got.sum - want.sum) <= 1e-9 * want.sum


def test_the_readers_check_each_series_once_and_still_name_every_bad_row():
    from edgectl.analytics.samples import ReadReport, read_csv, read_jsonl

    text = ("time,metric,value,unit,node,country,extra\n"
            "1764583200,latency,12.5,ms,fra-1,DE,\n"
            "2026-12-01T10:00:00Z,latency,13,ms,fra-1,DE,\n"
            "2026-12-01T10:00:01Z,latency,inf,ms,fra-1,DE,\n"  # a known series, a bad value
            "soon,latency,14,ms,fra-1,DE,\n"  # a known series, a bad time
            "4102444800000,latency,14,ms,fra-1,DE,\n"  # milliseconds given as seconds: out of range
            "1764583201,latency,15,ms,fra-1,de,\n"  # spelled otherwise, the same series
            "1764583202,latency,16,ms,fra-1,DE,x\n"  # a column the header names but no sample has
            "1764583203,latency,17,ms, fra-1 ,DE,\n")
    report = ReadReport()
    samples = list(read_csv(text.splitlines(keepends=True), report))
    assert [s.value for s in samples] == [12.5, 13.0, 15.0, 17.0]
    assert len({id(s.series) for s in samples}) == 1 and samples[0].series.country == "DE"
    assert samples[1].at_ms == 1796119200000
    assert report.problems == ["line 4: value 'inf' is not a finite number",
                               "line 5: time 'soon' is neither ISO 8601 nor epoch seconds",
                               "line 6: time '4102444800000' is out of range",
                               "line 8: unknown column extra"]
    lines = ['{"time": 1764583200, "metric": "latency", "value": 1, "unit": "ms", "labels": {"source": "probe"}}',
             '{"time": 1764583201, "metric": "latency", "value": 2, "unit": "ms", "labels": {"source": "probe"}}',
             '{"time": 1764583202, "metric": "latency", "value": true, "unit": "ms", "labels": {"source": "probe"}}',
             '{"time": 1764583203, "metric": "latency", "value": 3, "unit": "ms", "labels": "source=probe"}',
             '{"time": 1764583204, "metric": "latency", "value": 4, "unit": "ms", "labels": "source=probe"}',
             '{"time": 1764583205, "metric": "latency", "value": 5, "unit": "ms", "labels": "source=probe", "x": 1}']
    report = ReadReport()
    samples = list(read_jsonl(lines, report))
    assert [s.value for s in samples] == [1.0, 2.0, 3.0, 4.0] and len({id(s.series) for s in samples}) == 1
    assert report.problems == ["line 3: value True is not a finite number", "line 6: unknown column x"]
