"""The root `edgectl` command: global options, sub-command groups and the one error handler."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from edgectl import __version__
from edgectl.cli import GROUPS, _click
from edgectl.cli.context import AppContext
from edgectl.errors import EXIT_FAILED, EXIT_USAGE, EdgectlError, Interrupted, LockHeld, UsageError

# Global flags a user may also type after the command (`edgectl nodes list -o json`).
_HOISTED_WITH_VALUE = ("--output", "-o")
_HOISTED_FLAGS = ("--debug", "--quiet", "-q", "--verbose", "-v", "--no-color")


def hoist_global_options(args: list[str], value_options: set[str] = frozenset()) -> list[str]:
    """Move global options found after the sub-command to the front, as aws and gh accept them.

    `value_options` are the options on the command's path that take a value: the token after
    one of them is its value (`--reason -q` keeps '-q' as the reason), never a global option.
    """
    front, rest = [], []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in value_options and i + 1 < len(args):
            rest.extend(args[i:i + 2])
            i += 2
            continue
        if arg in _HOISTED_WITH_VALUE and i + 1 < len(args):
            front.extend(args[i:i + 2])
            i += 2
            continue
        if arg.startswith("--output=") or (arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--")):
            front.append(arg)
        elif arg in _HOISTED_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def _output_in(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg in _HOISTED_WITH_VALUE and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return None


def _report(error: EdgectlError, app_ctx: AppContext | None, fmt: str | None = None) -> None:
    if app_ctx is not None:
        try:
            fmt = app_ctx.output
        except EdgectlError:
            fmt = app_ctx.output_option
    if fmt in ("json", "jsonl"):
        sys.stderr.write(json.dumps(error.to_dict()) + "\n")
        return
    sys.stderr.write(f"error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"hint: {error.hint}\n")


class _Suggesting(TyperGroup):
    """typer suggests only among commands already built; these groups build theirs on use."""

    def resolve_command(self, ctx, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except _click.UsageError as error:
            if args and "Did you mean" not in error.message:
                from difflib import get_close_matches

                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    error.message = f"{error.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise


class LazyGroup(_Suggesting):
    """A command group whose commands are built from their functions when first asked for.

    typer builds every command of a group up front, reading each function's signature and
    evaluating its annotations: about 40 ms for `cache`, paid by every `cache` command for the
    one it runs. Help and completion still list (and so build) them all.
    """

    _origin: str | None = None  # the plugin it comes from ("edgectl-varnish 0.1.0"); None for edgectl's own

    @classmethod
    def of(cls, app: typer.Typer, origin: str | None = None) -> LazyGroup:
        from copy import copy

        shell = copy(app)  # the group's own callback and settings, without its commands
        shell.registered_commands, shell.registered_groups = [], []
        shell.info = copy(app.info)
        shell.info.cls = cls
        group = typer.main.get_group(shell)
        group._settings = {"pretty_exceptions_short": app.pretty_exceptions_short,
                           "rich_markup_mode": app.rich_markup_mode}
        group._suggest = app.suggest_commands
        group._pending = {}
        for info in app.registered_commands:
            group._pending[info.name or typer.main.get_command_name(info.callback.__name__)] = info
        for info in app.registered_groups:
            group._pending[info.name] = info
        group._order = list(group._pending)
        group._origin = origin
        return group

    def list_commands(self, ctx) -> list[str]:
        return list(self._order)

    def get_command(self, ctx, name: str):
        info = self._pending.get(name)
        if info is not None:
            from typer.models import CommandInfo

            try:
                if isinstance(info, CommandInfo):
                    command = typer.main.get_command_from_info(info, **self._settings)
                else:
                    command = typer.main.get_group_from_info(info, suggest_commands=self._suggest, **self._settings)
            except Exception as exc:
                if self._origin is None:
                    raise
                from edgectl.plugins import PluginError  # a plugin's command that typer cannot build

                raise PluginError(f"command {self.name} {name} cannot be used: plugin {self._origin}: "
                                  f"{exc.__class__.__name__}: {exc}",
                                  hint="upgrade, fix or uninstall it; edgectl plugins list shows every plugin") from None
            del self._pending[name]
            self.add_command(command, name)
        return self.commands.get(name)


PLUGIN_PANEL = "Plugin commands"


def _options_with_values(command) -> set[str]:
    names: set[str] = set()
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", True) is False and getattr(param, "count", False) is False:
            names.update(o for o in param.opts if o.startswith("-"))
            names.update(o for o in getattr(param, "secondary_opts", []) if o.startswith("-"))
    return names


class RootGroup(_Suggesting):
    """The root: hoists global options, loads command groups when used, and handles every error.

    edgectl's own groups are found in GROUPS without reading any entry point; a name that is not
    one of them is looked up among the plugins' `edgectl.commands`, whose code is imported only
    when that group is run.
    """

    _listing = False  # while rendering `edgectl --help`: groups are described, not imported

    def _own(self) -> set[str]:
        return set(GROUPS) | set(self.commands)

    def _plugin_help(self) -> dict[str, str]:
        from edgectl.plugins import registry

        return registry().command_help(self._own())

    def list_commands(self, ctx) -> list[str]:
        loaded = super().list_commands(ctx)
        own = [name for name in GROUPS if name not in loaded] + loaded
        return own + [name for name in self._plugin_help() if name not in own]

    def get_command(self, ctx, name: str):
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        if name in GROUPS:
            module_name, help_text = GROUPS[name]
            if self._listing:
                return TyperGroup(name=name, help=help_text)
            import importlib

            app = importlib.import_module(module_name).app
        else:
            if self._listing:
                help_text = self._plugin_help().get(name)
                return TyperGroup(name=name, help=help_text, rich_help_panel=PLUGIN_PANEL) if help_text else None
            from edgectl.plugins import registry

            found = registry()
            app = found.command(name)
            if app is None:
                return None
            origin = found.commands[name].plugin.label
            command = LazyGroup.of(app, origin) if isinstance(app, typer.Typer) else app
            command.name = name
            self.add_command(command, name)
            return command
        command = LazyGroup.of(app) if isinstance(app, typer.Typer) else app
        command.name = name
        self.add_command(command, name)
        return command

    def main(self, args=None, *rest, **kwargs):
        from edgectl import plugins

        plugins.reset()  # each run reads the entry points afresh, and warns afresh
        fmt = _output_in(list(sys.argv[1:] if args is None else args))

        def before_the_command(message: str) -> None:  # `--help`, or an error before the command began
            sys.stderr.write((json.dumps({"warning": message}) if fmt in ("json", "jsonl") else f"warning: {message}")
                             + "\n")

        try:
            return super().main(args, *rest, **kwargs)
        finally:
            plugins.flush(before_the_command)

    def format_help(self, ctx, formatter) -> None:
        self._plugin_help()  # first, so that a plugin problem under strict mode stops the help before any is printed
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args, self._value_options(ctx, args)))

    def _value_options(self, ctx: typer.Context, args: list[str]) -> set[str]:
        """Option names that take a value on the command line's path (so their values stay put)."""
        names: set[str] = set()
        command = self
        takes_value = _options_with_values(self) | set(_HOISTED_WITH_VALUE)
        skip = False
        for token in args:
            if skip or token.startswith("-"):
                # an option's value (`--config edgectl.toml`) is not a command: looking it up would read plugins
                skip = token in takes_value and not skip
                continue
            try:
                sub = command.get_command(ctx, token) if hasattr(command, "get_command") else None
            except Exception:  # noqa: BLE001 - a plugin group that cannot load is reported when it is run
                sub = None
            if sub is None:
                continue
            command = sub
            takes_value = _options_with_values(command)
            names.update(takes_value)
        return names - set(_HOISTED_WITH_VALUE)

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except _click.UsageError as error:
            self._usage(error, None, args)
        except EdgectlError as error:  # `--help` listing a plugin's group, under EDGECTL_PLUGINS_STRICT=1
            _report(error, None, fmt=_output_in(args))
            raise _click.Exit(error.exit_code) from None

    @staticmethod
    def _usage(error, app_ctx: AppContext | None, args: list[str] | None = None):
        """A usage error in the same one-line form as every other error."""
        fmt = app_ctx.output_option if app_ctx else _output_in(args or [])
        command = error.ctx.command_path if getattr(error, "ctx", None) else "edgectl"
        message = error.format_message()
        if message.strip():  # a group run without a command has printed its help, which says it all
            _report(UsageError(message, hint=f"{command} --help shows the usage"), None, fmt=fmt)
        raise _click.Exit(EXIT_USAGE) from None

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except BaseException as error:
            app_ctx = ctx.obj if isinstance(ctx.obj, AppContext) else None
            self._handle(error, app_ctx)
        finally:
            if isinstance(ctx.obj, AppContext):
                ctx.obj.close()

    @staticmethod
    def _handle(error: BaseException, app_ctx: AppContext | None):
        """Report any exception in one line and exit with its code; click's own pass through."""
        import sqlite3

        debug = bool(app_ctx and app_ctx.debug)
        if isinstance(error, _click.UsageError):
            RootGroup._usage(error, app_ctx)
        if isinstance(error, (_click.Exit, _click.ClickException, SystemExit)):
            raise error
        if isinstance(error, (KeyboardInterrupt, _click.Abort)):
            error = Interrupted("interrupted")
        elif isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            error = LockHeld("the state file is locked by another edgectl run",
                             hint="try again when it has finished, or raise state.busy_timeout")
        elif isinstance(error, BrokenPipeError):
            raise _click.Exit(EXIT_FAILED) from None
        elif not isinstance(error, EdgectlError):  # a bug: one line, the traceback only with --debug
            error = EdgectlError(f"unexpected {error.__class__.__name__}: {error}",
                                 hint="run again with --debug for the traceback, and report it")
        if debug:
            import traceback

            traceback.print_exc()
        from edgectl import plugins

        plugins.drop_covered(error.message)
        _report(error, app_ctx)
        raise _click.Exit(error.exit_code) from None


