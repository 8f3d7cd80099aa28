"""A world of its own for each test of edgectl or a plugin: config, state and home in a temp dir, and edgectl run in-process."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# what a developer's shell may hold that must never reach a test: edgectl's own settings and credentials
CLEARED = ("EDGECTL_", "AWS_", "AZURE_", "CLOUDFLARE_", "CF_", "FASTLY_")


def isolate(root: Path, monkeypatch, *, config: bool = True, clear: tuple[str, ...] = CLEARED) -> Path:
    """Point edgectl at `root`: HOME and the XDG dirs under root/home, the state at root/state.db, the
    working directory root/work, and with `config` an (empty) root/edgectl.toml as EDGECTL_CONFIG.

    Every variable starting with one of `clear`, and NO_COLOR, is removed for the test (through
    pytest's `monkeypatch`, which puts them back after it)."""
    for name in list(os.environ):
        if name.startswith(clear) or name == "NO_COLOR":
            monkeypatch.delenv(name)
    work = root / "work"
    work.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("EDGECTL_STATE", str(root / "state.db"))
    if config:
        path = root / "edgectl.toml"
        if not path.exists():
            path.write_text("")  # edgectl refuses a config file that is named and absent
        monkeypatch.setenv("EDGECTL_CONFIG", str(path))
    monkeypatch.chdir(work)
    return root


@dataclass(frozen=True)
class Result:
    """One edgectl command run in-process: its exit code, and stdout and stderr apart."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict:
        """The JSON error object an -o json command ends with on stderr."""
        return json.loads(self.stderr.strip().splitlines()[-1])["error"]


def invoke(*args: Any, input: str | None = None) -> Result:
    """Run `edgectl ARGS...` in this process, as typer's CliRunner does, and return what it printed."""
    from typer.testing import CliRunner

    from edgectl.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)
