"""`analytics pull`, provider-agnostic: a plugin kind answering from a JSON file, each figure stored once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgectl.analytics.pull import pull
from edgectl.config import Config
from edgectl.state import open_state
from edgectl.analytics.retention import Retention, prune
from tests.fakes.plugins import install
from tests.history import raw_samples_table

MINUTE, HOUR = 60_000, 3_600_000
NOW = 1_789_000_000_000 - 1_789_000_000_000 % HOUR + 30 * MINUTE + 20_000  # 20 s into the half hour

LEDGER = '''
"""Analytics from a JSON file: the points to answer with and how to fail; each window asked is logged."""
import json

from edgectl.providers.analytics import AnalyticsProvider, Point
from edgectl.providers.base import AuthError, RateLimited


class LedgerProvider(AnalyticsProvider):
    kind = "ledger"
    capabilities = frozenset({"analytics"})
    required_settings = ("file",)
    optional_settings = ("oldest_s", "settle_s")

    @property
    def settle_ms(self):
        return int(self.settings.get("settle_s", 300)) * 1000

    def test(self):
        return "ok"

    def oldest_ms(self, now_ms):
        oldest = self.settings.get("oldest_s")
        return None if oldest is None else now_ms - int(oldest) * 1000

    def _doc(self):
        with open(self.settings["file"]) as handle:
            return json.load(handle)

    def pull(self, window):
        doc = self._doc()
        with open(self.settings["file"] + ".asked", "a") as handle:
            handle.write(json.dumps([window.start_ms, window.end_ms]) + "\\n")
        failure = doc.get("fail")
        if failure == "throttled":
            def refused():
                raise RateLimited("ledger: slow down", retry_after=0.2)
            self.send("read", refused)
        self.send("read", lambda: None)
        for note in doc.get("notes", []):
            self.note(note)
        for point in doc.get("points", []):
            yield Point(**point)
        if failure == "auth":
            raise AuthError("ledger: the token was refused")
        if failure == "crash":
            raise ValueError("a bug")
'''


@pytest.fixture
def ledger(isolated, site):
    install(site, "edgectl-ledger", "1.0", "[edgectl.providers]\nledger = edgectl_ledger:LedgerProvider\n", LEDGER)


@pytest.fixture
def state(state_path):
    opened = open_state(state_path)
    yield opened
    opened.close()


class Books:
    """Ledger providers in a config file, each answering from its own JSON file."""

    def __init__(self, root: Path):
        self.root = root
        self.tables: dict[str, dict] = {}

    def add(self, name: str, points=(), **doc) -> Path:
        settings = {k: doc.pop(k) for k in ("oldest_s", "settle_s") if k in doc}
        self.tables[name] = settings
        path = self.root / f"{name}.json"
        path.write_text(json.dumps({"points": list(points), **doc}))
        return path

    def set(self, name: str, points=(), **doc) -> None:
        (self.root / f"{name}.json").write_text(json.dumps({"points": list(points), **doc}))

    def asked(self, name: str) -> list[list[int]]:
        path = self.root / f"{name}.json.asked"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    @property
    def config(self) -> Config:
        lines = []
        for name, settings in self.tables.items():
            lines += [f"[providers.{name}]", 'kind = "ledger"', f'file = "{self.root / (name + ".json")}"']
            lines += [f"{key} = {value}" for key, value in settings.items()] + [""]
        lines += ["[providers.dns]", 'kind = "route53"', 'hosted_zone_id = "Z1"', ""]
        path = self.root / "edgectl.toml"
        path.write_text("\n".join(lines))
        return Config(path, "option")


@pytest.fixture
def books(ledger, tmp_path) -> Books:
    return Books(tmp_path)


def minute(n: int) -> int:
    """The start of the window's last minute (n = 0) or of the n-th before it; the window ends 5 minutes before now."""
    return NOW - NOW % MINUTE - 5 * MINUTE - (n + 1) * MINUTE


