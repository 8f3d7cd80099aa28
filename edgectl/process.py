"""Processes edgectl records as owners of its runs."""

from __future__ import annotations

import os
from contextlib import contextmanager


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


def open_file_allowance(wanted: int, reserve: int = 256) -> int:
    """How many connections may be open at once: `wanted`, if the open-file limit allows it.

    The soft limit is raised as far as the hard one allows first; `reserve` descriptors are kept
    for everything else the process opens (the state, logs, pipes to a writer).
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and wanted > soft - reserve:
        return max(1, soft - reserve)
    return wanted


@contextmanager
def held_lock(path: str, *, what: str, hint: str, wait: float = 0.0):
    """An flock on `path` for the life of the block, waiting up to `wait` seconds for it; else
    LockHeld (exit 4) naming its holder.

    The kernel releases it when the holder dies, so a killed run never leaves a stale lock behind.
    """
    import fcntl
    import time

    from edgectl.errors import LockHeld

    handle = open(path, "a+")
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise LockHeld(f"{what} holds the lock ({holder})", hint=hint) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()
