"""Declarative inventory: export, plan, apply, idempotence, prune, and malformed files."""

import json


INVENTORY = """
[nodes.fra-1]
endpoint = "https://fra-1.edge.example.net"
region = "eu-west"
country = "DE"
city = "Frankfurt"
lat = 50.11
lon = 8.68
capabilities = ["http3", "waf"]
labels = { tier = "gold" }

[nodes.iad-1]
endpoint = "https://iad-1.edge.example.net"
region = "us-east"
country = "US"
max_concurrent = 2000
"""


def write(isolated, text, name="inventory.toml"):
    path = isolated / name
    path.write_text(text)
    return str(path)


def test_plan_then_apply_then_nothing(cli, isolated):
    path = write(isolated, INVENTORY)
    dry = cli("nodes", "apply", "-f", path, "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    assert dry.json()["counts"] == {"create": 2, "update": 0, "remove": 0} and dry.json()["applied"] is False
    assert cli("nodes", "list", "-o", "json").json() == []
    refused = cli("nodes", "apply", "-f", path)  # not a terminal, no --yes
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    assert "fra-1" in refused.stdout  # the plan was shown first
    assert cli("nodes", "list", "-o", "json").json() == []
    applied = cli("nodes", "apply", "-f", path, "--yes", "-o", "json")
    assert applied.exit_code == 0 and applied.json()["applied"] is True
    nodes = {n["name"]: n for n in cli("nodes", "list", "-o", "json").json()}
    assert nodes["fra-1"]["labels"] == {"tier": "gold"} and nodes["iad-1"]["max_concurrent"] == 2000
    second = cli("nodes", "apply", "-f", path, "--yes", "-o", "json")
    assert second.json() == {"changes": [], "counts": {"create": 0, "update": 0, "remove": 0}, "applied": False,
                             "dry_run": False}
    assert "no changes" in cli("nodes", "apply", "-f", path, "--yes").stderr


def test_update_diff_and_prune(cli, isolated):
    cli("nodes", "apply", "-f", write(isolated, INVENTORY), "--yes")
    cli("nodes", "add", "extra-1", "--endpoint", "http://127.0.0.1:9")
    changed = INVENTORY.replace('city = "Frankfurt"', 'city = "Offenbach"').replace("max_concurrent = 2000\n", "")
    path = write(isolated, changed)
    plan = cli("nodes", "apply", "-f", path, "--dry-run", "-o", "json").json()
    assert plan["changes"] == [
        {"action": "update", "node": "fra-1", "changes": {"city": {"old": "Frankfurt", "new": "Offenbach"}}},
        {"action": "update", "node": "iad-1", "changes": {"max_concurrent": {"old": 2000, "new": None}}},
    ]
    table = cli("nodes", "apply", "-f", path, "--prune", "--dry-run")
    assert "city: Frankfurt -> Offenbach" in table.stdout and "remove" in table.stdout
    assert cli("nodes", "apply", "-f", path, "--prune", "--yes").exit_code == 0
    assert [n["name"] for n in cli("nodes", "list", "-o", "json").json()] == ["fra-1", "iad-1"]
    assert cli("nodes", "events", "extra-1", "-o", "json").json()[-1]["kind"] == "removed"


def test_export_round_trips(cli, isolated):
    cli("nodes", "apply", "-f", write(isolated, INVENTORY), "--yes")
    cli("nodes", "update", "fra-1", "--token", "env:FRA_TOKEN", "--health-path", "/healthz")
    for fmt in ("toml", "json"):
        exported = cli("nodes", "export", "--format", fmt)
        assert exported.exit_code == 0
        path = write(isolated, exported.stdout, f"export.{fmt}")
        plan = cli("nodes", "apply", "-f", path, "--prune", "--dry-run", "-o", "json").json()
        assert plan["changes"] == [], fmt
    data = json.loads(cli("nodes", "export", "--format", "json").stdout)
    assert data["nodes"]["fra-1"]["token"] == "env:FRA_TOKEN"
    assert cli("nodes", "export", "--format", "yaml").exit_code == 2


def test_apply_from_stdin(cli):
    run = cli("nodes", "apply", "-f", "-", "--yes", input=INVENTORY)
    assert run.exit_code == 0, run.stderr
    assert len(cli("nodes", "list", "-o", "json").json()) == 2


def test_malformed_inventories_name_the_entry(cli, isolated):
    cases = {
        "[nodes.fra-1\nendpoint = 1": "not valid TOML",
        '[nodes.fra-1]\nendpoint = "nope"': "nodes.fra-1: endpoint 'nope' is not valid",
        '[nodes.fra-1]\nendpoint = "http://a"\nlat = 95.0\nlon = 1.0': "nodes.fra-1: latitude 95.0 is out of range",
        '[nodes.fra-1]\nendpoint = "http://a"\ncountry = "ZZ"': "nodes.fra-1: country 'ZZ'",
        '[nodes.fra-1]\nendpoint = "http://a"\ncolour = "red"': "nodes.fra-1: unknown field(s): colour",
        '[nodes.Bad_Name]\nendpoint = "http://a"': "nodes.Bad_Name: node name",
        '[nodes.a]\nregion = "x"\n[nodes.b]\nendpoint = "http://b"\nlabels = { k = 1 }': "nodes.a: node 'a' needs an endpoint",
        '[servers.a]\nendpoint = "http://a"': "unknown top-level key",
        '{"nodes": {"a": {"endpoint": "http://a", "capabilities": "http3"}}}': "capabilities must be a list",
    }
    for text, message in cases.items():
        run = cli("nodes", "apply", "-f", write(isolated, text), "--yes")
        assert run.exit_code == 2, text
        assert message in run.stderr, (text, run.stderr)
        assert "Traceback" not in run.stderr
    both = cli("nodes", "apply", "-f", write(isolated, '[nodes.a]\nregion = "x"\n[nodes.b]\nendpoint = "http://b"\nlabels = { k = 1 }'), "--yes")
    assert "and 1 more" in both.stderr and "nodes.b" in both.stderr
    assert cli("nodes", "apply", "-f", str(isolated / "absent.toml")).exit_code == 2
    assert cli("nodes", "list", "-o", "json").json() == []


def test_apply_is_all_or_nothing(cli, isolated):
    cli("nodes", "add", "keep-1", "--endpoint", "http://127.0.0.1:9")
    (isolated / "work" / "edgectl.toml").write_text('[providers.edges]\nkind = "http"\nnodes = ["keep-1"]\n')
    run = cli("nodes", "apply", "-f", write(isolated, INVENTORY), "--prune", "--yes")
    assert run.exit_code == 2 and "still referenced" in run.stderr
    assert [n["name"] for n in cli("nodes", "list", "-o", "json").json()] == ["keep-1"]


def test_loose_inventories_are_refused(cli, isolated):
    named = write(isolated, '[nodes.a1]\nname = "b1"\nendpoint = "http://a"\n')
    assert "'name' is not a field" in cli("nodes", "apply", "-f", named, "--yes").stderr
    dup = write(isolated, '{"nodes": {"a": {"endpoint": "http://a"}, "a": {"endpoint": "http://b"}}}', "dup.json")
    assert "duplicate key" in cli("nodes", "apply", "-f", dup, "--yes").stderr
    labels = write(isolated, '{"nodes": {"a": {"endpoint": "http://a", "labels": []}}}', "labels.json")
    assert "labels must be a table" in cli("nodes", "apply", "-f", labels, "--yes").stderr
    assert cli("nodes", "list", "-o", "json").json() == []


def test_pruning_everything_needs_force(cli, isolated):
    cli("nodes", "apply", "-f", write(isolated, INVENTORY), "--yes")
    empty = write(isolated, "", "empty.toml")
    run = cli("nodes", "apply", "-f", empty, "--prune", "--yes")
    assert run.exit_code == 2 and "--force" in run.stderr
    assert len(cli("nodes", "list", "-o", "json").json()) == 2
    assert cli("nodes", "apply", "-f", empty, "--prune", "--force", "--yes").exit_code == 0
    assert cli("nodes", "list", "-o", "json").json() == []
