"""`edgectl sandbox`: a local edge fleet (origin + caching nodes) to try edgectl on, and to test it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgectl.cli import group_help
from edgectl.cli.context import current
from edgectl.errors import OperationFailed, UsageError
from edgectl.output import Column, View

app = typer.Typer(help=group_help("sandbox"), no_args_is_help=True, add_completion=False)

Dir = Annotated[Optional[Path], typer.Option("--dir", envvar="EDGECTL_SANDBOX_DIR", metavar="PATH",
                                             help="Where the sandbox keeps its files (default: user data dir).")]
STATUS_COLUMNS = [Column("name"), Column("role"), Column("region"), Column("url"), Column("up", kind="bool")]


def _dir(option: Optional[Path]) -> Path:
    from edgectl.sandbox.fleet import default_dir

    return option.expanduser() if option else default_dir()


def _need_extra():
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UsageError("the sandbox needs the 'sandbox' extra", hint="pip install 'edgectl[sandbox]'") from None


@app.command("up")
def sandbox_up(
    nodes: Annotated[int, typer.Option("--nodes", "-n", help="Edge nodes to start.")] = 3,
    regions: Annotated[str, typer.Option("--regions", help="Comma-separated regions, used round-robin.")] = "us-east,eu-west,ap-south",
    pages: Annotated[int, typer.Option("--pages", help="Pages on the origin site.")] = 500,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Leave the fleet running in the background.")] = False,
    directory: Dir = None,
) -> None:
    """Start an origin and N caching edge nodes, and register the nodes (label sandbox=true)."""
    from edgectl.sandbox import fleet

    _need_extra()
    ctx = current()
    where = _dir(directory)
    wanted = [r.strip() for r in regions.split(",") if r.strip()]
    fleet.plan_nodes(nodes, wanted)  # bad input fails before anything starts
    box = fleet.start(where, ctx.state_path(), nodes=nodes, regions=wanted, pages=pages)
    try:
        fleet.register(ctx.state, box)
    except BaseException:
        fleet.stop(box)
        fleet.clean_files(where)
        raise
    _render_status(box)
    ctx.out.note(f"sandbox up: origin {box.origin}, {len(box.nodes)} node(s); config {box.config_path}")
    if detach:
        ctx.out.note("running in the background; stop it with: edgectl sandbox down")
        return
    _wait_then_teardown(box)


def _wait_then_teardown(box) -> None:
    """Run until Ctrl-C or SIGTERM, then take everything down.

    "press Ctrl-C" is said only once a Ctrl-C is sure to be caught here, so that one sent the
    moment it is read still tears the sandbox down rather than leaving it running.
    """
    import signal
    import time

    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        current().out.note("running; press Ctrl-C to stop")
        while box.running():
            time.sleep(0.2)
        raise OperationFailed("the sandbox servers stopped unexpectedly", hint=f"see {box.log_file}")
    except KeyboardInterrupt:
        current().out.note("stopping the sandbox")
        _teardown(box, Path(box.dir))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _teardown(box, where: Path) -> list[str]:
    from edgectl.sandbox import fleet
    from edgectl.state import open_state

    fleet.stop(box)
    state = open_state(Path(box.state_path))
    try:
        removed = fleet.unregister(state)
    finally:
        state.close()
    fleet.clean_files(where)
    return removed


def _render_status(box) -> None:
    from edgectl.sandbox.fleet import port_open

    ctx = current()
    rows = [{"name": "origin", "role": "origin", "region": None, "url": box.origin, "port": box.origin_port,
             "up": port_open(box.origin_port)}]
    rows += [{"name": n.name, "role": "edge", "region": n.region, "url": n.url, "port": n.port, "up": port_open(n.port)}
             for n in box.nodes]
    ctx.out.show({"pid": box.pid, "running": box.running(), "dir": box.dir, "config": box.config_path,
                  "state": box.state_path, "log": box.log_file, "servers": rows},
                 View(STATUS_COLUMNS, rows=lambda record: record["servers"]))


@app.command("status")
def sandbox_status(directory: Dir = None) -> None:
    """Ports, pid, config and state paths of the running sandbox. Exit 1 when none runs."""
    from edgectl.sandbox.fleet import Sandbox

    ctx = current()
    box = Sandbox.load(_dir(directory))
    if box is None or not box.running():
        raise OperationFailed("no sandbox is running", hint="start one with: edgectl sandbox up --detach")
    _render_status(box)
    ctx.out.note(f"pid {box.pid}; config {box.config_path}; state {box.state_path}")


def _running(directory):
    """The running sandbox, or the error that says how to start one."""
    from edgectl.sandbox.fleet import Sandbox

    box = Sandbox.load(_dir(directory))
    if box is None or not box.running():
        raise OperationFailed("no sandbox is running", hint="start one with: edgectl sandbox up --detach")
    return box


@app.command("fault")
def sandbox_fault(
    node: Annotated[str, typer.Argument(help="A sandbox node name.")],
    latency: Annotated[Optional[str], typer.Option("--latency", metavar="DURATION", help="Added to every answer, e.g. 200ms.")] = None,
    error_rate: Annotated[Optional[float], typer.Option("--error-rate", metavar="0..1", help="Share of answers that are 500s.")] = None,
    down: Annotated[Optional[bool], typer.Option("--down/--up", help="Answer everything with 503, or stop doing so.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every fault.")] = False,
    directory: Dir = None,
) -> None:
    """Inject latency, errors or an outage into a sandbox node."""
    from edgectl.parse import parse_duration
    from edgectl.sandbox.fleet import set_fault

    ctx = current()
    box = _running(directory)
    changes: dict = {"latency_ms": 0, "error_rate": 0, "down": False} if clear else {}
    if latency is not None:
        changes["latency_ms"] = parse_duration(latency, what="--latency") * 1000
    if error_rate is not None:
        if not 0 <= error_rate <= 1:
            raise UsageError(f"--error-rate must be between 0 and 1, not {error_rate}")
        changes["error_rate"] = error_rate
    if down is not None:
        changes["down"] = down
    if not changes:
        raise UsageError("no fault given", hint="use --latency, --error-rate, --down, --up or --clear")
    faults = set_fault(box, node, changes)
    ctx.out.note(f"{node}: latency {faults['latency_ms']:g}ms, error rate {faults['error_rate']:g}, "
                 f"{'down' if faults['down'] else 'up'}")
    ctx.out.show({"node": node, **faults}, View(body=False))


@app.command("fetch")
def sandbox_fetch(
    path: Annotated[str, typer.Argument(help="A path on the sandbox site, e.g. /news/.")],
    node: Annotated[Optional[list[str]], typer.Option("--node", "-n", help="Through this node; repeatable. Default: every node.")] = None,
    directory: Dir = None,
) -> None:
    """GET a page through sandbox nodes and show what each cache answered (X-Cache, Cache-Status, Age)."""
    from edgectl.parse import parse_path
    from edgectl.sandbox.fleet import fetch

    ctx = current()
    box = _running(directory)
    path = parse_path(path)
    names = node or [n.name for n in box.nodes]
    rows = [fetch(box, name, path) for name in names]
    ctx.out.show(rows, View([Column("node"), Column("url"), Column("status", justify="right"),
                             Column("x_cache", "X-CACHE", kind="status"), Column("age", justify="right"),
                             Column("cache_status", "CACHE-STATUS")]))


@app.command("down")
def sandbox_down(directory: Dir = None) -> None:
    """Stop everything the sandbox started and remove its nodes from the state."""
    from edgectl.sandbox.fleet import Sandbox

    ctx = current()
    where = _dir(directory)
    box = Sandbox.load(where)
    if box is None:
        ctx.out.note("no sandbox is running")
        ctx.out.show({"stopped": False, "removed_nodes": []}, View(body=False))
        return
    was_running = box.running()
    removed = _teardown(box, where)
    ctx.out.note(f"sandbox down: {'stopped pid ' + str(box.pid) if was_running else 'was not running'}; "
                 f"removed {len(removed)} node(s) from {box.state_path}")
    ctx.out.show({"stopped": was_running, "removed_nodes": removed}, View(body=False))
