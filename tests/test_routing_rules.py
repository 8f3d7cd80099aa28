"""`routing rules`: rules as state, each change an event, nodes that rules use, and the declarative round trip."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def nodes(cli):
    for name, country in (("fra-1", "DE"), ("ams-1", "NL"), ("iad-1", "US"), ("n2", "DE"), ("n10", "DE")):
        assert cli("nodes", "add", name, "-e", f"http://127.0.0.1:9/{name}", "--country", country).exit_code == 0
    return cli


def add(cli, *args) -> dict:
    run = cli("routing", "rules", "add", *args, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def test_rules_are_added_listed_most_specific_first_and_shown_with_their_events(nodes):
    cli = nodes
    default = add(cli, "--default", "--target", "iad-1")
    germany = add(cli, "--country", "de", "--target", "fra-1", "--weight", "70", "--failover", "ams-1",
                  "--latency-threshold", "150ms", "--jurisdiction", "EU", "--capability", "Cache",
                  "--condition", "tier=gold")
    add(cli, "--country", "DE", "--target", "n10", "--weight", "30")
    europe = add(cli, "--continent", "eu", "--target", "ams-1", "--latency-threshold", "none")
    add(cli, "--region", "weu", "--target", "ams-1", "--disabled")

    assert (germany["source"], germany["target"], germany["weight"], germany["failover"]) == ("country:DE", "fra-1", 70, "ams-1")
    assert germany["latency_threshold_ms"] == 150 and europe["latency_threshold_ms"] is None
    assert default["latency_threshold_ms"] == 200 and default["weight"] == 100  # the reference's defaults
    assert (germany["jurisdictions"], germany["capabilities"], germany["conditions"]) == (["eu"], ["cache"], {"tier": "gold"})

    listed = cli("routing", "rules", "list", "-o", "json").json()
    assert [(r["source"], r["target"], r["status"]) for r in listed] == [
        ("country:DE", "fra-1", "active"), ("country:DE", "n10", "active"), ("region:WEU", "ams-1", "disabled"),
        ("continent:EU", "ams-1", "active"), ("default", "iad-1", "active")]
    assert [r["target"] for r in cli("routing", "rules", "list", "--country", "DE", "-o", "json").json()] == ["fra-1", "n10"]
    assert [r["id"] for r in cli("routing", "rules", "list", "--node", "ams-1", "-o", "json").json()] == [
        germany["id"], 5, europe["id"]]
    assert [r["status"] for r in cli("routing", "rules", "list", "--disabled", "-o", "json").json()] == ["disabled"]

    cli("routing", "rules", "update", str(germany["id"]), "--weight", "80", "--reason", "more to Frankfurt")
    shown = cli("routing", "rules", "show", str(germany["id"]), "-o", "json").json()
    assert shown["weight"] == 80
    updated, added = shown["events"]
    assert updated["kind"] == "updated" and updated["details"] == {"weight": {"old": 70, "new": 80}}
    assert updated["reason"] == "more to Frankfurt" and "@" in updated["actor"]
    assert added["kind"] == "added" and added["details"]["target"] == "fra-1"
    table = cli("routing", "rules", "show", str(germany["id"]))
    assert table.exit_code == 0 and "more to Frankfurt" in table.stdout


def test_enable_disable_and_remove_keep_the_history(nodes):
    cli = nodes
    rule = add(cli, "--country", "NL", "--target", "ams-1")
    assert cli("routing", "rules", "disable", str(rule["id"])).exit_code == 0
    again = cli("routing", "rules", "disable", str(rule["id"]))
    assert again.exit_code == 0 and "already disabled" in again.stderr
    assert cli("routing", "rules", "enable", str(rule["id"])).exit_code == 0
    assert cli("routing", "rules", "remove", str(rule["id"])).exit_code == 0
    assert cli("routing", "rules", "list", "-o", "json").json() == []
    missing = cli("routing", "rules", "show", str(rule["id"]))
    assert missing.exit_code == 2 and "no routing rule with id" in missing.stderr

    from edgectl.state import open_state

    import os

    state = open_state(os.environ["EDGECTL_STATE"])
    kinds = [row["kind"] for row in state.db.query("SELECT kind FROM route_events ORDER BY id")]
    state.close()
    assert kinds == ["added", "disabled", "enabled", "removed"]


def test_a_disable_of_several_rules_is_all_or_nothing(nodes):
    cli = nodes
    rule = add(cli, "--country", "NL", "--target", "ams-1")
    run = cli("routing", "rules", "disable", str(rule["id"]), "999")
    assert run.exit_code == 2 and "no routing rule with id 999" in run.stderr
    assert cli("routing", "rules", "show", str(rule["id"]), "-o", "json").json()["status"] == "active"


@pytest.mark.parametrize("args, message", [
    (["--target", "fra-1"], "which traffic?"),
    (["--country", "DE", "--continent", "EU", "--target", "fra-1"], "give one source"),
    (["--country", "XX", "--target", "fra-1"], "not an ISO 3166-1 alpha-2 code"),
    (["--country", "UK", "--target", "fra-1"], "is not an ISO 3166-1"),
    (["--continent", "EUR", "--target", "fra-1"], "not a continent code"),
    (["--region", "WEUR", "--target", "fra-1"], "did you mean WEU?"),
    (["--region", "dach", "--target", "fra-1"], "not a known region"),
    (["--country", "DE", "--target", "nowhere"], "unknown node"),
    (["--country", "DE", "--target", "fra-1", "--failover", "fra-1"], "cannot be its target"),
    (["--country", "DE", "--target", "fra-1", "--failover", "nowhere"], "unknown node"),
    (["--country", "DE", "--target", "fra-1", "--weight", "-1"], "-1"),
    (["--country", "DE", "--target", "fra-1", "--latency-threshold", "0s"], "more than zero"),
    (["--country", "DE", "--target", "fra-1", "--latency-threshold", "soon"], "latency-threshold"),
    (["--country", "DE", "--target", "fra-1", "--jurisdiction", "e u"], "jurisdiction"),
    (["--country", "DE", "--target", "fra-1", "--capability", ""], "--capability '' is not a capability"),
    (["--country", "DE", "--target", "fra-1", "--capability", "Web Cache"], "is not a capability"),
    (["--country", "DE", "--target", "fra-1", "--condition", "tier"], "tier"),
])
def test_bad_input_is_one_line_and_exit_2(nodes, args, message):
    run = nodes("routing", "rules", "add", *args)
    assert run.exit_code == 2, run.stderr
    assert run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert nodes("routing", "rules", "list", "-o", "json").json() == []


def test_a_source_sends_to_a_node_once(nodes):
    add(nodes, "--country", "DE", "--target", "fra-1")
    again = nodes("routing", "rules", "add", "--country", "DE", "--target", "fra-1", "--weight", "5")
    assert again.exit_code == 2 and "already sends country:DE to fra-1" in again.stderr


def test_region_sets_come_from_the_config(nodes, isolated):
    (isolated / "work" / "edgectl.toml").write_text('[routing.regions]\ndach = ["DE", "at", "CH"]\n')
    rule = add(nodes, "--region", "dach", "--target", "fra-1")
    assert rule["source"] == "region:dach"
    (isolated / "work" / "edgectl.toml").write_text('[routing.regions]\ndach = ["DE", "XX"]\n')
    bad = nodes("routing", "rules", "add", "--region", "dach", "--target", "n2")
    assert bad.exit_code == 2 and "routing.regions.dach" in bad.stderr


def test_removing_a_node_that_rules_use_is_refused_unless_forced_which_disables_them(nodes):
    cli = nodes
    target = add(cli, "--country", "NL", "--target", "ams-1")
    failover = add(cli, "--country", "DE", "--target", "fra-1", "--failover", "ams-1")
    other = add(cli, "--default", "--target", "iad-1")

    refused = cli("nodes", "remove", "ams-1")
    assert refused.exit_code == 2
    assert f"routing rule {target['id']} (country:NL -> ams-1)" in refused.stderr
    assert f"routing rule {failover['id']} (country:DE -> fra-1, failover ams-1)" in refused.stderr
    assert cli("nodes", "show", "ams-1").exit_code == 0

    forced = cli("nodes", "remove", "ams-1", "--force", "-o", "json")
    assert forced.exit_code == 0, forced.stderr
    assert forced.json()["disabled_rules"] == [target["id"], failover["id"]]
    assert f"routing rule {target['id']} (country:NL -> ams-1) disabled" in forced.stderr
    statuses = {r["id"]: r["status"] for r in cli("routing", "rules", "list", "-o", "json").json()}
    assert statuses == {target["id"]: "disabled", failover["id"]: "disabled", other["id"]: "active"}
    event = cli("routing", "rules", "show", str(target["id"]), "-o", "json").json()["events"][0]
    assert event["kind"] == "disabled" and event["reason"] == "node ams-1 removed"


def test_the_export_applies_back_without_a_change_and_a_file_plans_then_applies(nodes, isolated):
    cli = nodes
    add(cli, "--country", "DE", "--target", "fra-1", "--weight", "70", "--failover", "ams-1", "--jurisdiction", "eu",
        "--latency-threshold", "123.5ms", "--condition", "tier=gold")
    add(cli, "--continent", "EU", "--target", "ams-1", "--latency-threshold", "none", "--disabled")
    add(cli, "--default", "--target", "iad-1")
    exported = cli("routing", "rules", "export")
    assert exported.exit_code == 0
    path = isolated / "rules.toml"
    path.write_text(exported.stdout)
    again = cli("routing", "rules", "apply", "-f", str(path), "--prune", "--yes", "-o", "json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["counts"] == {"create": 0, "update": 0, "remove": 0}
    as_json = cli("routing", "rules", "export", "-o", "json").json()
    assert cli("routing", "rules", "apply", "-f", "-", "--prune", "--yes", "-o", "json",
               input=json.dumps(as_json)).json()["counts"] == {"create": 0, "update": 0, "remove": 0}

    path.write_text('[[rules]]\ncountry = "DE"\ntarget = "fra-1"\nweight = 50\n\n'
                    '[[rules]]\ncountry = "NL"\ntarget = "ams-1"\nfailover = "fra-1"\n')
    planned = cli("routing", "rules", "apply", "-f", str(path), "--prune", "--dry-run")
    assert planned.exit_code == 0, planned.stderr
    assert "1 to create, 1 to update, 2 to remove" in planned.stderr
    assert len(cli("routing", "rules", "list", "-o", "json").json()) == 3  # a dry run changes nothing
    without_yes = cli("routing", "rules", "apply", "-f", str(path), "--prune")
    assert without_yes.exit_code == 2 and "--yes" in without_yes.stderr
    applied = cli("routing", "rules", "apply", "-f", str(path), "--prune", "--yes", "-o", "json").json()
    assert applied["applied"] and applied["counts"] == {"create": 1, "update": 1, "remove": 2}
    rules = cli("routing", "rules", "list", "-o", "json").json()
    assert [(r["source"], r["target"], r["weight"], r["failover"], r["jurisdictions"]) for r in rules] == [
        ("country:DE", "fra-1", 50, None, []), ("country:NL", "ams-1", 100, "fra-1", [])]


def test_a_bad_rules_file_changes_nothing_and_names_every_bad_entry(nodes, isolated):
    cli = nodes
    add(cli, "--default", "--target", "iad-1")
    path = isolated / "rules.toml"
    path.write_text('[[rules]]\ncountry = "DE"\ntarget = "fra-1"\n\n'
                    '[[rules]]\ncountry = "ZZ"\ntarget = "fra-1"\n\n'
                    '[[rules]]\ncontinent = "EU"\ncountry = "DE"\ntarget = "ams-1"\n\n'
                    '[[rules]]\ncountry = "NL"\ntarget = "nowhere"\nweight = "heavy"\n')
    run = cli("routing", "rules", "apply", "-f", str(path), "--yes")
    assert run.exit_code == 2
    first = run.stderr.splitlines()[0]
    assert "rules[2]" in first and "rules[3]" in first and "rules[4]" in first and "rules[1]" not in first
    assert len(cli("routing", "rules", "list", "-o", "json").json()) == 1

    path.write_text("")
    emptied = cli("routing", "rules", "apply", "-f", str(path), "--prune", "--yes")
    assert emptied.exit_code == 2 and "would remove all 1" in emptied.stderr
    assert cli("routing", "rules", "apply", "-f", str(path), "--prune", "--yes", "--force").exit_code == 0
    assert cli("routing", "rules", "list", "-o", "json").json() == []

    path.write_text('[[rules]]\ncountry = "DE"\ntarget = "nowhere"\n')
    missing = cli("routing", "rules", "apply", "-f", str(path), "--yes")
    assert missing.exit_code == 2 and "nowhere" in missing.stderr


def test_config_validate_knows_the_routing_settings(cli, isolated):
    config = isolated / "work" / "edgectl.toml"
    config.write_text('[routing]\nstrategy = "geo"\nwindow = "5m"\ngeoip_db = "/var/lib/GeoIP/City.mmdb"\n'
                      '[routing.regions]\ndach = ["DE", "AT", "CH"]\n[routing.jurisdictions]\nCH = "eu"\n'
                      '[routing.compliance]\nDE = ["eu"]\n')
    assert cli("config", "validate").exit_code == 0
    config.write_text('[routing]\nstratgy = "geo"\n[routing.regions]\ndach = "DE"\n')
    run = cli("config", "validate")
    assert run.exit_code == 2
    assert "unknown setting 'stratgy' (did you mean 'strategy'?)" in run.stderr
    assert "routing.regions: error: dach: expected a list of codes" in run.stderr
