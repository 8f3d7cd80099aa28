"""Installed distributions for tests: a dist-info with entry points (and a module) on a sys.path folder."""

from __future__ import annotations

import textwrap
from pathlib import Path


def install(site: Path, name: str, version: str, entry_points: str, module: str | None = None, *,
            summary: str = "", requires: tuple[str, ...] = (), api: str | None = "1.0") -> None:
    """What pip leaves behind for a one-module distribution, so importlib.metadata finds its entry points.

    The module declares plugin API `api` unless it declares one itself or `api` is None.
    """
    dist = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist.mkdir(parents=True)
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if summary:
        metadata += f"Summary: {summary}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    (dist / "METADATA").write_text(metadata)
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    if module and api and "EDGECTL_PLUGIN_API" not in module:
        module = f'EDGECTL_PLUGIN_API = "{api}"\n' + module
    if module:
        (site / f"{name.replace('-', '_')}.py").write_text(module)
