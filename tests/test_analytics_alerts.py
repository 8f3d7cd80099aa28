"""`analytics alerts`: rules validated at the door, transitions recorded once, notifications posted with retries."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.webhook_receiver import WebhookReceiver, alertmanager_problems

MINUTE = 60


def put(state_path, rows):
    """Samples into the history: (metric, epoch seconds, value, {node, region, ...})."""
    from edgectl.analytics.metrics import key
    from edgectl.analytics.samples import Sample
    from edgectl.analytics.store import ingest
    from edgectl.state import open_state

    state = open_state(state_path)
    try:
        ingest(state, [Sample(key(metric, **where), int(at * 1000), value) for metric, at, value, where in rows])
    finally:
        state.close()


def slow_minutes(metric="latency", value=300.0, minutes=(1, 2, 3, 4, 5, 6), now=None, count=20, **where):
    """`count` samples of `value` in each of the minutes `minutes` ago (at 30 s past the mark): by
    default six, so that the first minute's evaluation is more than the default `for` (5m) ago."""
    now = time.time() if now is None else now
    return [(metric, now - 30 - MINUTE * m + i * 0.1, value, where) for m in minutes for i in range(count)]


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def state(state_path, cli):
    from edgectl.state import open_state

    cli("analytics", "alerts", "list")  # creates and migrates the state
    opened = open_state(state_path)
    yield opened
    opened.close()


def t0() -> float:
    """A whole minute two hours ago: for checks run at chosen moments."""
    return (int(time.time()) // 60 - 120) * 60.0


def one_line_error(run) -> str:
    lines = run.stderr.strip().splitlines()
    assert lines and lines[0].startswith("error: ") and "Traceback" not in run.stderr, run.stderr
    assert len([line for line in lines if line.startswith("error:")]) == 1
    return lines[0]


def error_after_warnings(run) -> str:
    """The one `error:` line of a run whose warnings said what went wrong first."""
    [line] = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in run.stderr
    return line


# ---- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--metric", "latency"], "give one of --above or --below"),
    (["--metric", "latency", "--above", "200ms", "--below", "10ms"], "give one of --above or --below"),
    (["--metric", "latenccy", "--above", "200ms"], "did you mean 'latency'"),
    (["--metric", "latency", "--stat", "p0", "--above", "1"], "above 0 and at most 100"),
    (["--metric", "latency", "--stat", "median95", "--above", "1"], "is not a statistic"),
    (["--metric", "requests", "--stat", "p95", "--above", "1"], "requests is a count"),
    (["--metric", "hit_ratio", "--stat", "p95", "--below", "0.9"], "has no other statistic"),
    (["--metric", "hit_ratio", "--below", "200ms"], "hit_ratio is measured in ratio, not ms"),
    (["--metric", "latency", "--above", "90%"], "latency is measured in ms, not %"),
    (["--metric", "hit_ratio", "--below", "1.5"], "a ratio is between 0 and 1"),
    (["--metric", "latency", "--above", "fast"], "is not a number with a unit"),
    (["--metric", "latency", "--above", "-5ms"], "not negative"),
    (["--metric", "latency", "--above", "1", "--by", "city"], "--by 'city'"),
    (["--metric", "latency", "--above", "1", "--for", "10s"], "--for 10s: 0 (at once), or from 1m"),
    (["--metric", "latency", "--above", "1", "--for", "2d"], "to 1d"),
    (["--metric", "latency", "--above", "1", "--for", "soon"], "not a valid duration"),
    (["--metric", "latency", "--above", "1", "--severity", "loud"], "--severity 'loud'"),
    (["--metric", "latency", "--above", "1", "--cooldown", "60d"], "--cooldown 60d"),
    (["--metric", "latency", "--above", "1", "--webhook", "ftp://example.com/x"], "not an http(s) URL"),
    (["--metric", "latency", "--above", "1", "--webhook", "env:1BAD"], "not an environment variable name"),
    (["--metric", "latency", "--above", "1", "--webhook", "https://hooks.slack.com/services/T0/B0/sekrit"],
     "a Slack webhook URL is a secret"),
    (["--metric", "latency", "--above", "1", "--webhook", "https://hooks.slack.com./services/T0/B0/sekrit"],
     "a Slack webhook URL is a secret"),
    (["--metric", "latency", "--above", "1", "--webhook", "https://hooks.slack-gov.com/services/T0/B0/sekrit"],
     "a Slack webhook URL is a secret"),
    (["--metric", "latency", "--above", "1", "--webhook",
      "https://chat-proxy.example.com/services/T0123ABCD/B0456EFGH/sekritsekritsekrit"], "a Slack webhook URL is a secret"),
    (["--metric", "latency", "--above", "1", "--webhook", "https://hooks.example.com/in?token=sekrit"],
     "query string"),
    (["--metric", "latency", "--above", "1", "--webhook", "https://user:sekrit@hooks.example.com/in"],
     "credentials"),
    (["--metric", "latency", "--above", "1", "--webhook-format", "teams"], "--webhook-format 'teams'"),
])
def test_each_bad_option_is_one_line_and_exit_2_and_nothing_is_stored(cli, args, says):
    run = cli("analytics", "alerts", "add", "lat", *args)
    assert run.exit_code == 2
    assert says in one_line_error(run)
    assert "sekrit" not in run.stderr + run.stdout
    if "secret" in says or "credentials" in says or "query string" in says:
        assert "env:NAME" in run.stderr  # where the secret goes instead
    assert cli("analytics", "alerts", "list", "-o", "json").json() == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--above", "--stat", "--for", "--cooldown", "--webhook", "--by", "--metric"]),
       value=st.text(alphabet=string.printable + "µé%", max_size=16))
