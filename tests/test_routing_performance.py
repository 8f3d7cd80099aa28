"""`routing performance`: per source of the rules, where it goes now, its clients' p50/p95 against the threshold."""

from __future__ import annotations

import random
import time

import pytest

from tests.routing_state import add_node, add_rule, write_config

MINUTE = 60_000


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, -(-int(round(q * 1_000_000)) * len(ordered) // 1_000_000))
    return ordered[rank - 1]


def close(answer: float, truth: float) -> bool:
    return abs(answer - truth) <= 0.006 * truth


def put_latency(state_path, clients: dict[tuple[str, str], list[float]], *, minutes_ago=(1, 20 * 60)) -> None:
    """Latency samples of clients by (country, region), as real-user measurements carry them."""
    from edgectl.analytics.metrics import key
    from edgectl.analytics.samples import Sample
    from edgectl.analytics.store import ingest
    from edgectl.state import open_state

    rng = random.Random(1)
    now = int(time.time() * 1000)
    samples = [Sample(key("latency", node="edge", country=country, region=region, labels={"source": "ingest"}),
                      now - int(rng.uniform(*minutes_ago) * MINUTE), value)
               for (country, region), values in clients.items() for value in values]
    state = open_state(state_path)
    try:
        ingest(state, samples)
    finally:
        state.close()


def spread(rng: random.Random, scale: float, n: int = 400) -> list[float]:
    return [round(rng.lognormvariate(0, 0.35) * scale, 3) for _ in range(n)]


@pytest.fixture
def rules(cli, isolated):
    write_config(isolated, '[routing.regions]\ndach = ["DE", "AT", "CH"]\n')
    for name in ("fra-1", "ams-1", "iad-1", "sfo-1", "zrh-1"):
        add_node(cli, name)
    return {
        "country:DE": add_rule(cli, "--country", "DE", "--target", "fra-1", "--latency-threshold", "40ms",
                               "--failover", "zrh-1"),
        "region:dach": add_rule(cli, "--region", "dach", "--target", "zrh-1", "--latency-threshold", "150ms"),
        "continent:EU": add_rule(cli, "--continent", "EU", "--target", "ams-1", "--latency-threshold", "160ms"),
        "subdivision:US-CA": add_rule(cli, "--subdivision", "US-CA", "--target", "sfo-1",
                                      "--latency-threshold", "250ms"),
        "region:WNAM": add_rule(cli, "--region", "WNAM", "--target", "sfo-1", "--latency-threshold", "300ms"),
        "default": add_rule(cli, "--default", "--target", "iad-1"),  # 200 ms, the reference's default
    }


@pytest.fixture
def clients(state_path):
    rng = random.Random(9)
    data = {("DE", ""): spread(rng, 45.0), ("AT", "9"): spread(rng, 30.0), ("FR", ""): spread(rng, 60.0),
            ("US", "CA"): spread(rng, 80.0), ("US", "US-WA"): spread(rng, 90.0), ("US", "NY"): spread(rng, 70.0),
            ("JP", "13"): spread(rng, 260.0)}
    put_latency(state_path, data)
    return data


def test_each_source_has_its_clients_percentiles_its_node_and_its_violation(cli, rules, clients):
    run = cli("routing", "performance", "--since", "24h", "-o", "json")
    assert run.exit_code == 0, run.stderr
    rows = {r["source"]: r for r in run.json()}
    assert list(rows) == ["subdivision:US-CA", "country:DE", "region:dach", "region:WNAM", "continent:EU", "default"]
    members = {
        "country:DE": [("DE", "")],
        "region:dach": [("DE", ""), ("AT", "9")],
        "continent:EU": [("DE", ""), ("AT", "9"), ("FR", "")],
        "subdivision:US-CA": [("US", "CA")],
        "region:WNAM": [("US", "CA"), ("US", "US-WA")],  # Cloudflare's western North America
        "default": [("US", "NY"), ("JP", "13")],  # no other rule's source covers them
    }
    for source, who in members.items():
        values = [v for client in who for v in clients[client]]
        row = rows[source]
        assert row["samples"] == len(values), source
        assert close(row["p50"], exact(values, 0.5)) and close(row["p95"], exact(values, 0.95)), source
        threshold = rules[source]["latency_threshold_ms"]
        assert row["latency_threshold_ms"] == threshold
        assert row["violation"] is (exact(values, 0.95) > threshold), source
        assert row["rules"] == [rules[source]["id"]] and row["node"] == rules[source]["target"]
        assert row["via"] == f"rule {rules[source]['id']}"
    # the thresholds are set well away from each p95, so the histogram's error decides nothing
    assert {s for s, r in rows.items() if r["violation"]} == {"country:DE", "default"}
    assert rows["country:DE"]["status"] == "violation" and rows["continent:EU"]["status"] == "ok"

    table = cli("routing", "performance")
    assert table.exit_code == 0
    line = next(x for x in table.stdout.splitlines() if x.startswith("country:DE"))
    assert "fra-1" in line and "violation" in line and "40.0ms" in line
    assert "2 of 6 source(s) above their latency threshold: country:DE, default" in table.stderr


def test_check_exits_3_on_a_violation(cli, rules, clients):
    run = cli("routing", "performance", "--check", "-o", "json")
    assert run.exit_code == 3
    assert {r["source"] for r in run.json() if r["violation"]} == {"country:DE", "default"}  # the data still printed
    assert run.error["message"].startswith("2 source(s) above their latency threshold: country:DE, default")
    assert cli("routing", "rules", "update", str(rules["country:DE"]["id"]), "--latency-threshold", "1s").exit_code == 0
    assert cli("routing", "rules", "update", str(rules["default"]["id"]), "--latency-threshold", "1s").exit_code == 0
    assert cli("routing", "performance", "--check").exit_code == 0


def test_the_node_is_where_resolve_sends_the_source_now(cli, rules, clients, fleet):
    port = fleet.add("error")
    assert cli("nodes", "update", "fra-1", "--endpoint", f"http://127.0.0.1:{port}").exit_code == 0
    assert cli("nodes", "check", "fra-1", "--fail-after", "1").exit_code == 1
    rows = {r["source"]: r for r in cli("routing", "performance", "-o", "json").json()}
    germany = rows["country:DE"]
    assert germany["node"] == "zrh-1" and germany["via"] == f"failover of rule {rules['country:DE']['id']}"
    assert germany["latency_threshold_ms"] == 40  # still the source's own rule's
    assert cli("routing", "rules", "disable", str(rules["region:WNAM"]["id"])).exit_code == 0
    rows = {r["source"]: r for r in cli("routing", "performance", "-o", "json").json()}
    assert "region:WNAM" not in rows  # only active rules' sources
    # US-WA's clients now fall to the default source
    assert rows["default"]["samples"] == sum(len(clients[c]) for c in (("US", "NY"), ("US", "US-WA"), ("JP", "13")))


def test_a_source_no_node_can_serve_says_why_and_is_a_violation(cli, rules, clients):
    from datetime import timedelta

    from tests.routing_state import age_heartbeat, heartbeat

    for name in ("fra-1", "ams-1", "iad-1", "sfo-1", "zrh-1"):
        heartbeat(cli, name)
        age_heartbeat(name, timedelta(minutes=10))  # every node stale: none can serve anything
    run = cli("routing", "performance", "-o", "json")
    assert run.exit_code == 0, run.stderr
    rows = {r["source"]: r for r in run.json()}
    germany = rows["country:DE"]
    assert (germany["node"], germany["via"], germany["status"], germany["violation"]) == (None, None, "no node", True)
    explained = cli("routing", "resolve", "DE", "--explain", "-o", "json")
    assert explained.exit_code == 1
    resolve_says = explained.json()["steps"][-1]["text"]
    assert resolve_says.startswith("no node can serve")
    assert germany["reason"] == resolve_says
    assert all(r["status"] == "no node" and r["reason"].startswith("no node can serve") for r in rows.values())

    table = cli("routing", "performance")
    line = next(x for x in table.stdout.splitlines() if x.startswith("country:DE"))
    assert "no node" in line and "no node can serve" in line
    assert f"6 of 6 source(s) no node can serve: {', '.join(rows)}" in table.stderr

    check = cli("routing", "performance", "--check")
    assert check.exit_code == 3
    error = [line for line in check.stderr.splitlines() if line.startswith("error: ")]
    assert error == [f"error: 6 source(s) no node can serve: {', '.join(rows)}"]


def test_a_slow_source_gives_its_p95_and_threshold_as_the_reason(cli, rules, clients):
    rows = {r["source"]: r for r in cli("routing", "performance", "-o", "json").json()}
    assert rows["country:DE"]["reason"].startswith("p95 ") and rows["country:DE"]["reason"].endswith(
        "above the 40.0ms threshold")
    assert rows["continent:EU"]["reason"] is None


def test_old_samples_and_samples_without_a_client_country_belong_to_no_source(cli, rules, state_path):
    put_latency(state_path, {("", ""): [500.0] * 50}, minutes_ago=(1, 60))  # a node's own probes
    put_latency(state_path, {("DE", ""): [900.0] * 50}, minutes_ago=(26 * 60, 30 * 60))
    put_latency(state_path, {("DE", ""): [20.0] * 10}, minutes_ago=(1, 60))
    rows = {r["source"]: r for r in cli("routing", "performance", "-o", "json").json()}
    assert rows["country:DE"]["samples"] == 10 and rows["country:DE"]["p95"] == 20.0
    assert rows["default"]["samples"] == 0 and rows["default"]["status"] == "no samples"
    assert cli("routing", "performance", "--since", "2d", "-o", "json").json()[1]["samples"] == 60


def test_an_empty_history_says_so_and_exits_0(cli, rules):
    run = cli("routing", "performance", "--check")
    assert run.exit_code == 0
    assert "no samples in the last 24h" in run.stderr
    assert all(r["status"] == "no samples" and r["p95"] is None for r in cli("routing", "performance", "-o", "json").json())


def test_no_rules_and_bad_input(cli):
    run = cli("routing", "performance")
    assert run.exit_code == 0 and "no active routing rules" in run.stderr
    assert cli("routing", "performance", "-o", "json").json() == []
    bad = cli("routing", "performance", "--since", "soon")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
