"""A real sandbox fleet for a test module, and its nodes registered in a test's own state."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_fleet(where: Path, *, nodes: int = 2, regions=("us-east", "eu-west"), pages: int = 40):
    from edgectl.sandbox import fleet

    box = fleet.start(where / "box", where / "state.db", nodes=nodes, regions=list(regions), pages=pages)
    try:
        yield box
    finally:
        fleet.stop(box)


def register(box, state_path: Path) -> None:
    """The fleet's nodes in the inventory of the state file at `state_path`."""
    from edgectl.sandbox import fleet
    from edgectl.state import open_state

    state = open_state(state_path)
    try:
        fleet.register(state, box)
    finally:
        state.close()
