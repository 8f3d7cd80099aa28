"""Installed distributions for tests: a dist-info with entry points (and a module) on a sys.path folder."""

from __future__ import annotations

import textwrap
from pathlib import Path


def install(site: Path, name: str, version: str, entry_points: str, module: str | None = None) -> None:
    """What pip leaves behind for a one-module distribution, so importlib.metadata finds its entry points."""
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module:
        (site / f"{name.replace('-', '_')}.py").write_text(module)
