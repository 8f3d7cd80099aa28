"""Every test runs with its own config, state and home dirs, no EDGECTL_* or Fastly variables from outside, and a fake API."""

from __future__ import annotations

import json

import pytest

from edgectl.testing import invoke, isolate
from fake_fastly import KEY, SERVICE, FakeFastly

_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    isolate(tmp_path, monkeypatch)
    for name in _PROXIES:  # the fake is on loopback: nothing may send its requests elsewhere
        monkeypatch.delenv(name, raising=False)
    from edgectl_fastly import client

    client._budgets.clear()  # what one test's fake said of a key's budget is not the next one's
    return tmp_path


@pytest.fixture
def cli():
    """Run edgectl in-process: cli('cdn', 'purge', ...) -> edgectl.testing.Result."""
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
