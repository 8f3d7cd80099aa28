"""Plugins: distributions that add provider kinds and command groups through entry points, each behind its own guard.

A plugin is an installed distribution with entry points in `edgectl.providers` (kind name ->
`module:Class`) or `edgectl.commands` (group name -> `module:typer_app`). edgectl's own provider
kinds are registered in the same group by the `edgectl` distribution. Entry points are read once
per command, and only by commands that use providers or a plugin's command group; a plugin's code
is imported only when one of its kinds or groups is used (or `plugins list` asks).

Each plugin declares the plugin API it was written against, `EDGECTL_PLUGIN_API = "1.0"` in its
top-level package. It is accepted when its major version is edgectl's and its minor version is no
newer. A plugin that is refused, fails to import, raises while loading, is not what its entry
point says, or registers a kind or group another distribution also registers never stops anything
but itself: the commands that would have used it get one warning naming it and why, and everything
else works. `EDGECTL_PLUGINS_STRICT=1` turns those warnings into errors (exit 2), for CI.
`EDGECTL_PLUGINS` chooses which plugins load: unset, all of them; a comma-separated list, only
those (by name, `fastly`, or distribution, `edgectl-fastly`); empty, none but the built-ins.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from typing import Any, Callable

from edgectl.errors import ConfigError, EdgectlError, UsageError

PLUGIN_API = "1.0"
PROVIDERS = "edgectl.providers"
COMMANDS = "edgectl.commands"
GROUPS = (PROVIDERS, COMMANDS)
BUILTIN = "edgectl"  # the distribution whose entry points are the built-ins
ALLOW_ENV = "EDGECTL_PLUGINS"
STRICT_ENV = "EDGECTL_PLUGINS_STRICT"
API_ATTRIBUTE = "EDGECTL_PLUGIN_API"


def accepted_range() -> str:
    """The plugin API versions this edgectl loads, for people: '1.0', or '1.0 to 1.3'."""
    major = PLUGIN_API.split(".")[0]
    oldest = f"{major}.0"
    return PLUGIN_API if oldest == PLUGIN_API else f"{oldest} to {PLUGIN_API}"


def api_problem(declared: Any) -> str | None:
    """Why a plugin declaring API `declared` cannot be loaded by this edgectl, or None."""
    if declared is None:
        return f"declares no plugin API ({API_ATTRIBUTE} in its package); this edgectl accepts {accepted_range()}"
    try:
        major, minor = (int(part) for part in str(declared).split("."))
        ours_major, ours_minor = (int(part) for part in PLUGIN_API.split("."))
    except ValueError:
        return f"declares plugin API {declared!r}, which is not MAJOR.MINOR; this edgectl accepts {accepted_range()}"
    if major != ours_major or minor > ours_minor:
        return f"needs plugin API {declared}; this edgectl accepts {accepted_range()}"
    return None


class PluginError(EdgectlError):
    """A plugin problem under EDGECTL_PLUGINS_STRICT=1, or a plugin command that cannot run."""

    exit_code = 2
    kind = "plugin"


@dataclass
class Entry:
    """One entry point: a provider kind or a command group, and whether it loaded."""

    group: str
    name: str
    target: str  # module:attribute
    plugin: "Plugin"
    status: str = "pending"  # pending | loaded | error | conflict | disabled
    problem: str | None = None
    obj: Any = field(default=None, repr=False)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0].strip()

    def to_record(self) -> dict[str, Any]:
        record = {"group": self.group, "name": self.name, "target": self.target, "status": self.status,
                  "problem": self.problem}
        if self.group == PROVIDERS and self.status == "loaded":
            from edgectl.providers.base import CAPABILITIES, PURGE_KINDS, in_order

            record["capabilities"] = in_order(getattr(self.obj, "capabilities", ()), CAPABILITIES)
            record["purge_kinds"] = in_order(getattr(self.obj, "purge_kinds", ()), PURGE_KINDS)
        return record


@dataclass
class Plugin:
    """One distribution with edgectl entry points."""

    name: str  # `fastly` for edgectl-fastly; `edgectl` for the built-ins
    distribution: str
    version: str
    summary: str = ""
    location: str = ""
    requires: str = ""  # its requirement on edgectl, as it declares it
    entries: list[Entry] = field(default_factory=list)
    enabled: bool = True
    problem: str | None = None  # why none of its entries can be used: refused API, package import failed
    api: str | None = None
    api_refused: bool = False
    checked: bool = False

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"

    def kinds(self) -> list[str]:
        return [e.name for e in self.entries if e.group == PROVIDERS]

    def commands(self) -> list[str]:
        return [e.name for e in self.entries if e.group == COMMANDS]

    @property
    def status(self) -> str:
        if not self.enabled:
            return "disabled"
        if self.problem:
            return "refused" if self.api_refused else "error"
        states = {e.status for e in self.entries}
        if states <= {"loaded"}:
            return "loaded"
        if "error" in states or "conflict" in states:
            return "error" if "loaded" not in states else "partial"
        return "installed"  # not imported by this command

    def why(self) -> str | None:
        if not self.enabled:
            return f"{ALLOW_ENV} leaves it out"
        if self.problem:
            return self.problem
        problems = [e.problem for e in self.entries if e.problem]
        if len(set(problems)) == 1 and len(problems) == len(self.entries):
            return problems[0]
        return "; ".join(f"{_what(e.group)} {e.name}: {e.problem}" for e in self.entries if e.problem) or None

    def to_record(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "distribution": self.distribution,
                "builtin": self.builtin, "api": PLUGIN_API if self.builtin else self.api,
                "kinds": self.kinds(), "commands": self.commands(), "status": self.status, "reason": self.why()}

    def to_detail(self) -> dict[str, Any]:
        return {**self.to_record(), "summary": self.summary, "location": self.location,
                "requires": self.requires, "entries": [e.to_record() for e in self.entries]}


def _names_edgectl(requirement: str) -> bool:
    """True for a requirement on edgectl itself (`edgectl>=0.1,<0.2`), not on another plugin."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)", requirement)
    return bool(match) and canonical(match.group(1)) == BUILTIN


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares them: Edgectl_Fastly, edgectl.fastly and edgectl-fastly are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_name(distribution: str) -> str:
    name = canonical(distribution)
    return name[len("edgectl-"):] if name.startswith("edgectl-") and name != "edgectl-" else name


