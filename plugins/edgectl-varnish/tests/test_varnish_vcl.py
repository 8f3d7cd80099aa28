"""The shipped VCL compiles with varnishd -C (both variants), and `edgectl varnish vcl` and `check` do what they say."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from edgectl_varnish import daemon
from varnish_servers import require_xkey, varnishd


def main_vcl(folder: Path, include: str) -> Path:
    path = folder / "main.vcl"
    path.write_text(f'vcl 4.1;\nbackend default {{ .host = "127.0.0.1"; .port = "8080"; }}\ninclude "{include}";\n')
    return path


@pytest.mark.parametrize("name", [daemon.CORE_VCL, daemon.XKEY_VCL])
def test_each_shipped_vcl_compiles_with_varnishd(name):
    binary = varnishd()
    if name == daemon.XKEY_VCL:
        require_xkey()
    result = daemon.compile_wrapped(name, binary)
    assert result.ok, result.message


def test_varnish_check_compiles_both_shipped_files(cli):
    varnishd()
    require_xkey()
    run = cli("varnish", "check")
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert [line.split(" compiles with ")[0] for line in lines] == [
        f"ok: {daemon.vcl_file(daemon.CORE_VCL)}", f"ok: {daemon.vcl_file(daemon.XKEY_VCL)}"]
    assert all(line.endswith(")") and "varnishd (varnish-" in line for line in lines)


@pytest.mark.parametrize("xkey", [False, True])
def test_the_printed_vcl_is_what_an_operator_includes(cli, isolated, xkey):
    varnishd()
    if xkey:
        require_xkey()
    run = cli("varnish", "vcl", *(["--xkey"] if xkey else []))
    assert run.exit_code == 0, run.stderr
    assert "acl edgectl_purgers" in run.stdout
    assert ("import xkey;" in run.stdout) is xkey
    assert 'include "./edgectl.vcl"' not in run.stdout  # one file, nothing else to copy
    if not xkey:
        assert run.stdout == daemon.vcl_file(daemon.CORE_VCL).read_text()
    else:  # its comments speak of the one file printed, not of the two shipped ones
        header = run.stdout.split("import xkey;")[0]
        assert "in one file" in header and '#       include "edgectl.vcl";' in header
        for untrue in ("keep both files", "include edgectl-xkey.vcl", "includes this file itself",
                       "which it includes itself", "edgectl-xkey.vcl\";", "edgectl.vcl's header-based ban"):
            assert untrue not in run.stdout, untrue
    etc = isolated / "etc"
    etc.mkdir()
    (etc / "edgectl.vcl").write_text(run.stdout)
    checked = cli("varnish", "check", main_vcl(etc, "edgectl.vcl"))  # a relative include, found beside the file
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.startswith(f"ok: {etc / 'main.vcl'} compiles with varnishd")


def test_a_vcl_that_does_not_compile_is_one_line_and_exit_1(cli, isolated):
    varnishd()
    bad = isolated / "bad.vcl"
    bad.write_text('vcl 4.1;\nbackend default none;\nsub vcl_recv {\n    if (req.url ~ "(") { return (pass); }\n}\n')
    run = cli("varnish", "check", bad)
    assert run.exit_code == 1
    lines = run.stderr.splitlines()
    assert re.fullmatch(rf"error: {re.escape(str(bad))} does not compile: Regexp compilation error: missing closing "
                        rf"parenthesis \('{re.escape(str(bad))}' Line 4 Pos \d+\).*", lines[0])
    assert lines[1].startswith("hint: ") and len(lines) == 2
    assert run.stdout == ""


def test_check_as_a_process_keeps_stdout_for_results_and_stderr_for_the_error(isolated):
    import subprocess
    import sys

    varnishd()
    good = main_vcl(isolated, str(daemon.vcl_file(daemon.CORE_VCL)))
    bad = isolated / "bad.vcl"
    bad.write_text("vcl 4.1;\nbackend default none;\nsub vcl_recv { nonsense; }\n")
    ok = subprocess.run([sys.executable, "-m", "edgectl", "varnish", "check", str(good)], capture_output=True,
                        text=True, timeout=120)
    assert (ok.returncode, ok.stderr) == (0, "") and ok.stdout.startswith(f"ok: {good} compiles with ")
    failed = subprocess.run([sys.executable, "-m", "edgectl", "varnish", "check", str(bad)], capture_output=True,
                            text=True, timeout=120)
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr.startswith(f"error: {bad} does not compile: ") and "Traceback" not in failed.stderr


def test_a_missing_file_is_exit_2(cli, isolated):
    run = cli("varnish", "check", isolated / "nope.vcl")
    assert run.exit_code == 2
    assert run.stderr.startswith(f"error: {isolated / 'nope.vcl'}: no such VCL file")


def test_vinyld_is_found_when_it_is_the_daemon_there_is(cli, isolated, monkeypatch):
    """Vinyl Cache 9 calls its daemon vinyld: a PATH holding only that is enough."""
    real = varnishd()
    bin_dir = isolated / "bin"
    bin_dir.mkdir()
    vinyld = bin_dir / "vinyld"
    vinyld.write_text(f'#!/bin/sh\nexec {real} "$@"\n')
    vinyld.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")  # varnishd runs rm; packages put it in /usr/sbin
    assert os.path.dirname(real) not in ("/usr/bin", "/bin")
    assert daemon.find_daemon() == str(vinyld)
    run = cli("varnish", "check")
    assert run.exit_code == 0, run.stderr
    assert " compiles with vinyld (varnish-" in run.stdout


def test_without_varnishd_on_path_the_sbin_one_is_used(monkeypatch, isolated):
    real = varnishd()
    monkeypatch.setenv("PATH", str(isolated))  # nothing there: a cron job's PATH often lacks /usr/sbin
    if os.path.dirname(real) in daemon.SBIN:
        assert daemon.find_daemon() == real


def test_the_plugins_typer_app_runs_on_its_own():
    from typer.testing import CliRunner

    from edgectl_varnish.cli import app

    result = CliRunner().invoke(app, ["vcl"])
    assert result.exit_code == 0
    assert result.stdout == daemon.vcl_file(daemon.CORE_VCL).read_text()


def test_the_group_is_listed_as_a_plugin_command(cli):
    run = cli("--help")
    assert "Plugin commands" in run.stdout and "varnish" in run.stdout
    listed = {row["name"]: row for row in cli("plugins", "list", "-o", "json").json()}
    assert listed["varnish"]["status"] == "loaded" and listed["varnish"]["api"] == "1.0"
    assert listed["varnish"]["kinds"] == ["varnish"] and listed["varnish"]["commands"] == ["varnish"]
