"""Real varnishd on loopback for the plugin's tests, in front of an origin that serves tagged, cacheable objects."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edgectl.testing import Answer, FakeAPI, Seen
from edgectl_varnish import daemon

START_TIMEOUT = 60.0  # seconds for varnishd to compile its VCL and listen, on a loaded machine
STOP_TIMEOUT = 15.0


def varnishd() -> str:
    """The daemon, or a failed test saying how to get it: CI installs it, so a missing one is an error."""
    found = daemon.find_daemon()
    if found is None:
        pytest.fail("varnishd (or vinyld) is not installed: .ci/run installs it "
                    "(apt-get install varnish varnish-modules)", pytrace=False)
    return found


def require_xkey() -> None:
    if not daemon.xkey_available(varnishd()):
        pytest.fail("vmod_xkey is not installed: .ci/run installs it (apt-get install varnish-modules)",
                    pytrace=False)


class Origin(FakeAPI):
    """An origin for varnishd: each GET answers its host, path and how many times it was fetched, cacheable for
    five minutes with a minute of grace (stale-while-revalidate), tagged by the `xkey` header from `tags`."""

    def __init__(self):
        super().__init__()
        self.tags: dict[str, list[str]] = {}  # path -> its tags
        self.headers: dict[str, dict[str, str]] = {}  # path -> headers answered besides (or instead of) those
        self._fetched: Counter[tuple[str, str]] = Counter()
        self._count_lock = threading.Lock()

    def handle(self, seen: Seen) -> Answer:
        host = seen.headers.get("host", "")
        with self._count_lock:
            self._fetched[(host, seen.target)] += 1
            n = self._fetched[(host, seen.target)]
        headers = {"Cache-Control": "max-age=300, stale-while-revalidate=60"}
        if self.tags.get(seen.path):
            headers["xkey"] = " ".join(self.tags[seen.path])
        headers.update(self.headers.get(seen.path, {}))
        return Answer(200, f"{host}{seen.target} #{n}", headers)

    def fetches(self, host: str, target: str) -> int:
        with self._count_lock:
            return self._fetched[(host, target)]


@dataclass
class Varnish:
    url: str
    root: Path
    process: subprocess.Popen

    def get(self, host: str, target: str) -> str:
        """The body the cache answers for http://HOST/TARGET."""
        return self.response(host, target).text

    def response(self, host: str, target: str, **headers: str) -> httpx.Response:
        """The cache's answer to GET http://HOST/TARGET, TARGET on the request line exactly as given (httpx alone
        would encode '{' and '}' in a path), as curl sends it."""
        with httpx.Client(timeout=10, trust_env=False) as client:
            response = client.get(self.url + "/", headers={"Host": host, **headers},
                                  extensions={"target": target.encode()})
        response.raise_for_status()
        return response


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _vcl_files(root: Path, purgers: list[str] | None) -> Path:
    """The directory holding the VCL to include: the shipped one, or a copy whose acl lists `purgers`."""
    shipped = daemon.vcl_file().parent
    if purgers is None:
        return shipped
    copy = root / "vcl"
    copy.mkdir()
    for name in (daemon.CORE_VCL, daemon.XKEY_VCL):
        text = (shipped / name).read_text()
        if name == daemon.CORE_VCL:
            entries = "".join(f'    "{address}";\n' for address in purgers)
            text, found = re.subn(r"acl edgectl_purgers \{\n.*?\n\}", "acl edgectl_purgers {\n" + entries + "}",
                                  text, flags=re.S)
            assert found == 1, "edgectl.vcl's acl edgectl_purgers is no longer where the tests look for it"
        (copy / name).write_text(text)
    return copy


@contextmanager
def running_varnish(root: Path, origin: str, vcl: str = daemon.XKEY_VCL, purgers: list[str] | None = None):
    """varnishd in the foreground on a free loopback port, its work directory under `root`, caching `origin`
    through the shipped VCL (`vcl`, included from a main file); stopped however the block ends."""
    binary = varnishd()
    if vcl == daemon.XKEY_VCL:
        require_xkey()
    root.mkdir(parents=True, exist_ok=True)
    include = _vcl_files(root, purgers) / vcl
    origin_port = origin.rsplit(":", 1)[1]
    main = root / "main.vcl"
    main.write_text(f'vcl 4.1;\nbackend default {{ .host = "127.0.0.1"; .port = "{origin_port}"; }}\n'
                    f'include "{include}";\n')
    for _attempt in range(3):  # a port found free may be taken before varnishd binds it
        port = _free_port()
        log = (root / "varnishd.log").open("w")
        process = subprocess.Popen(
            [binary, "-F", "-j", "none", "-n", str(root / "work"), "-a", f"127.0.0.1:{port}", "-T", "none",
             "-s", "malloc,32m", "-f", str(main)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        try:
            if _listening(process, port):
                break
        except BaseException:
            _stop(process)
            raise
        _stop(process)
        output = (root / "varnishd.log").read_text()
        if "Address already in use" not in output and "Could not get socket" not in output:
            pytest.fail(f"varnishd did not start: {output[-800:]}", pytrace=False)
    else:
        pytest.fail("varnishd found no free port in three tries", pytrace=False)
    try:
        yield Varnish(f"http://127.0.0.1:{port}", root, process)
    finally:
        _stop(process)


def _listening(process: subprocess.Popen, port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"varnishd did not listen on 127.0.0.1:{port} within {START_TIMEOUT:g}s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def wait_for(predicate, timeout: float = 15.0, step: float = 0.05):
    """The first truthy value of `predicate()`, polled until `timeout`; AssertionError when it never comes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not so within {timeout:g}s: {predicate}")
        time.sleep(step)