def _allowed() -> set[str] | None:
    """The plugin names EDGECTL_PLUGINS allows, or None for all."""
    value = os.environ.get(ALLOW_ENV)
    if value is None:
        return None
    return {plugin_name(part.strip()) for part in value.split(",") if part.strip()}


class Registry:
    """What the installed distributions register, read once; their code imported only when used."""

    def __init__(self):
        self.plugins: dict[str, Plugin] = {}
        self.providers: dict[str, Entry] = {}
        self.commands: dict[str, Entry] = {}
        self._reported: set[str] = set()
        self._ignored: dict[tuple[str, str], list[Entry]] = {}  # plugins' claims on a built-in's name
        self._scan()

    # -- reading entry points ----------------------------------------------------
    def _scan(self) -> None:
        allowed = _allowed()
        claims: dict[tuple[str, str], list[Entry]] = {}
        for dist in sorted(installed(GROUPS), key=lambda d: (canonical(d.name) != BUILTIN, canonical(d.name))):
            plugin = self._plugin_of(dist)
            if not plugin.builtin and allowed is not None and plugin.name not in allowed:
                plugin.enabled = False
            for group, name, target in dist.entries:
                entry = Entry(group, name, target, plugin)
                if not plugin.enabled:
                    entry.status = "disabled"
                plugin.entries.append(entry)
                if plugin.enabled:
                    claims.setdefault((group, name), []).append(entry)
        for (group, name), entries in sorted(claims.items()):
            table = self.providers if group == PROVIDERS else self.commands
            builtins = [e for e in entries if e.plugin.builtin]
            if len(entries) == 1:
                table[name] = entries[0]
            elif builtins:  # a plugin never replaces a built-in
                table[name] = builtins[0]
                for entry in entries:
                    if not entry.plugin.builtin:
                        self._conflict(entry, f"{_what(group)} {name!r} is edgectl's own; the plugin's is not used")
                        self._ignored.setdefault((group, name), []).append(entry)
            else:
                labels = ", ".join(e.plugin.label for e in entries)
                for entry in entries:
                    self._conflict(entry, f"{_what(group)} {name!r} is registered by more than one package ({labels}); "
                                          f"{ALLOW_ENV} can choose one")
                table[name] = entries[0]  # kept so that using it reports the conflict
        if allowed:
            known = {p.name for p in self.plugins.values()}
            for name in sorted(allowed - known):
                self.report(f"{ALLOW_ENV} names {name!r}, which is not an installed plugin"
                            + (f" (installed: {', '.join(sorted(k for k in known if k != 'edgectl'))})"
                               if len(known) > 1 else ""), key=f"allow:{name}",
                            hint=f"{ALLOW_ENV} is a comma-separated list of installed plugins' names")

    def _plugin_of(self, dist: "Installed") -> Plugin:
        key = canonical(dist.name)
        if key not in self.plugins:
            requires = "" if key == BUILTIN else ", ".join(r for r in dist.requires if _names_edgectl(r))
            self.plugins[key] = Plugin(plugin_name(key) if key != BUILTIN else BUILTIN, key, dist.version,
                                       dist.summary, dist.location, requires)
        return self.plugins[key]

    @staticmethod
    def _conflict(entry: Entry, why: str) -> None:
        entry.status, entry.problem = "conflict", why

    # -- problems ------------------------------------------------------------------
    def report(self, message: str, key: str | None = None, covered_by: tuple[str, ...] = (),
               hint: str | None = None) -> None:
        """One warning per problem per command; an error instead under EDGECTL_PLUGINS_STRICT=1."""
        key = key or message
        if key in self._reported:
            return
        self._reported.add(key)
        if strict():
            raise PluginError(message, hint=hint or f"fix or uninstall the plugin ({STRICT_ENV}=1 makes plugin "
                                                    "problems errors); edgectl plugins list shows every plugin")
        _emit(message, covered_by or (message,))

    def _report_entry(self, entry: Entry) -> None:
        plugin = entry.plugin
        key = f"entry:{entry.group}:{entry.name}:{plugin.distribution}"
        if entry.status == "conflict":
            key = f"conflict:{entry.group}:{entry.name}"  # the warning names every claimant: once is enough
        # another warning covers this one when it names the plugin and says the same of it
        if plugin.problem:
            self.report(f"plugin {plugin.label} is not loaded: {plugin.problem}", key=f"plugin:{plugin.distribution}",
                        covered_by=(plugin.label, plugin.problem))
        elif entry.status == "conflict":
            self.report(f"plugin {plugin.label}: {entry.problem}", key=key, covered_by=(plugin.label, entry.problem))
        elif entry.problem:
            self.report(f"plugin {plugin.label}: {_what(entry.group)} {entry.name!r} is not loaded: {entry.problem}",
                        key=key, covered_by=(plugin.label, entry.problem))

    # -- loading -------------------------------------------------------------------
    def _check_plugin(self, plugin: Plugin, module: str) -> None:
        """The plugin's API version, once: from its top-level package, or for a package inside a
        namespace package (acme.edgectl_x) from the first package down the module's path to declare it."""
        if plugin.checked or plugin.builtin:
            plugin.checked = True
            return
        plugin.checked = True
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            package = ".".join(parts[:depth])
            try:
                found = _guarded_import(package)
            except _Failed as failed:
                plugin.problem = f"importing {package} failed: {failed}"
                return
            plugin.api = getattr(found, API_ATTRIBUTE, None)
            if plugin.api is not None:
                plugin.api = str(plugin.api)
                break
        problem = api_problem(plugin.api)
        if problem:
            plugin.problem, plugin.api_refused = problem, True

    def load(self, entry: Entry, report: bool = True) -> Any | None:
        """The entry's object, loaded inside its guard; None (and one warning) when it cannot be used."""
        if entry.status == "pending":
            self._check_plugin(entry.plugin, entry.module)
            if entry.plugin.problem:
                entry.status, entry.problem = "error", entry.plugin.problem
            else:
                try:
                    obj = _guarded_load(entry.target)
                except _Failed as failed:
                    entry.status, entry.problem = "error", str(failed)
                else:
                    if entry.group == PROVIDERS:
                        entry.problem = _provider_problem(entry.name, obj)
                    elif entry.plugin.builtin:  # edgectl's own: `demo` is a command function of the root's
                        entry.problem = None if callable(obj) else f"{obj!r} is not a command"
                    else:
                        entry.problem = _command_problem(obj)
                    entry.status = "error" if entry.problem else "loaded"
                    entry.obj = None if entry.problem else obj
        if entry.status != "loaded":
            if report:
                self._report_entry(entry)
            return None
        return entry.obj

    def load_all(self, plugins: list[Plugin] | None = None) -> None:
        """Load every entry (of `plugins`) to say whether it loads; what does not is shown, not warned about."""
        for plugin in self.plugins.values() if plugins is None else plugins:
            for entry in plugin.entries:
                if entry.status != "disabled":
                    self.load(entry, report=False)

    # -- what commands ask ---------------------------------------------------------
    def kinds(self) -> dict[str, Entry]:
        return dict(self.providers)

    def provider_class(self, kind: str):
        entry = self.providers.get(kind)
        if entry is None:
            disabled = [p for p in self.plugins.values() if not p.enabled and kind in p.kinds()]
            if disabled:
                raise ConfigError(f"provider kind {kind!r} comes from plugin {disabled[0].label}, which {ALLOW_ENV} "
                                  f"leaves out", hint=f"add {disabled[0].name} to {ALLOW_ENV}, or unset it")
            kinds = ", ".join(sorted(self.providers)) or "none installed"
            raise ConfigError(f"unknown provider kind {kind!r}", hint=f"installed kinds: {kinds}")
        self._report_ignored(PROVIDERS, kind)
        cls = self.load(entry)
        if cls is None:
            why = entry.plugin.problem or entry.problem
            origin = "" if entry.plugin.builtin else f" (plugin {entry.plugin.label})"
            raise ConfigError(f"provider kind {kind!r}{origin} cannot be used: {why}",
                              hint=f"upgrade, fix or uninstall {entry.plugin.label}; "
                                   "edgectl plugins list shows every plugin")
        return cls

    def _report_ignored(self, group: str, name: str) -> None:
        for entry in self._ignored.get((group, name), ()):
            self._report_entry(entry)

    def command(self, name: str):
        """A plugin's command group by name: None when no plugin has it; PluginError when it cannot be loaded."""
        entry = self.commands.get(name)
        if entry is None or entry.plugin.builtin:  # edgectl's own are found without entry points
            disabled = [p for p in self.plugins.values() if not p.enabled and name in p.commands()]
            if disabled:
                raise UsageError(f"command {name!r} comes from plugin {disabled[0].label}, which {ALLOW_ENV} leaves out",
                                 hint=f"add {disabled[0].name} to {ALLOW_ENV}, or unset it")
            return None
        app = self.load(entry)
        if app is None:
            why = entry.plugin.problem or entry.problem
            raise PluginError(f"command {name!r} cannot be used: plugin {entry.plugin.label}: {why}",
                              hint="upgrade, fix or uninstall it; edgectl plugins list shows every plugin")
        return app

    def command_help(self, reserved: set[str]) -> dict[str, str]:
        """Plugin command groups and their help lines, read from the distributions without importing them.

        A group named like one of edgectl's own commands (`reserved`) is refused, with one warning.
        """
        found = {}
        for plugin in self.plugins.values():
            for entry in plugin.entries:
                if plugin.builtin or entry.group != COMMANDS or entry.status == "disabled":
                    continue
                if entry.name in reserved and entry.status != "conflict":
                    self._conflict(entry, f"command group {entry.name!r} is edgectl's own")
                if entry.status == "conflict":
                    self._report_entry(entry)
                    continue
                found[entry.name] = plugin.summary or f"From {plugin.label}."
        return dict(sorted(found.items()))

    def find(self, name: str) -> Plugin | None:
        key = canonical(name)
        return self.plugins.get(key) or self.plugins.get(f"edgectl-{key}")