app = typer.Typer(
    cls=RootGroup,
    name="edgectl",
    help="Run an edge estate: edge nodes, CDN purges, cache warming, routing, migrations, analytics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgectl {__version__}")
        raise typer.Exit()


def _check_output(value: Optional[str]) -> Optional[str]:
    from edgectl.output import FORMATS

    if value is not None and value.lower() not in FORMATS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(FORMATS)}")
    return value.lower() if value else value


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[Optional[str], typer.Option("--config", envvar="EDGECTL_CONFIG", metavar="PATH",
                                                  help="Config file.")] = None,
    state: Annotated[Optional[str], typer.Option("--state", envvar="EDGECTL_STATE", metavar="PATH",
                                                 help="State database.")] = None,
    profile: Annotated[Optional[str], typer.Option("--profile", envvar="EDGECTL_PROFILE", metavar="NAME",
                                                   help="Config profile.")] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", envvar="EDGECTL_OUTPUT", metavar="FORMAT",
                                                  callback=_check_output,                                                  help="table, json, jsonl or csv.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only data and errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Tracebacks and request logs on stderr.")] = False,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour; also NO_COLOR.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = AppContext(config, state, profile, output, quiet, verbose, debug, no_color)
    from edgectl import plugins

    plugins.set_sink(lambda message: ctx.obj.out.warn(message), lambda: ctx.obj.warned)
    if debug:
        import logging

        from edgectl.logs import configure_debug_logging

        ctx.obj._restore_logging = configure_debug_logging(logging.DEBUG)


def _register() -> None:
    """The groups in GROUPS are loaded by RootGroup when used; only the demo command is here."""
    from edgectl.cli import demo

    app.command("demo")(demo.demo)


_register()


def run(argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="edgectl", standalone_mode=True)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    _exit_despite_plugin_threads(code)
    return code


def _exit_despite_plugin_threads(code: int) -> None:
    """A plugin whose import left a thread running would keep a finished command alive (a cron job
    never ending): say so and end the process now, with the command's own exit code."""
    plugins = sys.modules.get("edgectl.plugins")
    held = plugins.lingering() if plugins else []
    if held:
        import os

        sys.stderr.write(f"warning: {', '.join(held)} left a thread running when imported; edgectl exits "
                         "without waiting for it\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
