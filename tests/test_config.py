"""The config file: lookup, profiles, init, show, get, set (format kept), validate, secrets."""

import os
import stat

import pytest

from edgectl.config import SETTINGS, Config, resolve_secret, validate
from edgectl.errors import ConfigError


def test_lookup_order(cli, isolated, monkeypatch):
    user = isolated / "home" / ".config" / "edgectl" / "config.toml"
    assert cli("config", "path").stdout.strip() == str(user)
    project = isolated / "work" / "edgectl.toml"
    project.write_text("")
    sub = isolated / "work" / "deep" / "er"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    run = cli("config", "path", "-o", "json")
    assert run.json() == {"path": str(project), "source": "project", "exists": True}
    monkeypatch.setenv("EDGECTL_CONFIG", str(isolated / "env.toml"))
    assert cli("config", "path").stdout.strip() == str(isolated / "env.toml")
    assert cli("--config", str(isolated / "opt.toml"), "config", "path").stdout.strip() == str(isolated / "opt.toml")


def test_init_writes_the_annotated_example_privately(cli, isolated):
    run = cli("config", "init")
    assert run.exit_code == 0, run.stderr
    path = isolated / "home" / ".config" / "edgectl" / "config.toml"
    text = path.read_text()
    assert "# Consecutive failed probes" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = cli("config", "init")
    assert again.exit_code == 2 and "--force" in again.stderr
    assert cli("config", "init", "--force").exit_code == 0


def test_example_documents_every_setting_and_validates():
    from edgectl.config import EXAMPLE_FILE

    text = EXAMPLE_FILE.read_text()
    for key in SETTINGS:
        section, name = key.rsplit(".", 1)
        assert f"[{section}]" in text and name in text, key
    assert validate(Config(EXAMPLE_FILE, "option")) == []


def test_set_keeps_comments_order_and_formatting(cli, isolated):
    path = isolated / "work" / "edgectl.toml"
    original = "# top comment\n[nodes]\n# how many\nfail_after   =   3  # inline\nhealth_path = '/health'\n"
    path.write_text(original)
    assert cli("config", "set", "nodes.fail_after", "5").exit_code == 0
    text = path.read_text()
    assert text == original.replace("3  # inline", "5  # inline")
    assert cli("config", "get", "nodes.fail_after").stdout.strip() == "5"
    assert cli("config", "set", "nodes.check_timeout", "1s").exit_code == 0
    assert cli("config", "get", "nodes.check_timeout").stdout.strip() == "1s"
    assert path.read_text().startswith("# top comment\n[nodes]\n# how many\n")


def test_set_rejects_bad_values_and_unknown_keys(cli, isolated):
    assert cli("config", "set", "nodes.fail_after", "many").exit_code == 2
    assert cli("config", "set", "nodes.check_timeout", "soon").exit_code == 2
    run = cli("config", "set", "nodes.fail_afterr", "3")
    assert run.exit_code == 2 and "nodes.fail_after" in run.stderr  # suggestion
    run = cli("config", "set", "providers.cf.api_token", "literal-secret-value")
    assert run.exit_code == 2 and "reference" in run.stderr
    assert cli("config", "set", "providers.cf.api_token", "env:CF_TOKEN").exit_code == 0


def test_profiles_overlay_the_top_level(cli, isolated):
    (isolated / "work" / "edgectl.toml").write_text(
        "[nodes]\nfail_after = 3\nrecover_after = 2\n[profiles.staging.nodes]\nfail_after = 1\n"
    )
    assert cli("config", "get", "nodes.fail_after").stdout.strip() == "3"
    assert cli("--profile", "staging", "config", "get", "nodes.fail_after").stdout.strip() == "1"
    assert cli("--profile", "staging", "config", "get", "nodes.recover_after").stdout.strip() == "2"
    run = cli("--profile", "prod", "config", "get", "nodes.fail_after")
    assert run.exit_code == 2 and "staging" in run.stderr
    assert cli("--profile", "staging", "config", "set", "nodes.recover_after", "4").exit_code == 0
    assert cli("--profile", "staging", "config", "get", "nodes.recover_after").stdout.strip() == "4"
    assert cli("config", "get", "nodes.recover_after").stdout.strip() == "2"


def test_validate_lists_every_problem_with_file_and_key(cli, isolated):
    path = isolated / "work" / "edgectl.toml"
    path.write_text(
        '[nodes]\nfail_after = "three"\ncheck_timeout = "soon"\nfial_after = 2\n[defaults]\noutput = "xml"\n'
        '[providers.cf]\napi_token = "env:BAD NAME"\n[providers.nokind]\nzone = "x"\n[bogus]\nx = 1\n'
    )
    run = cli("config", "validate", "-o", "json")
    assert run.exit_code == 2
    problems = {p["key"]: p for p in run.json()["problems"]}
    assert set(problems) >= {"nodes.fail_after", "nodes.check_timeout", "nodes.fial_after", "defaults.output",
                             "providers.cf.api_token", "providers.nokind.kind", "bogus"}
    assert all(p["file"] == str(path) for p in problems.values())
    text = cli("config", "validate")
    assert text.exit_code == 2
    assert f"{path}: nodes.fail_after: error:" in text.stderr


