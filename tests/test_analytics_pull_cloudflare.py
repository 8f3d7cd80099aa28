"""`analytics pull` of a Cloudflare zone: the real SDK's raw POST /graphql over loopback HTTP to the GraphQL fake.

Expected figures are worked out here from the fake's traffic cells, never read back from edgectl.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from edgectl.analytics.pull import pull
from edgectl.config import Config
from edgectl.state import open_state
from tests.fakes.cloudflare_api import DEFAULT_TOKEN
from tests.fakes.cloudflare_graphql import CACHED, FakeCloudflareGraphQL, weighted_quantile
from tests.history import raw_samples_table

MINUTE, HOUR = 60_000, 3_600_000
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
OTHER_ZONE = "9a7806061c88ada191ed06f989cc3dac"
ZONES = {"example.com": ZONE, "example.net": OTHER_ZONE}
NOW = datetime(2026, 9, 10, 12, 0, 20, tzinfo=timezone.utc)
NOW_MS = int(NOW.timestamp() * 1000)


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)


def make_config(root, fake, zone: str = ZONE, name: str = "cf") -> Config:
    path = root / "edgectl.toml"
    path.write_text(f'[providers.{name}]\nkind = "cloudflare"\nzone_id = "{zone}"\napi_token = "env:CF_TOKEN"\n'
                    f'endpoint_url = "{fake.url}"\nhosts = ["www.example.com"]\n')
    return Config(path, "option")


@pytest.fixture
def fake():
    """The fake on a fixed clock, which the pulls below are given too."""
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES) as server:
        yield server


@pytest.fixture
def state(state_path):
    opened = open_state(state_path)
    yield opened
    opened.close()


@pytest.fixture
def config(isolated, fake, token) -> Config:
    return make_config(isolated, fake)


def pulled(state, config, since_s: float, **options):
    report = pull(state, config, ["cf"], since_s, now_ms=NOW_MS, **options)
    [row] = report.providers
    return row


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def cells(fake, start_ms: int, end_ms: int, zone: str = ZONE):
    return fake.cells(zone, at(start_ms), at(end_ms))


def sums(state, metric: str, kind: str = "histogram") -> dict[tuple, float]:
    """(country, labels) -> the sum of the metric's pulled samples."""
    out: dict[tuple, float] = defaultdict(float)
    raw_samples_table(state)
    for country, labels, value in state.db.conn.execute(
            "SELECT s.country, s.labels, m.value FROM metric_samples m JOIN metric_series s ON s.id = m.series_id"
            " WHERE s.metric = ? AND s.kind = ? AND s.provider = 'cf'", [metric, kind]):
        out[(country, labels)] += value
    return dict(out)


def total(state, metric: str) -> float:
    return sum(sums(state, metric).values())


def expected(blocks) -> dict:
    """What the history should hold for these traffic cells, worked out from the cells themselves."""
    country = defaultdict(Counter)
    for cell in blocks:
        country[cell.country]["requests"] += cell.requests
        country[cell.country]["bytes"] += cell.bytes
    return {"requests": sum(c.requests for c in blocks), "bytes": sum(c.bytes for c in blocks),
            "cache.hits": sum(c.requests for c in blocks if c.cache_status in CACHED),
            "errors.4xx": sum(c.requests for c in blocks if 400 <= c.status < 500),
            "errors.5xx": sum(c.requests for c in blocks if 500 <= c.status < 600),
            "country": {name: dict(figures) for name, figures in country.items()}}


def dataset_calls(fake, dataset: str):
    return [d for call in fake.graphql_calls for d in call.datasets if d.dataset == dataset]


# -- what a pull stores ------------------------------------------------------------------------------

def test_a_pull_fills_requests_hits_bytes_errors_and_countries_exactly_as_the_zone_served_them(fake, config, state):
    row = pulled(state, config, 3 * 3600)
    assert row.ok, row.error
    assert (row.start_ms, row.end_ms) == (NOW_MS - NOW_MS % MINUTE - 3 * HOUR, NOW_MS - NOW_MS % MINUTE - 5 * MINUTE)
    want = expected(cells(fake, row.start_ms, row.end_ms))
    for metric in ("requests", "bytes", "cache.hits", "errors.4xx", "errors.5xx"):
        assert total(state, metric) == want[metric], metric
    assert {country: value for (country, _), value in sums(state, "requests").items()} == {
        name: figures["requests"] for name, figures in want["country"].items()}
    assert {country: value for (country, _), value in sums(state, "bytes").items()} == {
        name: figures["bytes"] for name, figures in want["country"].items()}
    assert set(sums(state, "cache.hits")) == {("", '{"source":"pull"}')}
    # one request each: the settings node, the minutes, the edge latency (the window is within one maxDuration)
    assert row.requests == 3 and row.notes == []
    assert all(call.status == 200 and call.errors == () for call in fake.graphql_calls)