def test_whatever_is_typed_into_add_is_taken_or_refused_in_one_line(isolated, option, value):
    from typer.testing import CliRunner

    from edgectl.cli.app import app

    args = {"--metric": "latency", "--above": "200ms"}
    args[option] = value
    result = CliRunner().invoke(app, ["analytics", "alerts", "add", "a", *[x for kv in args.items() for x in kv]])
    assert result.exit_code in (0, 2), (option, value, result.stderr)
    assert "Traceback" not in result.stderr
    if result.exit_code == 0:
        CliRunner().invoke(app, ["analytics", "alerts", "remove", "a"])


def test_a_bad_name_a_taken_name_and_an_unknown_one_are_exit_2(cli):
    assert cli("analytics", "alerts", "add", "a b", "--metric", "latency", "--above", "1").exit_code == 2
    assert cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "1").exit_code == 0
    again = cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "2")
    assert again.exit_code == 2 and "already exists" in one_line_error(again)
    for command in (["show", "nope"], ["remove", "nope"], ["silence", "nope", "--for", "1h"], ["unsilence", "nope"]):
        run = cli("analytics", "alerts", *command)
        assert run.exit_code == 2 and "no alert named 'nope'" in one_line_error(run)
    assert cli("analytics", "alerts", "silence", "lat").exit_code == 2  # --for is required
    assert "--for" in one_line_error(cli("analytics", "alerts", "silence", "lat", "--for", "5"))
    assert cli("analytics", "alerts", "history", "--limit", "0").exit_code == 2
    assert cli("analytics", "alerts", "check", "--timeout", "0").exit_code == 2


def test_thresholds_are_read_in_the_metric_unit(cli):
    for args in (["slow", "--metric", "latency", "--above", "1.5s", "--stat", "p99.9"],
                 ["cold", "--metric", "hit_ratio", "--below", "90%"],
                 ["hot", "--metric", "cpu", "--stat", "avg", "--above", "85%", "--by", "node"],
                 ["errs", "--metric", "error_rate", "--above", "0.05", "--severity", "critical"],
                 ["busy", "--metric", "requests", "--above", "1000"]):
        run = cli("analytics", "alerts", "add", *args)
        assert run.exit_code == 0, run.stderr
    rules = {r["name"]: r for r in cli("analytics", "alerts", "list", "-o", "json").json()}
    assert rules["slow"]["threshold"] == 1500 and rules["slow"]["stat"] == "p99.9" and rules["slow"]["unit"] == "ms"
    assert rules["cold"]["threshold"] == 0.9 and rules["cold"]["stat"] == "ratio" and rules["cold"]["op"] == "below"
    assert rules["hot"]["threshold"] == 85 and rules["hot"]["by"] == "node"
    assert rules["busy"]["stat"] == "sum"  # a count's minutes add up
    assert rules["slow"]["condition"] == "p99.9 above 1.5s for 5m"
    assert rules["cold"]["condition"] == "below 90% for 5m"
    assert rules["errs"]["severity"] == "critical" and rules["errs"]["cooldown_seconds"] == 1800


# ---- transitions ------------------------------------------------------------------------------

def test_fires_then_resolves_recording_each_transition_once(cli, state_path):
    assert cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--stat", "p95", "--above", "200ms",
               "--for", "5m").exit_code == 0
    put(state_path, slow_minutes(node="fra-1"))
    first = cli("analytics", "alerts", "check", "-o", "json")
    assert first.exit_code == 3, first.stderr
    [alert] = first.json()["alerts"]
    assert alert["evaluation"] == "firing" and alert["change"] == "fired" and abs(alert["value"] - 300) < 3
    assert first.json()["firing"] == 1
    again = cli("analytics", "alerts", "check", "-o", "json")
    assert again.exit_code == 3 and again.json()["alerts"][0]["change"] is None
    assert [e["status"] for e in cli("analytics", "alerts", "history", "-o", "json").json()] == ["firing"]

    put(state_path, [("latency", time.time() - 2, 40.0, {"node": "fra-1"}) for _ in range(50)])
    resolved = cli("analytics", "alerts", "check", "-o", "json")
    assert resolved.exit_code == 0, resolved.stderr
    assert resolved.json()["alerts"][0]["change"] == "resolved"
    assert resolved.json()["alerts"][0]["evaluation"] == "ok"
    assert cli("analytics", "alerts", "check").exit_code == 0
    events = cli("analytics", "alerts", "history", "lat", "-o", "json").json()
    assert [e["status"] for e in events] == ["resolved", "firing"]
    assert events[0]["starts_at"] == events[1]["starts_at"] and events[0]["fingerprint"] == events[1]["fingerprint"]


def test_without_samples_an_alert_has_no_data(cli):
    assert cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms").exit_code == 0
    empty = cli("analytics", "alerts", "check")
    assert empty.exit_code == 0 and "no data" in empty.stdout
    assert cli("analytics", "alerts", "check", "-o", "json").json()["alerts"][0]["evaluation"] == "nodata"


