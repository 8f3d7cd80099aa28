"""A plugin package broken on purpose, installed by pip into a throwaway environment, stops nothing but itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "edgectl-broken"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory) -> Path:
    """A venv that sees this environment's packages (edgectl among them) and holds edgectl-broken of its own."""
    root = tmp_path_factory.mktemp("throwaway")
    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    purelib = Path(subprocess.check_output([str(env / "bin" / "python"), "-c",
                                            "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # site.addsitedir, not a bare path: this environment's own .pth files (edgectl's editable install) must run too
    (purelib / "outer.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    source = root / "edgectl-broken"
    shutil.copytree(FIXTURE, source)  # builds write next to the sources
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--quiet",
                    "--no-deps", "--no-build-isolation", "--no-index", str(source)], check=True)
    return env


def _edgectl(env: Path, tmp_path: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECTL_", "AWS_", "CLOUDFLARE_", "AZURE_"))}
    environ.update(HOME=str(tmp_path / "home"), EDGECTL_STATE=str(tmp_path / "state.db"),
                   EDGECTL_CONFIG=str(tmp_path / "edgectl.toml"), **extra_env)
    return subprocess.run([str(env / "bin" / "python"), "-m", "edgectl", *args], capture_output=True, text=True,
                          env=environ, timeout=60)


def test_the_broken_package_is_installed_for_real(throwaway, tmp_path):
    found = subprocess.check_output([str(throwaway / "bin" / "python"), "-c",
                                     "import importlib.metadata as m; d = m.distribution('edgectl-broken'); "
                                     "print(d.version, d.locate_file(''))"], text=True)
    assert found.startswith("0.9.0 ") and str(throwaway) in found
    listed = {row["name"]: row for row in json.loads(_edgectl(throwaway, tmp_path, "plugins", "list", "-o", "json").stdout)}
    assert listed["broken"]["status"] == "error"
    assert listed["broken"]["reason"] == "ModuleNotFoundError: No module named 'edgectl_broken_sdk'"
    assert listed["broken"]["kinds"] == ["broken"] and listed["broken"]["commands"] == ["broken"]
    assert listed["edgectl"]["status"] == "loaded"


def test_every_other_command_works_with_one_clear_warning(throwaway, tmp_path):
    (tmp_path / "edgectl.toml").write_text('[providers.gone]\nkind = "broken"\n\n[providers.edge]\nkind = "http"\n'
                                           'nodes = "all"\n')
    run = _edgectl(throwaway, tmp_path, "cdn", "providers", "list", "-o", "json")
    assert run.returncode == 0, run.stderr
    assert {row["name"] for row in json.loads(run.stdout)} == {"gone", "edge"}
    assert run.stderr.splitlines() == [json.dumps({"warning": "plugin edgectl-broken 0.9.0: provider kind 'broken' is "
                                                   "not loaded: ModuleNotFoundError: No module named 'edgectl_broken_sdk'"})]
    assert "Traceback" not in run.stderr

    for args in (("nodes", "list"), ("--help",), ("state", "status")):
        run = _edgectl(throwaway, tmp_path, *args)
        assert run.returncode == 0 and "Traceback" not in run.stderr, (args, run.stderr)
    assert "Plugin commands" in _edgectl(throwaway, tmp_path, "--help").stdout

    run = _edgectl(throwaway, tmp_path, "broken")
    assert run.returncode == 2
    assert run.stderr.splitlines()[0] == ("error: command 'broken' cannot be used: plugin edgectl-broken 0.9.0: "
                                          "ModuleNotFoundError: No module named 'edgectl_broken_sdk'")


def test_strict_mode_exits_2_where_the_plugin_would_be_used(throwaway, tmp_path):
    (tmp_path / "edgectl.toml").write_text('[providers.gone]\nkind = "broken"\n')
    run = _edgectl(throwaway, tmp_path, "cdn", "providers", "list", EDGECTL_PLUGINS_STRICT="1")
    assert run.returncode == 2
    assert run.stderr.startswith("error: plugin edgectl-broken 0.9.0: provider kind 'broken' is not loaded: ")
    assert "Traceback" not in run.stderr
    assert _edgectl(throwaway, tmp_path, "nodes", "list", EDGECTL_PLUGINS_STRICT="1").returncode == 0
    quiet = _edgectl(throwaway, tmp_path, "cdn", "providers", "list", EDGECTL_PLUGINS="", EDGECTL_PLUGINS_STRICT="1")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr  # built-ins only: the broken plugin is not read


def test_a_plugin_that_leaves_a_thread_running_does_not_keep_edgectl_alive(tmp_path):
    site = tmp_path / "site"
    from tests.fakes.plugins import install

    install(site, "edgectl-sticky", "0.1", "[edgectl.providers]\nsticky = edgectl_sticky:Nope\n",
            "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n")
    (tmp_path / "edgectl.toml").write_text('[providers.s]\nkind = "sticky"\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    environ.update(PYTHONPATH=str(site), HOME=str(tmp_path), EDGECTL_STATE=str(tmp_path / "state.db"),
                   EDGECTL_CONFIG=str(tmp_path / "edgectl.toml"))
    run = subprocess.run([sys.executable, "-m", "edgectl", "cdn", "providers", "list", "-o", "json"],
                         capture_output=True, text=True, env=environ, timeout=30)  # not the thread's 60 s
    assert run.returncode == 0, run.stderr
    assert [row["name"] for row in json.loads(run.stdout)] == ["s"]
    assert "edgectl_sticky left a thread running when imported" in run.stderr
