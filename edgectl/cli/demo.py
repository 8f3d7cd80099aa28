"""`edgectl demo`: a walk through what edgectl does, on a sandbox fleet it starts and stops itself."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from edgectl.cli.context import current
from edgectl.errors import OperationFailed

# (heading, [(args, expected exit code), ...]); each later capability adds its steps here.
STEPS: list[tuple[str, list[tuple[list[str], int]]]] = [
    ("Start a local edge fleet: an origin and three caching nodes on 127.0.0.1",
     [(["sandbox", "up", "--detach", "--nodes", "3", "--regions", "us-east,eu-west,ap-south"], 0)]),
    ("The fleet is in the inventory, like any edge node",
     [(["nodes", "list"], 0)]),
    ("Probe every node's health endpoint", [(["nodes", "check", "--all"], 0)]),
    ("A node's agent reports its own figures", [(["nodes", "heartbeat", "sandbox-eu-west-1", "--cpu", "35", "--memory", "48"], 0),
                                                 (["nodes", "show", "sandbox-eu-west-1"], 0)]),
    ("Drain a node before work on it, then put it back",
     [(["nodes", "drain", "sandbox-ap-south-1", "--reason", "kernel upgrade"], 0),
      (["nodes", "undrain", "sandbox-ap-south-1"], 0)]),
    ("Inject an outage: two failed probes in a row mark the node failed (exit 1)",
     [(["sandbox", "fault", "sandbox-us-east-1", "--down"], 0),
      (["nodes", "check", "--all"], 0),
      (["nodes", "check", "--all"], 1)]),
    ("Bring it back: two good probes restore it",
     [(["sandbox", "fault", "sandbox-us-east-1", "--up"], 0),
      (["nodes", "check", "sandbox-us-east-1"], 1),
      (["nodes", "check", "sandbox-us-east-1"], 0)]),
    ("Every change is an event", [(["nodes", "events", "--since", "10m"], 0)]),
    ("The same records for scripts and pipelines", [(["nodes", "list", "--region", "eu-west", "-o", "json"], 0)]),
    ("The inventory as a file for `nodes apply`", [(["nodes", "export"], 0)]),
    ("A page is cached at the edge: the second request is a hit",
     [(["sandbox", "fetch", "/docs/page-0001.html", "-n", "sandbox-eu-west-1"], 0),
      (["sandbox", "fetch", "/docs/page-0001.html", "-n", "sandbox-eu-west-1"], 0)]),
    ("Purge it by URL, and a whole section by tag, at every node (the plan first)",
     [(["cdn", "purge", "--url", "https://www.sandbox.test/docs/page-0001.html", "--tag", "section-blog",
        "--dry-run"], 0),
      (["cdn", "purge", "--url", "https://www.sandbox.test/docs/page-0001.html", "--tag", "section-blog",
        "--reason", "deploy 2026.11"], 0)]),
    ("The next request misses and refills the cache",
     [(["sandbox", "fetch", "/docs/page-0001.html", "-n", "sandbox-eu-west-1"], 0)]),
    ("Every purge is journaled, batch by batch", [(["cdn", "history"], 0), (["cdn", "show", "1"], 0)]),
    ("Warm every node from the site's sitemap index (one of its sitemaps is gzip): mostly misses",
     [(["cache", "warm", "--sitemap", "{origin}/sitemap.xml", "--all-nodes"], 0)]),
    ("Warm again: the caches now answer hits",
     [(["cache", "warm", "--sitemap", "{origin}/sitemap.xml", "--all-nodes"], 0), (["cache", "runs"], 0)]),
    ("Route by geography: Europe to Dublin, the US to Ashburn, failing over to each other; the rest to Mumbai",
     [(["routing", "rules", "add", "--continent", "EU", "--target", "sandbox-eu-west-1",
        "--failover", "sandbox-us-east-1"], 0),
      (["routing", "rules", "add", "--country", "US", "--target", "sandbox-us-east-1",
        "--failover", "sandbox-eu-west-1"], 0),
      (["routing", "rules", "add", "--default", "--target", "sandbox-ap-south-1"], 0)]),
    ("Where do Germany, California and Japan go, and why?",
     [(["routing", "resolve", "DE", "--explain"], 0), (["routing", "resolve", "US-CA", "--explain"], 0),
      (["routing", "resolve", "JP", "--explain"], 0)]),
    ("Dublin goes down: two failed probes mark it failed, and Germany fails over to Ashburn",
     [(["sandbox", "fault", "sandbox-eu-west-1", "--down"], 0),
      (["nodes", "check", "--all"], 0),
      (["nodes", "check", "--all"], 1),
      (["routing", "resolve", "DE", "--explain"], 0), (["routing", "resolve", "US-CA"], 0),
      (["routing", "resolve", "JP"], 0)]),
    ("What if Ashburn failed too? Every continent before and after (nothing changes in state)",
     [(["routing", "simulate", "--fail", "sandbox-us-east-1", "--locations", "continents"], 0)]),
    ("Every probe, heartbeat, warm and purge is in the metrics history: latency by region over time",
     [(["analytics", "latency", "--by", "region", "--since", "15m", "--chart"], 0)]),
    ("The hit ratio after the two warms, per node, against the 90% target",
     [(["analytics", "cache", "--by", "node", "--since", "15m"], 0)]),
    ("An alert: any node's p95 latency above 1 ms, firing at once (--for 0; a rule with --for 5m is pending until "
     "the condition has held five minutes); `alerts check` exits 3 while it fires",
     [(["analytics", "alerts", "add", "edge-slow", "--metric", "latency", "--stat", "p95", "--by", "node",
        "--above", "1ms", "--for", "0", "--severity", "warning"], 0),
      (["analytics", "alerts", "check"], 3)]),
    ("One HTML page for the wall: latency, hit ratio, nodes and alerts",
     [(["analytics", "report", "--html", "{demo}/report.html", "--since", "15m"], 0)]),
    ("More CDNs and caches come as plugins (plugins/ has Fastly and Varnish): what is installed here, and whether "
     "it loads",
     [(["plugins", "list"], 0)]),
]
TEARDOWN = ("Tear the fleet down", [(["sandbox", "down"], 0)])


def _demo_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("edgectl")) / "demo"


def demo(keep: Annotated[bool, typer.Option("--keep", help="Leave the sandbox running afterwards.")] = False) -> None:
    """Walk through edgectl on a local sandbox fleet (about 30 seconds)."""
    import shlex
    import subprocess
    out = current().out
    where = _demo_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    env.update(EDGECTL_STATE=str(where / "edgectl.db"), EDGECTL_SANDBOX_DIR=str(where / "sandbox"))
    if current().no_color:
        env["NO_COLOR"] = "1"

    def run(args: list[str], expected: int) -> None:
        if any("{origin}" in a for a in args):  # the sandbox origin's address, known once it is up
            from edgectl.sandbox.fleet import Sandbox

            origin = Sandbox.load(where / "sandbox").origin
            args = [a.replace("{origin}", origin) for a in args]
        args = [a.replace("{demo}", str(where)) for a in args]
        typer.secho(f"$ edgectl {shlex.join(args)}", fg="cyan", bold=True)
        code = subprocess.run([sys.executable, "-m", "edgectl", *args], env=env).returncode
        if code != expected:
            raise OperationFailed(f"demo step `edgectl {shlex.join(args)}` exited {code}, expected {expected}",
                                  hint=f"the demo's files are in {where}")

    started = time.monotonic()
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "edgectl", "-q", "sandbox", "down"], env=env, capture_output=True)
    (where / "edgectl.db").unlink(missing_ok=True)
    steps = STEPS + ([] if keep else [TEARDOWN])
    try:
        for number, (heading, commands) in enumerate(steps, 1):
            typer.secho(f"\n{number}. {heading}", bold=True)
            for args, expected in commands:
                run(args, expected)
            if number == 1:  # from here on, commands read the sandbox's own config
                env["EDGECTL_CONFIG"] = str(where / "sandbox" / "edgectl.toml")
    except BaseException:
        if not keep:
            subprocess.run([sys.executable, "-m", "edgectl", "-q", "sandbox", "down"], env=env, capture_output=True)
        raise
    out.note(f"\ndemo finished in {time.monotonic() - started:.1f}s")
    if keep:
        out.note(f"the sandbox is still running; try:\n  export EDGECTL_CONFIG={where / 'sandbox' / 'edgectl.toml'}"
                 f" EDGECTL_SANDBOX_DIR={where / 'sandbox'}\n  edgectl nodes list\n  edgectl sandbox down")