def value(metric: str, at: int, amount: float, **extra) -> dict:
    return {"metric": metric, "at_ms": at, "value": amount, **extra}


def samples(state, metric: str, **where) -> list[tuple]:
    raw_samples_table(state)
    sql = ("SELECT s.provider, s.node, s.country, s.labels, s.kind, m.at, m.value FROM metric_samples m"
           " JOIN metric_series s ON s.id = m.series_id WHERE s.metric = ?")
    params = [metric]
    for column, wanted in where.items():
        sql += f" AND s.{column} = ?"
        params.append(wanted)
    return state.db.conn.execute(sql + " ORDER BY m.at, s.node", params).fetchall()


def total(state, metric: str, **where) -> float:
    return sum(row[-1] for row in samples(state, metric, **where))


def once(state, books, *names, since=86400.0, **options):
    return pull(state, books.config, list(names) or None, since, now_ms=NOW, **options)


# -- windows -----------------------------------------------------------------------------------

def test_the_window_ends_the_settle_time_before_now_in_whole_minutes(state, books):
    books.add("a", settle_s=120)
    report = once(state, books, "a", since=3600)
    [row] = report.providers
    end = NOW - NOW % MINUTE - 2 * MINUTE
    assert (row.start_ms, row.end_ms) == (NOW - NOW % MINUTE - 60 * MINUTE, end)
    assert books.asked("a") == [[row.start_ms, row.end_ms]]
    assert report.to_record()["providers"][0]["status"] == "ok"


def test_the_window_begins_no_earlier_than_the_provider_reaches(state, books):
    books.add("a", oldest_s=1800)
    [row] = once(state, books, "a").providers
    oldest = NOW - 1800 * 1000
    assert row.start_ms == oldest + (-oldest) % MINUTE  # the first whole minute it can still report


def test_a_since_shorter_than_the_settle_time_pulls_nothing_and_says_why(state, books):
    books.add("a")
    [row] = once(state, books, "a", since=120).providers
    assert row.status == "nothing to pull" and row.ok and books.asked("a") == []
    assert "shorter than the time the provider's figures take to settle (300s)" in row.notes[0]


# -- values, gauges, and pulling twice ---------------------------------------------------------

def test_values_become_samples_of_the_catalogue_with_the_providers_name_and_source_pull(state, books):
    books.add("a", [value("requests", minute(3), 40, country="DE"), value("requests", minute(2), 7),
                    value("cache.hits", minute(2), 5, labels={"prefix": "/static/"})])
    [row] = once(state, books, "a").providers
    assert (row.received, row.stored, row.present, row.requests) == (3, 3, 0, 1)
    assert samples(state, "requests") == [("a", "", "DE", '{"source":"pull"}', "histogram", minute(3), 40.0),
                                          ("a", "", "", '{"source":"pull"}', "histogram", minute(2), 7.0)]
    assert samples(state, "cache.hits")[0][3] == '{"prefix":"/static/","source":"pull"}'


def test_pulling_the_same_window_again_changes_nothing(state, books):
    points = [value("requests", minute(n), 10 + n) for n in range(30)]
    points += [value("latency", minute(n), 80 + n, kind="gauge", labels={"stat": "p95"}) for n in range(30)]
    books.add("a", points)
    first = once(state, books, "a").providers[0]
    before = state.db.conn.execute("SELECT resolution, start, series_id, count, sum FROM metric_rollups"
                                   " ORDER BY 1, 2, 3").fetchall()
    again = once(state, books, "a").providers[0]
    assert (first.stored, first.present) == (60, 0)
    assert (again.received, again.stored, again.present) == (60, 0, 60)
    assert state.db.conn.execute("SELECT resolution, start, series_id, count, sum FROM metric_rollups"
                                 " ORDER BY 1, 2, 3").fetchall() == before
    assert total(state, "requests") == sum(10 + n for n in range(30))


