"""Retention of the metrics history: each resolution dropped past its age, windows inside it unchanged, `state prune`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest

from edgectl.analytics.queries import PercentileRequest, percentiles_by
from edgectl.analytics.retention import PRUNE_EVERY_MS, Retention, prune, prune_if_due, pruned_at
from edgectl.analytics.samples import Sample, SeriesKey
from edgectl.analytics.store import DAY, HOUR, MINUTE, ingest, raw_samples
from edgectl.state import open_state

NOW = 20_000 * DAY  # a whole day, so every resolution's cutoff falls on a bucket boundary
SMALL = Retention(raw_ms=2 * HOUR, minute_ms=6 * HOUR, hour_ms=2 * DAY, day_ms=5 * DAY)
KEY = SeriesKey("latency", "ms", "fra-1", region="eu")


def rollup_starts(state, resolution: int) -> set[int]:
    return {r[0] for r in state.db.conn.execute("SELECT start FROM metric_rollups WHERE resolution = ?", [resolution])}


def test_each_resolution_goes_once_its_bucket_ended_past_its_retention(state_path):
    state = open_state(state_path)
    ages = {  # age in ms -> what it tests
        2 * HOUR + 1: "raw: its hour ended at the raw cutoff, so it goes (minute kept)",
        2 * HOUR: "raw: its hour ends an hour after the cutoff: kept",
        6 * HOUR + 30_000: "minute: its minute ended at the minute cutoff: not rolled up",
        6 * HOUR - 30_000: "minute: ends 30 s after the cutoff: rolled up",
        2 * DAY + 30 * MINUTE: "hour: ended at the hour cutoff: goes",
        2 * DAY - 30 * MINUTE: "hour: kept",
        5 * DAY + 12 * HOUR: "day: ended at the day cutoff: goes",
        5 * DAY - 12 * HOUR: "day: kept",
    }
    ingest(state, [Sample(KEY, NOW - age, 10.0 + n) for n, age in enumerate(ages)])
    report = prune(state, SMALL, NOW)

    kept_raw = {at for _, at, _ in raw_samples(state)}
    assert kept_raw == {NOW - 2 * HOUR}
    minutes = rollup_starts(state, MINUTE)
    assert NOW - 2 * HOUR - MINUTE in minutes  # the raw sample that went, rolled up into its minute
    assert NOW - 6 * HOUR in minutes and NOW - 6 * HOUR - MINUTE not in minutes
    assert not {m for m in minutes if m < NOW - 6 * HOUR}
    hours = rollup_starts(state, HOUR)
    assert NOW - 2 * DAY - HOUR not in hours and NOW - 2 * DAY in hours and min(hours) == NOW - 2 * DAY
    days = rollup_starts(state, DAY)
    assert NOW - 6 * DAY not in days and NOW - 5 * DAY in days and min(days) == NOW - 5 * DAY

    record = {r["resolution"]: r for r in report.to_record()["resolutions"]}
    assert record["raw"]["removed"] == 7 and record["raw"]["blocks"] == 7
    assert record["raw"]["rolled_up"] == 2  # the minutes within 6 hours of the samples that went
    assert record["minute"]["removed"] == 0  # no minute past 6 hours was ever written
    assert record["hour"]["removed"] == 3 and record["day"]["removed"] == 1  # hours of 2d+30m, 4.5d and 5.5d
    assert record["raw"]["older_than"] == "2024-10-03T22:00:00.000Z" and record["raw"]["retention"] == "2h"
    again = prune(state, SMALL, NOW)
    assert [p.removed for p in again.pruned] == [0, 0, 0, 0] and again.complete
    assert pruned_at(state) == NOW


def test_minute_rows_rolled_up_from_expired_blocks_go_at_their_own_retention(state_path):
    state = open_state(state_path)
    ingest(state, [Sample(KEY, NOW - 3 * HOUR + 5 * MINUTE, 4.0)])
    prune(state, SMALL, NOW)
    assert rollup_starts(state, MINUTE) == {NOW - 3 * HOUR + 5 * MINUTE}
    later = NOW + 3 * HOUR + 6 * MINUTE  # the minute ended 6 h before, exactly
    report = prune(state, SMALL, later)
    assert rollup_starts(state, MINUTE) == set() and report.pruned[1].removed == 1


@pytest.fixture
def week(state_path):
    """Four days of two nodes' latencies, a few a minute, with zeros and a heavy tail."""
    state = open_state(state_path)
    rng = random.Random(5)
    samples = []
    for node, scale in (("fra-1", 30.0), ("iad-1", 80.0)):
        key = SeriesKey("latency", "ms", node, region="eu" if node == "fra-1" else "us")
        for _ in range(12_000):
            value = 0.0 if rng.random() < 0.01 else round(rng.lognormvariate(0, 0.8) * scale, 3)
            samples.append(Sample(key, NOW - rng.randrange(4 * DAY), value))
    ingest(state, samples, batch=5_000)
    return state


