"""`routing simulate`: where each location goes before and after nodes fail or drain, changing nothing in state."""

from __future__ import annotations

import pytest

from tests.routing_state import (
    add_node, add_rule, assert_usage_error, counters, node_for, record_latency, state_dump,
)

PLACES = "DE\nFR\nNL\nUS\n"


@pytest.fixture
def estate(cli, isolated):
    """Four nodes in three regions, a rule per country, and a file of those countries."""
    for name, region in (("fra-1", "eu-central"), ("ams-1", "eu-west"), ("par-1", "eu-west"), ("iad-1", "us-east")):
        add_node(cli, name, "--region", region)
    rules = {
        "DE": add_rule(cli, "--country", "DE", "--target", "fra-1", "--failover", "ams-1"),
        "FR": add_rule(cli, "--country", "FR", "--target", "par-1"),
        "NL": add_rule(cli, "--country", "NL", "--target", "ams-1"),
        "US": add_rule(cli, "--country", "US", "--target", "iad-1"),
    }
    (isolated / "work" / "places.txt").write_text(PLACES)
    return rules


def simulate(cli, *args: str):
    run = cli("routing", "simulate", *args, "--locations", "places.txt", "-o", "json")
    assert run.exit_code in (0, 1), run.stderr
    return run


def moves(record: dict) -> dict[str, dict]:
    return {m["location"]: m for m in record["moves"]}


def model_ms(km: float) -> float:
    # the stated model: 5 ms for the last mile and the server, 0.015 ms a km of distance
    return round(5 + 0.015 * km, 1)


def test_a_failed_node_moves_its_locations_and_says_what_it_costs(cli, estate):
    run = simulate(cli, "--fail", "fra-1")
    assert run.exit_code == 0, run.stderr
    record = run.json()
    assert (record["failed"], record["drained"], record["locations"], record["changed"], record["stranded"]) == (
        ["fra-1"], [], 4, 1, [])
    germany = moves(record)["DE"]
    assert (germany["name"], germany["before"], germany["after"], germany["changed"]) == (
        "Germany", "fra-1", "ams-1", True)
    before, after = germany["distance_before_km"], germany["distance_after_km"]
    assert before < after and germany["distance_change_km"] == round(after - before, 1)
    # no probes recorded, so the latency is the distance model's, and says so
    assert germany["latency_estimated"] is True
    assert (germany["latency_before_ms"], germany["latency_after_ms"]) == (model_ms(before), model_ms(after))
    assert germany["latency_change_ms"] == round(model_ms(after) - model_ms(before), 1)
    others = {place: (m["before"], m["after"], m["changed"]) for place, m in moves(record).items() if place != "DE"}
    assert others == {"FR": ("par-1", "par-1", False), "NL": ("ams-1", "ams-1", False),
                      "US": ("iad-1", "iad-1", False)}
    assert moves(record)["FR"]["distance_change_km"] == 0


def test_recorded_latency_is_used_where_probes_exist(cli, estate):
    record_latency("fra-1", 10.0, 12.0)
    record_latency("ams-1", 25.0)
    germany = moves(simulate(cli, "--fail", "fra-1").json())["DE"]
    latency = (germany["latency_before_ms"], germany["latency_after_ms"], germany["latency_change_ms"])
    assert latency == (12.0, 25.0, 13.0)  # the p95 of 10 and 12 is 12
    assert germany["latency_estimated"] is False


def test_a_failed_region_fails_each_of_its_nodes(cli, estate):
    record = simulate(cli, "--fail", "region:eu-west").json()
    assert record["failed"] == ["ams-1", "par-1"] and record["stranded"] == []
    assert {m["location"]: m["after"] for m in record["moves"]} == {"DE": "fra-1", "FR": "fra-1", "NL": "fra-1",
                                                                    "US": "iad-1"}