def test_a_figure_already_stored_is_kept_when_the_provider_answers_another(state, books):
    books.add("a", [value("requests", minute(1), 10)])
    once(state, books, "a")
    books.set("a", [value("requests", minute(1), 12), value("requests", minute(0), 3)])
    [row] = once(state, books, "a").providers
    assert (row.stored, row.present) == (1, 1)
    assert [r[-2:] for r in samples(state, "requests")] == [(minute(1), 10.0), (minute(0), 3.0)]


def test_gauges_are_series_of_kind_gauge_never_merged_with_measured_latency(state, books):
    books.add("a", [value("latency", minute(1), 120.0, kind="gauge", country="JP", labels={"stat": "p95"})])
    once(state, books, "a")
    [(provider, node, country, labels, kind, at, amount)] = samples(state, "latency")
    assert (provider, country, labels, kind, amount) == ("a", "JP", '{"source":"pull","stat":"p95"}', "gauge", 120.0)
    from edgectl.analytics.store import series_matching
    assert series_matching(state, "latency") == {}  # percentiles read histograms only


def test_an_hour_already_pulled_minute_by_minute_is_not_stored_again_as_an_hour(state, books):
    hour = minute(0) - minute(0) % HOUR - HOUR
    books.add("a", [value("requests", hour + m * MINUTE, 1) for m in range(0, 60, 2)])
    once(state, books, "a")
    books.set("a", [value("requests", hour, 60, step_ms=HOUR), value("requests", hour - HOUR, 50, step_ms=HOUR)])
    [row] = once(state, books, "a").providers
    assert (row.stored, row.present) == (1, 1)
    assert total(state, "requests") == 30 + 50


def test_minutes_inside_an_hour_already_pulled_as_an_hour_are_not_stored_again(state, books):
    hour = minute(0) - minute(0) % HOUR - HOUR
    books.add("a", [value("requests", hour, 60, step_ms=HOUR)])
    once(state, books, "a")
    books.set("a", [value("requests", hour + m * MINUTE, 1) for m in (0, 15, 59)] + [value("requests", hour + HOUR, 4)])
    [row] = once(state, books, "a").providers
    assert (row.stored, row.present) == (1, 3)
    assert total(state, "requests") == 64


def test_within_one_answer_a_second_value_for_an_interval_is_present(state, books):
    books.add("a", [value("requests", minute(1), 5), value("requests", minute(1), 6),
                    value("requests", minute(2) - minute(2) % HOUR - HOUR, 9, step_ms=HOUR)])
    [row] = once(state, books, "a", since=3 * 3600).providers
    assert (row.stored, row.present) == (2, 1)


def test_minutes_whose_minute_rollups_were_pruned_are_judged_by_their_hour(state, books):
    hour = minute(0) - minute(0) % HOUR - 2 * HOUR
    books.add("a", [value("requests", hour + m * MINUTE, 1) for m in range(10)] + [value("requests", minute(0), 1)])
    once(state, books, "a")
    # retention drops the raw samples and minutes of that hour (minute retention: an hour) and keeps the hours
    prune(state, Retention(raw_ms=HOUR, minute_ms=HOUR, hour_ms=400 * 86_400_000, day_ms=1825 * 86_400_000), NOW)
    books.set("a", [value("requests", hour + m * MINUTE, 1) for m in range(20)])
    [row] = once(state, books, "a").providers
    assert (row.stored, row.present) == (0, 20)


def test_points_outside_the_window_or_not_in_the_catalogue_are_left_out_and_counted(state, books):
    books.add("a", [value("requests", minute(-1), 1), value("requests", NOW - 90_000_000, 1),
                    value("visits", minute(1), 3), value("requests", minute(1), float("nan")),
                    value("requests", minute(1), 2)])
    [row] = once(state, books, "a").providers
    assert (row.received, row.stored) == (5, 1)
    assert row.notes == ["2 point(s) outside the window were left out",
                         "1 point(s) left out: metric 'visits' is not in the catalogue",
                         "1 point(s) left out: a value that is not a finite number"]


# -- counters ------------------------------------------------------------------------------------

