"""Provider kinds by name, from the `edgectl.providers` entry points (edgectl.plugins); imported only when used."""

from __future__ import annotations

from edgectl.plugins import registry


def available_kinds() -> dict[str, str]:
    """kind -> 'module:Class', for every provider kind that may be used here (built-ins included)."""
    return {kind: entry.target for kind, entry in registry().kinds().items()}


def provider_class(kind: str):
    """The kind's class, loaded inside its plugin's guard; ConfigError naming the plugin when it cannot be used."""
    return registry().provider_class(kind)
