"""`edgectl cache warm` against nginx on loopback, beside the fastest Python client and xargs curl.

nginx serves 10,000 small files; the same 5,000 URLs are fetched with 64 requests in flight by:

  edgectl     edgectl cache warm --urls-file F --concurrency 64 (one process; results recorded)
  aiohttp     a minimal raw aiohttp script (one session, 64 tasks, bodies read and dropped)
  curl        xargs -P 32 curl, one curl per URL

Each is a whole process, start-up included, timed wall-clock in the same run; medians of
--runs. Ratios are of throughput (requests per second). Goals: edgectl >= 0.8x aiohttp and
>= 10x curl; with --workers 2, >= 1.5x one worker (printed when the option exists).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

FILES, URLS, IN_FLIGHT = 10_000, 5_000, 64

AIOHTTP_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import aiohttp

    async def main(urls):
        queue = asyncio.Queue()
        for url in urls:
            queue.put_nowait(url)
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def worker():
                while not queue.empty():
                    url = queue.get_nowait()
                    async with session.get(url) as response:
                        await response.read()
            await asyncio.gather(*(worker() for _ in range(64)))

    asyncio.run(main(open(sys.argv[1]).read().split()))
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_nginx(root: Path, port: int) -> subprocess.Popen:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("nginx is not installed (apt-get install nginx-light)")
    conf = root / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        worker_processes 1;
        daemon off;
        pid {root}/nginx.pid;
        error_log {root}/error.log warn;
        events {{ worker_connections 4096; }}
        http {{
            access_log off;
            keepalive_requests 100000;
            client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
            uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
            server {{
                listen 127.0.0.1:{port};
                root {root}/www;
                add_header Cache-Control "public, max-age=3600";
            }}
        }}
    """))
    (root / "tmp").mkdir()
    process = subprocess.Popen([nginx, "-c", str(conf), "-p", str(root)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("nginx did not start")


def timed(command: list[str], **kwargs) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed with {done.returncode}: {done.stderr[-500:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        www = root / "www" / "f"
        www.mkdir(parents=True)
        for i in range(FILES):
            (www / f"{i:05d}.txt").write_bytes(b"x" * (200 + i % 800))
        port = free_port()
        nginx = start_nginx(root, port)
        try:
            urls = root / "urls.txt"
            urls.write_text("".join(f"http://127.0.0.1:{port}/f/{i:05d}.txt\n" for i in range(0, FILES, 2)))
            (root / "client.py").write_text(AIOHTTP_SCRIPT)
            env = {**os.environ, "EDGECTL_STATE": str(root / "bench.db"), "EDGECTL_CONFIG": str(root / "none.toml")}
            (root / "none.toml").write_text("")
            commands = {
                "edgectl": [sys.executable, "-m", "edgectl", "cache", "warm", "--urls-file", str(urls),
                            "--concurrency", str(IN_FLIGHT), "--no-lock", "-q", "-o", "json"],
                "aiohttp": [sys.executable, str(root / "client.py"), str(urls)],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):
                for name, command in commands.items():
                    times[name].append(timed(command, env=env))
            curl = timed(["sh", "-c", f"xargs -P 32 -n 1 curl -s -o /dev/null < {urls}"])
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
    rate = {name: URLS / statistics.median(values) for name, values in times.items()}
    rate["curl"] = URLS / curl
    for name, value in rate.items():
        print(f"  {name:8} {value:8.0f} requests/s")
    print(f"edgectl / aiohttp = {rate['edgectl'] / rate['aiohttp']:.2f} (goal >= 0.8)")
    print(f"edgectl / xargs curl = {rate['edgectl'] / rate['curl']:.1f} (goal >= 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
