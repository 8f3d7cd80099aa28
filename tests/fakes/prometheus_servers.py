"""Real prometheus-node-exporter (textfile collector only) and prometheus-pushgateway on loopback."""

from __future__ import annotations

import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.fakes.health_servers import closed_port


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        # CI installs them; a machine without them must not pass these tests by skipping them
        raise RuntimeError(f"{name} is not installed: .ci/run installs it (apt-get install {name})")
    return found


@contextmanager
def _serving(name: str, args: list[str], log: Path, auth: tuple[str, str] | None = None):
    """Start `name` listening on a free loopback port, wait (bounded) until /metrics answers, stop it after."""
    port = closed_port()  # free now; the server binds it next
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as err:
        process = subprocess.Popen([binary(name), f"--web.listen-address=127.0.0.1:{port}", *args],
                                   stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/metrics", auth=auth, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {log.read_text(errors='replace')[-800:]}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def node_exporter(textfile_dir: Path, root: Path):
    """node_exporter with every collector off but the textfile one, reading textfile_dir."""
    root.mkdir(parents=True, exist_ok=True)
    args = ["--collector.disable-defaults", "--collector.textfile",
            f"--collector.textfile.directory={textfile_dir}"]
    with _serving("prometheus-node-exporter", args, root / "node-exporter.log") as url:
        yield url


# the Pushgateway's web config takes bcrypt hashes only: this is PUSH_PASSWORD's, at cost 4
# (python -c "import bcrypt; print(bcrypt.hashpw(PASSWORD, bcrypt.gensalt(4)).decode())")
PUSH_USER, PUSH_PASSWORD = "ops", "push-s3cret-9f2"
_PUSH_HASH = "$2b$04$viNbiW2YredMh3W1LH7NWeTIMBmis4W3tw8.qNQXJlf4WS1ZicHM2"


@contextmanager
def pushgateway(root: Path, *, basic_auth: bool = False):
    """The Pushgateway, metrics in memory only (no persistence file), optionally behind basic auth."""
    root.mkdir(parents=True, exist_ok=True)
    args = ["--persistence.file="]
    auth = None
    if basic_auth:
        config = root / "web.yml"
        config.write_text(f'basic_auth_users:\n  {PUSH_USER}: "{_PUSH_HASH}"\n')
        args.append(f"--web.config.file={config}")
        auth = (PUSH_USER, PUSH_PASSWORD)
    with _serving("prometheus-pushgateway", args, root / "pushgateway.log", auth=auth) as url:
        yield url