def test_a_drained_node_and_only_the_changed_locations(cli, estate):
    run = cli("routing", "simulate", "--drain", "iad-1", "--locations", "places.txt", "--changed", "-o", "json")
    assert run.exit_code == 0, run.stderr
    record = run.json()
    assert (record["failed"], record["drained"], record["changed"]) == ([], ["iad-1"], 1)
    assert [(m["location"], m["before"], m["after"]) for m in record["moves"]] == [("US", "iad-1", "ams-1")]
    assert record["moves"][0]["distance_change_km"] > 5000


def test_a_location_left_without_a_node_is_exit_1(cli, estate):
    assert cli("routing", "rules", "update", str(estate["DE"]["id"]), "--jurisdiction", "eu").exit_code == 0
    run = simulate(cli, "--fail", "fra-1", "--fail", "par-1", "--drain", "ams-1")
    assert run.exit_code == 1
    record = run.json()
    assert record["stranded"] == ["DE"] and moves(record)["DE"]["after"] is None
    # no rule keeps France or the Netherlands in the EU: they may go to the US
    assert (moves(record)["FR"]["after"], moves(record)["NL"]["after"]) == ("iad-1", "iad-1")
    assert run.error["message"] == "1 location(s) would have no node: DE"


def test_a_simulation_changes_nothing_in_state(cli, estate):
    for name in ("fra-1", "ams-1", "par-1"):
        add_rule(cli, "--default", "--target", name)
    assert node_for(cli, "JP", "-s", "round_robin") == "ams-1"  # a counter to leave alone
    before, turns = state_dump(), counters()
    for args in (["--fail", "ams-1"], ["--fail", "region:eu-west"], ["--drain", "fra-1", "--changed"]):
        run = cli("routing", "simulate", *args, "-s", "round_robin", "--locations", "countries", "-o", "json")
        assert run.exit_code == 0, run.stderr
    assert state_dump() == before and counters() == turns == {"round_robin:default": 1}
    assert node_for(cli, "JP", "-s", "round_robin") == "fra-1"


def test_the_table_says_what_is_supposed_and_that_latency_is_estimated(cli, estate):
    run = cli("routing", "simulate", "--fail", "fra-1", "--locations", "places.txt", "--changed")
    assert run.exit_code == 0, run.stderr
    assert "fra-1" in run.stdout and "ams-1" in run.stdout and "FR" not in run.stdout
    assert "supposing fra-1 failed: 1 of 4 location(s) change node" in run.stderr
    assert "latency marked estimated: no probes recorded, so 5 ms + 0.015 ms per km of distance" in run.stderr


@pytest.mark.parametrize("args, says", [
    ([], "nothing to simulate"),
    (["--fail", "ghost"], "unknown node 'ghost'"),
    (["--drain", "ghost"], "unknown node 'ghost'"),
    (["--fail", "fra-2"], "did you mean fra-1?"),
    (["--fail", "ghost", "--drain", "phantom"], "unknown nodes: ghost, phantom"),
    (["--fail", "region:mars"], "no nodes in region 'mars'"),
    (["--fail", "region:"], "--fail region:: which region?"),
    (["--fail", "region: "], "which region?"),
    (["--fail", "fra-1", "--strategy", "fastest"], "unknown strategy 'fastest'"),
    (["--fail", "fra-1", "--window", "soon"], "--window"),
    (["--fail", "fra-1", "--window", "0s"], "--window must be more than zero"),
    (["--fail", "fra-1", "--capability", ""], "--capability '' is not a capability"),
    (["--fail", "fra-1", "--locations", "no-such-file.txt"], "--locations no-such-file.txt"),
    (["--fail", "fra-1", "--locations", "bad.txt"], "bad.txt:2: location 'US-ZZ' is not an ISO 3166-2 subdivision"),
])
def test_bad_input_is_one_line_and_exit_2(cli, estate, isolated, args, says):
    (isolated / "work" / "bad.txt").write_text("DE\nUS-ZZ\n")
    before = state_dump()
    assert_usage_error(cli("routing", "simulate", *args), says)
    assert state_dump() == before
