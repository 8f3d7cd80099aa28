"""`edgectl config`: the configuration file, read, checked and edited in place."""

from __future__ import annotations

from typing import Annotated

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.errors import ConfigError, UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("config"), no_args_is_help=True, add_completion=False)


def _path():
    from edgectl.config import find_config_path

    return find_config_path(current().config_option)


@app.command("path")
def config_path() -> None:
    """Print the config file in use and how it was found."""
    path, source = _path()
    ctx = current()
    ctx.out.show({"path": str(path), "source": source, "exists": path.is_file()}, View(
        text=lambda r: r["path"], notes=lambda r: [f"({source}; {'exists' if r['exists'] else 'does not exist yet'})"]))


@app.command("init")
def config_init(force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False) -> None:
    """Write an annotated starting config file."""
    from edgectl.config import init_file

    path, _ = _path()
    init_file(path, force=force)
    current().out.note(f"wrote {path}")


@app.command("show")
def config_show() -> None:
    """Show the effective configuration (profile applied, defaults filled in, secrets masked)."""
    from edgectl.config import SETTINGS, mask_secrets

    ctx = current()
    config = ctx.config
    effective = {}
    for key in SETTINGS:
        effective[key] = config.get(key)
    rows = [{"key": k, "value": v, "source": "file" if _in_file(config, k) else "default"} for k, v in effective.items()]
    for key, value in _flatten(mask_secrets(config.data)):
        if key not in effective and not any(key.startswith(setting + ".") for setting in effective):
            rows.append({"key": key, "value": value, "source": "file"})
    record = {"path": str(config.path), "profile": config.profile, "settings": {r["key"]: r["value"] for r in rows},
              "sources": {r["key"]: r["source"] for r in rows}}
    ctx.out.show(record, SHOW_VIEW)


SHOW_VIEW = View([Column("key"), Column("value"), Column("source")], rows=lambda record: [
    {"key": key, "value": value, "source": record["sources"][key]} for key, value in record["settings"].items()])


def _in_file(config, key: str) -> bool:
    from edgectl.config import lookup

    try:
        lookup(config.data, key)
    except KeyError:
        return False
    return True


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@app.command("get")
def config_get(key: Annotated[str, typer.Argument(help="Dotted key, e.g. nodes.fail_after.")]) -> None:
    """Print one effective value (secrets masked)."""
    from edgectl.config import SETTINGS, is_reference, is_secret_key, mask_secrets, unknown_setting

    ctx = current()
    try:
        value = ctx.config.get(key)
    except KeyError:
        if key in SETTINGS:
            value = SETTINGS[key].default
        else:
            raise UsageError(unknown_setting(key)) from None
    if isinstance(value, dict):
        value = mask_secrets(value, key)
    elif is_secret_key(key) and isinstance(value, str) and not is_reference(value):
        value = "********"
    ctx.out.show({"key": key, "value": value}, View(text=_value_text))


def _value_text(record: dict) -> str:
    """A value as a shell reads it: a table as `key = value` lines, true/false in lower case."""
    value = record["value"]
    if isinstance(value, dict):
        return "\n".join(f"{sub} = {item}" for sub, item in _flatten(value, record["key"] + "."))
    return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="Dotted key, e.g. nodes.fail_after.")],
    value: Annotated[str, typer.Argument()],
) -> None:
    """Set one value, keeping the file's comments, order and formatting."""
    from edgectl.config import is_reference, is_secret_key, set_value

    ctx = current()
    path, _ = _path()
    if is_secret_key(key) and not is_reference(value):
        raise ConfigError(f"{key} is a secret: store a reference, not the value",
                          hint=f"edgectl config set {key} env:VARIABLE (or file:/path/to/secret)")
    written = set_value(path, key, value, profile=ctx.profile)
    where = f"[profiles.{ctx.profile}] " if ctx.profile else ""
    ctx.out.note(f"set {where}{key} = {written!r} in {path}")


@app.command("validate")
def config_validate() -> None:
    """Check the file: every problem, each naming the file and key. Exit 2 when invalid."""
    from edgectl.config import Config, validate

    ctx = current()
    path, source = _path()
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist", hint="create it with edgectl config init")
    problems = validate(Config(path, source))
    errors = [p for p in problems if p.severity == "error"]
    ctx.out.show({"path": str(path), "valid": not errors, "problems": [p.to_record() for p in problems]},
                 View(draw=_draw_problems))
    if errors:
        raise typer.Exit(2)


def _draw_problems(out, record: dict) -> None:
    """Every problem on stderr (errors even with --quiet), then a line for a valid file."""
    import sys

    for p in record["problems"]:
        sys.stderr.write(f"{p['file']}: {p['key'] or '(file)'}: {p['severity']}: {p['message']}\n")
    if record["valid"]:
        warnings = len(record["problems"])
        out.note(f"{record['path']}: valid" + (f" ({warnings} warning(s))" if warnings else ""))