def test_samples_that_stop_leave_a_firing_alert_neither_firing_nor_resolved(cli, state, state_path):
    from edgectl.analytics import alerts

    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms")
    start = t0()
    assert alerts.check(state, now=at(start)).instances[0].evaluation == "nodata"
    put(state_path, slow_minutes(now=start + 5 * MINUTE, node="fra-1", minutes=range(6)))
    assert alerts.check(state, now=at(start + 5 * MINUTE)).firing
    later = alerts.check(state, now=at(start + 30 * MINUTE))
    [instance] = later.instances
    assert instance.evaluation == "nodata" and instance.status == "firing" and not later.firing
    assert alerts.firing(state) == []
    assert [e.status for e in alerts.history(state)] == ["firing"]


def test_pending_while_only_the_latest_minutes_hold(cli, state_path):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--for", "5m")
    put(state_path, slow_minutes(value=50.0, minutes=(3, 4), node="fra-1") + slow_minutes(minutes=(1,), node="fra-1"))
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 0
    assert run.json()["alerts"][0]["evaluation"] == "pending" and run.json()["alerts"][0]["status"] == "inactive"


def test_a_new_series_is_pending_until_it_has_held_for_the_whole_for(cli, state_path):
    cli("analytics", "alerts", "add", "x", "--metric", "latency", "--stat", "p95", "--above", "200ms", "--for", "15m")
    now = time.time()
    put(state_path, [("latency", now - 20 + i, 500.0, {}) for i in range(20)])  # the last 20 s only
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 0, run.stderr
    [alert] = run.json()["alerts"]
    assert (alert["evaluation"], alert["status"], alert["change"]) == ("pending", "inactive", None)
    assert alert["value"] == pytest.approx(500, rel=0.01) and run.json()["firing"] == 0
    assert cli("analytics", "alerts", "history", "-o", "json").json() == []
    assert "1 pending" in cli("analytics", "alerts", "check").stderr


def test_for_needs_the_holding_minutes_to_reach_back_the_whole_for(cli, state, state_path):
    from edgectl.analytics import alerts

    cli("analytics", "alerts", "add", "x", "--metric", "latency", "--above", "200ms", "--for", "15m", "--by", "node")
    start = t0()
    rows = []
    for minute in range(60):
        groups = ["fra-1"]  # slow every minute
        groups += ["ams-1"] if minute <= 10 or minute >= 31 else []  # then nothing for twenty minutes
        groups += ["iad-1"] if minute % 5 == 0 else []  # a probe every five minutes, from cron
        rows += [("latency", start + minute * MINUTE + 10 + i, 300.0, {"node": node}) for node in groups for i in range(3)]
    put(state_path, rows)

    def evaluations(minute):  # a dry run: what a check at 30 s past that minute would say
        report = alerts.check(state, now=at(start + minute * MINUTE + 30), record=False)
        return {i.group: i.evaluation for i in report.instances}

    # the first minute's evaluation is made at its end (start + 1m): at 14m30 that is 13m30 ago
    assert evaluations(14) == {"fra-1": "pending", "ams-1": "pending", "iad-1": "pending"}
    assert evaluations(15) == {"fra-1": "pending", "ams-1": "pending", "iad-1": "pending"}  # 14m30
    # 15m30: minutes without samples are no evaluations, so iad-1's probes every five minutes count,
    # and ams-1's last sample (minute 10) is within the last 15m
    assert evaluations(16) == {"fra-1": "firing", "ams-1": "firing", "iad-1": "firing"}
    assert evaluations(30) == {"fra-1": "firing", "iad-1": "firing"}  # ams-1: nothing in the last 15m
    # back after twenty minutes without samples: a new run, pending for a whole 15m again
    assert evaluations(33)["ams-1"] == "pending"
    assert evaluations(46)["ams-1"] == "pending"  # its run's first evaluation (minute 31's, at 32m) 14m30 ago
    later = evaluations(47)
    assert later == {"fra-1": "firing", "ams-1": "firing", "iad-1": "firing"}
    assert evaluations(33)["ams-1"] == "pending"  # the history alone decides: in any order, at any times

    fired = alerts.check(state, now=at(start + 16 * MINUTE + 30))
    assert {i.group: (i.change, i.starts_at) for i in fired.instances} == {
        node: ("fired", at(start)) for node in ("fra-1", "ams-1", "iad-1")}  # held since minute 0
    again = alerts.check(state, now=at(start + 33 * MINUTE + 30))  # ams-1's run began again after the gap
    states = {i.group: (i.evaluation, i.status, i.change) for i in again.instances}
    assert states == {"fra-1": ("firing", "firing", None), "ams-1": ("pending", "inactive", "resolved"),
                      "iad-1": ("firing", "firing", None)}


def test_for_0_fires_at_the_first_evaluation_that_holds(cli, state_path):
    added = cli("analytics", "alerts", "add", "x", "--metric", "latency", "--above", "200ms", "--for", "0", "-o", "json")
    assert added.exit_code == 0 and added.json()["condition"] == "p95 above 200ms for 0s"
    put(state_path, [("latency", time.time() - 5, 500.0, {}) for _ in range(5)])
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 3 and run.json()["alerts"][0]["change"] == "fired"


