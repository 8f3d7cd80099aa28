"""The providers a config declares, built into provider instances with what they need from state."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from edgectl.errors import ConfigError, NotFound, UsageError

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    kind: str
    settings: dict[str, Any]


def configured(config) -> list[ProviderEntry]:
    """Every `[providers.NAME]` table, in file order."""
    entries = []
    for name, table in config.section("providers").items():
        if not isinstance(table, dict) or not isinstance(table.get("kind"), str):
            raise ConfigError(f"{config.path}: providers.{name}.kind: missing: every provider names its kind",
                              hint="edgectl config validate lists every problem")
        entries.append(ProviderEntry(name, table["kind"], dict(table)))
    return entries


def entry(config, name: str) -> ProviderEntry:
    entries = {e.name: e for e in configured(config)}
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=1)
        if close:
            hint = f"did you mean {close[0]}?"
        elif entries:
            hint = f"configured providers: {', '.join(entries)}"
        else:
            hint = f"add a [providers.{name}] table to {config.path}"
        raise NotFound(f"unknown provider {name!r}", hint=hint)
    return entries[name]


def settings_problems(item: ProviderEntry) -> list[str]:
    from edgectl.providers.registry import provider_class

    return [f"providers.{item.name}.{line}" for line in provider_class(item.kind).check_settings(item.settings)]


def _node_endpoints(state, selector: Any, config_key: str):
    from edgectl.nodes.inventory import NodeFilter, list_nodes
    from edgectl.parse import parse_label
    from edgectl.providers.base import NodeEndpoint

    if isinstance(selector, str) and selector.startswith("label:"):
        key, value = parse_label(selector[len("label:"):])
        flt = NodeFilter(labels={key: value})
    else:
        flt = NodeFilter(names=list(selector or []))
    # a node taken out of service still holds cached objects, so it is purged too
    nodes = list_nodes(state, flt)
    missing = sorted(set(flt.names or []) - {node.name for node in nodes})
    if missing:
        raise ConfigError(f"{config_key}: unknown node(s): {', '.join(missing)}",
                          hint="edgectl nodes list shows the registered nodes")
    return [NodeEndpoint(node.name, node.endpoint) for node in nodes]


def build(config, state, item: ProviderEntry, *, timeout: float = DEFAULT_TIMEOUT):
    """A provider instance, its settings checked; nothing is resolved or contacted yet."""
    from edgectl.providers.base import ProviderContext
    from edgectl.providers.registry import provider_class

    cls = provider_class(item.kind)
    problems = cls.check_settings(item.settings)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{config.path}: providers.{item.name}.{problems[0]}{more}",
                          hint="edgectl config validate lists every problem")
    nodes = (_node_endpoints(state, item.settings.get("nodes"), f"{config.path}: providers.{item.name}.nodes")
             if "nodes" in item.settings else [])
    context = ProviderContext(resolve_secret=config.resolve_secret, nodes=nodes, timeout=timeout)
    return cls(item.name, item.settings, context)


def select(config, names: list[str] | None, everything: bool) -> list[ProviderEntry]:
    """Providers named on the command line, or all of them; none named means: map by hostname."""
    if names and everything:
        raise UsageError("--provider and --all-providers cannot be used together")
    if everything:
        found = configured(config)
        if not found:
            raise ConfigError(f"no providers are configured in {config.path}",
                              hint="add [providers.NAME] tables; edgectl config init writes an example")
        return found
    return [entry(config, n) for n in dict.fromkeys(names or [])]
