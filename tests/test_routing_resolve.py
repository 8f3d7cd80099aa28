"""`routing resolve`: the resolve order, every strategy, jurisdictions, GeoIP, many locations, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from tests.routing_state import (
    add_node, add_nodes, add_rule, age_heartbeat, assert_usage_error, candidates, heartbeat, node_for,
    record_latency, resolve, steps, write_config,
)


CAPABILITIES = {"fra-1": ("cache",), "ams-1": ("cache", "waf"), "par-1": ("cache", "waf", "brotli")}


def fail(cli, fleet, name: str) -> None:
    """Take a node down the way edgectl does: a probe of an endpoint that answers 500."""
    port = fleet.add("error")
    assert cli("nodes", "update", name, "--endpoint", f"http://127.0.0.1:{port}").exit_code == 0
    run = cli("nodes", "check", name, "--fail-after", "1", "-o", "json")
    assert run.exit_code == 1 and run.json()[0]["status"] == "failed", run.stdout


# --- 1. the most specific matching active rules ------------------------------------------------


def test_the_most_specific_active_rules_win_and_disabled_ones_are_passed_by(cli):
    add_nodes(cli, "sfo-1", "iad-1", "par-1", "fra-1", "nrt-1", "ams-1")
    ladder = [
        add_rule(cli, "--subdivision", "US-CA", "--target", "sfo-1"),
        add_rule(cli, "--country", "US", "--target", "iad-1"),
        add_rule(cli, "--region", "WNAM", "--target", "par-1"),
        add_rule(cli, "--continent", "NA", "--target", "fra-1"),
        add_rule(cli, "--default", "--target", "nrt-1"),
    ]
    # each rule in turn is the most specific one left; disabling it hands US-CA to the next
    for number, rule in enumerate(ladder):
        code, answer = resolve(cli, "US-CA")
        assert code == 0 and (answer["node"], answer["rule"]) == (rule["target"], rule["id"]), answer
        assert answer["via"] == f"rule {rule['id']}"
        rules_steps = steps(answer, "rules")
        # the levels passed by say so: each holds only a disabled rule
        assert [s["text"] for s in rules_steps[:-1]] == [
            f"rules for {r['source']}: 1 disabled, passed by" for r in ladder[:number]]
        assert rules_steps[-1]["text"] == (
            f"rules for {rule['source']}: rule {rule['id']} -> {rule['target']} (weight 100)")
        assert cli("routing", "rules", "disable", str(rule["id"])).exit_code == 0
    code, answer = resolve(cli, "US-CA")
    assert code == 0 and (answer["node"], answer["via"]) == ("sfo-1", "nearest allowed node")


def test_a_region_set_from_the_config_and_a_cloudflare_region_are_one_level(cli, isolated):
    write_config(isolated, '[routing.regions]\ndach = ["DE", "AT", "CH"]\n')
    add_nodes(cli, "zrh-1", "ams-1", "fra-1")
    dach = add_rule(cli, "--region", "dach", "--target", "zrh-1")
    add_rule(cli, "--region", "WEU", "--target", "ams-1", "--weight", "0")
    add_rule(cli, "--continent", "EU", "--target", "fra-1")
    for place in ("DE", "CH", "DE-BY"):
        code, answer = resolve(cli, place)
        assert (answer["node"], answer["rule"]) == ("zrh-1", dach["id"]), answer
        assert steps(answer, "rules")[0]["text"].startswith("rules for region:WEU, region:dach:")
        assert candidates(answer)["ams-1"] == "weight 0"
    # NL is in Cloudflare's WEU but not in dach (and a weight of 0 sends it on to its continent);
    # AT is in dach but in Cloudflare's EEU
    assert candidates(resolve(cli, "NL")[1]) == {"ams-1": "weight 0", "fra-1": None}
    assert candidates(resolve(cli, "AT")[1]) == {"zrh-1": None}
    # a continent is not wholly inside dach, so the continent's own rule answers
    assert resolve(cli, "EU")[1]["node"] == "fra-1"


# --- 2. candidates dropped -----------------------------------------------------------------------


def test_nodes_out_of_service_are_dropped_with_their_status(cli, fleet):
    add_nodes(cli, "fra-1", "ams-1", "par-1", "osl-1", "zrh-1")
    for name in ("fra-1", "ams-1", "par-1", "osl-1", "zrh-1"):
        add_rule(cli, "--country", "DE", "--target", name)
    assert cli("nodes", "drain", "fra-1").exit_code == 0
    assert cli("nodes", "maintenance", "ams-1", "on").exit_code == 0
    assert cli("nodes", "update", "par-1", "--status", "inactive").exit_code == 0
    fail(cli, fleet, "osl-1")
    code, answer = resolve(cli, "DE")
    assert code == 0 and answer["node"] == "zrh-1"
    assert candidates(answer) == {"fra-1": "status draining", "ams-1": "status maintenance",
                                  "par-1": "status inactive", "osl-1": "status failed", "zrh-1": None}


def test_a_node_whose_heartbeats_stopped_three_intervals_ago_is_dropped(cli, isolated):
    add_nodes(cli, "fra-1", "ams-1")
    add_rule(cli, "--country", "DE", "--target", "fra-1")
    add_rule(cli, "--country", "DE", "--target", "ams-1")
    heartbeat(cli, "fra-1", "--cpu", "10")
    assert candidates(resolve(cli, "DE")[1]) == {"fra-1": None, "ams-1": None}  # fresh; ams-1 never sent any
    age_heartbeat("fra-1", timedelta(minutes=10))
    assert candidates(resolve(cli, "DE")[1]) == {"fra-1": "stale: no heartbeat for three intervals", "ams-1": None}
    # ten minutes is under three intervals of five minutes
    write_config(isolated, '[nodes]\nheartbeat_interval = "5m"\n')
    assert candidates(resolve(cli, "DE")[1]) == {"fra-1": None, "ams-1": None}


def test_a_node_slower_than_the_rules_threshold_over_the_window_is_dropped(cli):
    add_nodes(cli, "fra-1", "ams-1", "par-1")
    add_rule(cli, "--country", "DE", "--target", "fra-1")
    slow = add_rule(cli, "--country", "DE", "--target", "ams-1")
    add_rule(cli, "--country", "DE", "--target", "par-1")
    # p95 of twenty samples is the 19th smallest: one slow probe in twenty is the 5% p95 leaves out
    record_latency("fra-1", *[100.0] * 19, 900.0)
    record_latency("ams-1", *[300.0] * 20)
    record_latency("par-1", 900.0, age=timedelta(minutes=30))
    answer = resolve(cli, "DE")[1]
    assert candidates(answer) == {"fra-1": None, "ams-1": "latency p95 300 ms > 200 ms", "par-1": None}
    # from the metrics history's rollups: within their 0.54% of the exact p95
    assert {c["node"]: c.get("p95_ms") for c in steps(answer, "candidates")[0]["candidates"]} == {
        "fra-1": pytest.approx(100.0, rel=0.0055), "ams-1": 300.0, "par-1": None}
    # the window reaches back to par-1's old sample; the rule's own threshold lets ams-1 in
    assert candidates(resolve(cli, "DE", "--window", "1h")[1])["par-1"] == "latency p95 900 ms > 200 ms"
    assert cli("routing", "rules", "update", str(slow["id"]), "--latency-threshold", "350ms").exit_code == 0
    assert candidates(resolve(cli, "DE")[1])["ams-1"] is None


def test_a_node_that_nodes_check_measured_slow_is_dropped(cli, fleet):
    slow_port = fleet.add("slow", delay=0.5)
    add_node(cli, "fra-1", port=slow_port)
    add_nodes(cli, "ams-1")
    rule = add_rule(cli, "--country", "DE", "--target", "fra-1", "--latency-threshold", "250ms",
                    "--failover", "ams-1")
    run = cli("nodes", "check", "fra-1", "--timeout", "10s", "-o", "json")
    assert run.exit_code == 0 and run.json()[0]["latency_ms"] >= 500, run.stdout
    code, answer = resolve(cli, "DE")
    assert candidates(answer)["fra-1"].startswith("latency p95 ")
    assert (code, answer["node"], answer["via"]) == (0, "ams-1", f"failover of rule {rule['id']}")


def test_a_capability_is_required_by_the_rule_or_by_resolve(cli):
    for name, caps in CAPABILITIES.items():
        add_node(cli, name, capabilities=caps)
    add_rule(cli, "--country", "DE", "--target", "fra-1", "--capability", "waf")
    add_rule(cli, "--country", "DE", "--target", "ams-1")
    answer = resolve(cli, "DE")[1]
    assert candidates(answer) == {"fra-1": "lacks capability waf", "ams-1": None} and answer["node"] == "ams-1"
    answer = resolve(cli, "DE", "--capability", "BROTLI")[1]
    assert candidates(answer) == {"fra-1": "lacks capability brotli, waf", "ams-1": "lacks capability brotli"}
    assert (answer["node"], answer["via"]) == ("par-1", "nearest allowed node")


# --- jurisdictions ------------------------------------------------------------------------------


def test_a_nodes_jurisdiction_is_its_label_else_its_countrys(cli, isolated):
    add_nodes(cli, "fra-1", "osl-1", "zrh-1", "iad-1")
    add_node(cli, "sfo-1", "--label", "jurisdiction=EU")
    rule = add_rule(cli, "--country", "DE", "--target", "fra-1", "--jurisdiction", "eu")
    for name in ("osl-1", "zrh-1", "iad-1", "sfo-1"):
        add_rule(cli, "--country", "DE", "--target", name)
    answer = resolve(cli, "DE")[1]
    assert steps(answer, "jurisdictions")[0]["text"] == f"jurisdictions: only eu (rule {rule['id']})"
    # Norway is in the EEA, not the EU: its data moves as freely, so it counts as eu
    assert candidates(answer) == {"fra-1": None, "osl-1": None, "zrh-1": "jurisdiction ch not in eu",
                                  "iad-1": "jurisdiction us not in eu", "sfo-1": None}
    assert answer["jurisdictions"] == ["eu"]
    write_config(isolated, '[routing.jurisdictions]\nCH = "eu"\n')
    assert candidates(resolve(cli, "DE")[1])["zrh-1"] is None


def test_an_eu_rule_whose_only_eu_node_failed_answers_no_node_rather_than_a_us_one(cli, fleet):
    add_nodes(cli, "fra-1", "iad-1")
    eu = add_rule(cli, "--country", "DE", "--target", "fra-1", "--jurisdiction", "eu", "--failover", "iad-1")
    europe = add_rule(cli, "--continent", "EU", "--target", "iad-1")
    fail(cli, fleet, "fra-1")
    run = cli("routing", "resolve", "DE", "--explain", "-o", "json")
    assert run.exit_code == 1, run.stderr
    answer = run.json()
    assert answer["node"] is None and answer["jurisdictions"] == ["eu"]
    why = "jurisdiction us not in eu"
    forbidden = [f"rule {eu['id']} forbade iad-1, the failover of rule {eu['id']} ({why})",
                 f"rule {eu['id']} forbade iad-1, the target of rule {europe['id']} ({why})",
                 f"rule {eu['id']} forbade iad-1 as the nearest node ({why})"]
    assert steps(answer, "none")[0]["detail"]["forbidden"] == forbidden
    assert run.error["message"] == "no node can serve DE; " + ", ".join(forbidden)
    assert run.error["exit_code"] == 1


def test_a_compliance_entry_binds_a_source_to_jurisdictions(cli, isolated):
    write_config(isolated, '[routing.compliance]\nDE = ["eu"]\n')
    add_nodes(cli, "iad-1", "ams-1")
    rule = add_rule(cli, "--country", "DE", "--target", "iad-1")
    default = add_rule(cli, "--default", "--target", "iad-1")
    answer = resolve(cli, "DE")[1]
    assert steps(answer, "jurisdictions")[0]["text"] == "jurisdictions: only eu (routing.compliance DE)"
    assert candidates(answer) == {"iad-1": "jurisdiction us not in eu"}
    assert (answer["node"], answer["via"], answer["rule"]) == ("ams-1", "nearest allowed node", None)
    assert rule["jurisdictions"] == []
    # a place the entry does not name is not bound
    assert resolve(cli, "NL")[1]["node"] == "iad-1"
    assert cli("nodes", "drain", "ams-1").exit_code == 0
    code, answer = resolve(cli, "DE")
    why = "jurisdiction us not in eu"
    assert code == 1 and steps(answer, "none")[0]["detail"]["forbidden"] == [
        f"routing.compliance DE forbade iad-1, the target of rule {rule['id']} ({why})",
        f"routing.compliance DE forbade iad-1, the target of rule {default['id']} ({why})",
        f"routing.compliance DE forbade iad-1 as the nearest node ({why})"]


# --- 3. strategies -------------------------------------------------------------------------------


@pytest.fixture
def three_nodes(cli):
    """fra-1, ams-1 and par-1, each a target of the default rule, so any location has all three."""
    add_nodes(cli, "fra-1", "ams-1", "par-1")
    for name in ("fra-1", "ams-1", "par-1"):
        add_rule(cli, "--default", "--target", name)
    return cli


def test_weighted_splits_keys_by_weight_and_answers_a_key_the_same_every_time(cli):
    add_nodes(cli, "fra-1", "ams-1")
    add_rule(cli, "--country", "DE", "--target", "fra-1", "--weight", "70")
    add_rule(cli, "--country", "DE", "--target", "ams-1", "--weight", "30")
    answers = [node_for(cli, "DE", "--key", f"client-{i}") for i in range(1000)]
    assert 630 <= answers.count("fra-1") <= 770 and answers.count("fra-1") + answers.count("ams-1") == 1000
    assert [node_for(cli, "DE", "--key", f"client-{i}") for i in range(20)] == answers[:20]
    text = steps(resolve(cli, "DE", "--key", "client-7")[1], "strategy")[0]["text"]
    assert text == f"weighted (fra-1 70%, ams-1 30%): {answers[7]}, by key 'client-7'"
    assert steps(resolve(cli, "DE")[1], "strategy")[0]["text"].endswith("by the location as the key")


@pytest.mark.parametrize("location, nearest, km", [("52.52,13.40", "fra-1", 424), ("48.85,2.35", "par-1", 1),
                                                   ("53.55,9.99", "ams-1", 366)])
def test_geo_takes_the_nearest_by_great_circle(three_nodes, location, nearest, km):
    answer = resolve(three_nodes, location, "--strategy", "geo")[1]
    assert answer["node"] == nearest and abs(answer["distance_km"] - km) < 5, answer
    assert steps(answer, "strategy")[0]["text"].startswith(f"geo: {nearest} is nearest")


def test_latency_takes_the_lowest_recent_p95(three_nodes):
    cli = three_nodes
    record_latency("fra-1", 80.0, 90.0)
    record_latency("ams-1", 20.0, 30.0)
    record_latency("par-1", 5.0, age=timedelta(hours=2))  # before the window: not recent
    answer = resolve(cli, "FR", "--strategy", "latency")[1]
    assert answer["node"] == "ams-1" and answer["latency_ms"] == 30.0
    assert steps(answer, "strategy")[0]["text"] == "latency: ams-1 has the lowest p95 (30 ms; fra-1 90 ms)"


def test_latency_without_any_recent_sample_says_so_and_weighs(three_nodes):
    text = steps(resolve(three_nodes, "FR", "--strategy", "latency")[1], "strategy")[0]["text"]
    assert text.startswith("latency: no recent latency recorded; weighted (")


def test_least_loaded_takes_the_lowest_cpu_and_skips_a_node_at_max_concurrent(cli):
    add_nodes(cli, "fra-1", "par-1")
    add_node(cli, "ams-1", "--max-concurrent", "100")
    for name in ("fra-1", "ams-1", "par-1"):
        add_rule(cli, "--default", "--target", name)
    heartbeat(cli, "fra-1", "--cpu", "80")
    heartbeat(cli, "ams-1", report={"cpu_percent": 10, "resources": {"connections": 40}})
    heartbeat(cli, "par-1", "--cpu", "40")
    answer = resolve(cli, "DE", "--strategy", "least_loaded")[1]
    assert answer["node"] == "ams-1"
    assert steps(answer, "strategy")[0]["text"] == (
        "least_loaded: ams-1 has the lowest cpu (10%; par-1 40%, fra-1 80%)")
    heartbeat(cli, "ams-1", report={"cpu_percent": 10, "resources": {"connections": 100}})
    answer = resolve(cli, "DE", "--strategy", "least_loaded")[1]
    assert candidates(answer)["ams-1"] == "at max_concurrent (100 of 100)" and answer["node"] == "par-1"


def test_round_robin_cycles_through_the_nodes_across_processes(three_nodes):
    cli = three_nodes

    def in_a_new_process() -> str:
        run = subprocess.run([sys.executable, "-m", "edgectl", "routing", "resolve", "DE", "-s", "round_robin",
                              "-o", "json"], capture_output=True, text=True, timeout=120, env=dict(os.environ))
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)["node"]

    seen = [node_for(cli, "DE", "-s", "round_robin"), in_a_new_process(), node_for(cli, "DE", "-s", "round_robin"),
            in_a_new_process()]
    assert seen == ["ams-1", "fra-1", "par-1", "ams-1"]  # in name order, from where the last one left off
    assert steps(resolve(cli, "DE", "-s", "round_robin")[1], "strategy")[0]["text"] == (
        "round_robin: turn 4 of ams-1, fra-1, par-1: fra-1")


def test_capability_takes_the_node_with_the_most_matching_capabilities(cli):
    for name, caps in CAPABILITIES.items():
        add_node(cli, name, capabilities=caps)
        add_rule(cli, "--default", "--target", name)
    answer = resolve(cli, "DE", "--strategy", "capability")[1]
    assert answer["node"] == "par-1"
    assert steps(answer, "strategy")[0]["text"] == "capability: par-1 has the most matching capabilities (3)"
    tie = steps(resolve(cli, "DE", "--strategy", "capability", "--capability", "waf")[1], "strategy")[0]["text"]
    assert tie.startswith("capability: 2 tie with 1; weighted (ams-1 50%, par-1 50%)")


def test_adaptive_is_latency_with_fresh_samples_else_geo(three_nodes):
    cli = three_nodes
    answer = resolve(cli, "48.85,2.35", "--strategy", "adaptive")[1]
    assert answer["node"] == "par-1" and steps(answer, "strategy")[0]["detail"] == {"strategy": "geo"}
    record_latency("par-1", 3.0, age=timedelta(hours=1))  # too old to count
    assert steps(resolve(cli, "48.85,2.35", "-s", "adaptive")[1], "strategy")[0]["detail"] == {"strategy": "geo"}
    record_latency("fra-1", 15.0)
    record_latency("par-1", 40.0)
    answer = resolve(cli, "48.85,2.35", "--strategy", "adaptive")[1]
    assert answer["node"] == "fra-1" and steps(answer, "strategy")[0]["detail"] == {"strategy": "latency"}


def test_the_configured_strategy_is_the_default(three_nodes, isolated):
    write_config(isolated, '[routing]\nstrategy = "geo"\n')
    answer = resolve(three_nodes, "48.85,2.35")[1]
    assert (answer["node"], answer["strategy"]) == ("par-1", "geo")


# --- 4. fallbacks --------------------------------------------------------------------------------


def test_fallbacks_failover_then_less_specific_rules_then_the_nearest_node_then_none(cli):
    add_nodes(cli, "fra-1", "ams-1", "par-1", "osl-1", "iad-1")
    germany = add_rule(cli, "--country", "DE", "--target", "fra-1", "--failover", "ams-1")
    europe = add_rule(cli, "--continent", "EU", "--target", "par-1")
    expected = [("ams-1", f"failover of rule {germany['id']}"), ("par-1", f"rule {europe['id']}"),
                ("osl-1", "nearest allowed node"), ("iad-1", "nearest allowed node")]
    for name, (node, via) in zip(["fra-1", "ams-1", "par-1", "osl-1"], expected):
        assert cli("nodes", "drain", name).exit_code == 0
        code, answer = resolve(cli, "DE")
        assert (code, answer["node"], answer["via"]) == (0, node, via), answer
    assert [s["text"] for s in steps(answer, "failover")] == [
        f"failover: ams-1 (rule {germany['id']}) dropped: status draining",
        "no candidate left, and no failover node named"]
    assert len(steps(answer, "fallback")) == 2
    assert steps(answer, "nearest")[0]["text"] == (
        "nearest allowed node: iad-1 (6,532 km); left out: 4 status draining")
    assert cli("nodes", "drain", "iad-1").exit_code == 0
    run = cli("routing", "resolve", "DE", "-o", "json")
    assert run.exit_code == 1 and run.json()["node"] is None
    assert run.error["message"] == "no node can serve DE"
    assert "--explain" in run.error["hint"]


# --- GeoIP ---------------------------------------------------------------------------------------


def test_an_ip_resolves_through_its_subdivision_and_country_rules(cli, geoip_db):
    assert cli("config", "set", "routing.geoip_db", geoip_db).exit_code == 0
    add_nodes(cli, "sfo-1", "iad-1", "nrt-1", "fra-1")
    california = add_rule(cli, "--subdivision", "US-CA", "--target", "sfo-1")
    japan = add_rule(cli, "--country", "JP", "--target", "nrt-1")
    add_rule(cli, "--country", "US", "--target", "iad-1")
    add_rule(cli, "--default", "--target", "fra-1")
    for address, node, rule in (("203.0.113.9", "sfo-1", california), ("::ffff:203.0.113.9", "sfo-1", california),
                                ("2001:db8::1", "nrt-1", japan)):
        answer = resolve(cli, address)[1]
        assert (answer["kind"], answer["node"], answer["rule"]) == ("ip", node, rule["id"]), answer
    answer = resolve(cli, "198.51.100.7")[1]
    assert (answer["country"], answer["node"]) == ("DE", "fra-1")


def test_an_ip_needs_a_configured_database_and_a_known_well_formed_address(cli, geoip_db, isolated):
    add_nodes(cli, "fra-1")
    add_rule(cli, "--default", "--target", "fra-1")
    unset = cli("routing", "resolve", "203.0.113.9")
    assert_usage_error(unset, "routing.geoip_db is not set")
    assert "hint: set routing.geoip_db to a MaxMind City database: edgectl config set routing.geoip_db" in (
        unset.stderr)
    write_config(isolated, f'[routing]\ngeoip_db = "{geoip_db}"\n')
    assert_usage_error(cli("routing", "resolve", "10.0.0.1"), "is not in the GeoIP database")
    assert_usage_error(cli("routing", "resolve", "300.1.2.3"), "is not a valid IP address")
    assert_usage_error(cli("routing", "resolve", "2001:db8:::1"), "is not a valid IP address")


# --- many locations ------------------------------------------------------------------------------


def test_all_countries_and_all_continents(cli):
    from edgectl.routing.locations import all_locations

    add_nodes(cli, "fra-1", "iad-1")
    add_rule(cli, "--continent", "EU", "--target", "fra-1", "--jurisdiction", "eu")
    add_rule(cli, "--default", "--target", "iad-1")
    run = cli("routing", "resolve", "--all", "-o", "json")
    assert run.exit_code == 0, run.stderr
    answers = run.json()
    assert [a["location"] for a in answers] == [place.code for place in all_locations("countries")]
    by_place = {a["location"]: a["node"] for a in answers}
    assert (by_place["DE"], by_place["US"]) == ("fra-1", "iad-1")
    assert "steps" not in answers[0]
    assert cli("routing", "resolve", "--locations", "countries", "-o", "json").json() == answers
    continents = cli("routing", "resolve", "--all", "--locations", "continents", "-o", "json")
    assert continents.exit_code == 0
    assert [(a["location"], a["node"]) for a in continents.json()] == [
        ("AF", "iad-1"), ("AN", "iad-1"), ("AS", "iad-1"), ("EU", "fra-1"), ("NA", "iad-1"), ("OC", "iad-1"),
        ("SA", "iad-1")]
    assert cli("nodes", "drain", "fra-1").exit_code == 0
    stranded = cli("routing", "resolve", "--all", "--locations", "continents", "-o", "json")
    assert stranded.exit_code == 1 and [a["node"] for a in stranded.json()][3] is None
    assert stranded.error["message"] == "1 of 7 location(s) have no node: EU"


def test_locations_from_a_file_and_a_bad_line_named(cli, isolated):
    add_nodes(cli, "fra-1", "iad-1")
    add_rule(cli, "--country", "DE", "--target", "fra-1", "--jurisdiction", "eu")
    add_rule(cli, "--default", "--target", "iad-1")
    places = isolated / "places.txt"
    places.write_text("DE  # Frankfurt's\n\nUS-CA\n52.52,13.40\n")
    run = cli("routing", "resolve", "--all", "--locations", str(places), "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert [(a["location"], a["node"]) for a in run.json()] == [("DE", "fra-1"), ("US-CA", "iad-1"),
                                                                 ("52.52,13.40", "iad-1")]
    from_stdin = cli("routing", "resolve", "--locations", "-", "-o", "json", input=places.read_text())
    assert from_stdin.json() == run.json()
    places.write_text("DE\nUS-CA\nnot-a-place\n")
    assert_usage_error(cli("routing", "resolve", "--all", "--locations", str(places)), f"{places}:3: 'not-a-place'")
    assert cli("nodes", "drain", "fra-1").exit_code == 0
    places.write_text("DE\nUS\n")
    stranded = cli("routing", "resolve", "--locations", str(places), "-o", "json")
    assert stranded.exit_code == 1 and [a["node"] for a in stranded.json()] == [None, "iad-1"]


# --- the table -----------------------------------------------------------------------------------


def test_explain_as_a_table_is_numbered_steps(cli):
    add_nodes(cli, "fra-1", "ams-1")
    rule = add_rule(cli, "--country", "DE", "--target", "fra-1", "--failover", "ams-1")
    assert cli("nodes", "drain", "fra-1").exit_code == 0
    run = cli("routing", "resolve", "DE", "--explain")
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line[:4] for line in lines] == [f"{n:>2}. " for n in range(1, len(lines) + 1)]
    assert lines[0] == " 1. DE: Germany (continent EU, Cloudflare WEU)"
    assert f" 2. rules for country:DE: rule {rule['id']} -> fra-1 (weight 100)" in lines
    assert " 3. candidates: fra-1 dropped: status draining" in lines
    assert lines[-1].startswith(f" 5. => ams-1 (http://127.0.0.1:9) via failover of rule {rule['id']}, ")
    assert cli("nodes", "drain", "ams-1").exit_code == 0
    none = cli("routing", "resolve", "DE", "--explain")
    assert none.exit_code == 1 and none.stdout.splitlines()[-1].endswith(". no node can serve DE")
    assert none.stderr.splitlines() == ["error: no node can serve DE"]


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, says", [
    (["DE", "--strategy", "fastest"], "unknown strategy 'fastest'"),
    (["DE", "--strategy", ""], "unknown strategy ''"),
    (["DE", "--window", ""], "--window: empty duration"),
    (["DE", "--window", "soon"], "--window"),
    (["DE", "--window", "0"], "--window must be more than zero"),
    (["DE", "--window", "-5m"], "--window"),
    (["XX"], "'XX' is not a location"),
    (["US-ZZ"], "not an ISO 3166-2 subdivision of United States"),
    (["91,0"], "latitude 91 is out of range"),
    (["0,181"], "longitude 181 is out of range"),
    (["not-a-place"], "'not-a-place' is not a location"),
    (["AS"], "is both the country American Samoa and the continent Asia"),
    ([""], "empty location"),
    (["DE", "--all"], "give a LOCATION or --all, not both"),
    (["DE", "--locations", "continents"], "give a LOCATION or --all, not both"),
    ([], "which location?"),
    (["DE", "--capability", ""], "--capability '' is not a capability"),
    (["DE", "--capability", "a\tb"], "is not a capability"),
    (["--all", "--locations", "no-such-file.txt"], "--locations no-such-file.txt"),
    (["DE", "--frobnicate"], "No such option"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args, says):
    add_nodes(cli, "fra-1")
    add_rule(cli, "--default", "--target", "fra-1")
    assert_usage_error(cli("routing", "resolve", *args), says)


def test_an_empty_locations_file_is_bad_input(cli, isolated):
    (isolated / "empty.txt").write_text("# nothing yet\n\n")
    assert_usage_error(cli("routing", "resolve", "--locations", str(isolated / "empty.txt")), "names no locations")