def test_by_node_is_one_alert_per_node_each_with_its_labels(cli, state_path, hook):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--by", "node",
        "--webhook", hook.url + "/hook")
    put(state_path, slow_minutes(node="fra-1", region="eu") + slow_minutes(node="iad-1", region="us", value=450.0)
        + slow_minutes(node="ams-1", region="eu", value=60.0) + slow_minutes(value=900.0))  # the last: no node
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 3
    found = {a["labels"]["node"]: a for a in run.json()["alerts"]}
    assert set(found) == {"fra-1", "iad-1", "ams-1"}
    assert found["ams-1"]["evaluation"] == "ok"
    assert {n for n, a in found.items() if a["evaluation"] == "firing"} == {"fra-1", "iad-1"}
    assert found["fra-1"]["labels"] == {"alertname": "lat", "severity": "warning", "node": "fra-1"}
    assert len({a["fingerprint"] for a in found.values()}) == 3
    [body] = hook.received
    assert sorted(a["labels"]["node"] for a in body["alerts"]) == ["fra-1", "iad-1"]
    assert body["commonLabels"] == {"alertname": "lat", "severity": "warning"}
    assert body["groupLabels"] == {"alertname": "lat"} and body["groupKey"] == '{}:{alertname="lat"}'
    by_region = cli("analytics", "alerts", "add", "lat-region", "--metric", "latency", "--stat", "max", "--above",
                    "400ms", "--by", "region")
    assert by_region.exit_code == 0
    regions = {a["labels"].get("region"): a["evaluation"]
               for a in cli("analytics", "alerts", "check", "-o", "json").json()["alerts"] if a["alert"] == "lat-region"}
    assert regions == {"eu": "ok", "us": "firing"}


def test_hit_ratio_and_error_rate_are_sums_over_sums(cli, state_path):
    cli("analytics", "alerts", "add", "cold", "--metric", "hit_ratio", "--below", "90%", "--by", "node")
    cli("analytics", "alerts", "add", "errs", "--metric", "error_rate", "--above", "5%")
    rows = []
    for m in range(1, 7):
        when = time.time() - 30 - MINUTE * m
        rows += [("requests", when, 100.0, {"node": "fra-1"}), ("cache.hits", when, 95.0, {"node": "fra-1"}),
                 ("requests", when, 100.0, {"node": "ams-1"}), ("cache.hits", when, 70.0, {"node": "ams-1"}),
                 ("errors.5xx", when, 12.0, {"node": "ams-1"})]
    put(state_path, rows)
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 3
    found = {(a["alert"], a["group"]): a for a in run.json()["alerts"]}
    assert found[("cold", "ams-1")]["evaluation"] == "firing" and found[("cold", "ams-1")]["value"] == pytest.approx(0.7)
    assert found[("cold", "fra-1")]["evaluation"] == "ok" and found[("cold", "fra-1")]["value"] == pytest.approx(0.95)
    assert found[("errs", None)]["evaluation"] == "firing" and found[("errs", None)]["value"] == pytest.approx(0.06)


# ---- notifications ----------------------------------------------------------------------------

def fnv_fingerprint(labels: dict[str, str]) -> str:
    """Prometheus's labelSetToFingerprint, written out from its definition."""
    digest = 14695981039346656037
    for name in sorted(labels):
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            digest = ((digest ^ byte) * 1099511628211) % 2**64
    return format(digest, "016x")


