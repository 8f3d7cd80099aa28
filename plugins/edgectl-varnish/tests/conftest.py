"""Each test of the varnish plugin runs with its own config, state and home, and no EDGECTL_* from outside."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from varnish_servers import Origin


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("EDGECTL_") or name == "NO_COLOR":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    config = tmp_path / "edgectl.toml"
    config.write_text("")  # edgectl refuses a config path that does not exist
    monkeypatch.setenv("EDGECTL_CONFIG", str(config))
    monkeypatch.setenv("EDGECTL_STATE", str(tmp_path / "state.db"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def cli():
    """Run edgectl in-process, as a user would: cli('cdn', 'purge', '--tag', 't') -> Run."""
    from typer.testing import CliRunner

    from edgectl.cli.app import app

    runner = CliRunner()

    def invoke(*args, input: str | None = None) -> Run:
        result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def origin():
    with Origin() as server:
        yield server


@pytest.fixture
def configure(isolated):
    """Write [providers.NAME] tables to the config file edgectl reads (EDGECTL_CONFIG)."""
    import tomlkit

    def write(**providers: dict) -> Path:
        path = isolated / "edgectl.toml"
        path.write_text(tomlkit.dumps({"providers": providers}))
        return path

    return write
