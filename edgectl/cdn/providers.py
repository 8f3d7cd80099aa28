"""The providers a purge may use: those whose kind declares `purge`, with the nodes the `http` kind purges."""

from __future__ import annotations

from edgectl.errors import ConfigError, UsageError
from edgectl.providers import config as providers_config
from edgectl.providers.config import DEFAULT_TIMEOUT, ProviderEntry

PURGE = "purge"


def configured(config) -> list[ProviderEntry]:
    """Every configured provider that can purge, in file order."""
    return providers_config.configured(config, PURGE)


def entry(config, name: str) -> ProviderEntry:
    """The provider NAME; one that cannot purge is a usage error."""
    return providers_config.entry(config, name, PURGE)


def build(config, state, item: ProviderEntry, *, timeout: float = DEFAULT_TIMEOUT):
    from edgectl.nodes.inventory import node_lookup

    return providers_config.build(config, item, nodes=node_lookup(state), timeout=timeout)


def select(config, names: list[str] | None, everything: bool) -> list[ProviderEntry]:
    """Providers named on the command line, or all that purge; none named means: map by hostname."""
    if names and everything:
        raise UsageError("--provider and --all-providers cannot be used together")
    if everything:
        found = configured(config)
        if not found:
            raise ConfigError(f"no providers that purge are configured in {config.path}",
                              hint="add [providers.NAME] tables; edgectl config init writes an example")
        return found
    return [entry(config, n) for n in dict.fromkeys(names or [])]
