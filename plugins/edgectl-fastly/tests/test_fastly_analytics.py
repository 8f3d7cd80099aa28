"""`analytics pull` of the fastly kind: the service's minutes from the historical stats API into the history, and the questions that read them."""

from __future__ import annotations

import csv
import io
import json
import random
import time

import pytest

from conftest import provider_table
from fake_fastly import SERVICE, FakeFastly, expected, minute_row

MINUTE = 60


@pytest.fixture
def traffic(fake) -> dict[int, dict]:
    """Three hours of minutes up to the last whole one, in the fake; by minute start (Unix seconds)."""
    rng = random.Random(7)
    last = int(time.time()) // MINUTE * MINUTE - MINUTE
    rows = {}
    for at in range(last - 180 * MINUTE, last + MINUTE, MINUTE):
        rows[at] = minute_row(rng)
        fake.add_minute(SERVICE, at, rows[at])
    return rows


def pull(cli, *args) -> dict:
    run = cli("analytics", "pull", "--provider", "fastly-prod", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    [row] = run.json()["providers"]
    return row


def seconds(moment: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp())


def in_window(traffic: dict[int, dict], row: dict) -> list[dict]:
    return [r for at, r in traffic.items() if seconds(row["start"]) <= at < seconds(row["end"])]


def test_a_pull_stores_the_minutes_and_analytics_cache_shows_them(cli, fake, config, traffic):
    row = pull(cli, "--since", "1h")
    assert row["status"] == "ok" and row["kind"] == "fastly"
    window = in_window(traffic, row)
    assert seconds(row["end"]) - seconds(row["start"]) == len(window) * MINUTE
    assert time.time() - seconds(row["end"]) >= 15 * MINUTE  # minutes settle for fifteen minutes first
    want = expected(window)
    [stats] = fake.requests
    assert stats.path == f"/stats/service/{SERVICE}" and stats.query["by"] == ["minute"]
    assert (int(stats.query["from"][0]), int(stats.query["to"][0])) == (seconds(row["start"]), seconds(row["end"]))

    cache = cli("analytics", "cache", "--by", "provider", "--since", "2h", "-o", "json")
    assert cache.exit_code == 0, cache.stderr
    [group] = [g for g in cache.json()["groups"] if g["provider"] == "fastly-prod"]
    assert (group["requests"], group["hits"], group["bytes"]) == (want["requests"], want["cache.hits"], want["bytes"])
    assert group["hit_ratio"] == pytest.approx(want["cache.hits"] / want["requests"])
    table = cli("analytics", "cache", "--by", "provider", "--since", "2h")
    [line] = [l for l in table.stdout.splitlines() if l.startswith("fastly-prod")]
    assert line.split()[1:3] == [str(int(want["requests"])), str(int(want["cache.hits"]))]


def test_a_second_pull_of_the_same_window_stores_nothing_more(cli, fake, config, traffic):
    first = pull(cli, "--since", "1h")
    assert first["stored"] > 0 and first["present"] == 0
    again = pull(cli, "--since", "1h")
    assert again["stored"] == 0 and again["present"] == again["received"] > 0


def test_errors_and_the_mean_hit_and_miss_times_are_stored_as_what_they_are(cli, fake, config, traffic):
    row = pull(cli, "--since", "1h")
    window = {at: r for at, r in traffic.items() if seconds(row["start"]) <= at < seconds(row["end"])}
    export = cli("analytics", "export", "-f", "csv", "--since", "2h", "--metric", "latency", "--metric", "errors.4xx",
                 "--metric", "errors.5xx")
    assert export.exit_code == 0, export.stderr
    samples = list(csv.DictReader(io.StringIO(export.stdout)))
    assert {s["provider"] for s in samples} == {"fastly-prod"}
    for metric, field in (("errors.4xx", "status_4xx"), ("errors.5xx", "status_5xx")):
        assert sum(float(s["value"]) for s in samples if s["metric"] == metric) == sum(r[field] for r in window.values())
    latency = [s for s in samples if s["metric"] == "latency"]
    assert {(s["kind"], s["unit"]) for s in latency} == {("gauge", "ms")}
    by_minute = {}
    for s in latency:
        labels = json.loads(s["labels"])
        assert labels["stat"] == "avg"
        by_minute[labels["cache"], seconds(s["time"])] = float(s["value"])
    for at, r in window.items():
        if r["hits"]:
            assert by_minute["hit", at] == pytest.approx(r["hits_time"] / r["hits"] * 1000)
        assert by_minute["miss", at] == pytest.approx(r["miss_time"] / r["miss"] * 1000)


def test_a_row_without_the_edge_figures_is_read_from_requests_hits_and_bandwidth(cli, fake, config):
    at = (int(time.time()) // MINUTE - 30) * MINUTE
    fake.add_minute(SERVICE, at, {"requests": 120, "hits": 90, "miss": 30, "bandwidth": 480_000})
    pull(cli, "--since", "1h")
    cache = cli("analytics", "cache", "--by", "provider", "--since", "2h", "-o", "json").json()
    [group] = cache["groups"]
    assert (group["requests"], group["hits"], group["bytes"]) == (120, 90, 480_000)


def test_a_long_window_is_asked_for_in_spans_of_six_hours_and_never_past_35_days(cli, fake, config):
    row = pull(cli, "--since", "13h")
    spans = [(int(s.query["from"][0]), int(s.query["to"][0])) for s in fake.requests]
    assert len(spans) == 3 and all(end - start <= 6 * 3600 for start, end in spans)
    assert spans[0][0] == seconds(row["start"]) and spans[-1][1] == seconds(row["end"])
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))

    fake.clear()
    oldest = pull(cli, "--since", "40d")
    assert oldest["status"] == "ok", oldest  # the fake refuses minutes older than 35 days, as Fastly does
    assert time.time() - int(fake.requests[0].query["from"][0]) < 35 * 86_400