@dataclass(frozen=True)
class Installed:
    """An installed distribution with entries in edgectl's groups, as its metadata says."""

    name: str
    version: str
    summary: str
    requires: tuple[str, ...]
    location: str
    entries: tuple[tuple[str, str, str], ...]  # (group, name, module:attribute), sorted


def installed(groups: tuple[str, ...] = GROUPS) -> list[Installed]:
    """The distributions on sys.path with entry points in `groups`, each once (the first found, as
    importlib.metadata takes them), read from their `entry_points.txt` directly.

    importlib.metadata finds the same (a test checks the two agree), but importing it costs about
    18 ms, an eighth of `edgectl --help`, against 2 ms for reading the files here. Zipped eggs on
    sys.path, a layout pip has not written for years, are not read.
    """
    seen: set[str] = set()
    found = []
    for base in sys.path:
        try:
            names = os.listdir(base or ".")
        except OSError:  # a zip file, a folder that is gone
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            key = re.sub(r"[-_.]+", "_", name.rpartition(".")[0].partition("-")[0]).lower()
            if key in seen:
                continue
            seen.add(key)
            path = os.path.join(base or ".", name)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError:
                continue
            if not any(f"[{group}]" in text for group in groups):
                continue
            entries = _parse_entry_points(text, groups)
            if entries:
                found.append(_read_metadata(path, entries))
    return found


