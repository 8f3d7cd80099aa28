"""The node inventory through the CLI: add, list, show, update, status changes, events, remove, heartbeats."""

import json
from datetime import timedelta

import pytest

from edgectl.state import open_state
from edgectl.timeutil import to_iso, utcnow
from tests.history import history


def add(cli, name, *extra, endpoint="http://127.0.0.1:9"):
    run = cli("nodes", "add", name, "--endpoint", endpoint, *extra, "-o", "json")
    assert run.exit_code == 0, run.stderr
    return run.json()


def test_add_records_location_capabilities_and_labels(cli):
    node = add(cli, "fra-1", "--region", "eu-west", "--country", "de", "--city", "Frankfurt", "--lat", "50.11",
               "--lon", "8.68", "-c", "HTTP3", "-c", "waf", "-l", "tier=gold", "--max-concurrent", "500",
               "--health-path", "/healthz", "--token", "env:EDGE_TOKEN")
    assert node["country"] == "DE" and node["lat"] == 50.11 and node["city"] == "Frankfurt"
    assert node["capabilities"] == ["http3", "waf"]
    assert node["labels"] == {"tier": "gold"}
    assert node["status"] == "active" and node["token"] == "env:EDGE_TOKEN"
    events = cli("nodes", "events", "fra-1", "-o", "json").json()
    assert [e["kind"] for e in events] == ["added"] and events[0]["new_status"] == "active"


def test_duplicate_name_is_exit_2(cli):
    add(cli, "fra-1")
    run = cli("nodes", "add", "fra-1", "--endpoint", "http://other")
    assert run.exit_code == 2 and "already exists" in run.stderr


def test_a_unicode_endpoint_is_kept_in_its_idna_form_and_an_invalid_one_is_exit_2(cli):
    node = add(cli, "muc-1", endpoint="https://Bücher.example:8443")
    assert node["endpoint"] == "https://xn--bcher-kva.example:8443"

    run = cli("nodes", "add", "muc-2", "--endpoint", "https://bücher-.example")
    assert run.exit_code == 2
    assert run.stderr.startswith("error: endpoint host 'bücher-.example' is not a valid internationalised domain name")
    assert "Traceback" not in run.stderr
    assert [n["name"] for n in cli("nodes", "list", "-o", "json").json()] == ["muc-1"]


def test_list_filters(cli):
    add(cli, "fra-1", "--region", "eu-west", "--country", "DE", "-c", "http3", "-l", "tier=gold")
    add(cli, "ams-1", "--region", "eu-west", "--country", "NL", "-l", "tier=silver")
    add(cli, "iad-1", "--region", "us-east", "--country", "US", "-c", "http3")
    names = lambda *a: [n["name"] for n in cli("nodes", "list", *a, "-o", "json").json()]
    assert names() == ["ams-1", "fra-1", "iad-1"]
    assert names("--region", "eu-west") == ["ams-1", "fra-1"]
    assert names("--country", "us") == ["iad-1"]
    assert names("--capability", "http3") == ["fra-1", "iad-1"]
    assert names("--label", "tier=gold") == ["fra-1"]
    assert names("--capability", "http3", "--region", "eu-west") == ["fra-1"]
    cli("nodes", "drain", "ams-1")
    assert names("--status", "draining") == ["ams-1"]
    assert cli("nodes", "list", "--status", "sleepy").exit_code == 2


def test_show_includes_recent_events(cli):
    add(cli, "fra-1")
    cli("nodes", "drain", "fra-1", "--reason", "kernel upgrade")
    shown = cli("nodes", "show", "fra-1", "-o", "json").json()
    assert shown["status"] == "draining"
    assert shown["recent_events"][-1]["reason"] == "kernel upgrade"
    table = cli("nodes", "show", "fra-1")
    assert "draining" in table.stdout and "kernel upgrade" in table.stdout


def test_update_changes_fields_and_records_a_diff(cli):
    add(cli, "fra-1", "--region", "eu-west", "-l", "a=1", "-l", "b=2", "-c", "http3")
    run = cli("nodes", "update", "fra-1", "--city", "Frankfurt", "--label", "a=9", "--remove-label", "b",
              "--capability", "waf", "--remove-capability", "http3", "--clear", "region", "-o", "json")
    assert run.exit_code == 0, run.stderr
    node = run.json()
    assert node["city"] == "Frankfurt" and node["labels"] == {"a": "9"} and node["capabilities"] == ["waf"]
    assert node["region"] is None
    event = cli("nodes", "events", "fra-1", "-o", "json").json()[-1]
    assert event["kind"] == "updated"
    assert event["details"]["city"] == {"old": None, "new": "Frankfurt"}
    assert event["details"]["labels"]["old"] == {"a": "1", "b": "2"}
    assert cli("nodes", "update", "fra-1").exit_code == 2  # nothing to update
    assert cli("nodes", "update", "fra-1", "--lat", "100").exit_code == 2
    assert cli("nodes", "update", "nope", "--city", "X").exit_code == 2
    assert cli("nodes", "update", "fra-1", "--clear", "endpoint").exit_code == 2


