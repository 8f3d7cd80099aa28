"""Global options, output formats, error reporting and exit codes, in-process and as a real process."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from edgectl.cli.app import hoist_global_options


def _add(cli, name="fra-1", *extra):
    run = cli("nodes", "add", name, "--endpoint", "http://127.0.0.1:9", "--region", "eu-west", "--country", "DE", *extra)
    assert run.exit_code == 0, run.stderr
    return run


def test_output_after_the_command(cli):
    _add(cli)
    for args in (["-o", "json", "nodes", "list"], ["nodes", "list", "-o", "json"], ["nodes", "list", "--output=json"],
                 ["nodes", "list", "-ojson"]):
        run = cli(*args)
        assert run.exit_code == 0
        assert [n["name"] for n in run.json()] == ["fra-1"]


def test_hoisting_stops_at_double_dash():
    assert hoist_global_options(["nodes", "list", "-o", "json"]) == ["-o", "json", "nodes", "list"]
    assert hoist_global_options(["a", "--", "-o", "json"]) == ["a", "--", "-o", "json"]
    assert hoist_global_options(["a", "--debug", "b"]) == ["--debug", "a", "b"]


def test_formats_carry_the_same_records(cli):
    _add(cli, "fra-1", "--label", "tier=gold", "--capability", "http3")
    _add(cli, "ams-1")
    records = cli("nodes", "list", "-o", "json").json()
    lines = [json.loads(l) for l in cli("nodes", "list", "-o", "jsonl").stdout.splitlines()]
    assert lines == records
    rows = list(csv.DictReader(io.StringIO(cli("nodes", "list", "-o", "csv").stdout)))
    assert [r["name"] for r in rows] == ["ams-1", "fra-1"]
    assert json.loads(rows[1]["labels"]) == {"tier": "gold"}
    assert rows[1]["created_at"] == records[1]["created_at"]
    assert records[1]["created_at"].endswith("Z")
    table = cli("nodes", "list").stdout
    assert "fra-1" in table and "NAME" in table and "just now" not in table  # never checked: '-'


def test_env_output_and_bad_format(cli, monkeypatch):
    monkeypatch.setenv("EDGECTL_OUTPUT", "json")
    assert cli("nodes", "list").stdout.strip() == "[]"
    run = cli("nodes", "list", "-o", "yaml")
    assert run.exit_code == 2


def test_errors_as_json_on_stderr_only(cli):
    run = cli("nodes", "show", "nope", "-o", "json")
    assert run.exit_code == 2
    assert run.stdout == ""
    assert run.error == {"kind": "not_found", "message": "unknown node 'nope'",
                         "hint": "edgectl nodes list shows the registered nodes", "exit_code": 2}


def test_usage_errors_exit_2(cli):
    assert cli("nodes", "add", "x").exit_code == 2  # --endpoint missing
    assert cli("nodes", "frobnicate").exit_code == 2
    run = cli("nodes", "add", "x", "-o", "json")
    assert run.exit_code == 2 and "endpoint" in run.error["message"]


@pytest.mark.parametrize("args, message", [
    (["--endpoint", "not-a-url"], "not valid"),
    (["--endpoint", "http://h", "--lat", "91", "--lon", "0"], "latitude 91.0 is out of range"),
    (["--endpoint", "http://h", "--lat", "10", "--lon", "-181"], "longitude -181.0 is out of range"),
    (["--endpoint", "http://h", "--lat", "10"], "go together"),
    (["--endpoint", "http://h", "--country", "XX"], "not an ISO 3166-1 alpha-2"),
    (["--endpoint", "http://h", "--label", "oops"], "not key=value"),
    (["--endpoint", "http://h", "--token", "hunter22"], "reference"),
    (["--endpoint", "http://h", "--health-path", "health"], "must start with '/'"),
    (["--endpoint", "http://h", "--max-concurrent", "0"], "between 1 and"),
    (["--endpoint", "http://h", "--max-concurrent", "99999999999999999999999"], "between 1 and"),
    (["--endpoint", "http://bob:hunter2@h"], "must not carry credentials"),
    (["--endpoint", "http://h/base?x=1"], "must not have a query"),
    (["--endpoint", "https://a..b"], "not valid"),
    (["--endpoint", "http://-/"], "not valid"),
    (["--endpoint", "http://h", "--city", "Frank\x1bfurt"], "city"),
    (["--endpoint", "http://h", "--reason", "line\nbreak"], "--reason"),
])
def test_bad_node_input_is_one_line_and_exit_2(cli, args, message):
    run = cli("nodes", "add", "n1", *args)
    assert run.exit_code == 2, run.stdout
    assert message in run.stderr
    assert run.stderr.startswith("error: ")
    assert "Traceback" not in run.stderr
    assert cli("nodes", "list", "-o", "json").json() == []  # nothing half-written


def _edgectl(*args, env=None, cwd=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "edgectl", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=60)


def test_real_process_exit_codes_and_streams(isolated):
    env = {"EDGECTL_STATE": str(isolated / "p.db")}
    ok = _edgectl("nodes", "add", "fra-1", "--endpoint", "http://127.0.0.1:9", "-o", "json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["name"] == "fra-1"
    assert "added node fra-1" in ok.stderr
    quiet = _edgectl("--quiet", "nodes", "drain", "fra-1", env=env)
    assert quiet.returncode == 0 and quiet.stderr == ""
    bad = _edgectl("nodes", "show", "missing", env=env)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines()[0] == "error: unknown node 'missing'"
    broken = isolated / "broken.db"
    broken.write_text("garbage" * 100)
    wrong_file = _edgectl("--state", str(broken), "nodes", "list")
    assert wrong_file.returncode == 2 and "Traceback" not in wrong_file.stderr
    debug = _edgectl("--debug", "--state", str(broken), "nodes", "list")
    assert debug.returncode == 2 and "Traceback" in debug.stderr
    assert _edgectl("--version").stdout.strip().startswith("edgectl ")


def test_secrets_never_reach_state_or_debug_output(isolated, fleet):
    port = fleet.add("auth", token="t0p-s3cret-token")
    env = {"EDGECTL_STATE": str(isolated / "s.db"), "EDGE_TOKEN": "t0p-s3cret-token"}
    assert _edgectl("nodes", "add", "sec-1", "--endpoint", f"http://127.0.0.1:{port}", "--token", "env:EDGE_TOKEN",
                    env=env).returncode == 0
    run = _edgectl("--debug", "-v", "nodes", "check", "sec-1", "-o", "json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)[0]["result"] == "up"
    assert fleet.endpoints[port].last_headers["authorization"] == "Bearer t0p-s3cret-token"
    assert "t0p-s3cret-token" not in run.stdout + run.stderr
    blob = b"".join(p.read_bytes() for p in isolated.glob("s.db*"))
    assert b"t0p-s3cret-token" not in blob and b"env:EDGE_TOKEN" in blob
    missing = _edgectl("nodes", "check", "sec-1", env={"EDGECTL_STATE": str(isolated / "s.db")})
    assert missing.returncode == 2 and "EDGE_TOKEN is not set" in missing.stderr


def test_help_and_version_import_no_heavy_libraries():
    code = (
        "import sys\n"
        "from edgectl.cli.app import run\n"
        "for args in (['--help'], ['--version'], ['nodes', '--help'], ['config', '--help'], ['providers', '--help'],\n"
        "             ['cdn', 'providers', '--help'], ['analytics', 'export', '--help']):\n"
        "    try:\n"
        "        run(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('boto3', 'botocore', 'cloudflare', 'azure', 'httpx', 'sqlite_utils', 'aiohttp',\n"
        "         'prometheus_client')\n"
        "print('LOADED=' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Commands" in result.stdout and "edgectl 0.1" in result.stdout
    assert result.stdout.splitlines()[-1] == "LOADED="


def test_option_values_that_look_like_global_options_stay_put(cli):
    run = cli("nodes", "add", "hy", "-e", "http://a", "--city", "-ostrava", "--reason", "-q", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["city"] == "-ostrava"
    assert cli("nodes", "events", "hy", "-o", "json").json()[0]["reason"] == "-q"


def test_usage_errors_are_one_line(cli):
    run = cli("nodes", "list", "--frobnicate")
    assert run.exit_code == 2
    assert run.stderr.splitlines() == ["error: No such option: --frobnicate",
                                       "hint: edgectl nodes list --help shows the usage"]
    as_json = cli("nodes", "add", "x", "--lat", "abc", "-e", "http://a", "-o", "json")
    assert as_json.exit_code == 2 and as_json.error["kind"] == "usage"


@pytest.mark.parametrize("args, suggestion", [
    (["nodse"], "Did you mean 'nodes'?"),
    (["cache", "polices"], "Did you mean 'policies'?"),
    (["cache", "policies", "lsit"], "Did you mean 'list'?"),
])
def test_a_mistyped_command_gets_a_suggestion_though_groups_are_built_on_use(cli, args, suggestion):
    run = cli(*args)
    assert run.exit_code == 2
    assert run.stderr.splitlines()[0] == f"error: No such command {args[-1]!r}. {suggestion}"


def test_a_group_lists_every_command_in_the_order_they_were_written(cli):
    import re

    from edgectl.cli.cache import app

    help_text = cli("cache", "--help").stdout
    commands = help_text[help_text.index("Commands"):]
    listed = re.findall(r"^│ ([a-z-]+) {2,}\S", commands, flags=re.M)
    assert listed == [info.name for info in app.registered_commands] + ["policies"]


def test_help_text_loses_nothing_to_rich_markup():
    """Help is rich markup: a bracketed [routing.regions] or [default: 64] vanishes unless escaped as \\[."""
    import importlib

    import typer.main
    from rich.markup import render

    from edgectl.cli import GROUPS

    def texts(command, path):
        yield path, command.help or ""
        for param in command.params:
            yield f"{path} {param.name}", getattr(param, "help", None) or ""
        for name in getattr(command, "list_commands", lambda ctx: [])(None):
            yield from texts(command.get_command(None, name), f"{path} {name}")

    eaten = [(where, text) for name, (module, _) in GROUPS.items()
             for where, text in texts(typer.main.get_group(importlib.import_module(module).app), name)
             if render(text).plain != text.replace("\\[", "[")]
    assert eaten == []


def test_a_locked_state_is_exit_4(cli, state_path, isolated):
    import sqlite3

    from edgectl.state import open_state

    cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9")
    (isolated / "work" / "edgectl.toml").write_text('[state]\nbusy_timeout = "200ms"\n')
    holder = sqlite3.connect(state_path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        run = cli("nodes", "drain", "n1")
    finally:
        holder.rollback()
        holder.close()
    assert run.exit_code == 4 and "locked" in run.stderr
    state = open_state(state_path)
    assert next(state.db.query("SELECT status FROM nodes"))["status"] == "active"
    state.close()


def test_config_values_are_checked_when_used(cli, isolated):
    cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9")
    config = isolated / "work" / "edgectl.toml"
    for text, message in (("[nodes]\nfail_after = 0\n", "nodes.fail_after: must be at least 1"),
                          ('[nodes]\ncheck_concurrency = "many"\n', "nodes.check_concurrency: expected an integer"),
                          ('[nodes]\ncheck_timeout = "soon"\n', "nodes.check_timeout")):
        config.write_text(text)
        run = cli("nodes", "check", "--all")
        assert run.exit_code == 2 and message in run.stderr, run.stderr


def test_update_changes_nothing_when_any_part_is_bad(cli):
    cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9")
    assert cli("nodes", "update", "n1", "--region", "eu-north", "--status", "bogus").exit_code == 2
    assert cli("nodes", "show", "n1", "-o", "json").json()["region"] is None


def test_non_finite_figures_are_refused(cli):
    cli("nodes", "add", "n1", "-e", "http://127.0.0.1:9")
    assert cli("nodes", "heartbeat", "n1", "--network", "inf").exit_code == 2
    assert cli("nodes", "heartbeat", "n1", "--json-file", "-", input='{"network_mbps": 1e999}').exit_code == 2
    assert cli("nodes", "heartbeat", "n1", "--json-file", "-", input='{"resources": {"x": NaN}}').exit_code == 2


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv"])
def test_one_call_renders_a_result_in_every_format(fmt, capsys):
    from edgectl.output import Column, Renderer, View

    result = {"id": 7, "nodes": [{"node": "n2", "hits": 3}, {"node": "n10", "hits": 1}]}
    view = View([Column("node"), Column("hits")], rows=lambda r: r["nodes"], notes=lambda r: [f"run {r['id']}"])
    Renderer(fmt, color=False).show(result, view)
    out, err = capsys.readouterr()
    if fmt == "json":
        assert json.loads(out) == result and err == ""
    elif fmt == "jsonl":
        assert [json.loads(line) for line in out.splitlines()] == [result] and err == ""
    elif fmt == "csv":
        assert out.splitlines() == ["node,hits", "n2,3", "n10,1"]
    else:
        assert [line.split() for line in out.splitlines()] == [["NODE", "HITS"], ["n2", "3"], ["n10", "1"]]
        assert err.strip() == "run 7"  # the summary line for a person, under the table


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_a_quiet_view_draws_no_table_with_quiet_but_machines_still_get_the_result(fmt, capsys):
    from edgectl.output import Column, Renderer, View

    view = View([Column("node")], notes=lambda r: ["a summary"], quiet=True)
    Renderer(fmt, color=False, quiet=True).show([{"node": "n1"}], view)
    out, err = capsys.readouterr()
    assert err == ""
    assert out == {"table": "", "json": '[\n  {\n    "node": "n1"\n  }\n]\n', "csv": "node\nn1\n"}[fmt]
    Renderer(fmt, color=False).show([{"node": "n1"}], view)
    assert "n1" in capsys.readouterr().out  # without --quiet it draws as any view does


def test_commands_render_their_results_through_show():
    """record and records are what views draw with; a command's result goes through show and its View."""
    import re
    from pathlib import Path

    import edgectl.cli

    calls = [f"{path.name}:{number}: {line.strip()}"
             for path in sorted(Path(edgectl.cli.__file__).parent.glob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bctx\.out\.records?\(", line)]
    assert calls == []


def test_debug_logging_is_put_back_when_the_command_ends(cli):
    import logging

    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    run = cli("--debug", "nodes", "list")
    assert run.exit_code == 0
    assert (list(root.handlers), root.level) == before  # no DEBUG handler left on a stream that is gone


def test_a_group_run_without_a_command_prints_its_help_and_no_empty_error(cli):
    for args in ((), ("nodes",), ("plugins",)):
        run = cli(*args)
        assert run.exit_code == 2 and "Usage: edgectl" in run.stdout
        assert "error:" not in run.stderr, (args, run.stderr)
