"""Processes edgectl records as owners of its runs."""

from __future__ import annotations

import os


def alive(pid: int | None) -> bool:
    """True while a process with this pid exists (ours included); a pid we may not signal counts as alive."""
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
