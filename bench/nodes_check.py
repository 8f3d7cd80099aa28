"""`edgectl nodes check --all` over 1,000 nodes on loopback, 10% of which accept and never answer.

The servers run in their own process. With a 1 s timeout the whole command (start-up, probes,
recording) should finish within 2.5 s; this prints the time and its ratio to the timeout, the
median of several runs.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODES, BLACKHOLES, TIMEOUT = 1000, 100, 1.0


def main(runs: int = 3) -> float:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "ports.txt"
        servers = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.health_servers", "--port-file", str(port_file),
             "--healthy", str(NODES - BLACKHOLES), "--blackhole", str(BLACKHOLES)],
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists():
                if time.monotonic() > deadline or servers.poll() is not None:
                    raise SystemExit("health servers did not start")
                time.sleep(0.05)
            urls = [line.split()[1] for line in port_file.read_text().splitlines() if line]
            random.Random(7).shuffle(urls)
            inventory = {"nodes": {f"bench-{i:04d}": {"endpoint": url.rsplit("/", 1)[0]} for i, url in enumerate(urls)}}
            env = {**os.environ, "EDGECTL_STATE": str(Path(tmp) / "bench.db"), "EDGECTL_CONFIG": str(Path(tmp) / "none.toml")}
            Path(tmp, "none.toml").write_text("")
            subprocess.run([sys.executable, "-m", "edgectl", "nodes", "apply", "-f", "-", "--yes", "-q"],
                           input=json.dumps(inventory), text=True, env=env, check=True, stdout=subprocess.DEVNULL)
            if os.environ.get("BENCH_PROFILE"):
                subprocess.run([sys.executable, "-m", "cProfile", "-o", os.environ["BENCH_PROFILE"], "-m", "edgectl",
                                "nodes", "check", "--all", "--timeout", "1s", "--fail-after", "1000", "-o", "json"],
                               env=env, stdout=subprocess.DEVNULL)
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "edgectl", "nodes", "check", "--all", "--timeout", f"{TIMEOUT:g}s",
                     "--fail-after", "1000", "-o", "json"],
                    env=env, capture_output=True, text=True,
                )
                times.append(time.perf_counter() - started)
                results = json.loads(done.stdout)
                up = sum(r["result"] == "up" for r in results)
                print(f"run: {times[-1]:.2f} s, {up} up, {len(results) - up} down", file=sys.stderr)
                if len(results) != NODES or up != NODES - BLACKHOLES:
                    raise SystemExit(f"unexpected results: {up} up of {len(results)}")
        finally:
            servers.terminate()
            servers.wait(10)
    median = statistics.median(times)
    print(f"nodes check --all, {NODES} nodes, {BLACKHOLES} never answer, timeout {TIMEOUT:g}s: "
          f"median {median:.2f} s, ratio to timeout {median / TIMEOUT:.2f} (goal <= 2.5 s)")
    return median


if __name__ == "__main__":
    main()