def test_a_429_on_the_stats_is_waited_out(cli, fake, config, traffic):
    fake.fail_next(429, retry_after=1)
    started = time.monotonic()
    row = pull(cli, "--since", "1h")
    assert row["status"] == "ok" and row["retries"] == 1 and row["requests"] == 2
    assert time.monotonic() - started >= 1
    assert row["stored"] > 0


def test_a_refused_key_or_an_unknown_service_fails_the_pull_in_fastlys_words(cli, isolated, key, monkeypatch):
    with FakeFastly() as fake:
        (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url, service_id="NoSuchService1"))
        run = cli("analytics", "pull", "--provider", "fastly-prod", "--since", "1h", "-o", "json")
        assert run.exit_code == 1
        [row] = run.json()["providers"]
        assert row["error"] == ("fastly: historical stats: Record not found: Cannot find service 'NoSuchService1' "
                                "(HTTP 404)")
        monkeypatch.setenv("FASTLY_TEST_KEY", "k-wrong-key")
        run = cli("analytics", "pull", "--provider", "fastly-prod", "--since", "1h", "-o", "json")
        [row] = run.json()["providers"]
        assert run.exit_code == 1 and "Provided credentials are missing or invalid (HTTP 401)" in row["error"]
        assert row["requests"] == 1 and "k-wrong-key" not in run.stdout + run.stderr


class _Drifting(FakeFastly):
    """The stats API answering 200 with an error status, then with rows by the hour."""

    answers: list = []

    def handle(self, seen):
        from edgectl.testing import Answer

        if seen.path.startswith("/stats/") and self.answers:
            return Answer(200, self.answers.pop(0))
        return super().handle(seen)


def test_an_answer_that_is_not_minutes_of_success_fails_the_pull(cli, isolated, key):
    with _Drifting() as fake:
        fake.answers = [{"status": "error", "msg": "Query exceeds the allowed range", "data": []},
                        {"status": "success", "meta": {"by": "hour"}, "msg": None, "data": []}]
        (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url))
        first = cli("analytics", "pull", "--provider", "fastly-prod", "--since", "1h", "-o", "json")
        assert first.json()["providers"][0]["error"] == "fastly: historical stats: Query exceeds the allowed range"
        second = cli("analytics", "pull", "--provider", "fastly-prod", "--since", "1h", "-o", "json")
        assert "asked for minutes and got rows by 'hour'" in second.json()["providers"][0]["error"]
        assert first.exit_code == second.exit_code == 1
