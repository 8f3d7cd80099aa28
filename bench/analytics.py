"""The metrics history: ingest speed, and percentiles over a week of 200 nodes against DuckDB's exact answer.

Figures, each beside a reference measured in the same run:
- ingest of 1,000,000 samples (raw blocks, hour and day rollups) against the bare executemany
  of the same rows, built beforehand, into a table with no rollups and no index (the floor: what
  a row per sample costs SQLite alone), best of three runs taking turns; goal: within 3 s;
- `edgectl analytics ingest` of the same samples as a CSV file, as a whole process;
- with 10,000,000 samples over 7 days and 200 nodes, `analytics latency --by node --since 7d`
  with p50/p95/p99 from the rollups (in-process, median of 5) against DuckDB computing the
  exact same percentiles (quantile_disc, the nearest rank) over the same raw data loaded into it;
  goals: within 0.5 s, and not slower than DuckDB (ratio <= 1);
- the largest relative error of edgectl's percentiles against DuckDB's exact ones (goal <= 1%);
- the state file's size per million samples.

DuckDB is a bench-only dependency: pip install duckdb. `--samples N` scales the big run down.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WEEK_MS = 7 * 86_400_000


def samples(count: int, nodes: int, end_ms: int, seed: int):
    """Lognormal latencies, each node its own scale, spread evenly over the week before end_ms."""
    from edgectl.analytics.samples import Sample, SeriesKey

    rng = random.Random(seed)
    keys = [SeriesKey("latency", "ms", f"node-{i:03d}", region=f"r{i % 8}") for i in range(nodes)]
    scales = [rng.uniform(10, 120) for _ in range(nodes)]
    lognorm = rng.lognormvariate
    for n in range(count):
        i = n % nodes
        yield Sample(keys[i], end_ms - rng.randrange(WEEK_MS), round(lognorm(0, 0.7) * scales[i], 3))


def bench_ingest(work: Path, count: int, rounds: int) -> None:
    import sqlite3

    from edgectl.analytics.store import ingest
    from edgectl.state import open_state

    end = int(time.time() * 1000)
    data = list(samples(count, 200, end, 1))
    ids = {key: n for n, key in enumerate(dict.fromkeys(s.series for s in data))}
    rows = [(ids[s.series], s.at_ms, s.value) for s in data]  # built before the clock starts: SQLite alone
    ours, floors = [], []
    for n in range(rounds):  # taking turns, so that a busy spell of the machine falls on both
        state = open_state(work / f"ingest{n}.db")
        started = time.perf_counter()
        ingest(state, iter(data))
        ours.append(time.perf_counter() - started)
        state.close()
        bare = sqlite3.connect(work / f"bare{n}.db")
        bare.execute("PRAGMA journal_mode = WAL")
        bare.execute("CREATE TABLE s (series_id INTEGER, at INTEGER, value REAL)")
        started = time.perf_counter()
        with bare:
            bare.executemany("INSERT INTO s VALUES (?, ?, ?)", rows)
        floors.append(time.perf_counter() - started)
        bare.close()
    took, floor = min(ours), min(floors)
    print(f"ingest {count:,} samples      {took:6.2f} s   ({count / took:,.0f}/s; best of {rounds}, "
          f"median {statistics.median(ours):.2f} s; goal: within 3 s)")
    print(f"bare executemany               {floor:6.2f} s   ratio ingest / bare = {took / floor:.2f}")
    bench_cli(work, data)


def bench_cli(work: Path, data: list) -> None:
    """`edgectl analytics ingest FILE.csv` as a whole process, beside the in-process ingest of the same samples."""
    import subprocess

    path = work / "samples.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", "metric", "value", "unit", "node", "region"])
        writer.writerows((f"{s.at_ms / 1000:.3f}", s.series.metric, s.value, s.series.unit, s.series.node,
                          s.series.region) for s in data)
    env = {**os.environ, "EDGECTL_STATE": str(work / "cli.db")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgectl", "--quiet", "analytics", "ingest", str(path)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    took = time.perf_counter() - started
    print(f"edgectl analytics ingest FILE  {took:6.2f} s   (a {len(data):,}-row CSV, {path.stat().st_size / 2**20:.0f} MiB,"
          f" the whole process: start, read, parse, ingest)")


def bench_query(work: Path, count: int) -> None:
    import duckdb

    from edgectl.analytics.queries import PercentileRequest, percentiles_by
    from edgectl.analytics.store import ingest, raw_samples
    from edgectl.state import open_state

    end = int(time.time() * 1000)
    path = work / "week.db"
    state = open_state(path)
    started = time.perf_counter()
    ingest(state, samples(count, 200, end, 2))
    print(f"built {count:,} samples over 7 days, 200 nodes, in {time.perf_counter() - started:.1f} s")
    state.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = sum(p.stat().st_size for p in work.glob("week.db*"))
    print(f"state file: {size / 2**20:,.1f} MiB, {size / 2**20 / (count / 1e6):,.1f} MiB per million samples")

    request = PercentileRequest("latency", "node", end - WEEK_MS, end + 60_000, (50.0, 95.0, 99.0))
    ours_times, ours = [], None
    for _ in range(5):
        started = time.perf_counter()
        ours = percentiles_by(state, request)
        ours_times.append(time.perf_counter() - started)

    # the same raw samples, handed to DuckDB as a CSV file it reads itself
    raw = work / "raw.csv"
    nodes = dict(state.db.conn.execute("SELECT id, node FROM metric_series"))
    with open(raw, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["node", "value"])
        writer.writerows((nodes[series], value) for series, _, value in raw_samples(state))
    duck = duckdb.connect()
    duck.execute(f"CREATE TABLE raw AS SELECT * FROM read_csv('{raw}', header = true)")
    query = ("SELECT node, quantile_disc(value, 0.5), quantile_disc(value, 0.95), quantile_disc(value, 0.99)"
             " FROM raw GROUP BY node")
    duck_times, exact = [], {}
    for _ in range(5):
        started = time.perf_counter()
        exact = {n: (a, b, c) for n, a, b, c in duck.execute(query).fetchall()}
        duck_times.append(time.perf_counter() - started)
    worst = 0.0
    for row in ours:
        for field, truth in zip(("p50", "p95", "p99"), exact[row["node"]]):
            worst = max(worst, abs(row[field] - truth) / truth)
    t_ours, t_duck = statistics.median(ours_times), statistics.median(duck_times)
    print(f"analytics latency --by node --since 7d   {t_ours * 1000:7.1f} ms  (goal: within 500 ms)")
    print(f"DuckDB exact quantile_disc, same data    {t_duck * 1000:7.1f} ms  ratio edgectl / DuckDB = "
          f"{t_ours / t_duck:.2f} (goal <= 1)")
    print(f"largest relative error against DuckDB: {worst * 100:.3f}% (goal <= 1%)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000_000, help="samples in the week (default 10,000,000)")
    parser.add_argument("--ingest", type=int, default=1_000_000, help="samples in the ingest run (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs, each beside a bare one (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgectl-bench-") as tmp:
        work = Path(tmp)
        os.environ["EDGECTL_STATE"] = str(work / "unused.db")
        bench_ingest(work, args.ingest, args.rounds)
        bench_query(work, args.samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