def counter(metric: str, at: int, reading: float, node: str = "n1") -> dict:
    return {"metric": metric, "at_ms": at, "value": reading, "kind": "counter", "node": node}


def test_counters_become_the_increase_since_the_reading_before(state, books):
    books.add("a", [counter("requests", NOW - 1000, 500), counter("requests", NOW - 1000, 70, node="n2")])
    first = once(state, books, "a").providers[0]
    assert first.stored == 0 and "2 running total(s) read for the first time" in first.notes[0]
    books.set("a", [counter("requests", NOW, 530), counter("requests", NOW, 70, node="n2")])
    second = once(state, books, "a").providers[0]
    assert second.stored == 1  # n2 served nothing between the readings
    assert samples(state, "requests") == [("a", "n1", "", '{"source":"pull"}', "histogram", NOW, 30.0)]


def test_a_counter_that_went_down_restarted_and_counts_from_zero(state, books):
    books.add("a", [counter("requests", NOW - 2000, 900)])
    once(state, books, "a")
    books.set("a", [counter("requests", NOW - 1000, 40)])
    [row] = once(state, books, "a").providers
    assert total(state, "requests", node="n1") == 40
    assert "counters went down (restarted): n1; counted from zero" in row.notes
    books.set("a", [counter("requests", NOW, 45)])
    once(state, books, "a")
    assert total(state, "requests", node="n1") == 45


def test_a_reading_older_than_the_last_one_stored_is_present(state, books):
    books.add("a", [counter("requests", NOW, 100)])
    once(state, books, "a")
    books.set("a", [counter("requests", NOW - 5000, 90)])
    [row] = once(state, books, "a").providers
    assert (row.stored, row.present) == (0, 1)
    assert state.db.conn.execute("SELECT at, value FROM metric_counters").fetchall() == [(NOW, 100.0)]


# -- failures ------------------------------------------------------------------------------------

def test_a_provider_that_fails_is_reported_with_what_it_stored_and_the_others_are_pulled(state, books):
    books.add("bad", [value("requests", minute(1), 4)], fail="auth")
    books.add("good", [value("requests", minute(1), 6)])
    report = once(state, books)
    bad, good = report.providers
    assert (bad.status, bad.error, bad.stored) == ("failed", "ledger: the token was refused", 1)
    assert (good.status, good.stored) == ("ok", 1)
    assert not report.ok and report.to_record()["failed"] == ["bad"]


def test_a_plugin_that_raises_something_unexpected_fails_only_itself(state, books):
    books.add("odd", fail="crash")
    books.add("good", [value("requests", minute(1), 6)])
    odd, good = once(state, books).providers
    assert odd.error == "unexpected ValueError: a bug" and good.ok


def test_throttling_is_waited_out_until_the_timeout_then_reported(state, books):
    books.add("slow", fail="throttled")
    [row] = once(state, books, "slow", timeout_s=1.0).providers
    assert row.error == "ledger: slow down"
    assert row.requests >= 3 and row.retries == row.requests - 1


def test_every_provider_with_analytics_is_pulled_when_none_is_named(state, books):
    books.add("a")
    books.add("b")
    assert [p.provider for p in once(state, books).providers] == ["a", "b"]


@pytest.mark.parametrize("name, message", [
    ("nope", "unknown provider 'nope'"),
    ("dns", "provider dns (kind route53) has no analytics"),
])
def test_an_unknown_provider_or_one_without_analytics_is_bad_input_listing_those_with_it(state, books, name, message):
    from edgectl.errors import UsageError

    books.add("a")
    books.add("b")
    with pytest.raises(UsageError) as caught:
        once(state, books, "a", name)
    assert (caught.value.message, caught.value.hint, caught.value.exit_code) == (
        message, "providers with analytics: a, b", 2)
    assert books.asked("a") == []  # nothing was pulled


# -- the command -----------------------------------------------------------------------------------