def test_the_payload_is_alertmanager_version_4_with_a_stable_fingerprint(cli, state_path, hook):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--by", "node",
        "--severity", "critical", "--webhook", hook.url + "/alertmanager", "--cooldown", "0")
    put(state_path, slow_minutes(node="fra-1"))
    assert cli("analytics", "alerts", "check").exit_code == 3
    put(state_path, [("latency", time.time() - 2, 40.0, {"node": "fra-1"}) for _ in range(50)])
    assert cli("analytics", "alerts", "check").exit_code == 0
    firing, resolved = hook.received
    for body in (firing, resolved):
        assert alertmanager_problems(body) == []
        assert body["version"] == "4" and body["receiver"] == "edgectl" and body["truncatedAlerts"] == 0
    assert [r.path for r in hook.requests] == ["/alertmanager", "/alertmanager"]
    assert hook.requests[0].headers["content-type"] == "application/json"
    [fired], [ended] = firing["alerts"], resolved["alerts"]
    labels = {"alertname": "lat", "severity": "critical", "node": "fra-1"}
    assert fired["labels"] == ended["labels"] == labels
    assert fired["fingerprint"] == ended["fingerprint"] == fnv_fingerprint(labels)
    assert firing["status"] == fired["status"] == "firing" and fired["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved["status"] == ended["status"] == "resolved" and ended["endsAt"] > ended["startsAt"]
    assert fired["startsAt"] == ended["startsAt"]
    assert "fra-1" in fired["annotations"]["summary"] and float(fired["annotations"]["value"]) == pytest.approx(300, 0.01)


def test_5xx_and_429_are_retried_until_the_receiver_takes_it(cli, state_path, hook):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--webhook", hook.url)
    put(state_path, slow_minutes(node="fra-1"))
    hook.fail_next(503, count=2)
    hook.rate_limit_next(retry_after=1)
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 3, run.stderr
    assert [r.status for r in hook.requests] == [503, 503, 429, 200]
    [sent] = run.json()["notifications"]
    assert sent["ok"] and sent["attempts"] == 4 and sent["firing"] == 1
    assert run.json()["alerts"][0]["notification"] == "sent"
    assert "warning" not in run.stderr
    assert cli("analytics", "alerts", "check").exit_code == 3
    assert len(hook.requests) == 4  # told once; the cooldown keeps it from telling again


def test_a_retry_after_past_the_check_is_left_to_the_next_check(cli, state_path, hook):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--webhook", hook.url)
    put(state_path, slow_minutes(node="fra-1"))
    hook.rate_limit_next(retry_after=3600)
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 1  # firing, but the receiver was not told
    assert len(hook.requests) == 1 and not run.json()["notifications"][0]["ok"]
    assert "asked to wait 3600s" in run.stderr
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 3 and run.json()["notifications"][0]["ok"] and len(hook.received) == 1


def test_a_receiver_that_keeps_failing_is_reported_and_told_at_the_next_check(cli, state_path, hook):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--webhook", hook.url + "/x")
    put(state_path, slow_minutes(node="fra-1"))
    hook.fail_always(500)
    run = cli("analytics", "alerts", "check", "-q")
    assert run.exit_code == 1 and run.stdout == ""  # firing, and nobody was paged: cron must hear of it
    assert len(hook.requests) == 4
    assert "alert lat: notification not delivered after 4 attempt(s)" in run.stderr and "HTTP 500" in run.stderr
    port = hook.url.rsplit(":", 1)[1]
    assert error_after_warnings(run) == (f"error: 1 alert(s) firing, and 1 notification(s) not delivered: "
                                   f"lat (1 firing) to http://127.0.0.1:{port}/********")
    show = cli("analytics", "alerts", "show", "lat", "-o", "json").json()
    assert "HTTP 500" in show["instances"][0]["notify_error"] and show["instances"][0]["notified_status"] is None
    # resolved while the receiver still fails: nothing fires, but the receiver was never told: exit 1
    put(state_path, [("latency", time.time() - 2, 40.0, {"node": "fra-1"}) for _ in range(50)])
    hook.reset()
    hook.fail_always(500)
    quiet = cli("analytics", "alerts", "check", "-q")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""  # never told it fired: nothing to close
    hook.reset()


def test_a_resolution_that_cannot_be_told_is_exit_1_and_told_later(cli, state_path, hook):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--webhook", hook.url)
    put(state_path, slow_minutes(node="fra-1"))
    assert cli("analytics", "alerts", "check").exit_code == 3
    put(state_path, [("latency", time.time() - 2, 40.0, {"node": "fra-1"}) for _ in range(50)])
    hook.fail_always(502)
    failed = cli("analytics", "alerts", "check", "-q")
    assert failed.exit_code == 1 and failed.stdout == ""
    assert "not delivered" in failed.stderr
    assert error_after_warnings(failed).startswith("error: no alert firing, and 1 notification(s) not delivered: lat (1 resolved)")
    hook.reset()
    assert cli("analytics", "alerts", "check").exit_code == 0
    assert [b["status"] for b in hook.received] == ["resolved"]


def test_cooldown_keeps_a_flapping_alert_from_telling_again(cli, state, state_path, hook):
    from edgectl.analytics import alerts

    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--for", "2m",
        "--webhook", hook.url, "--cooldown", "30m")
    start = t0()
    # slow for minutes 0-3, fast at 4, slow again from 5 on
    for minute in range(0, 60):
        value = 50.0 if minute == 4 else 300.0
        put(state_path, [("latency", start + minute * MINUTE + 10 + i, value, {"node": "fra-1"}) for i in range(5)])

    def check(minute):
        report = alerts.check(state, now=at(start + minute * MINUTE + 30))
        return report.instances[0]

    assert check(2).evaluation == "pending"  # minute 0's evaluation, at its end, is 1m30 ago
    assert check(3).change == "fired" and [b["status"] for b in hook.received] == ["firing"]
    assert check(4).change == "resolved" and [b["status"] for b in hook.received] == ["firing", "resolved"]
    assert check(7).evaluation == "pending"
    again = check(8)
    assert again.change == "fired" and again.notification == "cooldown" and len(hook.received) == 2
    assert check(20).notification == "cooldown" and len(hook.received) == 2
    reminder = check(34)  # past the cooldown from the first notification, still firing: told again
    assert reminder.notification == "sent" and [b["status"] for b in hook.received] == ["firing", "resolved", "firing"]
    assert [e.status for e in alerts.history(state)] == ["firing", "resolved", "firing"]


