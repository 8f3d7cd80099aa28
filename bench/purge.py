"""`edgectl cdn purge` of 10,000 URLs against the fake Cloudflare API, which enforces its rate limit.

The fake runs in its own process with Cloudflare's Pro-plan single-file limit (1,500 URLs a second,
a token bucket as deep as one second) and 30 files per request, and answers 429 with Retry-After
past it. Two ratios, each against a reference computed in the same run:

  calls: API requests edgectl sent / the minimum, ceil(10000 / 30)         goal: exactly 1.00
  time:  the purge's wall time / the bound the rate limit sets,            goal: at most 1.10
         (10000 - burst) / rate, because a full bucket can go at once

The goal is judged on the time the rate limit governs: from the first request to the last answer
(`run.sending_s` in the JSON report). The whole process is printed beside it: it adds start-up,
reading and planning 10,000 URLs, journaling them, and importing the Cloudflare SDK (about 0.6 s
on its own), a fixed cost that does not grow with the rate-limited part.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URLS, PER_REQUEST, RATE = 10_000, 30, 1500.0
ZONE_ID = "0123456789abcdef0123456789abcdef"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port_file, stats_file = tmp / "port", tmp / "stats.json"
        fake = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.cloudflare_api", "--port-file", str(port_file),
             "--stats-file", str(stats_file), "--token", "bench-token", "--zone", f"example.com={ZONE_ID}",
             "--files-per-request", str(PER_REQUEST), "--url-rate", str(RATE)],
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text().strip()):
                if time.monotonic() > deadline or fake.poll() is not None:
                    raise SystemExit("the fake Cloudflare API did not start")
                time.sleep(0.05)
            port = int(port_file.read_text())
            (tmp / "edgectl.toml").write_text(
                f'[providers.cf]\nkind = "cloudflare"\nplan = "pro"\nzone_id = "{ZONE_ID}"\n'
                f'api_token = "env:BENCH_CF_TOKEN"\nendpoint_url = "http://127.0.0.1:{port}/client/v4"\n'
                f'hosts = ["www.example.com"]\n')
            urls = tmp / "urls.txt"
            urls.write_text("".join(f"https://www.example.com/assets/{i:05d}.css\n" for i in range(URLS)))
            env = {**os.environ, "EDGECTL_STATE": str(tmp / "bench.db"), "EDGECTL_CONFIG": str(tmp / "edgectl.toml"),
                   "BENCH_CF_TOKEN": "bench-token"}
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "edgectl", "cdn", "purge", "--urls-file", str(urls),
                                   "-o", "json"], env=env, capture_output=True, text=True, cwd=tmp)
            wall = time.perf_counter() - started
        finally:
            fake.send_signal(signal.SIGTERM)
            fake.wait(timeout=10)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"the purge failed with exit {done.returncode}")
        report = json.loads(done.stdout)
        stats = json.loads(stats_file.read_text())

    minimum = math.ceil(URLS / PER_REQUEST)
    bound = (URLS - RATE) / RATE
    run = report["run"]
    print(f"purge of {URLS} URLs at {RATE:g} URLs/s, {PER_REQUEST} per request")
    print(f"  API calls: {stats['purge_calls']} accepted + {stats['rejected_429']} refused with 429; "
          f"minimum {minimum}; ratio {stats['purge_calls'] / minimum:.2f} (goal 1.00)")
    print(f"  edgectl requests: {run['requests']}, retried {run['retries']}")
    print(f"  URLs accepted by the fake: {stats['urls']}")
    print(f"  rate-limit bound {bound:.2f}s; sending {run['sending_s']:.2f}s "
          f"(ratio {run['sending_s'] / bound:.2f}, goal <= 1.10)")
    print(f"  the run with client set-up {run['elapsed_s']:.2f}s (ratio {run['elapsed_s'] / bound:.2f}); "
          f"the whole process {wall:.2f}s (ratio {wall / bound:.2f})")
    ok = stats["purge_calls"] == minimum and stats["urls"] == URLS and run["sending_s"] / bound <= 1.10
    print("  goal met" if ok else "  GOAL MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
