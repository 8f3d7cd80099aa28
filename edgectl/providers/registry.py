"""Provider kinds by name, through the `edgectl.providers` entry points; imported only when used."""

from __future__ import annotations

from importlib.metadata import entry_points

from edgectl.errors import ConfigError
from edgectl.providers.base import CAPABILITIES, PURGE_KINDS, Provider, in_order

GROUP = "edgectl.providers"


def available_kinds() -> dict[str, str]:
    """kind -> 'module:Class', for every installed provider kind (built-ins included)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def _package(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else "?"


def _contract_problem(cls) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        return f"{cls!r} is not a subclass of edgectl.providers.base.Provider"
    return cls.contract_problem()


def provider_class(kind: str):
    found = [ep for ep in entry_points(group=GROUP) if ep.name == kind]
    if len({ep.value for ep in found}) > 1:
        packages = ", ".join(_package(ep) for ep in found)
        raise ConfigError(f"provider kind {kind!r} is registered by more than one package: {packages}",
                          hint="uninstall one of them; edgectl plugins list shows every registration")
    if found:
        try:
            cls = found[0].load()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"provider kind {kind!r} cannot be loaded: {exc}",
                              hint=f"reinstall the package that provides it ({_package(found[0])})") from None
        problem = _contract_problem(cls)
        if problem:
            raise ConfigError(f"provider kind {kind!r} cannot be used: {problem}",
                              hint=f"upgrade or uninstall the package that provides it ({_package(found[0])})")
        return cls
    kinds = ", ".join(sorted(available_kinds())) or "none installed"
    raise ConfigError(f"unknown provider kind {kind!r}", hint=f"installed kinds: {kinds}")


def registrations() -> list[dict]:
    """Every provider kind installed, with the package that registers it and whether it loads."""
    rows = []
    for ep in sorted(entry_points(group=GROUP), key=lambda e: (e.name, e.value)):
        row = {"group": GROUP, "name": ep.name, "target": ep.value, "package": _package(ep)}
        row["builtin"] = row["package"].split(" ")[0] == "edgectl"
        try:
            cls = ep.load()
            problem = _contract_problem(cls)
        except Exception as exc:  # a broken plugin is shown, not fatal
            row["status"] = "error"
            row["error"] = f"{exc.__class__.__name__}: {exc}"
        else:
            row["status"] = "error" if problem else "ok"
            if problem:
                row["error"] = problem
            row["capabilities"] = in_order(getattr(cls, "capabilities", ()), CAPABILITIES)
            row["purge_kinds"] = in_order(getattr(cls, "purge_kinds", ()), PURGE_KINDS)
        rows.append(row)
    return rows
