"""Provider kinds declare their capabilities: `edgectl providers` shows them all, purging uses only those that purge."""

from __future__ import annotations

import pytest

from tests.fakes.cloudflare_api import DEFAULT_TOKEN, DEFAULT_ZONES, FakeCloudflare
from tests.fakes.plugins import install

WWW = "https://www.example.com"

STEER = '''
"""A provider kind that steers traffic and reads analytics, and purges nothing."""
from edgectl.providers.analytics import AnalyticsProvider
from edgectl.providers.steering import RoutingProvider


class SteerProvider(RoutingProvider, AnalyticsProvider):
    kind = "steer"
    capabilities = frozenset({"analytics", "routing"})
    optional_settings = ("pool",)

    def test(self):
        return f"pool {self.settings.get('pool')} answers"
'''


@pytest.fixture
def cf(monkeypatch):
    monkeypatch.setenv("CF_TOKEN", DEFAULT_TOKEN)
    with FakeCloudflare() as fake:
        yield fake


@pytest.fixture
def config(isolated, site, cf) -> str:
    """A Cloudflare zone and, in front of the same hostname, a steering provider from a plugin."""
    install(site, "edgectl-steer", "1.2", "[edgectl.providers]\nsteer = edgectl_steer:SteerProvider\n", STEER)
    path = isolated / "c.toml"
    path.write_text(f'[providers.cf]\nkind = "cloudflare"\nzone_id = "{DEFAULT_ZONES["example.com"]}"\n'
                    f'api_token = "env:CF_TOKEN"\nendpoint_url = "{cf.url}"\nhosts = ["www.example.com"]\n\n'
                    '[providers.lb]\nkind = "steer"\npool = "eu"\nhosts = ["www.example.com"]\n')
    return str(path)


def test_providers_list_shows_every_provider_with_its_capabilities(cli, config):
    run = cli("--config", config, "providers", "list", "-o", "json")
    assert run.exit_code == 0, run.stderr
    rows = {row["name"]: row for row in run.json()}
    assert rows["lb"] == {"name": "lb", "kind": "steer", "capabilities": ["routing", "analytics"],
                          "hosts": ["www.example.com"], "steers": None, "owner": "default", "geo_units": ["country", "default"],
                          "unsafe": {"update_share": 0.3, "delete_share": 0.3, "min_existing": 10},
                          "analytics": {"step_s": 60, "settle_s": 300}}
    assert rows["cf"]["capabilities"] == ["purge", "analytics"]
    assert rows["cf"]["analytics"] == {"step_s": 60, "settle_s": 300}
    assert rows["cf"]["purge_kinds"] == ["url", "prefix", "tag", "host", "everything"]
    assert rows["cf"]["limits"]["batch_size"]["url"] == 30
    table = cli("--config", config, "providers", "list").stdout
    assert "routing, analytics" in table and "url=30" in table


