"""The errors edgectl raises on purpose, each with a hint and the exit code it ends in."""

from __future__ import annotations

# Exit codes, as DESIGN.md documents them for every command.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONDITION = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130


class EdgectlError(Exception):
    """An error meant for the user: one line, an optional hint, an exit code."""

    exit_code = EXIT_FAILED
    kind = "failed"

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def to_dict(self) -> dict:
        return {
            "error": {
                "kind": self.kind,
                "message": self.message,
                "hint": self.hint,
                "exit_code": self.exit_code,
            }
        }


class UsageError(EdgectlError):
    """Bad input: an invalid value, an unknown name, a malformed file."""

    exit_code = EXIT_USAGE
    kind = "usage"


class ConfigError(UsageError):
    kind = "config"


class NotFound(UsageError):
    kind = "not_found"


class StateError(EdgectlError):
    """The state file cannot be used: not a database, too new, corrupt, unwritable."""

    kind = "state"


class OperationFailed(EdgectlError):
    """The operation ran and failed, or only partly succeeded."""

    kind = "failed"


class ConditionMet(EdgectlError):
    """A checked condition holds (alerts, checks); not a malfunction."""

    exit_code = EXIT_CONDITION
    kind = "condition"


class LockHeld(EdgectlError):
    exit_code = EXIT_LOCKED
    kind = "locked"


class Interrupted(EdgectlError):
    exit_code = EXIT_INTERRUPTED
    kind = "interrupted"
