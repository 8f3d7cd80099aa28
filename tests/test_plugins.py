"""Plugins: third-party kinds and command groups work like built-ins, and a broken plugin stops nothing but itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.plugins import install

# the first-party plugin packages, which make test installs beside edgectl
FIRST_PARTY = tuple(sorted(path.name.removeprefix("edgectl-")
                           for path in (Path(__file__).parents[1] / "plugins").glob("edgectl-*")))

PLUGIN = '''
"""A provider kind from outside edgectl: it records each purge in a file."""
import json

from edgectl.providers.base import Bucket, Limits, PurgeAccepted, PurgeProvider

EDGECTL_PLUGIN_API = "1.0"


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

COMMANDS = '''
"""A command group from outside edgectl."""
import pathlib
import typer

EDGECTL_PLUGIN_API = "1.0"
pathlib.Path(__file__).with_name("hello-imported").write_text("yes")

app = typer.Typer(help="Say hello.", no_args_is_help=True)


@app.command("greet")
def greet(name: str = "world") -> None:
    """Greet someone."""
    typer.echo(f"hello {name}")
'''


def _echo(site, name="edgectl-echo", version="0.3", api='"1.0"', kind="echo"):
    module = PLUGIN.replace('EDGECTL_PLUGIN_API = "1.0"', f"EDGECTL_PLUGIN_API = {api}" if api else "")
    install(site, name, version, f"[edgectl.providers]\n{kind} = {name.replace('-', '_')}:EchoProvider\n",
            module.replace('kind = "echo"', f'kind = "{kind}"'), summary="Echo purges to a file.",
            requires=("edgectl>=0.1,<0.2", "httpx>=0.27"), api=None)


def _config(isolated, body: str):
    path = isolated / "c.toml"
    path.write_text(body)
    return path


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_a_plugin_kind_is_listed_configured_and_purges(cli, isolated, site):
    _echo(site)
    log = isolated / "echo.log"
    config = _config(isolated, f'[providers.e]\nkind = "echo"\nlog = "{log}"\nhosts = ["www.example.com"]\n')

    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["echo"] == {"name": "echo", "version": "0.3", "distribution": "edgectl-echo", "builtin": False,
                              "api": "1.0", "kinds": ["echo"], "commands": [], "status": "loaded", "reason": None}
    assert listed["edgectl"]["builtin"] is True and "cloudflare" in listed["edgectl"]["kinds"]
    shown = cli("plugins", "show", "edgectl-echo", "-o", "json").json()
    assert shown["requires"] == "edgectl<0.2,>=0.1" or shown["requires"].replace(" ", "") in ("edgectl>=0.1,<0.2",
                                                                                             "edgectl<0.2,>=0.1")
    assert shown["entries"][0]["capabilities"] == ["purge"] and shown["entries"][0]["purge_kinds"] == ["url", "tag"]
    assert shown["summary"] == "Echo purges to a file." and shown["accepts"] == "1.0"

    assert cli("--config", config, "cdn", "providers", "test", "e").exit_code == 0
    run = cli("--config", config, "cdn", "purge", "--url", "https://www.example.com/a",
              "--url", "https://www.example.com/b", "--url", "https://www.example.com/c", "--tag", "t1")
    assert run.exit_code == 0, run.stderr
    assert _warnings(run.stderr) == []
    sent = sorted((json.loads(line) for line in log.read_text().splitlines()), key=json.dumps)  # sent concurrently
    assert sent == sorted([{"kind": "url", "items": ["https://www.example.com/a", "https://www.example.com/b"]},
                           {"kind": "url", "items": ["https://www.example.com/c"]}, {"kind": "tag", "items": ["t1"]}],
                          key=json.dumps)


@pytest.mark.parametrize("api, why", [('"2.0"', "needs plugin API 2.0; this edgectl accepts 1.0"),
                                      ('"1.9"', "needs plugin API 1.9; this edgectl accepts 1.0"),
                                      (None, "declares no plugin API"),
                                      ('"one"', "is not MAJOR.MINOR")])
def test_a_plugin_for_another_plugin_api_is_refused_with_one_warning(cli, isolated, site, api, why):
    _echo(site, api=api)
    config = _config(isolated, '[providers.e]\nkind = "echo"\n\n[providers.cf]\nkind = "cloudflare"\n'
                               'zone = "example.com"\napi_token = "env:T"\n')
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["echo"]["status"] == "refused" and why in listed["echo"]["reason"]

    run = cli("--config", config, "cdn", "providers", "list", "-o", "json")
    assert run.exit_code == 0, run.stderr
    rows = {row["name"]: row for row in run.json()}
    assert rows["cf"]["kind"] == "cloudflare" and not rows["cf"].get("problem")
    assert why in rows["e"]["problem"]
    warnings = [json.loads(line)["warning"] for line in run.stderr.splitlines() if line.startswith("{")]
    assert len(warnings) == 1 and "edgectl-echo 0.3" in warnings[0] and why in warnings[0]


def test_a_plugin_that_fails_to_import_or_raises_leaves_everything_else_working(cli, isolated, site):
    install(site, "edgectl-missing", "1.0", "[edgectl.providers]\nmissing = edgectl_missing_module:Nope\n")
    install(site, "edgectl-raises", "2.1", "[edgectl.providers]\nraises = edgectl_raises:Nope\n",
            'EDGECTL_PLUGIN_API = "1.0"\nraise RuntimeError("no licence file found")\n')
    install(site, "edgectl-exits", "0.1", "[edgectl.providers]\nexits = edgectl_exits:Nope\n",
            'import sys\nsys.exit(3)\n')
    _echo(site)
    log = isolated / "echo.log"
    config = _config(isolated, '[providers.m]\nkind = "missing"\n\n[providers.r]\nkind = "raises"\n\n'
                               f'[providers.x]\nkind = "exits"\n\n[providers.e]\nkind = "echo"\nlog = "{log}"\n'
                               'hosts = ["www.example.com"]\n')
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["missing"]["status"] == "error" and "edgectl_missing_module" in listed["missing"]["reason"]
    assert listed["raises"]["status"] == "error" and "RuntimeError: no licence file found" in listed["raises"]["reason"]
    assert listed["exits"]["status"] == "error" and "SystemExit: 3" in listed["exits"]["reason"]
    assert listed["echo"]["status"] == "loaded"

    run = cli("--config", config, "cdn", "providers", "list")
    assert run.exit_code == 0 and "cannot be used" in run.stdout
    warnings = _warnings(run.stderr)
    assert len(warnings) == 3, run.stderr
    assert any("edgectl-raises 2.1" in w and "no licence file found" in w for w in warnings)

    run = cli("--config", config, "cdn", "purge", "--url", "https://www.example.com/a")
    assert run.exit_code == 0, run.stderr
    assert json.loads(log.read_text())["items"] == ["https://www.example.com/a"]
    assert "warning" not in cli("--config", config, "nodes", "list").stderr  # a command that uses no provider hears nothing


def test_strict_mode_makes_a_plugin_problem_exit_2_and_spares_commands_that_use_none(cli, isolated, site, monkeypatch):
    install(site, "edgectl-raises", "2.1", "[edgectl.providers]\nraises = edgectl_raises:Nope\n",
            'EDGECTL_PLUGIN_API = "1.0"\nraise RuntimeError("no licence file found")\n')
    config = _config(isolated, '[providers.r]\nkind = "raises"\n')
    monkeypatch.setenv("EDGECTL_PLUGINS_STRICT", "1")
    run = cli("--config", config, "cdn", "providers", "list", "-o", "json")
    assert run.exit_code == 2
    assert run.error["kind"] == "plugin" and "edgectl-raises 2.1" in run.error["message"]
    assert "EDGECTL_PLUGINS_STRICT" in run.error["hint"]
    assert cli("--config", config, "nodes", "list").exit_code == 0


def test_a_kind_registered_twice_keeps_the_builtin_and_refuses_an_ambiguous_one(cli, isolated, site):
    install(site, "edgectl-shadow", "2.0", "[edgectl.providers]\ncloudflare = edgectl_shadow:Shadow\n")
    _echo(site, "edgectl-echo", "0.3")
    _echo(site, "edgectl-echo-two", "1.1")
    config = _config(isolated, '[providers.cf]\nkind = "cloudflare"\nzone = "example.com"\napi_token = "env:T"\n\n'
                               '[providers.e]\nkind = "echo"\n')
    run = cli("--config", config, "cdn", "providers", "list", "-o", "json")
    assert run.exit_code == 0
    rows = {row["name"]: row for row in run.json()}
    assert not rows["cf"].get("problem")  # the built-in: never replaced by a plugin
    assert "registered by more than one package" in rows["e"]["problem"]
    warnings = [json.loads(line)["warning"] for line in run.stderr.splitlines() if line.startswith("{")]
    assert any("edgectl-echo 0.3" in w and "edgectl-echo-two 1.1" in w for w in warnings)
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["shadow"]["status"] == "error" and "'cloudflare' is edgectl's own" in listed["shadow"]["reason"]


def test_edgectl_plugins_chooses_which_plugins_load(cli, isolated, site, monkeypatch):
    _echo(site, "edgectl-echo", "0.3", kind="echo")
    _echo(site, "edgectl-other", "0.1", kind="other")
    config = _config(isolated, '[providers.e]\nkind = "echo"\n\n[providers.o]\nkind = "other"\n')

    def usable():
        run = cli("--config", config, "cdn", "providers", "list", "-o", "json")
        return run, {row["name"]: row.get("problem") for row in run.json()}

    run, problems = usable()
    assert problems == {"e": None, "o": None}
    monkeypatch.setenv("EDGECTL_PLUGINS", "echo")
    run, problems = usable()
    assert problems["e"] is None and "EDGECTL_PLUGINS leaves out" in problems["o"]
    monkeypatch.setenv("EDGECTL_PLUGINS", "edgectl-other, echo")
    assert usable()[1] == {"e": None, "o": None}
    monkeypatch.setenv("EDGECTL_PLUGINS", "")
    run, problems = usable()
    assert all("EDGECTL_PLUGINS leaves out" in p for p in problems.values())
    listed = {row["name"]: row["status"] for row in cli("plugins", "list", "-o", "json").json()}
    # the first-party plugins may be installed beside edgectl (make test installs them): disabled too
    assert listed == {"edgectl": "loaded", "echo": "disabled", "other": "disabled",
                      **{name: "disabled" for name in FIRST_PARTY if name in listed}}
    monkeypatch.setenv("EDGECTL_PLUGINS", "echo,fastlyy")
    run, _ = usable()
    warnings = [json.loads(line)["warning"] for line in run.stderr.splitlines() if line.startswith("{")]
    installed = ", ".join(sorted({"echo", "other", *(name for name in FIRST_PARTY if name in listed)}))
    assert warnings == [f"EDGECTL_PLUGINS names 'fastlyy', which is not an installed plugin (installed: {installed})"]


def test_a_plugin_command_group_is_listed_under_its_own_heading_and_imported_only_when_run(cli, isolated, site):
    install(site, "edgectl-hello", "0.2", "[edgectl.commands]\nhello = edgectl_hello:app\n", COMMANDS,
            summary="Greetings from a plugin.")
    marker = site / "hello-imported"
    run = cli("--help")
    assert run.exit_code == 0
    assert "Plugin commands" in run.stdout and "Greetings from a plugin." in run.stdout
    assert run.stdout.index("Plugin commands") > run.stdout.index("nodes")
    assert not marker.exists()  # listed from its distribution's metadata, not imported
    assert cli("nodes", "list").exit_code == 0 and not marker.exists()

    run = cli("hello", "greet", "--name", "ops")
    assert run.exit_code == 0 and run.stdout == "hello ops\n" and marker.exists()
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["hello"]["commands"] == ["hello"] and listed["hello"]["status"] == "loaded"


def test_a_broken_plugin_command_group_is_one_line_and_never_takes_a_builtin_name(cli, isolated, site, monkeypatch):
    install(site, "edgectl-bad", "0.1", "[edgectl.commands]\nbad = edgectl_bad:app\nnodes = edgectl_bad:app\n",
            'EDGECTL_PLUGIN_API = "1.0"\napp = 42\n')
    run = cli("bad")
    assert run.exit_code == 2
    assert run.stderr.startswith("error: command 'bad' cannot be used: plugin edgectl-bad 0.1: ")
    assert "is not a typer.Typer" in run.stderr and "Traceback" not in run.stderr
    run = cli("--help")
    assert run.exit_code == 0 and "From edgectl-bad 0.1." in run.stdout.split("Plugin commands")[1]
    assert _warnings(run.stderr) == ["warning: plugin edgectl-bad 0.1: command group 'nodes' is edgectl's own; "
                                       "the plugin's is not used"]
    assert cli("nodes", "list").exit_code == 0
    monkeypatch.setenv("EDGECTL_PLUGINS", "")
    run = cli("bad")
    assert run.exit_code == 2 and "EDGECTL_PLUGINS leaves out" in run.stderr


def test_the_builtin_command_groups_are_registered_as_the_cli_finds_them(cli):
    from importlib.metadata import entry_points

    from edgectl.cli import GROUPS

    registered = {ep.name: ep.value for ep in entry_points(group="edgectl.commands") if ep.dist.name == "edgectl"}
    assert registered == {**{name: f"{module}:app" for name, (module, _) in GROUPS.items()},
                          "demo": "edgectl.cli.demo:demo"}
    shown = cli("plugins", "show", "edgectl", "-o", "json").json()
    assert shown["commands"] == sorted([*GROUPS, "demo"]) and shown["status"] == "loaded"


def test_entry_points_are_read_only_by_commands_that_use_plugins(cli, isolated, site):
    from edgectl import plugins

    _echo(site)
    config = _config(isolated, '[providers.e]\nkind = "echo"\n')
    for args in (("nodes", "list"), ("state", "status"), ("config", "show"), ("nodes", "--help")):
        assert cli("--config", config, *args).exit_code == 0
        assert plugins._registry is None, f"{' '.join(args)} read the entry points"
    for args in (("cdn", "providers", "list"), ("--help",), ("plugins", "list")):
        assert cli("--config", config, *args).exit_code == 0
        assert plugins._registry is not None, f"{' '.join(args)} found its plugins without reading entry points?"


def test_the_entry_point_reader_agrees_with_importlib_metadata(site):
    from importlib.metadata import entry_points

    from edgectl.plugins import GROUPS, installed

    _echo(site)
    install(site, "edgectl-hello", "0.2", "[edgectl.commands]\nhello = edgectl_hello:app [extra]\n\n[other]\nx = y:z\n",
            COMMANDS, summary="Greetings from a plugin.", requires=("edgectl>=0.1", "typer"))
    ours = {(group, name, target, dist.name, dist.version) for dist in installed(GROUPS)
            for group, name, target in dist.entries}
    theirs = {(group, ep.name, ep.value.split("[")[0].strip(), ep.dist.name, ep.dist.version)
              for group in GROUPS for ep in entry_points(group=group)}
    assert ours == theirs and ("edgectl.commands", "hello", "edgectl_hello:app", "edgectl-hello", "0.2") in ours
    hello = next(dist for dist in installed(GROUPS) if dist.name == "edgectl-hello")
    assert hello.summary == "Greetings from a plugin." and hello.requires == ("edgectl>=0.1", "typer")


def test_a_plugin_problem_already_stated_by_a_command_is_not_warned_twice(cli, isolated, site):
    install(site, "edgectl-raises", "2.1", "[edgectl.providers]\nraises = edgectl_raises:Nope\n",
            'raise RuntimeError("no licence file found")\n')
    _echo(site)
    log = isolated / "echo.log"
    config = _config(isolated, f'[providers.r]\nkind = "raises"\n\n[providers.e]\nkind = "echo"\nlog = "{log}"\n'
                               'hosts = ["www.example.com"]\n')
    run = cli("--config", config, "cdn", "purge", "--url", "https://www.example.com/a", "-o", "json")
    assert run.exit_code == 0, run.stderr
    warnings = [json.loads(line)["warning"] for line in run.stderr.splitlines() if line.startswith('{"warning"')]
    assert len(warnings) == 1 and "no licence file found" in warnings[0], warnings


def test_strict_plugins_list_shows_every_plugin_then_exits_2_naming_the_broken_ones(cli, isolated, site, monkeypatch):
    install(site, "edgectl-raises", "2.1", "[edgectl.providers]\nraises = edgectl_raises:Nope\n",
            'raise RuntimeError("no licence file found")\n')
    install(site, "edgectl-future", "3.0", "[edgectl.providers]\nfuture = edgectl_future:Nope\n", "x = 1\n", api="2.0")
    _echo(site)
    monkeypatch.setenv("EDGECTL_PLUGINS_STRICT", "1")
    run = cli("plugins", "list", "-o", "json")
    assert run.exit_code == 2
    assert {row["name"] for row in run.json()} >= {"edgectl", "raises", "future", "echo"}
    assert "edgectl-future 3.0" in run.error["message"] and "edgectl-raises 2.1" in run.error["message"]
    shown = cli("plugins", "show", "future", "-o", "json").json()
    assert shown["status"] == "refused" and shown["entries"][0]["problem"].startswith("needs plugin API 2.0")


def test_whatever_a_plugin_raises_or_prints_while_loading_stays_its_own(cli, isolated, site):
    install(site, "edgectl-lazy", "0.1", "[edgectl.providers]\nlazy = edgectl_lazy:LazyProvider\n",
            'def __getattr__(name):\n    raise ImportError(f"optional sdk missing for {name}")\n')
    install(site, "edgectl-loud", "0.2", "[edgectl.providers]\nloud = edgectl_loud:Nope\n",
            'print("Loud SDK v1 loaded")\nclass Nope:\n    pass\n')
    install(site, "edgectl-pathy", "0.3", "[edgectl.providers]\npathy = edgectl_pathy:Nope\n",
            'import sys\nsys.path.append("/nonexistent/vendor")\nraise RuntimeError("vendored copy missing")\n')
    config = _config(isolated, '[providers.l]\nkind = "lazy"\n\n[providers.o]\nkind = "loud"\n\n'
                               '[providers.p]\nkind = "pathy"\n')
    run = cli("--config", config, "cdn", "providers", "list", "-o", "json")
    assert run.exit_code == 0, run.stderr
    problems = {row["name"]: row["problem"] for row in run.json()}  # stdout is JSON: the print went to stderr
    assert "ImportError: optional sdk missing for LazyProvider" in problems["l"]
    assert "Loud SDK v1 loaded" in run.stderr
    warnings = [json.loads(line)["warning"] for line in run.stderr.splitlines() if line.startswith('{"warning"')]
    assert sum("vendored copy missing" in w for w in warnings) == 1, warnings
    assert cli("plugins", "list").exit_code == 0


def test_strict_help_is_one_error_line(cli, isolated, site, monkeypatch):
    install(site, "edgectl-hello", "0.2", "[edgectl.commands]\nhello = edgectl_hello:app\n", COMMANDS)
    install(site, "edgectl-hello-too", "0.1", "[edgectl.commands]\nhello = edgectl_hello_too:app\n", COMMANDS)
    run = cli("--help")
    assert run.exit_code == 0
    assert len(_warnings(run.stderr)) == 1 and "more than one package" in run.stderr  # one warning names both
    monkeypatch.setenv("EDGECTL_PLUGINS_STRICT", "1")
    run = cli("--help")
    assert run.exit_code == 2 and "Traceback" not in run.stderr and run.stdout == ""  # no half-drawn help
    assert run.stderr.startswith("error: plugin edgectl-hello") and "more than one package" in run.stderr


def test_the_warning_for_a_refused_plugin_names_it_even_when_a_command_says_it_left_a_provider_out(cli, isolated,
                                                                                                 site):
    for name in ("a", "b"):
        install(site, f"edgectl-{name}", "0.1", f"[edgectl.providers]\n{name} = edgectl_{name}:P\n", "x = 1\n",
                api="2.0")
    _echo(site)
    log = isolated / "echo.log"
    config = _config(isolated, '[providers.a]\nkind = "a"\n\n[providers.b]\nkind = "b"\n\n'
                               f'[providers.e]\nkind = "echo"\nlog = "{log}"\nhosts = ["www.example.com"]\n')
    run = cli("--config", config, "cdn", "purge", "--url", "https://www.example.com/x", "-o", "json")
    assert run.exit_code == 0, run.stderr
    warnings = [json.loads(line)["warning"] for line in run.stderr.splitlines() if line.startswith('{"warning"')]
    for name in ("a", "b"):
        assert [w for w in warnings if f"edgectl-{name} 0.1" in w and "needs plugin API 2.0" in w], warnings
    assert len(warnings) == 2, warnings


def test_a_plugin_claiming_a_builtin_kind_is_warned_about_where_that_kind_is_used(cli, isolated, site, monkeypatch):
    install(site, "edgectl-shadow", "2.0", "[edgectl.providers]\ncloudflare = edgectl_shadow:Shadow\n")
    config = _config(isolated, '[providers.cf]\nkind = "cloudflare"\nzone = "example.com"\napi_token = "env:T"\n')
    run = cli("--config", config, "providers", "show", "cf")
    assert run.exit_code == 0
    assert _warnings(run.stderr) == ["warning: plugin edgectl-shadow 2.0: provider kind 'cloudflare' is edgectl's own; "
                                     "the plugin's is not used"]
    monkeypatch.setenv("EDGECTL_PLUGINS_STRICT", "1")
    assert cli("--config", config, "providers", "show", "cf").exit_code == 2


def test_a_plugin_command_that_cannot_be_built_names_its_plugin(cli, isolated, site):
    module = COMMANDS.replace('def greet(name: str = "world") -> None:', 'def greet(name: object = None) -> None:')
    install(site, "edgectl-hello", "0.2", "[edgectl.commands]\nhello = edgectl_hello:app\n", module)
    run = cli("hello", "greet")
    assert run.exit_code == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("error: command hello greet cannot be used: plugin edgectl-hello 0.2: ")


def test_namespace_packages_and_dotted_names_are_plugins_too(cli, isolated, site, monkeypatch):
    package = site / "acme" / "edgectl_ns"
    package.mkdir(parents=True)  # acme has no __init__.py: a namespace package
    (package / "__init__.py").write_text('EDGECTL_PLUGIN_API = "1.0"\n')
    (package / "provider.py").write_text(PLUGIN.replace("EchoProvider", "NsProvider").replace('"echo"', '"ns"'))
    install(site, "Acme.Edgectl_NS", "1.4", "[edgectl.providers]\nns = acme.edgectl_ns.provider:NsProvider\n")
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["acme-edgectl-ns"]["status"] == "loaded" and listed["acme-edgectl-ns"]["api"] == "1.0"
    assert cli("plugins", "show", "Acme_Edgectl.NS").exit_code == 0
    monkeypatch.setenv("EDGECTL_PLUGINS", "acme.edgectl_ns")
    assert {row["name"]: row["status"] for row in cli("plugins", "list", "-o", "json").json()}["acme-edgectl-ns"] == "loaded"
