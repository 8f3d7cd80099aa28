"""What every command shares: the global options, and the config and state they lead to."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgectl.errors import UsageError
from edgectl.output import FORMATS, Renderer

if TYPE_CHECKING:
    from edgectl.config import Config
    from edgectl.state import State


@dataclass
class AppContext:
    config_option: str | None = None
    state_option: str | None = None
    profile: str | None = None
    output_option: str | None = None
    quiet: bool = False
    verbose: bool = False
    debug: bool = False
    no_color: bool = False
    _config: "Config | None" = field(default=None, repr=False)
    _state: "State | None" = field(default=None, repr=False)
    _renderer: Renderer | None = field(default=None, repr=False)
    _restore_logging: object = field(default=None, repr=False)  # set by --debug
    warned: list[str] = field(default_factory=list, repr=False)  # every warning this command gave

    @property
    def output(self) -> str:
        fmt = self.output_option
        if fmt is None and self._config is not None:
            fmt = self._config.get("defaults.output")
        fmt = (fmt or "table").lower()
        if fmt not in FORMATS:
            raise UsageError(f"unknown output format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
        return fmt

    @property
    def color(self) -> bool:
        return not (self.no_color or os.environ.get("NO_COLOR"))

    @property
    def out(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self.output, color=self.color, quiet=self.quiet, verbose=self.verbose,
                                      warned=self.warned)
        return self._renderer

    @property
    def config(self) -> "Config":
        if self._config is None:
            from edgectl.config import Config, find_config_path

            path, source = find_config_path(self.config_option)
            if source == "option" and not path.is_file():
                raise UsageError(f"config file {path} does not exist", hint="create it with edgectl config init")
            self._config = Config(path, source, self.profile)
            self._renderer = None  # the config may name the default output format
            self.out.info(f"config: {path} ({source}{', found' if self._config.exists else ', absent'})"
                          + (f", profile {self.profile}" if self.profile else ""))
            for warning in self._config.warnings():
                self.out.warn(warning)
        return self._config

    def state_path(self) -> Path:
        if self.state_option:
            return Path(self.state_option).expanduser()
        configured = self.config.get("state.path")
        if configured:
            return Path(configured).expanduser()
        from edgectl.state import default_state_path

        return default_state_path()

    @property
    def state(self) -> "State":
        if self._state is None:
            from edgectl.state import open_state

            named = bool(self.state_option) or bool(self.config.get("state.path"))
            wait = self.config.setting("state.busy_timeout")
            self._state = open_state(self.state_path(), create_dirs=not named, busy_timeout_ms=int(wait * 1000))
            self.out.info(f"state: {self._state.path}")
        return self._state

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._restore_logging is not None:
            self._restore_logging()
            self._restore_logging = None

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()


def current() -> AppContext:
    """The AppContext of the command being run."""
    from edgectl.cli._click import get_current_context

    ctx = get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = AppContext()
    return root.obj
