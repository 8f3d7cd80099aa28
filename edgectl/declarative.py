"""Declarative files (an inventory, routing rules): read as TOML or JSON, strictly, from a path or stdin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgectl.errors import UsageError


class DeclaredPlan:
    """What a declarative plan is besides its steps: counted, summed up, shown row by row, checked.

    Subclasses are dataclasses with `steps` (each with `action`, `to_record()` and `summary()`),
    `prune`, `listed` (entries the file lists) and `what` (what the entries are, for messages).
    """

    @property
    def empty(self) -> bool:
        return not self.steps

    def counts(self) -> dict[str, int]:
        return {a: sum(1 for s in self.steps if s.action == a) for a in ("create", "update", "remove")}

    def summary(self) -> str:
        counts = self.counts()
        return f"{counts['create']} to create, {counts['update']} to update, {counts['remove']} to remove"

    def rows(self) -> list[dict[str, Any]]:
        return [{**s.to_record(), "summary": s.summary()} for s in self.steps]

    def raise_if_unsafe(self, *, force: bool, source: str = "the file") -> None:
        """An empty file with --prune would remove everything: refused unless forced."""
        removes = self.counts()["remove"]
        if self.prune and not self.listed and removes and not force:
            raise UsageError(f"{source} lists no {self.what}: --prune would remove all {removes}",
                             hint="pass --force if that is really what you want")


def read_file(path: str, *, what: str = "inventory file") -> tuple[str, str]:
    """(text, label) of a declarative file, or of stdin for '-'."""
    import sys

    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).expanduser().read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None


def load_document(text: str, label: str) -> Any:
    """JSON (by name or a leading '{') or TOML; a duplicate key or NaN in JSON is refused, as TOML refuses them."""
    if label.endswith(".json") or text.lstrip().startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        except ValueError as exc:
            raise UsageError(f"{label}: not valid JSON: {exc}") from None
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(text).unwrap()
    except ParseError as exc:
        raise UsageError(f"{label}: not valid TOML: {exc}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")
