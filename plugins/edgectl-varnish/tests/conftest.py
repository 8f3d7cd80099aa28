"""Each test of the varnish plugin runs with its own config, state and home, and no EDGECTL_* from outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgectl.testing import invoke, isolate
from varnish_servers import Origin


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


@pytest.fixture
def cli():
    """Run edgectl in-process, as a user would: cli('cdn', 'purge', '--tag', 't') -> edgectl.testing.Result."""
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
