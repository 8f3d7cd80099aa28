"""Every test runs with its own config and state dirs, and no credentials from the outside."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.health_servers import HealthFleet

_CLEARED_PREFIXES = ("EDGECTL_", "AWS_", "AZURE_", "CLOUDFLARE_", "CF_")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name == "NO_COLOR":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
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

    @property
    def error(self) -> dict:
        return json.loads(self.stderr.strip().splitlines()[-1])["error"]


@pytest.fixture
def cli():
    """Run edgectl in-process: cli('nodes', 'list', '-o', 'json') -> Run."""
    from typer.testing import CliRunner

    from edgectl.cli.app import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Run:
        result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture(scope="session")
def fleet():
    """Health endpoints on loopback, shared by the session; tests add the ports they need."""
    servers = HealthFleet().start()
    yield servers
    servers.stop()


@pytest.fixture
def state_path(isolated) -> Path:
    return isolated / "state.db"


@pytest.fixture(scope="module")
def moto():
    """moto in server mode on loopback, one per test module."""
    from tests.fakes.moto_server import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A folder on sys.path for this test, where tests.fakes.plugins.install puts distributions."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path
