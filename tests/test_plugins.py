"""A third-party provider kind, installed as its own distribution, works like a built-in one."""

from __future__ import annotations

import json

from tests.fakes.plugins import install

PLUGIN = '''
"""A provider kind from outside edgectl: it records each purge in a file."""
import json

from edgectl.providers.base import Bucket, Limits, PurgeAccepted, PurgeProvider


class EchoProvider(PurgeProvider):
    kind = "echo"
    capabilities = frozenset({"purge"})
    purge_kinds = frozenset({"url", "tag"})
    optional_settings = ("log",)

    def limits(self):
        return Limits(batch_size={"url": 2, "tag": 10}, buckets={"all": Bucket(rate=100, burst=100)},
                      bucket_for={"url": "all", "tag": "all"})

    def purge(self, batch):
        with open(self.settings["log"], "a") as handle:
            handle.write(json.dumps({"kind": batch.kind, "items": list(batch.items)}) + "\\n")
        return PurgeAccepted(provider_ref=batch.reference, completed=True)

    def test(self):
        return "echo is always fine"
'''


def test_a_plugin_kind_is_listed_configured_and_purges(cli, isolated, site):
    install(site, "edgectl-echo", "0.3", "[edgectl.providers]\necho = edgectl_echo:EchoProvider\n", PLUGIN)
    log = isolated / "echo.log"
    config = isolated / "c.toml"
    config.write_text(f'[providers.e]\nkind = "echo"\nlog = "{log}"\nhosts = ["www.example.com"]\n')

    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["echo"]["package"] == "edgectl-echo 0.3" and listed["echo"]["builtin"] is False
    assert listed["echo"]["status"] == "ok" and listed["cloudflare"]["builtin"] is True
    assert listed["echo"]["capabilities"] == ["purge"] and listed["echo"]["purge_kinds"] == ["url", "tag"]

    assert cli("--config", config, "cdn", "providers", "test", "e").exit_code == 0
    run = cli("--config", config, "cdn", "purge", "--url", "https://www.example.com/a",
              "--url", "https://www.example.com/b", "--url", "https://www.example.com/c", "--tag", "t1")
    assert run.exit_code == 0, run.stderr
    sent = sorted((json.loads(line) for line in log.read_text().splitlines()), key=json.dumps)  # sent concurrently
    assert sent == sorted([{"kind": "url", "items": ["https://www.example.com/a", "https://www.example.com/b"]},
                           {"kind": "url", "items": ["https://www.example.com/c"]}, {"kind": "tag", "items": ["t1"]}],
                          key=json.dumps)


def test_a_broken_plugin_is_shown_and_refused_clearly(cli, isolated, site):
    install(site, "edgectl-broken", "1.0", "[edgectl.providers]\nbroken = edgectl_missing_module:Nope\n")
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["broken"]["status"] == "error" and "edgectl_missing_module" in listed["broken"]["error"]
    config = isolated / "c.toml"
    config.write_text('[providers.b]\nkind = "broken"\n')
    run = cli("--config", config, "cdn", "providers", "list")
    assert run.exit_code == 0 and "cannot be loaded" in run.stdout


def test_a_kind_registered_twice_is_refused_naming_both_packages(cli, isolated, site):
    install(site, "edgectl-shadow", "2.0", "[edgectl.providers]\ncloudflare = edgectl_shadow:Shadow\n")
    config = isolated / "c.toml"
    config.write_text('[providers.cf]\nkind = "cloudflare"\nzone = "example.com"\napi_token = "env:T"\n')
    run = cli("--config", config, "cdn", "purge", "--url", "https://www.example.com/a", "-p", "cf")
    assert run.exit_code == 2
    assert "registered by more than one package" in run.stderr and "edgectl-shadow 2.0" in run.stderr
