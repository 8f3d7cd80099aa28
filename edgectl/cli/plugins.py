"""`edgectl plugins`: what extends edgectl here, each plugin's kinds and command groups, and whether it loads."""

from __future__ import annotations

from typing import Annotated

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.errors import NotFound
from edgectl.output import Column, View

app = typer.Typer(help=group_help("plugins"), no_args_is_help=True, add_completion=False)

LIST_COLUMNS = [Column("name", wrap=False), Column("version"), Column("distribution", wrap=False), Column("api", "API"),
                Column("kinds", kind="list"), Column("commands", kind="list"), Column("status", kind="status"),
                Column("reason")]
ENTRY_COLUMNS = [Column("group"), Column("name", wrap=False), Column("target"), Column("capabilities", kind="list"),
                 Column("purge_kinds", "PURGES", kind="list"), Column("status", kind="status"), Column("problem")]
SHOW_FIELDS = [Column("name"), Column("version"), Column("distribution"), Column("summary"), Column("location"),
               Column("api", "plugin API"), Column("accepts", "edgectl accepts"), Column("requires"),
               Column("kinds", kind="list"), Column("commands", kind="list"), Column("status", kind="status"),
               Column("reason")]


def _show(out, record: dict) -> None:
    out.record({k: v for k, v in record.items() if k != "entries"}, SHOW_FIELDS)
    out.records(record["entries"], ENTRY_COLUMNS, empty="no entry points")


PluginName = Annotated[str, typer.Argument(help="Plugin name (fastly) or distribution (edgectl-fastly).")]


@app.command("list")
def plugins_list() -> None:
    """Every installed plugin: its version, distribution, plugin API, the kinds and commands it adds, whether it loads."""
    from edgectl.plugins import STRICT_ENV, PluginError, registry, strict

    found = registry()
    found.load_all()
    ctx = current()
    ctx.out.show([plugin.to_record() for plugin in found.plugins.values()], View(LIST_COLUMNS))
    broken = [plugin.label for plugin in found.plugins.values() if plugin.status in ("error", "refused", "partial")]
    if broken and strict():  # a CI step that checks its plugins fails when one does not load
        raise PluginError(f"{len(broken)} plugin(s) do not load: {', '.join(broken)}",
                          hint=f"the REASON column says why; {STRICT_ENV}=1 makes that an error")


@app.command("show")
def plugins_show(name: PluginName) -> None:
    """One plugin: where it is installed, what it requires, each entry point and why it does not load."""
    from edgectl.plugins import accepted_range, registry

    found = registry()
    plugin = found.find(name)
    if plugin is None:
        names = ", ".join(sorted(found.plugins)) or "none"
        raise NotFound(f"no plugin named {name!r}", hint=f"installed: {names}")
    found.load_all([plugin])
    record = plugin.to_detail()
    record["accepts"] = accepted_range()
    current().out.show(record, View(draw=_show))