def _parse_entry_points(text: str, groups: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    entries, group = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif group in groups and "=" in line:
            name, _, value = line.partition("=")
            entries.append((group, name.strip(), value.split("[")[0].strip()))  # `mod:attr [extra]`: extras dropped
    return tuple(sorted(entries))


def _read_metadata(path: str, entries) -> Installed:
    """Name, Version, Summary and Requires-Dist from a METADATA (or an egg's PKG-INFO) header."""
    fields: dict[str, list[str]] = {}
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(path, filename), encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        break  # the body (a README) follows the header
                    if line[0] in " \t" or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields.setdefault(key.strip().lower(), []).append(value.strip())
            break
        except OSError:
            continue
    stem = os.path.basename(path).rpartition(".")[0]
    name = (fields.get("name") or [stem.partition("-")[0]])[0]
    version = (fields.get("version") or [stem.partition("-")[2] or "?"])[0]
    return Installed(name, version, (fields.get("summary") or [""])[0], tuple(fields.get("requires-dist", ())),
                     path, entries)


class _Failed(Exception):
    pass


@contextmanager
def _guard():
    """Whatever a plugin raises while it is imported or read is its failure, not edgectl's; what it
    prints goes to stderr, since stdout carries only the command's data."""
    try:
        with redirect_stdout(sys.stderr):
            yield
    except KeyboardInterrupt:
        raise
    except _Failed:
        raise
    except BaseException as exc:  # SystemExit from a plugin's import is its failure, not edgectl's exit
        raise _Failed(f"{exc.__class__.__name__}: {exc}") from None


def _guarded_import(module: str):
    import importlib
    import threading

    before = set(threading.enumerate())
    try:
        with _guard():
            return importlib.import_module(module)
    finally:
        # a thread an import starts and does not mark daemon would keep a cron job's edgectl alive after it is done
        _lingering.extend((module, t) for t in threading.enumerate() if t not in before and not t.daemon)


def lingering() -> list[str]:
    """The plugin modules whose import started threads that are still running and would keep the process alive."""
    return sorted({module for module, thread in _lingering if thread.is_alive()})


def _guarded_load(target: str):
    module, _, attribute = target.partition(":")
    obj = _guarded_import(module.strip())
    with _guard():  # a module's __getattr__ may raise anything, ImportError for a missing extra most often
        for part in attribute.strip().split(".") if attribute.strip() else []:
            obj = getattr(obj, part)
    return obj


def _provider_problem(kind: str, cls) -> str | None:
    from edgectl.providers.base import Provider

    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        return f"{cls!r} is not a subclass of edgectl.providers.base.Provider"
    declared = getattr(cls, "kind", None)
    if declared != kind:
        return f"its class says kind {declared!r}, and its entry point {kind!r}"
    try:
        with _guard():  # a plugin's own classmethods may be broken too
            return cls.contract_problem()
    except _Failed as failed:
        return f"checking its contract raised {failed}"


def _command_problem(app) -> str | None:
    """Why `app` cannot be a command group: a typer.Typer, or a click command (told by their parts, so
    that this room needs no command-line library)."""
    if hasattr(app, "registered_commands") and hasattr(app, "registered_groups"):
        return None
    if callable(getattr(app, "main", None)) and hasattr(app, "params"):
        return None
    return f"{app!r} is not a typer.Typer or click command"


def _what(group: str) -> str:
    return "provider kind" if group == PROVIDERS else "command group"


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# -- one registry per command ------------------------------------------------------
_registry: Registry | None = None
_registry_key: tuple | None = None
_lingering: list = []  # (module, thread) for each non-daemon thread a plugin's import started
_sink: Callable[[str], None] | None = None
_given: Callable[[], list[str]] | None = None
_pending: list[tuple[str, tuple[str, ...]]] = []  # (warning, what another must say to cover it)


def registry() -> Registry:
    """The registry for this command, read on first use. EDGECTL_PLUGINS is read with it, so a change to
    it (a test's, or a program's that runs commands in-process) is a registry read afresh; a plugin that
    changes sys.path as it loads is not."""
    global _registry, _registry_key
    key = (os.environ.get(ALLOW_ENV), os.environ.get(STRICT_ENV))
    if _registry is None or key != _registry_key:
        _registry, _registry_key = None, key
        _registry = Registry()
    return _registry


def reset() -> None:
    """Start a command: entry points are read again when next needed, and warnings wait for their sink."""
    global _registry, _sink, _given
    _registry = None
    _sink = _given = None
    _pending.clear()


def set_sink(sink: Callable[[str], None], given: Callable[[], list[str]] | None = None) -> None:
    """Where this command's warnings go when it ends (the renderer, so that -o json gets JSON).

    `given()` is every warning the command has already given: a plugin's problem that one of them
    states (a provider left out, and why) is not repeated.
    """
    global _sink, _given
    _sink, _given = sink, given


def _covered(needles: tuple[str, ...], text: str) -> bool:
    return all(needle in text for needle in needles)


def drop_covered(error_message: str) -> None:
    """Forget the warnings whose plugin and problem the command's error already states."""
    _pending[:] = [(message, needles) for message, needles in _pending if not _covered(needles, error_message)]


def flush(fallback: Callable[[str], None]) -> None:
    """Deliver this command's warnings, each once, after what it printed."""
    sink = _sink or fallback
    given = _given() if _given else []
    while _pending:
        message, needles = _pending.pop(0)
        if not any(_covered(needles, text) for text in given):
            sink(message)


def _emit(message: str, needles: tuple[str, ...]) -> None:
    _pending.append((message, needles))
