"""`edgectl cache warm` against nginx on loopback, beside the fastest Python client and xargs curl.

nginx serves 10,000 small files; the same 5,000 URLs are fetched with 64 requests in flight by:

  edgectl     edgectl cache warm --urls-file F --concurrency 64 (one process; results recorded)
  aiohttp     a minimal raw aiohttp script (one session, 64 tasks, bodies read and dropped)
  curl        xargs -P 32 curl, one curl per URL

Each is a whole process, start-up included, timed wall-clock in the same run; medians of
--runs. Ratios are of throughput (requests per second). The goals are for whole processes; the
rate while warming (first request to last, from nginx's own log of each request's time) is
printed beside them, since start-up weighs heavily in a run of about two seconds. Goals: edgectl >= 0.8x aiohttp and
>= 10x curl; with --workers 2, >= 1.5x one worker. nginx shares the machine's cores with the
clients, which caps what a second worker can add.

edgectl's modules are compiled to bytecode first, as installing the package does: an editable
install run with PYTHONDONTWRITEBYTECODE would otherwise compile them on every start.

--million also warms a gzip sitemap index of 1,000,000 URLs (20 sitemaps of 50,000, the
protocol's maximum) and prints edgectl's peak RSS; the goal is at most 80 MiB. It takes minutes.
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
            log_format at '$msec';
            access_log {root}/access.log at;
            keepalive_requests 100000;
            client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
            uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
            server {{
                listen 127.0.0.1:{port};
                root {root}/www;
                add_header Cache-Control "public, max-age=3600";
                location /p/ {{ return 200 "page\\n"; }}
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


class Log:
    """nginx's log of request times: the span of the requests a command made."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def span(self) -> float:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            stamps = [float(line) for line in handle.read().split()]
            self.offset = handle.tell()
        if len(stamps) != URLS:
            raise SystemExit(f"nginx logged {len(stamps)} requests, not {URLS}")
        return max(stamps) - min(stamps)


def timed(command: list[str], **kwargs) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed with {done.returncode}: {done.stderr[-500:]}")
    if "edgectl" in command and "-o" in command:  # every answer must be a 200, or the comparison means nothing
        report = json.loads(done.stdout)
        if report["status_classes"] != {"2xx": URLS}:
            raise SystemExit(f"edgectl saw {report['status_classes']}, not {URLS} 200s")
    return elapsed


def write_million(www: Path, port: int) -> Path:
    import gzip

    base = f"http://127.0.0.1:{port}"
    names = []
    for part in range(20):
        name = f"sitemap-{part:02d}.xml.gz"
        with gzip.open(www / name, "wt", compresslevel=6) as handle:
            handle.write('<?xml version="1.0" encoding="UTF-8"?>\n'
                         '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">')
            for i in range(part * 50_000, (part + 1) * 50_000):
                handle.write(f"<url><loc>{base}/p/{i:07d}.html</loc></url>")
            handle.write("</urlset>")
        names.append(name)
    index = www / "sitemap.xml"
    index.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                     + "".join(f"<sitemap><loc>{base}/{n}</loc></sitemap>" for n in names) + "</sitemapindex>")
    return index


def peak_rss(command: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:4]} failed: {child.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--million", action="store_true", help="also warm 1,000,000 URLs from a sitemap index")
    args = parser.parse_args()
    package = Path(__file__).resolve().parent.parent / "edgectl"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers run as an unprivileged user and must read the files
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
            commands["edgectl --workers 2"] = commands["edgectl"] + ["--workers", "2"]
            times: dict[str, list[float]] = {name: [] for name in commands}
            spans: dict[str, list[float]] = {name: [] for name in commands}
            log = Log(root / "access.log")
            for _ in range(args.runs):
                for name, command in commands.items():
                    times[name].append(timed(command, env=env))
                    spans[name].append(log.span())
            curl = timed(["sh", "-c", f"xargs -P 32 -n 1 curl -s -o /dev/null < {urls}"])
            spans["curl"] = [log.span()]
            million = None
            if args.million:
                index = write_million(root / "www", port)
                million = peak_rss([sys.executable, "-m", "edgectl", "cache", "warm", "--sitemap", f"http://127.0.0.1:{port}/sitemap.xml",
                                    "--concurrency", str(IN_FLIGHT), "--no-lock", "-q", "-o", "json"], env)
                index.unlink()
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)
    rate = {name: URLS / statistics.median(values) for name, values in times.items()}
    rate["curl"] = URLS / curl
    warming = {name: URLS / statistics.median(values) for name, values in spans.items()}
    print(f"  {'':20} {'whole process':>14} {'while warming':>14}")
    for name, value in rate.items():
        print(f"  {name:20} {value:10.0f}/s   {warming[name]:10.0f}/s")
    for label, a, b, goal in (("edgectl / aiohttp", "edgectl", "aiohttp", "goal >= 0.8"),
                              ("edgectl / xargs curl", "edgectl", "curl", "goal >= 10"),
                              ("edgectl --workers 2 / one worker", "edgectl --workers 2", "edgectl", "goal >= 1.5")):
        print(f"{label} = {rate[a] / rate[b]:.2f} ({goal}); while warming {warming[a] / warming[b]:.2f}")
    if million:
        seconds, rss = million
        print(f"1,000,000 URLs from a gzip sitemap index: {seconds:.0f}s ({1_000_000 / seconds:.0f}/s), "
              f"peak RSS {rss:.0f} MiB (goal <= 80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