def answers(state, start: int, end: int, by: str = "node") -> dict:
    rows = percentiles_by(state, PercentileRequest("latency", by, start, end, (50.0, 95.0, 99.0, 99.9)))
    return {r[by]: r for r in rows}


def test_percentiles_of_windows_within_retention_are_the_same_after_a_prune(week):
    retention = Retention(raw_ms=1 * DAY, minute_ms=2 * DAY, hour_ms=3 * DAY, day_ms=4 * DAY)
    windows = [(NOW - 36 * HOUR - 13 * MINUTE, NOW), (NOW - 40 * HOUR - 7 * MINUTE, NOW - 30 * HOUR + 29 * MINUTE),
               (NOW - 47 * HOUR + 1, NOW - 25 * HOUR - 1), (NOW - 23 * HOUR - 59 * MINUTE, NOW - 5 * MINUTE),
               (NOW - 2 * DAY + MINUTE, NOW + HOUR)]
    before = [answers(week, *w) for w in windows] + [answers(week, *windows[0], by="region")]
    report = prune(week, retention, NOW)
    assert report.pruned[0].removed > 0 and report.pruned[0].rolled_up > 0 and report.pruned[2].removed > 0
    after = [answers(week, *w) for w in windows] + [answers(week, *windows[0], by="region")]
    assert after == before
    assert all(row["samples"] > 1000 for answer in before for row in answer.values())