def test_each_minute_is_stored_at_its_own_time(fake, config, state):
    row = pulled(state, config, 1800)
    raw_samples_table(state)
    minutes = dict(state.db.conn.execute(
        "SELECT m.at, sum(m.value) FROM metric_samples m JOIN metric_series s ON s.id = m.series_id"
        " WHERE s.metric = 'requests' GROUP BY m.at"))
    assert minutes == {start: float(sum(c.requests for c in cells(fake, start, start + MINUTE)))
                       for start in range(row.start_ms, row.end_ms, MINUTE)}


def test_edge_time_to_first_byte_quantiles_are_gauges_for_the_zone_and_by_country_cache_status_and_colo(
        fake, config, state):
    row = pulled(state, config, 1800)
    first = row.start_ms
    minute_cells = cells(fake, first, first + MINUTE)
    raw_samples_table(state)
    gauges = {(country, labels): value for country, labels, value in state.db.conn.execute(
        "SELECT s.country, s.labels, m.value FROM metric_samples m JOIN metric_series s ON s.id = m.series_id"
        " WHERE s.metric = 'latency' AND s.kind = 'gauge' AND m.at = ?", [first])}
    for stat, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert gauges[("", json.dumps({"source": "pull", "stat": stat}, separators=(",", ":")))] == \
            weighted_quantile(minute_cells, q)
    for country in {c.country for c in minute_cells}:
        assert gauges[(country, f'{{"source":"pull","stat":"p95"}}')] == \
            weighted_quantile([c for c in minute_cells if c.country == country], 0.95)
    for status in {c.cache_status for c in minute_cells}:
        assert gauges[("", f'{{"cache":"{status}","source":"pull","stat":"p99"}}')] == \
            weighted_quantile([c for c in minute_cells if c.cache_status == status], 0.99)
    for colo in {c.colo for c in minute_cells}:
        assert gauges[("", f'{{"colo":"{colo}","source":"pull","stat":"p50"}}')] == \
            weighted_quantile([c for c in minute_cells if c.colo == colo], 0.5)
    slices = 1 + len({c.country for c in minute_cells}) + len({c.cache_status for c in minute_cells}) + len(
        {c.colo for c in minute_cells})
    assert len(gauges) == 3 * slices


def test_pulling_the_same_window_again_adds_nothing(fake, config, state):
    first = pulled(state, config, 2 * 3600)
    rollups = state.db.conn.execute("SELECT * FROM metric_rollups ORDER BY 1, 2, 3").fetchall()
    again = pulled(state, config, 2 * 3600)
    assert first.stored > 0 and (again.stored, again.present) == (0, first.stored)
    assert state.db.conn.execute("SELECT * FROM metric_rollups ORDER BY 1, 2, 3").fetchall() == rollups


# -- the limits the settings node states -----------------------------------------------------------

def test_a_window_wider_than_max_duration_is_split_into_queries_that_fit(fake, config, state):
    fake.set_limits(ZONE, "httpRequests1mGroups", max_duration=3600)
    fake.set_limits(ZONE, "httpRequestsAdaptiveGroups", max_duration=5400)
    row = pulled(state, config, 4 * 3600)
    assert row.ok, row.error
    minutes = dataset_calls(fake, "httpRequests1mGroups")
    assert len(minutes) == 4 and all(d.end - d.start <= timedelta(hours=1) for d in minutes)
    assert [(d.start, d.end) for d in minutes] == [
        (at(row.start_ms + n * HOUR), at(min(row.start_ms + (n + 1) * HOUR, row.end_ms))) for n in range(4)]
    adaptive = dataset_calls(fake, "httpRequestsAdaptiveGroups")
    assert all(d.end - d.start <= timedelta(minutes=90) for d in adaptive) and len(adaptive) == 3 * 4
    assert total(state, "requests") == expected(cells(fake, row.start_ms, row.end_ms))["requests"]
    assert all(call.errors == () for call in fake.graphql_calls)