def test_status_model_and_events(cli):
    add(cli, "fra-1")
    assert cli("nodes", "drain", "fra-1", "-o", "json").json()["status"] == "draining"
    again = cli("nodes", "drain", "fra-1", "-o", "json").json()
    assert again["changed"] is False
    assert cli("nodes", "undrain", "fra-1", "-o", "json").json()["status"] == "active"
    assert cli("nodes", "maintenance", "fra-1", "on", "-o", "json").json()["status"] == "maintenance"
    assert cli("nodes", "drain", "fra-1").exit_code == 2  # in maintenance
    assert cli("nodes", "maintenance", "fra-1", "maybe").exit_code == 2
    assert cli("nodes", "maintenance", "fra-1", "off", "-o", "json").json()["status"] == "active"
    assert cli("nodes", "update", "fra-1", "--status", "inactive", "-o", "json").json()["status"] == "inactive"
    assert cli("nodes", "update", "fra-1", "--status", "failed").exit_code == 2
    events = cli("nodes", "events", "fra-1", "-o", "json").json()
    transitions = [(e["old_status"], e["new_status"]) for e in events if e["kind"] != "added"]
    assert transitions == [("active", "draining"), ("draining", "active"), ("active", "maintenance"),
                           ("maintenance", "active"), ("active", "inactive")]
    assert all(e["at"].endswith("Z") for e in events)


def test_events_since_and_all_nodes(cli, state_path):
    add(cli, "fra-1")
    add(cli, "ams-1")
    state = open_state(state_path)
    old = to_iso(utcnow() - timedelta(days=3))
    state.db.execute("UPDATE node_events SET at = ? WHERE node_id = (SELECT id FROM nodes WHERE name = 'fra-1')", [old])
    state.close()
    assert [e["node"] for e in cli("nodes", "events", "-o", "json").json()] == ["fra-1", "ams-1"]
    assert [e["node"] for e in cli("nodes", "events", "--since", "24h", "-o", "json").json()] == ["ams-1"]
    assert cli("nodes", "events", "--since", "yesterday").exit_code == 2
    assert cli("nodes", "events", "ghost").exit_code == 2


def test_remove_refuses_while_referenced_and_keeps_history(cli, isolated):
    add(cli, "fra-1")
    (isolated / "work" / "edgectl.toml").write_text(
        '[providers.edges]\nkind = "http"\nnodes = ["fra-1"]\n'
    )
    run = cli("nodes", "remove", "fra-1")
    assert run.exit_code == 2 and "provider edges" in run.stderr
    assert cli("nodes", "remove", "fra-1", "--force", "--reason", "retired").exit_code == 0
    assert cli("nodes", "list", "-o", "json").json() == []
    assert cli("nodes", "show", "fra-1").exit_code == 2
    history = cli("nodes", "events", "fra-1", "-o", "json").json()
    assert [e["kind"] for e in history] == ["added", "removed"]
    # the name is free again, and the old history stays with the old node
    add(cli, "fra-1")
    assert [e["kind"] for e in cli("nodes", "events", "fra-1", "-o", "json").json()] == ["added", "removed", "added"]


