"""Names in the order people read them: n2 before n10, eu-west-9 before eu-west-10."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str | None) -> tuple:
    """A sort key comparing runs of digits as numbers and the rest without regard to case.

    Parts alternate text, number, text..., so two keys always compare like with like; the
    name itself breaks ties ("n01" and "n1").
    """
    if name is None:
        return ((),)
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def natural_compare(a: str | None, b: str | None) -> int:
    """A SQLite collation (COLLATE natural_order) for the same order."""
    ka, kb = natural_key(a), natural_key(b)
    return (ka > kb) - (ka < kb)