def test_a_silence_mutes_notifications_until_it_is_lifted(cli, state_path, hook):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--webhook", hook.url)
    silenced = cli("analytics", "alerts", "silence", "lat", "--for", "2h", "--reason", "deploying", "-o", "json")
    assert silenced.exit_code == 0 and silenced.json()["silenced"] and silenced.json()["silence_reason"] == "deploying"
    put(state_path, slow_minutes(node="fra-1"))
    run = cli("analytics", "alerts", "check", "-o", "json")
    assert run.exit_code == 0  # firing, but silenced: nothing to page about
    [alert] = run.json()["alerts"]
    assert alert["evaluation"] == "firing" and alert["silenced"] and alert["notification"] == "silenced"
    assert run.json()["silenced"] == 1 and run.json()["firing"] == 0
    assert hook.requests == []
    assert "firing (silenced)" in cli("analytics", "alerts", "check").stdout
    assert [e["status"] for e in cli("analytics", "alerts", "history", "-o", "json").json()] == ["firing"]
    lifted = cli("analytics", "alerts", "unsilence", "lat")
    assert lifted.exit_code == 0 and "silence lifted" in lifted.stdout
    assert cli("analytics", "alerts", "check").exit_code == 3
    assert [b["status"] for b in hook.received] == ["firing"]
    assert "was not silenced" in cli("analytics", "alerts", "unsilence", "lat").stdout


def test_slack_gets_its_text_form(cli, state_path, monkeypatch):
    from edgectl.analytics.notify import payload_format

    assert payload_format("https://hooks.slack.com/services/T0/B0/x", "auto") == "slack"
    assert payload_format("https://alerts.example.com/hook", "auto") == "alertmanager"
    with WebhookReceiver(mode="slack") as slack:
        monkeypatch.setenv("SLACK_HOOK", slack.url + "/services/T000/B000/XXXX")
        cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--by", "node",
            "--webhook", "env:SLACK_HOOK", "--webhook-format", "slack", "--severity", "critical")
        put(state_path, slow_minutes(node="fra-1") + slow_minutes(node="iad-1"))
        run = cli("analytics", "alerts", "check", "-o", "json")
        assert run.exit_code == 3 and run.json()["notifications"][0]["ok"], run.stderr
        [body] = slack.received
        assert set(body) == {"text"}
        first, *lines = body["text"].splitlines()
        assert first == "[FIRING:2] lat (critical)"
        assert len(lines) == 2 and all(line.startswith("• latency p95 ") for line in lines)
        assert any("on node iad-1" in line for line in lines)


def test_a_webhook_secret_never_reaches_the_state_the_output_or_the_logs(cli, state_path, hook, monkeypatch, isolated):
    secret = "s3cr3t-hook-token-4f1e"
    monkeypatch.setenv("ALERT_HOOK", f"{hook.url}/hooks/{secret}")
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--webhook", "env:ALERT_HOOK")
    put(state_path, slow_minutes(node="fra-1"))
    hook.fail_next(500)
    runs = [cli("analytics", "alerts", "check", "--debug", "-o", "json")]
    assert runs[0].exit_code == 3 and hook.requests[-1].path == f"/hooks/{secret}"  # it was sent there
    hook.fail_always(500)
    put(state_path, [("latency", time.time() - 2, 40.0, {"node": "fra-1"}) for _ in range(50)])
    runs.append(cli("analytics", "alerts", "check", "--debug"))
    assert runs[-1].exit_code == 1 and "http://127.0.0.1:" in runs[-1].stderr  # the host, not the path
    runs += [cli("analytics", "alerts", "show", "lat", "-o", "json"), cli("analytics", "alerts", "list"),
             cli("analytics", "alerts", "history", "-o", "json")]
    assert runs[-3].json()["webhook"] == "env:ALERT_HOOK"
    for run in runs:
        assert secret not in run.stdout + run.stderr
    for path in isolated.iterdir():
        if path.name.startswith("state.db"):
            assert secret.encode() not in path.read_bytes(), path
    monkeypatch.delenv("ALERT_HOOK")
    hook.reset()
    unset = cli("analytics", "alerts", "check")
    assert unset.exit_code == 1 and "environment variable ALERT_HOOK is not set" in unset.stderr


def test_a_webhook_variable_not_set_is_a_warning_at_add_and_exit_1_at_a_check_while_firing(cli, state_path,
                                                                                          monkeypatch):
    monkeypatch.delenv("UNSET_VAR", raising=False)
    added = cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms",
                "--webhook", "env:UNSET_VAR")
    assert added.exit_code == 0  # cron's environment may set it
    assert "warning: alert lat webhook: environment variable UNSET_VAR is not set" in added.stderr
    assert cli("analytics", "alerts", "show", "lat", "-o", "json").json()["webhook"] == "env:UNSET_VAR"
    monkeypatch.setenv("SET_VAR", "http://127.0.0.1:9/hook")
    quiet = cli("analytics", "alerts", "add", "lat2", "--metric", "latency", "--above", "200ms", "--webhook", "env:SET_VAR")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
    put(state_path, slow_minutes(node="fra-1"))
    monkeypatch.delenv("SET_VAR")
    run = cli("analytics", "alerts", "check", "-q")
    assert run.exit_code == 1 and run.stdout == ""
    assert "environment variable UNSET_VAR is not set" in run.stderr
    assert error_after_warnings(run) == ("error: 2 alert(s) firing, and 2 notification(s) not delivered: "
                                         "lat (1 firing) to env:UNSET_VAR; lat2 (1 firing) to env:SET_VAR")