def test_not_older_than_clamps_the_window_and_older_whole_hours_come_from_the_hourly_rollups(fake, config, state):
    fake.set_limits(ZONE, "httpRequests1mGroups", not_older_than=2 * 3600)
    fake.set_limits(ZONE, "httpRequests1hGroups", not_older_than=8 * 3600)
    fake.set_limits(ZONE, "httpRequestsAdaptiveGroups", not_older_than=3600)
    row = pulled(state, config, 24 * 3600)
    assert row.ok, row.error
    # the hours reach 8h back, less the margin, from the first whole hour: 04:00 from 12:00:20
    assert at(row.start_ms) == datetime(2026, 9, 10, 5, 0, tzinfo=timezone.utc)
    [hours] = dataset_calls(fake, "httpRequests1hGroups")
    [minutes] = dataset_calls(fake, "httpRequests1mGroups")
    # minutes reach 2h back less the margin (10:10:20 -> 10:11); hours up to the first whole hour after that
    assert (hours.start, hours.end) == (at(row.start_ms), datetime(2026, 9, 10, 11, 0, tzinfo=timezone.utc))
    assert (minutes.start, minutes.end) == (hours.end, at(row.end_ms))
    adaptive = dataset_calls(fake, "httpRequestsAdaptiveGroups")
    assert adaptive[0].start == datetime(2026, 9, 10, 11, 11, tzinfo=timezone.utc)
    assert total(state, "requests") == expected(cells(fake, row.start_ms, row.end_ms))["requests"]
    hourly = state.db.conn.execute("SELECT count(*) FROM metric_spans").fetchone()[0]
    assert hourly > 0 and all(call.errors == () for call in fake.graphql_calls)


def test_a_full_page_is_asked_again_in_halves(fake, config, state):
    fake.set_limits(ZONE, "httpRequestsAdaptiveGroups", max_page_size=60)
    row = pulled(state, config, 1800)
    assert row.ok and row.notes == []
    adaptive = dataset_calls(fake, "httpRequestsAdaptiveGroups")
    assert max(d.rows for d in adaptive) == 60 and min(d.end - d.start for d in adaptive) < timedelta(minutes=25)
    minute_count = (row.end_ms - row.start_ms) // MINUTE
    raw_samples_table(state)
    overall = state.db.conn.execute(
        "SELECT count(*) FROM metric_samples m JOIN metric_series s ON s.id = m.series_id WHERE s.kind = 'gauge'"
        " AND s.country = '' AND s.labels = '{\"source\":\"pull\",\"stat\":\"p95\"}'").fetchone()[0]
    assert overall == minute_count


def test_a_plan_without_quantiles_pulls_the_counts_and_says_the_latency_is_not_there(fake, config, state):
    fake.set_quantiles(ZONE, False)
    row = pulled(state, config, 1800)
    assert row.ok and row.notes == ["edge time-to-first-byte quantiles are not available on this zone's plan: "
                                    "latency not pulled"]
    assert sums(state, "latency", kind="gauge") == {} and total(state, "requests") > 0
    assert dataset_calls(fake, "httpRequestsAdaptiveGroups") == []


# -- failures ------------------------------------------------------------------------------------------

def test_errors_in_a_200_answer_fail_the_provider_with_cloudflares_message(isolated, fake, token, state):
    config = make_config(isolated, fake, zone="f" * 32)
    row = pulled(state, config, 3600)
    assert row.status == "failed"
    assert row.error == f"cloudflare: graphql settings: zones [{'f' * 32}] are not authorized"
    assert fake.graphql_calls[-1].status == 200


def test_a_dataset_refusal_in_a_200_fails_with_its_message(fake, config, state):
    fake.set_limits(ZONE, "httpRequests1mGroups", max_number_of_fields=4)
    row = pulled(state, config, 3600)
    assert row.error == "cloudflare: graphql httpRequests1mGroups: number of fields can't be more than 4"


def test_the_budget_spent_is_waited_out_and_the_pull_goes_on(isolated, token, state):
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES, graphql_limit=2, graphql_window=1.5) as fake:
        row = pulled(state, make_config(isolated, fake), 1800)
        assert row.ok, row.error
        assert fake.stats()["graphql_budget_refusals"] >= 1 and row.retries == fake.stats()["graphql_budget_refusals"]
        assert row.requests == 3 + row.retries
        assert total(state, "requests") == expected(cells(fake, row.start_ms, row.end_ms))["requests"]


