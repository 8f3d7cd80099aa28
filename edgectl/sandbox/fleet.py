"""Starting, finding, faulting and stopping the sandbox fleet, and registering it as edgectl nodes.

The servers run in one background process (`python -m edgectl.sandbox.fleet run SPEC`); a
status file in the sandbox dir says where everything is, so any later command can find it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgectl.errors import OperationFailed, UsageError

# Where each region's nodes stand: country, city, latitude, longitude.
REGIONS = {
    "us-east": ("US", "Ashburn", 39.04, -77.49),
    "us-west": ("US", "San Jose", 37.34, -121.89),
    "eu-west": ("IE", "Dublin", 53.35, -6.26),
    "eu-central": ("DE", "Frankfurt", 50.11, 8.68),
    "ap-south": ("IN", "Mumbai", 19.08, 72.88),
    "ap-northeast": ("JP", "Tokyo", 35.68, 139.69),
    "sa-east": ("BR", "Sao Paulo", -23.55, -46.63),
    "af-south": ("ZA", "Johannesburg", -26.2, 28.05),
}
DEFAULT_REGIONS = ("us-east", "eu-west", "ap-south")
SANDBOX_LABEL = ("sandbox", "true")
STATUS_FILE = "sandbox.json"
READY_TIMEOUT = 30.0


def default_dir() -> Path:
    configured = os.environ.get("EDGECTL_SANDBOX_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("edgectl")) / "sandbox"


@dataclass
class SandboxNode:
    name: str
    region: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Sandbox:
    dir: str
    pid: int
    origin_port: int
    nodes: list[SandboxNode]
    state_path: str
    config_path: str
    token_file: str
    log_file: str
    pages: int
    started_at: float = field(default_factory=time.time)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.origin_port}"

    def token(self) -> str:
        return Path(self.token_file).read_text().strip()

    def running(self) -> bool:
        return _alive(self.pid)

    def save(self) -> None:
        _write_private(Path(self.dir) / STATUS_FILE, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> "Sandbox | None":
        path = directory / STATUS_FILE
        try:
            data = json.loads(path.read_text())
            data["nodes"] = [SandboxNode(**n) for n in data["nodes"]]
            return cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise OperationFailed(f"sandbox status file {path} is damaged: {exc}",
                                  hint=f"stop any leftover process by hand and remove {path}") from None

    def node(self, name: str) -> SandboxNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise UsageError(f"{name!r} is not a sandbox node", hint="nodes: " + ", ".join(n.name for n in self.nodes))


def _alive(pid: int) -> bool:
    """True while our server process runs (a reused pid of another program does not count)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if b"edgectl.sandbox.fleet" not in handle.read():
                return False
    except FileNotFoundError:
        return False
    except OSError:
        pass  # no /proc here: fall back to the signal check
    from edgectl.process import alive

    if not alive(pid):
        return False
    try:  # a zombie child of ours is not running
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:
        return True


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def plan_nodes(count: int, regions: list[str]) -> list[tuple[str, str]]:
    """(name, region) for `count` nodes spread round-robin over the regions."""
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise UsageError(f"unknown sandbox region(s): {', '.join(unknown)}", hint=f"regions: {', '.join(REGIONS)}")
    if not regions:
        raise UsageError("--regions needs at least one region")
    if not 1 <= count <= 64:
        raise UsageError(f"--nodes must be between 1 and 64, not {count}")
    seen: dict[str, int] = {}
    planned = []
    for i in range(count):
        region = regions[i % len(regions)]
        seen[region] = seen.get(region, 0) + 1
        planned.append((f"sandbox-{region}-{seen[region]}", region))
    return planned


def sandbox_config(box: Sandbox) -> str:
    """The config file the sandbox writes for itself; the user's own config is never touched."""
    return (
        "# Written by `edgectl sandbox up`; removed by `edgectl sandbox down`.\n"
        f"# Use it with: edgectl --config {box.config_path} ...\n\n"
        f"[state]\npath = {json.dumps(box.state_path)}\n\n"
        "[nodes]\ncheck_timeout = \"1s\"\nfail_after = 2\nrecover_after = 2\n\n"
        "[providers.sandbox]\n"
        "kind = \"http\"\n"
        "nodes = \"label:sandbox=true\"\n"
        "hosts = [\"www.sandbox.test\"]\n"
        f"token = {json.dumps('file:' + box.token_file)}\n"
    )