def test_heartbeat_and_staleness(cli, state_path, isolated):
    add(cli, "fra-1")
    add(cli, "ams-1")
    run = cli("nodes", "heartbeat", "fra-1", "--cpu", "42.5", "--memory", "61", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["health_metrics"] == {"cpu_percent": 42.5, "memory_percent": 61.0}
    report = isolated / "hb.json"
    report.write_text(json.dumps({"disk_percent": 70, "network_mbps": 120.5, "resources": {"cpu_cores": 16}}))
    assert cli("nodes", "heartbeat", "ams-1", "--json-file", str(report)).exit_code == 0
    assert cli("nodes", "heartbeat", "ams-1", "--json-file", "-", input='{"cpu_percent": 5}').exit_code == 0
    ams = cli("nodes", "show", "ams-1", "-o", "json").json()
    assert ams["resources"] == {"cpu_cores": 16} and ams["health_metrics"]["cpu_percent"] == 5
    assert cli("nodes", "heartbeat", "ams-1", "--cpu", "140").exit_code == 2
    assert cli("nodes", "heartbeat", "ams-1", "--json-file", "-", input="{not json").exit_code == 2
    assert cli("nodes", "heartbeat", "ams-1", "--json-file", str(isolated / "absent.json")).exit_code == 2
    assert cli("nodes", "heartbeat", "ghost", "--cpu", "1").exit_code == 2
    # three missed intervals (30s by default) make a node stale
    state = open_state(state_path)
    state.db.execute("UPDATE nodes SET last_heartbeat = ? WHERE name = 'fra-1'", [to_iso(utcnow() - timedelta(seconds=95))])
    rows = [(r["metric"], r["value"], r["source"]) for r in history(state)]
    state.close()
    assert ("cpu", 42.5, "heartbeat") in rows
    listed = {n["name"]: n["stale"] for n in cli("nodes", "list", "-o", "json").json()}
    assert listed == {"ams-1": False, "fra-1": True}
    assert [n["name"] for n in cli("nodes", "list", "--status", "stale", "-o", "json").json()] == ["fra-1"]
    (isolated / "work" / "edgectl.toml").write_text('[nodes]\nheartbeat_interval = "1m"\n')
    assert [n["name"] for n in cli("nodes", "list", "--status", "stale", "-o", "json").json()] == []


def test_names_sort_as_people_read_them(cli):
    for name in ("n10", "n2", "n1", "eu-west-10", "eu-west-9"):
        assert cli("nodes", "add", name, "-e", "http://127.0.0.1:9").exit_code == 0
    listed = [row["name"] for row in cli("nodes", "list", "-o", "json").json()]
    assert listed == ["eu-west-9", "eu-west-10", "n1", "n2", "n10"]


def test_natural_order_compares_numbers_as_numbers_and_breaks_ties_by_name():
    from edgectl.names import natural_key

    names = ["pop-10b", "pop-9", "POP-2", "pop-2", "pop-02", "pop", "pop-10a"]
    assert sorted(names, key=natural_key) == ["pop", "POP-2", "pop-02", "pop-2", "pop-9", "pop-10a", "pop-10b"]


@pytest.mark.parametrize("given, stored, record", [
    ("192.0.2.10", "192.0.2.10", "A"),
    ("[2001:DB8:0::10]", "2001:db8::10", "AAAA"),
    ("Edge-FRA-1.Example.NET.", "edge-fra-1.example.net", "CNAME"),
    ("bücher.example", "xn--bcher-kva.example", "CNAME"),
])
def test_a_node_publishes_its_address_or_its_endpoints_host(cli, given, stored, record):
    from edgectl.parse import address_record_type

    assert cli("nodes", "add", "n1", "-e", "https://origin-1.example.net:8443", "--address", given).exit_code == 0
    shown = cli("nodes", "show", "n1", "-o", "json").json()
    assert (shown["address"], shown["published_address"]) == (stored, stored)
    assert address_record_type(shown["published_address"]) == record
    assert cli("nodes", "update", "n1", "--clear", "address").exit_code == 0
    shown = cli("nodes", "show", "n1", "-o", "json").json()
    assert (shown["address"], shown["published_address"]) == (None, "origin-1.example.net")


def test_the_address_is_carried_by_export_and_apply_and_bad_ones_are_refused(cli, isolated):
    assert cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9", "--address", "198.51.100.7").exit_code == 0
    exported = cli("nodes", "export").stdout
    assert 'address = "198.51.100.7"' in exported
    path = isolated / "inventory.toml"
    path.write_text(exported)
    assert cli("nodes", "apply", "-f", str(path), "--yes", "-o", "json").json()["counts"] == {
        "create": 0, "update": 0, "remove": 0}
    path.write_text(exported.replace("198.51.100.7", "2001:db8::7"))
    applied = cli("nodes", "apply", "-f", str(path), "--yes", "-o", "json").json()
    assert applied["changes"][0]["changes"] == {"address": {"old": "198.51.100.7", "new": "2001:db8::7"}}
    for bad in ("not a host", "999.1.1.1", "-bad-.example", "a..b"):
        run = cli("nodes", "update", "n1", "--address", bad)
        assert run.exit_code == 2 and run.stderr.startswith("error: ") and "Traceback" not in run.stderr, (bad, run.stderr)
    assert cli("nodes", "show", "n1", "-o", "json").json()["address"] == "2001:db8::7"
