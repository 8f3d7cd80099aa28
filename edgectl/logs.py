"""Logging for --debug and --verbose, with every known secret redacted before it is written."""

from __future__ import annotations

import logging
import re
import sys

_secrets: set[str] = set()
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")
# an AWS session token in a logged header, wherever it came from
_AMZ_TOKEN = re.compile(r"(?i)(x-amz-security-token'?\"?\s*[:=]\s*b?['\"]?)[^\s'\",}]+")
_REDACTED = "********"


def register_secret(value: str) -> None:
    """Remember a resolved secret so that no log line can carry it."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    # longest first: a secret that holds another (a URL and its path) is masked whole
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, _REDACTED)
    text = _AMZ_TOKEN.sub(lambda m: m.group(1) + _REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + _REDACTED, text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def configure_debug_logging(level: int = logging.DEBUG):
    """Every library's log lines on stderr, redacted; returns what puts logging back as it was.

    A command run in-process (tests, a program embedding edgectl) must not leave the root logger
    at DEBUG writing to a stream that is gone once the command has ended.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    before = (root.handlers[:], root.level)
    root.handlers[:] = [handler]
    root.setLevel(level)

    def restore() -> None:
        root.handlers[:], level_before = before
        root.setLevel(level_before)

    return restore


log = logging.getLogger("edgectl")