def start(directory: Path, state_path: Path, *, nodes: int, regions: list[str], pages: int) -> Sandbox:
    """Start the servers in a background process and wait until every port answers."""
    planned = plan_nodes(nodes, regions)
    if not 1 <= pages <= 100_000:
        raise UsageError(f"--pages must be between 1 and 100000, not {pages}")
    existing = Sandbox.load(directory)
    if existing and existing.running():
        raise UsageError(f"a sandbox is already running (pid {existing.pid})", hint="edgectl sandbox down stops it")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    token_file = directory / "token"
    _write_private(token_file, secrets.token_urlsafe(24) + "\n")
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    spec = {"nodes": planned, "pages": pages, "token_file": str(token_file), "ready": str(ready)}
    spec_file = directory / "spec.json"
    _write_private(spec_file, json.dumps(spec))
    log_file = directory / "sandbox.log"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgectl.sandbox.fleet", "run", str(spec_file)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None:
            raise OperationFailed(f"the sandbox servers exited with code {proc.returncode}", hint=f"see {log_file}")
        if time.monotonic() > deadline:
            proc.kill()
            raise OperationFailed("the sandbox servers did not start in time", hint=f"see {log_file}")
        time.sleep(0.05)
    ports = json.loads(ready.read_text())
    box = Sandbox(
        dir=str(directory), pid=proc.pid, origin_port=ports["origin"],
        nodes=[SandboxNode(name, region, ports["nodes"][name]) for name, region in planned],
        state_path=str(state_path), config_path=str(directory / "edgectl.toml"),
        token_file=str(token_file), log_file=str(log_file), pages=pages,
    )
    _write_private(Path(box.config_path), sandbox_config(box))
    box.save()
    return box


def register(state, box: Sandbox) -> list:
    """Enter (or refresh) the fleet's nodes in the state, labelled sandbox=true."""
    from edgectl.nodes.inventory import add_node, build_spec, get_node, replace_spec
    from edgectl.errors import NotFound

    registered = []
    for node in box.nodes:
        country, city, lat, lon = REGIONS[node.region]
        spec = build_spec({
            "name": node.name, "endpoint": node.url, "region": node.region, "country": country, "city": city,
            "lat": lat, "lon": lon, "capabilities": ["cache", "purge"], "labels": dict([SANDBOX_LABEL]),
            "health_path": "/health",
        })
        try:
            current = get_node(state, node.name)
        except NotFound:
            registered.append(add_node(state, spec, reason="sandbox up"))
        else:
            registered.append(replace_spec(state, current, spec, reason="sandbox up")[0])
    return registered


def unregister(state) -> list[str]:
    """Remove every node labelled sandbox=true; their history stays."""
    from edgectl.nodes.inventory import NodeFilter, list_nodes, remove_node

    removed = []
    for node in list_nodes(state, NodeFilter(labels=dict([SANDBOX_LABEL]))):
        remove_node(state, None, node.name, force=True, reason="sandbox down")
        removed.append(node.name)
    return removed


def stop(box: Sandbox, timeout: float = 10.0) -> bool:
    """Stop the server process; True if it was running."""
    if not box.running():
        return False
    try:
        os.killpg(box.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while box.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    if box.running():
        os.killpg(box.pid, signal.SIGKILL)
    return True


def clean_files(directory: Path) -> None:
    for name in (STATUS_FILE, "edgectl.toml", "token", "spec.json", "ready.json"):
        (directory / name).unlink(missing_ok=True)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def set_fault(box: Sandbox, name: str, changes: dict) -> dict:
    """Change a node's injected faults through its control endpoint."""
    import httpx

    node = box.node(name)
    try:
        response = httpx.post(f"{node.url}/.edge/fault", json=changes, timeout=5,
                              headers={"Authorization": f"Bearer {box.token()}"}, trust_env=False)
    except httpx.HTTPError as exc:
        raise OperationFailed(f"cannot reach sandbox node {name}: {exc}") from None
    if response.status_code != 200:
        raise OperationFailed(f"sandbox node {name} refused the fault: {response.text.strip()}")
    return response.json()


def fetch(box: Sandbox, name: str, path: str) -> dict:
    """GET a page of the sandbox site through one node, as a visitor would; what its cache said."""
    import httpx

    from edgectl.sandbox.site import PUBLIC_HOST

    node = box.node(name)
    try:
        response = httpx.get(node.url + path, headers={"Host": PUBLIC_HOST}, timeout=5, trust_env=False)
    except httpx.HTTPError as exc:
        raise OperationFailed(f"cannot reach sandbox node {name}: {exc}") from None
    headers = response.headers
    return {"node": name, "url": f"https://{PUBLIC_HOST}{path}", "status": response.status_code,
            "x_cache": headers.get("X-Cache"), "cache_status": headers.get("Cache-Status"),
            "age": int(headers["Age"]) if headers.get("Age", "").isdigit() else None, "bytes": len(response.content)}


# ---- the server process ----------------------------------------------------------

async def serve(spec: dict) -> None:
    import asyncio

    from aiohttp import web

    from edgectl.sandbox.servers import EdgeNode, edge_app, origin_app
    from edgectl.sandbox.site import Site

    token = Path(spec["token_file"]).read_text().strip()
    runners = []

    async def listen(app) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        runners.append(runner)
        return runner.addresses[0][1]

    origin_port = await listen(origin_app(Site(pages=spec["pages"])))
    origin = f"http://127.0.0.1:{origin_port}"
    ports = {}
    for name, region in spec["nodes"]:
        ports[name] = await listen(edge_app(EdgeNode(name, region, origin, token)))
    ready = Path(spec["ready"])
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"origin": origin_port, "nodes": ports}))
    tmp.replace(ready)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    for runner in runners:
        await runner.cleanup()


def main(argv: list[str]) -> None:
    import asyncio

    if len(argv) != 2 or argv[0] != "run":
        raise SystemExit("usage: python -m edgectl.sandbox.fleet run SPEC")
    asyncio.run(serve(json.loads(Path(argv[1]).read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