def test_validate_names_every_unknown_setting_with_what_was_meant(cli, isolated):
    path = isolated / "work" / "edgectl.toml"
    path.write_text(
        'output = "json"\n[nodes]\nfial_after = 2\n[node]\nx = 1\n'
        '[providers.cf]\ntype = "cloudflare"\nzone = "example.com"\napi_token = "env:CF_TOKEN"\n'
        'hostnames = ["www.example.com"]\n'
        '[providers.front]\nkind = "cloudfront"\ndistribution_id = "E2EXAMPLE"\ndomains = ["www.example.com"]\n'
        'frobnicate = 1\n'
        '[providers.typo]\nkind = "cloudflar"\nzone = "example.com"\nhostname = ["www.example.com"]\n'
    )
    run = cli("config", "validate", "-o", "json")

    assert run.exit_code == 2
    problems = {p["key"]: p["message"] for p in run.json()["problems"]}
    assert problems == {
        "output": "unknown setting 'output' (did you mean 'defaults.output'?)",
        "nodes.fial_after": "unknown setting 'fial_after' (did you mean 'fail_after'?)",
        "node": "unknown setting 'node' (did you mean 'nodes'?)",
        # the kind is missing, and still every other key is checked
        "providers.cf.kind": "missing: every provider names its kind; its settings fit kind 'cloudflare' or "
                             "'cloudflare_lb'",
        "providers.cf.type": "unknown setting 'type' (did you mean 'kind'?)",
        "providers.cf.hostnames": "unknown setting 'hostnames' (did you mean 'hosts'?)",
        "providers.front.domains": "unknown setting 'domains' (did you mean 'hosts'?)",
        "providers.front.frobnicate": "unknown setting 'frobnicate' for kind 'cloudfront' (known: description, "
                                      "distribution_id, endpoint_url, hosts, kind, max_in_flight, "
                                      "metrics_endpoint_url, origin_latency_stats, poll_interval, profile, region)",
        "providers.typo.kind": "unknown provider kind 'cloudflar' (did you mean 'cloudflare'?)",
        # `hostname` is a setting of kind cloudflare_lb, so a table of an unknown kind may hold it
    }
    text = cli("config", "validate")
    assert f"{path}: providers.cf.type: error: unknown setting 'type' (did you mean 'kind'?)" in text.stderr


def test_a_provider_without_kind_fails_a_command_in_one_line(cli, isolated):
    (isolated / "work" / "edgectl.toml").write_text('[providers.cf]\ntype = "cloudflare"\n')
    run = cli("cdn", "purge", "--url", "https://www.example.com/")

    assert run.exit_code == 2
    assert run.stderr.startswith("error: ") and "providers.cf.kind: missing" in run.stderr
    assert "config validate" in run.stderr and "Traceback" not in run.stderr


def test_invalid_toml_is_one_clear_line(cli, isolated):
    (isolated / "work" / "edgectl.toml").write_text("[nodes\nfail_after = 3\n")
    run = cli("nodes", "list")
    assert run.exit_code == 2
    assert run.stderr.startswith("error: ") and "not valid TOML" in run.stderr
    assert "Traceback" not in run.stderr


def test_show_masks_literal_secrets_and_warns_on_readable_file(cli, isolated):
    path = isolated / "work" / "edgectl.toml"
    path.write_text('[providers.cf]\nkind = "cloudflare"\napi_token = "sup3r-s3cret-t0ken"\nzone = "example.com"\n')
    os.chmod(path, 0o644)
    run = cli("config", "show", "-o", "json")
    assert run.exit_code == 0
    assert "sup3r-s3cret-t0ken" not in run.stdout + run.stderr
    settings = run.json()["settings"]
    assert settings["providers.cf.api_token"] == "********"
    assert settings["providers.cf.zone"] == "example.com"
    assert settings["nodes.fail_after"] == 3
    assert "literal secret" in run.stderr
    os.chmod(path, 0o600)
    assert "literal secret" not in cli("config", "show").stderr
    assert cli("config", "get", "providers.cf.api_token").stdout.strip() == "********"


def test_secret_references_resolve_only_when_used(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_TOKEN", "from-env")
    assert resolve_secret("env:EDGE_TOKEN", key="k") == "from-env"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert resolve_secret(f"file:{secret}", key="k") == "from-file"
    with pytest.raises(ConfigError, match="providers.cf.api_token: environment variable MISSING_TOKEN is not set"):
        resolve_secret("env:MISSING_TOKEN", key="providers.cf.api_token")
    with pytest.raises(ConfigError, match="nodes.x.token: cannot read secret file"):
        resolve_secret(f"file:{tmp_path / 'absent'}", key="nodes.x.token")


def test_default_output_comes_from_config(cli, isolated):
    (isolated / "work" / "edgectl.toml").write_text('[defaults]\noutput = "json"\n')
    assert cli("nodes", "list").stdout.strip() == "[]"
    assert cli("nodes", "list", "-o", "csv").stdout.startswith("name,status,")
