"""The providers a config declares, and building them, for every domain package that uses providers.

Building needs nothing from the state except, for a kind with a `nodes` setting (`http`), the nodes
it names: the caller passes a `NodeLookup` that resolves them, so this room imports no domain.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable

from edgectl.errors import ConfigError, NotFound, UsageError
from edgectl.providers.base import CAPABILITIES, NodeEndpoint, ProviderContext, ProviderError, in_order
from edgectl.providers.registry import provider_class

DEFAULT_TIMEOUT = 30.0

# (the `nodes` setting, the config key to cite in errors) -> the nodes it names
NodeLookup = Callable[[Any, str], "list[NodeEndpoint]"]


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    kind: str
    settings: dict[str, Any]
    problem: str | None = None  # why it cannot be used: no kind, or one that is not installed or will not load

    def provider_class(self):
        """The kind's class; ConfigError when the kind is unknown or cannot be loaded."""
        if self.problem:
            raise ConfigError(self.problem, hint="edgectl config validate lists every problem")
        return provider_class(self.kind)

    def has(self, capability: str | None) -> bool:
        return capability is None or (not self.problem and capability in self.provider_class().capabilities)


def configured(config, capability: str | None = None) -> list[ProviderEntry]:
    """Every `[providers.NAME]` table in file order; with a capability, those that can be used and declare it.

    A broken table (no kind, or a kind that is not installed) never stops the others: without a
    capability it is listed with its `problem`, with one it is left out (`broken` names it).
    """
    entries = []
    for name, table in config.section("providers").items():
        if not isinstance(table, dict) or not isinstance(table.get("kind"), str):
            entries.append(ProviderEntry(name, "", dict(table) if isinstance(table, dict) else {},
                                         f"{config.path}: providers.{name}.kind: missing: every provider names its kind"))
            continue
        try:
            provider_class(table["kind"])
        except ConfigError as exc:
            entries.append(ProviderEntry(name, table["kind"], dict(table), exc.message))
            continue
        entries.append(ProviderEntry(name, table["kind"], dict(table)))
    return entries if capability is None else [e for e in entries if e.has(capability)]


def broken(config) -> list[ProviderEntry]:
    """The provider tables that cannot be used, each with its problem."""
    return [e for e in configured(config) if e.problem]


def entry(config, name: str, capability: str | None = None) -> ProviderEntry:
    """The provider NAME; with a capability, a provider without it is a usage error that says what it does."""
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
    found = entries[name]
    if found.problem:
        raise ConfigError(found.problem, hint="edgectl config validate lists every problem")
    if not found.has(capability):
        declared = ", ".join(in_order(found.provider_class().capabilities, CAPABILITIES)) or "none"
        raise UsageError(f"provider {name} (kind {found.kind}) has no {capability} capability; its capabilities: "
                         f"{declared}", hint="edgectl providers list shows every provider and its capabilities")
    return found


def build(config, item: ProviderEntry, *, nodes: NodeLookup | None = None, timeout: float = DEFAULT_TIMEOUT):
    """A provider instance, its settings checked; nothing is resolved or contacted yet."""
    cls = item.provider_class()
    problems = cls.check_settings(item.settings)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{config.path}: providers.{item.name}.{problems[0]}{more}",
                          hint="edgectl config validate lists every problem")
    endpoints = []
    if "nodes" in item.settings:
        if nodes is None:
            raise ValueError(f"provider {item.name} names nodes, and its caller gave no node lookup")
        endpoints = nodes(item.settings["nodes"], f"{config.path}: providers.{item.name}.nodes")
    context = ProviderContext(resolve_secret=config.resolve_secret, nodes=endpoints, timeout=timeout)
    return cls(item.name, item.settings, context)


def _built(config, items: list[ProviderEntry], capability: str | None, nodes: NodeLookup | None):
    """(entry, provider or None, why not) for each item with the capability.

    A kind that cannot be loaded may have the capability or not; it is kept, so that a view
    filtered to one capability still shows what is broken.
    """
    for item in items:
        if item.problem:
            yield item, None, item.problem
            continue
        try:
            if not item.has(capability):
                continue
            provider = build(config, item, nodes=nodes)
        except UsageError as exc:
            yield item, None, exc.message
            continue
        yield item, provider, None


def overview(config, items: list[ProviderEntry], *, capability: str | None = None,
             nodes: NodeLookup | None = None) -> list[dict[str, Any]]:
    """Each provider's `describe()` record, or its name, kind and `problem`; contacts nothing."""
    rows = []
    for item, provider, problem in _built(config, items, capability, nodes):
        rows.append(provider.describe() if provider else {"name": item.name, "kind": item.kind, "problem": problem})
    return rows


@dataclass(frozen=True)
class ProviderCheck:
    name: str
    kind: str
    ok: bool
    detail: str

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "result": "ok" if self.ok else "failed", "detail": self.detail}


def checks(config, items: list[ProviderEntry], *, capability: str | None = None,
           nodes: NodeLookup | None = None) -> list[ProviderCheck]:
    """Each provider's `test()`: credentials and reachability, changing nothing. A failure is a result, not raised."""
    from edgectl.logs import redact

    results = []
    for item, provider, problem in _built(config, items, capability, nodes):
        if provider is None:  # its config is wrong: say so in its row and test the others
            results.append(ProviderCheck(item.name, item.kind, False, problem))
            continue
        try:
            provider.prepare()
            results.append(ProviderCheck(item.name, item.kind, True, provider.test()))
        except (ProviderError, UsageError) as exc:
            results.append(ProviderCheck(item.name, item.kind, False, redact(exc.message)))
        except Exception as exc:  # noqa: BLE001 - a plugin's bug fails its own row, not the others
            results.append(ProviderCheck(item.name, item.kind, False,
                                         redact(f"unexpected {exc.__class__.__name__}: {exc}")))
        finally:
            provider.close()
    return results