def recent(n: int) -> int:
    """A minute safely inside a pull's window whenever it runs: n + 10 minutes ago."""
    now = int(time.time() * 1000)
    return now - now % MINUTE - (n + 10) * MINUTE


def test_the_command_shows_each_provider_as_a_row_and_exits_1_when_one_failed(cli, books):
    books.add("bad", fail="auth")
    books.add("good", [value("requests", recent(n), n) for n in range(5)], notes=["quantiles are not on this plan"])
    config = str(books.config.path)
    run = cli("--config", config, "analytics", "pull", "--all", "--since", "1h", "-o", "json")
    assert run.exit_code == 1
    record = json.loads(run.stdout)
    assert [(p["provider"], p["status"], p["stored"]) for p in record["providers"]] == [("bad", "failed", 0),
                                                                                       ("good", "ok", 5)]
    assert record["failed"] == ["bad"] and record["stored"] == 5
    good = record["providers"][1]
    assert good["notes"] == ["quantiles are not on this plan"] and good["requests"] == 1
    assert good["start"].endswith("Z") and good["end"] > good["start"]
    error = run.error
    assert error["message"] == "1 of 2 provider(s) failed: bad: ledger: the token was refused"

    table = cli("--config", config, "analytics", "pull", "-p", "good", "--since", "1h")
    assert table.exit_code == 0, table.stderr
    assert "good" in table.stdout and "ledger" in table.stdout
    assert "good: quantiles are not on this plan" in table.stderr
    assert "pulled 0 sample(s); 5 already in the history" in table.stderr
    quiet = cli("--config", config, "analytics", "pull", "-p", "good", "--since", "1h", "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")  # from cron: nothing unless it fails


@pytest.mark.parametrize("args, message", [
    ([], "name the providers to pull with --provider NAME, or pull them all with --all"),
    (["--all", "-p", "a"], "name the providers to pull with --provider NAME, or pull them all with --all"),
    (["-p", "nope"], "unknown provider 'nope'"),
    (["-p", "a", "--since", "0s"], "--since must be more than zero"),
    (["-p", "a", "--timeout", "soon"], None),
])
def test_bad_input_is_exit_2_with_one_line(cli, books, args, message):
    books.add("a")
    run = cli("--config", str(books.config.path), "analytics", "pull", *args, "-o", "json")
    assert run.exit_code == 2 and run.stdout == ""
    if message:
        assert run.error["message"] == message
    assert books.asked("a") == []


def test_no_provider_with_analytics_is_exit_2(cli, isolated):
    path = isolated / "empty.toml"
    path.write_text('[providers.dns]\nkind = "route53"\nhosted_zone_id = "Z1"\n')
    run = cli("--config", str(path), "analytics", "pull", "--all", "-o", "json")
    assert run.exit_code == 2
    assert run.error["message"] == f"no provider with the analytics capability is configured in {path}"


def test_two_processes_pulling_the_same_provider_at_once_both_succeed_and_store_each_figure_once(books, site,
                                                                                                   state_path):
    points = [value("requests", recent(n), 1 + n % 7, node=f"n{s}") for s in range(300) for n in range(40)]
    points += [counter("requests", int(time.time() * 1000) - 1000, 1000, node=f"c{s}")
               for s in range(50)]
    books.add("big", points)
    config = str(books.config.path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    processes = [subprocess.Popen([sys.executable, "-m", "edgectl", "--config", config, "analytics", "pull",
                                   "-p", "big", "--since", "2h", "-o", "json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    answers = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        answers.append(json.loads(out)["providers"][0])
    assert sum(a["stored"] for a in answers) == 300 * 40
    assert all(a["received"] == 300 * 40 + 50 for a in answers)
    assert sum(a["present"] for a in answers) == 300 * 40 + 50  # the later reading of each counter is a first
    state = open_state(state_path)
    try:
        assert total(state, "requests") == sum(1 + n % 7 for n in range(40)) * 300
        assert state.db.conn.execute("SELECT count(*) FROM metric_counters").fetchone()[0] == 50
    finally:
        state.close()
