"""`edgectl providers`: every configured provider and its capabilities; each group's own view filters to one."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.errors import OperationFailed, UsageError
from edgectl.output import Column, View

PROVIDER_COLUMNS = [
    Column("name"),
    Column("kind"),
    Column("capabilities", kind="list"),
    Column("purge_kinds", "PURGES", kind="list"),
    Column("async_completion", "ASYNC", kind="bool"),
    Column("hosts", kind="list"),
    Column("batch_size", "PER REQUEST", kind="map"),
    Column("rates", "RATE"),
    Column("steers"),
    Column("problem", kind="status"),
]
SHOW_COLUMNS = [Column("capabilities", kind="list"), Column("purge_kinds", "purges", kind="list"),
                Column("hosts", kind="list"), Column("async_completion", kind="bool"), Column("settings", kind="map"),
                Column("batch_size", kind="map"), Column("notes", kind="list"), Column("nodes", kind="list"),
                Column("steers"), Column("owner"), Column("geo_units", "steers by", kind="list"),
                Column("unsafe", kind="map")]
TEST_COLUMNS = [Column("name"), Column("kind"), Column("result", kind="status"), Column("detail")]
# the limits are spread into the fields above for a person; json carries them whole
SHOW_VIEW = View(draw=lambda out, record: out.record({k: v for k, v in record.items() if k != "limits"}, SHOW_COLUMNS))

# module-level, since typer evaluates annotations in the module's namespace, not the factory's
ProviderName = Annotated[str, typer.Argument(help="Provider name.")]
ProviderNames = Annotated[Optional[list[str]], typer.Argument(metavar="[NAME]...", help="Providers to test.")]
AllProviders = Annotated[bool, typer.Option("--all", help="Test every provider that `list` shows.")]


def _rates(limits: dict) -> str:
    from edgectl.providers.base import PURGE_KINDS

    parts = []
    for name, bucket in limits["buckets"].items():
        unit = "items" if bucket["unit"] == "item" else "req"
        kinds = [k for k in PURGE_KINDS if limits["bucket_for"].get(k) == name]
        parts.append(f"{'/'.join(kinds)}: {bucket['rate_per_s']:g} {unit}/s (burst {bucket['burst']:g})")
    return "; ".join(parts)


def _with_limits(record: dict) -> dict:
    """A purge provider's limits spread into the fields a table shows."""
    limits = record.get("limits")
    if limits:
        record.update(batch_size=limits["batch_size"], rates=_rates(limits))
    return record


def command_group(capability: str | None, help_text: str, command: str) -> typer.Typer:
    """list, show and test over the configured providers, or only those with `capability`.

    `command` is how the group is typed (`edgectl providers`), for the hints it gives.
    """
    having = f" with the {capability} capability" if capability else ""
    app = typer.Typer(help=help_text, no_args_is_help=True, add_completion=False)

    @app.command("list", help=f"Every provider{having} in config: kind, capabilities, what it purges and its "
                              "limits. Contacts nothing.")
    def providers_list() -> None:
        from edgectl.nodes.inventory import node_lookup
        from edgectl.providers.config import configured, overview

        ctx = current()
        rows = overview(ctx.config, configured(ctx.config), capability=capability, nodes=node_lookup(ctx.state))
        ctx.out.show([_with_limits(row) for row in rows],
                     View(PROVIDER_COLUMNS, empty=f"no providers{having} configured in {ctx.config.path}"))

    @app.command("show", help="One provider: its settings (secrets masked), capabilities, and limits when it "
                              "purges. Contacts nothing.")
    def providers_show(name: ProviderName) -> None:
        from edgectl.nodes.inventory import node_lookup
        from edgectl.config import mask_secrets
        from edgectl.providers.config import build, entry

        ctx = current()
        item = entry(ctx.config, name, capability)
        provider = build(ctx.config, item, nodes=node_lookup(ctx.state))
        record = _with_limits(provider.describe())
        record["settings"] = mask_secrets({k: v for k, v in item.settings.items() if k != "kind"})
        if "nodes" in item.settings:
            record["nodes"] = [n.name for n in provider.context.nodes]
        limits = record.get("limits")
        if limits:
            record.update(notes=limits["notes"], max_in_flight=limits["max_in_flight"])
        ctx.out.show(record, SHOW_VIEW)

    @app.command("test", help="Check credentials and reachability, changing nothing. Exit 1 with the provider's "
                              "own message on failure.")
    def providers_test(names: ProviderNames = None, all_providers: AllProviders = False) -> None:
        from edgectl.nodes.inventory import node_lookup
        from edgectl.providers.config import checks, configured, entry

        ctx = current()
        if names and all_providers:
            raise UsageError("name providers or pass --all, not both")
        if not names and not all_providers:
            raise UsageError("which provider?", hint="name it, or pass --all")
        items = (configured(ctx.config) if all_providers
                 else [entry(ctx.config, n, capability) for n in dict.fromkeys(names)])
        results = checks(ctx.config, items, capability=capability, nodes=node_lookup(ctx.state))
        ctx.out.show([r.to_record() for r in results], View(TEST_COLUMNS))
        failed = [r for r in results if not r.ok]
        if failed:
            raise OperationFailed(f"provider {failed[0].name}: {failed[0].detail}"
                                  + (f" (and {len(failed) - 1} more failed)" if len(failed) > 1 else ""),
                                  hint=f"check the provider's settings and credentials: {command} show NAME")

    return app


app = command_group(None, group_help("providers"), "edgectl providers")
