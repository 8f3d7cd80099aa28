"""Provider kinds by name, through the `edgectl.providers` entry points; imported only when used."""

from __future__ import annotations

from importlib.metadata import entry_points

from edgectl.errors import ConfigError

GROUP = "edgectl.providers"


def available_kinds() -> dict[str, str]:
    """kind -> 'module:Class', for every installed provider kind (built-ins included)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def provider_class(kind: str):
    for ep in entry_points(group=GROUP):
        if ep.name == kind:
            try:
                return ep.load()
            except ImportError as exc:
                raise ConfigError(f"provider kind {kind!r} cannot be loaded: {exc}",
                                  hint="install the package that provides it") from None
    kinds = ", ".join(sorted(available_kinds())) or "none installed"
    raise ConfigError(f"unknown provider kind {kind!r}", hint=f"installed kinds: {kinds}")
