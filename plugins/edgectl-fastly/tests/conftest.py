"""Every test runs with its own config, state and home dirs, no EDGECTL_* or Fastly variables from outside, and a fake API."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from fake_fastly import KEY, SERVICE, FakeFastly

_CLEARED_PREFIXES = ("EDGECTL_", "FASTLY_")
_CLEARED = ("NO_COLOR", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("EDGECTL_CONFIG", str(tmp_path / "edgectl.toml"))
    monkeypatch.setenv("EDGECTL_STATE", str(tmp_path / "state.db"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    from edgectl_fastly import client

    client._budgets.clear()  # what one test's fake said of a key's budget is not the next one's
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
    """Run edgectl in-process: cli('cdn', 'purge', ...) -> Run."""
    from typer.testing import CliRunner

    from edgectl.cli.app import app

    runner = CliRunner()

    def invoke(*args, input: str | None = None) -> Run:
        result = runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
        return Run(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def fake():
    with FakeFastly() as api:
        yield api


@pytest.fixture
def key(monkeypatch) -> str:
    monkeypatch.setenv("FASTLY_TEST_KEY", KEY)
    return KEY


def provider_table(name: str, url: str, **extra) -> str:
    """A [providers.NAME] table of kind fastly pointed at `url`, the key read from $FASTLY_TEST_KEY."""
    settings = {"kind": "fastly", "service_id": SERVICE, "api_token": "env:FASTLY_TEST_KEY", "endpoint": url,
                "hosts": ["www.example.com"], **extra}
    lines = [f"[providers.{name}]"]
    for setting, value in settings.items():
        lines.append(f"{setting} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def config(isolated, fake, key):
    """edgectl.toml (EDGECTL_CONFIG) with [providers.fastly-prod] on the fake; call it to add settings."""
    path = isolated / "edgectl.toml"

    def write(**extra) -> str:
        path.write_text(provider_table("fastly-prod", fake.url, **extra))
        return str(path)

    write()
    return write