def test_providers_show_and_test_work_for_a_kind_without_purge(cli, config):
    shown = cli("--config", config, "providers", "show", "lb", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["capabilities"] == ["routing", "analytics"] and shown.json()["settings"]["pool"] == "eu"
    assert "limits" not in shown.json()
    cf = cli("--config", config, "providers", "show", "cf", "-o", "json").json()
    assert cf["settings"]["api_token"] != DEFAULT_TOKEN and cf["limits"]["max_in_flight"] == 4
    tested = cli("--config", config, "providers", "test", "--all", "-o", "json")
    assert tested.exit_code == 0, tested.stderr
    assert {r["name"]: r["detail"] for r in tested.json()}["lb"] == "pool eu answers"


def test_the_purge_view_leaves_out_a_kind_that_cannot_purge(cli, config):
    listed = cli("--config", config, "cdn", "providers", "list", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [row["name"] for row in listed.json()] == ["cf"]
    tested = cli("--config", config, "cdn", "providers", "test", "--all", "-o", "json")
    assert tested.exit_code == 0 and [row["name"] for row in tested.json()] == ["cf"]


@pytest.mark.parametrize("args", [["cdn", "providers", "show", "lb"], ["cdn", "providers", "test", "lb"],
                                  ["cdn", "purge", "-p", "lb", "--url", f"{WWW}/a"]])
def test_naming_a_provider_that_cannot_purge_where_purging_is_meant_is_a_usage_error(cli, config, cf, args):
    run = cli("--config", config, *args)
    assert run.exit_code == 2
    assert run.stderr.splitlines() == [
        "error: provider lb (kind steer) has no purge capability; its capabilities: routing, analytics",
        "hint: edgectl providers list shows every provider and its capabilities"]
    assert len(cf.requests) == 0


def test_purges_go_only_to_providers_that_purge(cli, config, cf):
    every = cli("--config", config, "cdn", "purge", "--all-providers", "--url", f"{WWW}/a", "-o", "json")
    assert every.exit_code == 0, every.stderr
    assert [p["provider"] for p in every.json()["providers"]] == ["cf"]
    by_host = cli("--config", config, "cdn", "purge", "--url", f"{WWW}/b", "-o", "json")
    assert by_host.exit_code == 0, by_host.stderr
    assert [p["provider"] for p in by_host.json()["providers"]] == ["cf"]
    # one provider purges, so a path prefix without a host can only mean it
    by_path = cli("--config", config, "cdn", "purge", "--prefix", "/docs/")
    assert by_path.exit_code == 0, by_path.stderr
    assert [p["items"] for p in cf.purged] == [[f"{WWW}/a"], [f"{WWW}/b"], ["www.example.com/docs/"]]


def test_plugins_show_says_what_each_kind_declares(cli, config):
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["steer"]["status"] == "loaded" and listed["steer"]["distribution"] == "edgectl-steer"
    assert listed["steer"]["version"] == "1.2" and listed["steer"]["kinds"] == ["steer"]
    steer = cli("plugins", "show", "steer", "-o", "json").json()["entries"]
    assert steer[0]["capabilities"] == ["routing", "analytics"] and steer[0]["purge_kinds"] == []
    builtin = {e["name"]: e for e in cli("plugins", "show", "edgectl", "-o", "json").json()["entries"]}
    assert builtin["cloudfront"]["capabilities"] == ["purge", "analytics"]
    assert builtin["cloudfront"]["purge_kinds"] == ["url", "prefix", "everything"]


MISMATCHED = {
    "undeclared": "class Kind(PurgeProvider):\n    kind = 'odd'\n    purge_kinds = frozenset({'url'})\n",
    "unimplemented": "class Kind(Provider):\n    kind = 'odd'\n    capabilities = frozenset({'purge'})\n",
    "written before capabilities": "class Kind(Provider):\n    kind = 'odd'\n    purge_kinds = frozenset({'url'})\n",
}


@pytest.mark.parametrize("number, body", list(enumerate(MISMATCHED.values())), ids=MISMATCHED.keys())
def test_a_kind_whose_purge_declaration_and_contract_disagree_is_refused(cli, isolated, site, number, body):
    module = f"from edgectl.providers.base import Provider, PurgeProvider\n\n\n{body}"
    # a module name of its own each time: the first import of a name stays in sys.modules
    install(site, f"edgectl-odd{number}", "0.1", f"[edgectl.providers]\nodd = edgectl_odd{number}:Kind\n", module)
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed[f"odd{number}"]["status"] == "error"
    assert "declares capabilities = frozenset" in listed[f"odd{number}"]["reason"]
    config = isolated / "c.toml"
    config.write_text('[providers.o]\nkind = "odd"\n')
    run = cli("--config", config, "providers", "show", "o")
    assert run.exit_code == 2
    assert run.stderr.startswith(f"error: provider kind 'odd' (plugin edgectl-odd{number} 0.1) cannot be used: "
                                 "the purge part of the contract")


def test_an_unknown_capability_is_refused_naming_the_known_ones(cli, isolated, site):
    module = ("from edgectl.providers.base import Provider\n\n\n"
              "class Kind(Provider):\n    kind = 'dns'\n    capabilities = frozenset({'dns'})\n")
    install(site, "edgectl-dns", "0.1", "[edgectl.providers]\ndns = edgectl_dns:Kind\n", module)
    config = isolated / "c.toml"
    config.write_text('[providers.d]\nkind = "dns"\n')
    run = cli("--config", config, "providers", "list", "-o", "json")
    assert run.exit_code == 0
    assert run.json()[0]["problem"] == ("provider kind 'dns' (plugin edgectl-dns 0.1) cannot be used: declares "
                                        "unknown capabilities dns (known: purge, routing, analytics)")