def test_a_429_with_retry_after_is_waited_out(isolated, token, state):
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES, statuses="documented", graphql_limit=1,
                               graphql_window=1) as fake:
        row = pulled(state, make_config(isolated, fake), 1800)
        assert row.ok, row.error
        assert [call.status for call in fake.graphql_calls].count(429) == row.retries >= 2


def test_a_budget_still_spent_at_the_timeout_fails_the_provider_and_says_so(isolated, token, state):
    with FakeCloudflareGraphQL(now=NOW, zones=ZONES, graphql_limit=1, graphql_window=300) as fake:
        row = pulled(state, make_config(isolated, fake), 1800, timeout_s=2.0)
    assert row.status == "failed"
    assert row.error == "cloudflare: graphql httpRequests1mGroups: rate limiter budget depleted, try again after " \
                        "5 minutes"


def test_a_server_error_is_sent_again(fake, config, state):
    fake.fail_next(status=503)
    row = pulled(state, config, 1800)
    assert row.ok and (row.requests, row.retries) == (4, 1)


def test_a_refused_token_fails_the_provider_and_names_no_secret(isolated, fake, monkeypatch, state):
    monkeypatch.setenv("CF_TOKEN", "not-the-token")
    row = pulled(state, make_config(isolated, fake), 1800)
    assert row.status == "failed" and "Authentication error" in row.error and "not-the-token" not in row.error


# -- the command, on the wall clock ----------------------------------------------------------------------

@pytest.fixture
def live(isolated, token):
    """The fake on the wall clock, with a config file for the command."""
    with FakeCloudflareGraphQL(zones=ZONES) as server:
        make_config(isolated, server)
        yield server


def test_the_command_pulls_and_the_questions_read_what_it_pulled(cli, isolated, live):
    config = str(isolated / "edgectl.toml")
    run = cli("--config", config, "analytics", "pull", "-p", "cf", "--since", "1h", "-o", "json")
    assert run.exit_code == 0, run.stderr
    [row] = json.loads(run.stdout)["providers"]
    start = int(datetime.fromisoformat(row["start"].replace("Z", "+00:00")).timestamp() * 1000)
    end = int(datetime.fromisoformat(row["end"].replace("Z", "+00:00")).timestamp() * 1000)
    blocks = cells(live, start, end)

    latency = cli("--config", config, "analytics", "latency", "--by", "provider", "--since", "2h", "-o", "json")
    assert latency.exit_code == 0, latency.stderr
    [cf] = [r for r in latency.json() if r["provider"] == "cf"]
    per_minute = [cells(live, m, m + MINUTE) for m in range(start, end, MINUTE)]
    for stat, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        assert cf[stat] == pytest.approx(sum(weighted_quantile(b, q) for b in per_minute) / len(per_minute))
    assert (cf["source"], cf["samples"]) == ("provider", len(per_minute))

    cache = cli("--config", config, "analytics", "cache", "--by", "provider", "--since", "2h", "-o", "json")
    assert cache.exit_code == 0, cache.stderr
    [group] = [g for g in cache.json()["groups"] if g["provider"] == "cf"]
    want = expected(blocks)
    assert (group["requests"], group["hits"], group["bytes"]) == (want["requests"], want["cache.hits"], want["bytes"])
    assert group["hit_ratio"] == pytest.approx(want["cache.hits"] / want["requests"])


def test_two_processes_pulling_the_zone_at_once_store_each_figure_once(isolated, live, state_path):
    config = str(isolated / "edgectl.toml")
    processes = [subprocess.Popen([sys.executable, "-m", "edgectl", "--config", config, "analytics", "pull",
                                   "-p", "cf", "--since", "40m", "-o", "json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=os.environ.copy()) for _ in range(2)]
    rows = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        rows.append(json.loads(out)["providers"][0])
    starts = [int(datetime.fromisoformat(r["start"].replace("Z", "+00:00")).timestamp() * 1000) for r in rows]
    ends = [int(datetime.fromisoformat(r["end"].replace("Z", "+00:00")).timestamp() * 1000) for r in rows]
    state = open_state(state_path)
    try:
        assert total(state, "requests") == expected(cells(live, min(starts), max(ends)))["requests"]
    finally:
        state.close()