def test_a_rule_that_cannot_be_evaluated_is_exit_1_while_others_fire(cli, state_path, state):
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms")
    cli("analytics", "alerts", "add", "old", "--metric", "cpu", "--above", "90%")
    with state.db.atomic():  # a rule on a metric this edgectl no longer records
        state.db.execute("UPDATE alert_rules SET metric = 'gone.metric' WHERE name = 'old'")
    put(state_path, slow_minutes(node="fra-1"))
    run = cli("analytics", "alerts", "check", "-q")
    assert run.exit_code == 1 and "alert old: --metric 'gone.metric'" in run.stderr
    assert error_after_warnings(run) == "error: 1 alert(s) firing, and 1 rule(s) not evaluated"


def test_a_webhook_url_from_a_secret_may_carry_basic_auth_never_shown(cli, state_path, hook, monkeypatch, isolated):
    import base64

    password = "pa:ss/w@rd-9f3e"
    monkeypatch.setenv("SECRETHOOK", f"http://ops%40example:{password.replace(':', '%3A').replace('/', '%2F').replace('@', '%40')}"
                                     f"@{hook.url.removeprefix('http://')}/x")
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--webhook", "env:SECRETHOOK")
    put(state_path, slow_minutes(node="fra-1"))
    hook.fail_next(500)  # a failed attempt's error is shown too
    run = cli("analytics", "alerts", "check", "--debug", "-o", "json")
    assert run.exit_code == 3, run.stderr
    assert [r.path for r in hook.requests] == ["/x", "/x"] and run.json()["notifications"][0]["ok"]
    expected = "Basic " + base64.b64encode(f"ops@example:{password}".encode()).decode()
    assert {r.headers.get("authorization") for r in hook.requests} == {expected}
    hook.fail_always(503)
    put(state_path, [("latency", time.time() - 2, 40.0, {"node": "fra-1"}) for _ in range(50)])
    failed = cli("analytics", "alerts", "check", "--debug")
    assert failed.exit_code == 1 and "HTTP 503" in failed.stderr
    for shown in (run, failed, cli("analytics", "alerts", "show", "lat", "-o", "json")):
        text = shown.stdout + shown.stderr
        assert "pa:ss" not in text and "pa%3Ass" not in text and expected.split()[1] not in text
        assert "ops%40example" not in text and "ops@example" not in text
    monkeypatch.setenv("SECRETHOOK", "http://ops:pw@/x")
    bad = cli("analytics", "alerts", "check")
    assert bad.exit_code == 1 and "env:SECRETHOOK is not an http(s) URL with a host" in bad.stderr
    assert "ops:pw" not in bad.stderr


