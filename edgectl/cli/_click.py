"""The click that typer runs on: typer >= 0.23 carries its own copy as typer._click."""

try:
    from typer._click.core import Command
    from typer._click.exceptions import ClickException, UsageError
    from typer._click.globals import get_current_context
    from typer.exceptions import Abort, Exit
except ImportError:  # typer on the separate click package
    from click import Command, get_current_context
    from click.exceptions import Abort, ClickException, Exit, UsageError

__all__ = ["Abort", "ClickException", "Command", "Exit", "UsageError", "get_current_context"]