def test_two_prunes_at_once_both_succeed_and_remove_everything_once(week, state_path):
    # the fixture's samples are two years old or more: past every default retention but the days'
    total = sum(1 for _ in raw_samples(week))
    week.close()
    env = {**os.environ, "EDGECTL_STATE": str(state_path)}
    runs = [subprocess.Popen([sys.executable, "-m", "edgectl", "state", "prune", "-o", "json"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outs]
    records = [json.loads(out) for out, _ in outs]
    removed = [{r["resolution"]: r["removed"] for r in record["resolutions"]} for record in records]
    assert removed[0]["raw"] + removed[1]["raw"] == total
    state = open_state(state_path)
    assert next(raw_samples(state), None) is None
    assert state.db.execute("SELECT count(*) FROM metric_rollups WHERE resolution < ?", [DAY]).fetchone()[0] == 0
    assert state.db.execute("SELECT count(*) FROM metric_rollups WHERE resolution = ?", [DAY]).fetchone()[0] == 8


def test_state_prune_reports_per_resolution_and_a_dry_run_changes_nothing(cli, tmp_path):
    now_ms = int(time.time() * 1000)
    lines = [json.dumps({"time": (now_ms - age) / 1000, "metric": "latency", "value": 12.5, "unit": "ms",
                         "node": "fra-1"}) for age in (DAY, 8 * DAY + HOUR, 9 * DAY, 31 * DAY, 500 * DAY)]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    config = tmp_path / "keep.toml"
    config.write_text('[analytics.retention]\nraw = "3000d"\nminute = "3000d"\nhour = "3000d"\nday = "3000d"\n')
    assert cli("--config", config, "analytics", "ingest", path, "--format", "jsonl").exit_code == 0

    dry = cli("state", "prune", "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    record = dry.json()
    assert set(record) == {"dry_run", "complete", "now", "resolutions"} and record["dry_run"] is True
    assert [r["resolution"] for r in record["resolutions"]] == ["raw", "minute", "hour", "day"]
    assert set(record["resolutions"][0]) == {"resolution", "retention", "older_than", "removed", "blocks", "rolled_up"}
    assert set(record["resolutions"][1]) == {"resolution", "retention", "older_than", "removed"}
    assert [r["retention"] for r in record["resolutions"]] == ["7d", "30d", "400d", "1825d"]
    assert [r["removed"] for r in record["resolutions"]] == [4, 0, 1, 0]
    again = cli("state", "prune", "--dry-run", "-o", "json").json()["resolutions"]
    assert [r["removed"] for r in again] == [4, 0, 1, 0]

    done = cli("state", "prune", "-o", "json")
    assert done.exit_code == 0 and done.json()["dry_run"] is False
    real = {r["resolution"]: r for r in done.json()["resolutions"]}
    assert real["raw"]["removed"] == 4 and real["raw"]["rolled_up"] == 2  # the 8- and 9-day-old minutes
    assert real["hour"]["removed"] == 1 and real["minute"]["removed"] == 0
    shown = cli("analytics", "latency", "--since", "40d", "-o", "json").json()
    assert shown[0]["samples"] == 4  # the 31-day-old one from its hour row: its minute and raw sample went
    table = cli("state", "prune")
    assert table.exit_code == 0 and "removed 0 sample(s) and rollup row(s)" in table.stderr


@pytest.mark.parametrize("setting, message", [
    ('raw = "soon"', "analytics.retention.raw: 'soon' is not a duration"),
    ('minute = "500d"', "minutes must not be kept longer than hours"),
    ("hour = 0", "every retention must be more than zero"),
    ('day = "20y"', "analytics.retention.day"),
])
def test_a_bad_retention_is_exit_2(cli, tmp_path, setting, message):
    config = tmp_path / "edgectl.toml"
    config.write_text(f"[analytics.retention]\n{setting}\n")
    for command in (["state", "prune"], ["analytics", "ingest", "-"]):
        run = cli("--config", config, *command, input="")
        assert run.exit_code == 2, (command, run.stderr)
        assert run.stderr.startswith("error: ") and message in run.stderr and "Traceback" not in run.stderr


def test_an_ingest_prunes_only_when_due(state_path):
    state = open_state(state_path)
    ingest(state, [Sample(KEY, NOW - 3 * HOUR, 1.0)])
    ingest(state, [Sample(KEY, NOW, 2.0)], retention=SMALL, now_ms=NOW)  # the first look: the old hour goes
    assert {at for _, at, _ in raw_samples(state)} == {NOW} and pruned_at(state) == NOW
    ingest(state, [Sample(KEY, NOW - 3 * HOUR, 3.0)])  # without a retention: kept for now
    ingest(state, [Sample(KEY, NOW + MINUTE, 4.0)], retention=SMALL, now_ms=NOW + MINUTE)
    assert len(list(raw_samples(state))) == 3  # looked at a minute ago: not due yet
    ingest(state, [Sample(KEY, NOW - 5 * HOUR, 5.0)], retention=SMALL, now_ms=NOW + 2 * MINUTE)
    assert {at for _, at, _ in raw_samples(state)} == {NOW, NOW + MINUTE}  # brought old samples: pruned now
    assert prune_if_due(state, SMALL, NOW + 3 * MINUTE) is None  # nothing past retention
    assert prune_if_due(state, SMALL, NOW + 3 * MINUTE + PRUNE_EVERY_MS) is None
    assert pruned_at(state) == NOW + 3 * MINUTE + PRUNE_EVERY_MS  # remembered, though nothing went


def test_the_readme_prune_line_runs_quietly(cli):
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.endswith("state prune") and line[:1].isdigit())
    words = line.split()[5:]
    assert words[0] == "edgectl"
    run = cli(*words[1:])
    assert run.exit_code == 0 and run.stdout == "" and run.stderr == ""