def test_two_checks_at_once_record_and_send_each_transition_once(cli, state_path, hook):
    nodes = [f"n{i}" for i in range(8)]
    for name in ("lat-a", "lat-b", "lat-c"):
        cli("analytics", "alerts", "add", name, "--metric", "latency", "--above", "200ms", "--by", "node",
            "--webhook", hook.url)
    put(state_path, [row for node in nodes for row in slow_minutes(node=node, count=5)])
    env = {**os.environ, "EDGECTL_STATE": str(state_path)}
    processes = [subprocess.Popen([sys.executable, "-m", "edgectl", "analytics", "alerts", "check", "-o", "json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [3, 3], [err for _, err in outputs]
    changes = [a["change"] for out, _ in outputs for a in json.loads(out)["alerts"]]
    assert changes.count("fired") == 24  # each of the 24 transitions recorded by one of the two
    events = cli("analytics", "alerts", "history", "-o", "json").json()
    assert len(events) == 24 and len({(e["alert"], e["fingerprint"]) for e in events}) == 24
    told = [(b["groupLabels"]["alertname"], a["fingerprint"]) for b in hook.received for a in b["alerts"]]
    assert sorted(told) == sorted({(e["alert"], e["fingerprint"]) for e in events})


def test_json_of_list_show_check_and_history(cli, state_path, state):
    from edgectl.analytics import alerts

    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--by", "node")
    put(state_path, slow_minutes(node="fra-1"))
    check = cli("analytics", "alerts", "check", "-o", "json").json()
    assert set(check) == {"at", "rules", "recorded", "firing", "silenced", "alerts", "notifications", "errors"}
    [alert] = check["alerts"]
    assert {"alert", "labels", "fingerprint", "status", "evaluation", "value", "threshold", "unit", "condition",
            "starts_at", "ends_at", "change", "notification", "silenced"} <= set(alert)
    [listed] = cli("analytics", "alerts", "list", "-o", "json").json()
    assert listed["name"] == "lat" and listed["firing"] == 1 and listed["webhook"] is None
    shown = cli("analytics", "alerts", "show", "lat", "-o", "json").json()
    assert shown["firing"] == 1 and shown["instances"][0]["fingerprint"] == alert["fingerprint"]
    [event] = cli("analytics", "alerts", "history", "--since", "1h", "-o", "json").json()
    assert event["status"] == "firing" and event["labels"]["node"] == "fra-1" and event["threshold"] == 200
    assert cli("analytics", "alerts", "history", "other", "-o", "json").json() == []
    [now_firing] = alerts.firing(state)
    assert now_firing.rule.name == "lat" and now_firing.value == pytest.approx(300, rel=0.01)
    dry = cli("analytics", "alerts", "check", "--dry-run", "-o", "json").json()
    assert dry["recorded"] is False and dry["alerts"][0]["evaluation"] == "firing"
    removed = cli("analytics", "alerts", "remove", "lat", "-o", "json")
    assert removed.exit_code == 0 and removed.json() == {"name": "lat", "removed": True}
    assert len(cli("analytics", "alerts", "history", "-o", "json").json()) == 1  # the events stay
    assert alerts.firing(state) == []


def test_history_list_and_the_payload_say_values_durations_and_times_as_a_person_reads_them(cli, state_path, hook):
    cli("analytics", "alerts", "add", "cold", "--metric", "hit_ratio", "--below", "90%", "--cooldown", "0",
        "--webhook", hook.url)
    cli("analytics", "alerts", "add", "slow", "--metric", "latency", "--stat", "p95", "--above", "200ms")
    rows = []
    for m in range(1, 7):
        when = time.time() - 30 - MINUTE * m
        rows += [("requests", when, 800.0, {}), ("cache.hits", when, 410.0, {})]
    put(state_path, rows + slow_minutes(value=409.0))
    check = cli("analytics", "alerts", "check")
    assert check.exit_code == 3, check.stderr
    assert "51.25%" in check.stdout and "409ms" in check.stdout
    table = cli("analytics", "alerts", "history").stdout
    assert "51.25%" in table and "409ms" in table and "90%" in table and "200ms" in table
    assert "0.5125" not in table
    events = {e["alert"]: e for e in cli("analytics", "alerts", "history", "-o", "json").json()}
    assert events["cold"]["value"] == pytest.approx(0.5125) and events["cold"]["value_text"] == "51.25%"
    assert events["slow"]["threshold_text"] == "200ms" and events["slow"]["unit"] == "ms"
    [body] = hook.received
    description = body["alerts"][0]["annotations"]["description"]
    assert description.startswith("hit_ratio has been below 90% ") and "ratio ratio" not in description
    listed = {r["name"]: r for r in cli("analytics", "alerts", "list", "-o", "json").json()}
    assert listed["cold"]["cooldown"] == "0s" and listed["slow"]["cooldown"] == "30m"
    [cold] = [line for line in cli("analytics", "alerts", "list").stdout.splitlines() if line.startswith("cold ")]
    assert " 0s " in cold and "0ms" not in cold

    silenced = cli("analytics", "alerts", "silence", "slow", "--for", "2h", "-o", "json").json()
    until = datetime.fromisoformat(silenced["silenced_until"].replace("Z", "+00:00"))
    listing = cli("analytics", "alerts", "list").stdout
    assert f"{until:%Y-%m-%d %H:%M} UTC" in listing and "in 1h" not in listing
    assert f"{until:%Y-%m-%d %H:%M} UTC" in cli("analytics", "alerts", "show", "slow").stdout

    for since in ("0", "0s"):
        zero = cli("analytics", "alerts", "history", "--since", since)
        assert zero.exit_code == 2 and "--since must be more than zero" in one_line_error(zero)
    assert len(cli("analytics", "alerts", "history", "--since", "1h", "-o", "json").json()) == 2


def test_an_event_from_before_units_were_kept_takes_its_rules_unit(cli, state_path, state):
    cli("analytics", "alerts", "add", "slow", "--metric", "latency", "--above", "200ms")
    put(state_path, slow_minutes(value=409.0))
    assert cli("analytics", "alerts", "check").exit_code == 3
    with state.db.atomic():
        state.db.execute("UPDATE alert_events SET unit = NULL")
        state.db.execute("INSERT INTO alert_events (rule, fingerprint, labels, status, value, threshold, severity,"
                         " starts_at, at) VALUES ('gone', '0', '{}', 'firing', 0.25, 0.5, 'warning',"
                         " '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')")
    events = {e["alert"]: e for e in cli("analytics", "alerts", "history", "-o", "json").json()}
    assert events["slow"]["value_text"].endswith("ms") and events["slow"]["unit"] == "ms"
    assert (events["gone"]["value_text"], events["gone"]["unit"]) == ("0.25", None)  # its rule is gone: bare


def test_the_performance_screen_lists_the_firing_alerts(cli, state_path):
    before = cli("analytics", "performance", "-o", "json")
    assert before.exit_code == 0 and before.json()["alerts"] == {"rules": False, "firing": []}
    assert "no alert rules" in cli("analytics", "performance").stdout
    cli("analytics", "alerts", "add", "idle", "--metric", "cpu", "--above", "99%")
    assert cli("analytics", "performance", "-o", "json").json()["alerts"] == {"rules": True, "firing": []}
    assert "none firing" in cli("analytics", "performance").stdout
    cli("analytics", "alerts", "add", "lat", "--metric", "latency", "--above", "200ms", "--by", "node",
        "--severity", "critical")
    put(state_path, slow_minutes(node="fra-1", region="eu") + slow_minutes(node="ams-1", region="eu", value=50.0))
    assert cli("analytics", "alerts", "check").exit_code == 3
    screen = cli("analytics", "performance", "-o", "json")
    assert screen.exit_code == 0, screen.stderr
    alerts = screen.json()["alerts"]
    assert alerts["rules"] is True
    [alert] = alerts["firing"]
    assert alert["name"] == "lat" and alert["severity"] == "critical" and alert["labels"] == {"node": "fra-1"}
    assert alert["value"] == "300ms" and alert["since"]
    assert "lat" in cli("analytics", "performance").stdout
