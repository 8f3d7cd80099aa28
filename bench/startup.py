"""Start-up time of `edgectl --help` against a minimal typer hello-world `--help`, in the same run.

Runs each command alternately, several times, and prints the medians and their ratio.
The goal is a ratio of at most 1.5, with the plugins in plugins/ installed (`make test` installs
them): `edgectl --help` reads their entry points to list their command groups, and imports none
of them. The same help with EDGECTL_PLUGINS="" (built-ins only, no entry point read) shows what
reading them costs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELLO = '''
import typer

app = typer.Typer()


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


app()
'''


# bytecode is written by the warm-up runs and read by the timed ones, as an installed edgectl's is
BASE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**BASE_ENV, **(env or {})})
    return time.perf_counter() - started


def installed_plugins() -> list[str]:
    from importlib.metadata import entry_points

    found = {f"{ep.dist.name} {ep.dist.version}" for group in ("edgectl.providers", "edgectl.commands")
             for ep in entry_points(group=group) if ep.dist is not None and ep.dist.name != "edgectl"}
    return sorted(found)


def main(runs: int = 15) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        edgectl = [sys.executable, "-m", "edgectl"]
        commands = {
            "typer hello --help": ([sys.executable, str(hello), "--help"], None),
            "edgectl --help": ([*edgectl, "--help"], None),
            "  built-ins only": ([*edgectl, "--help"], {"EDGECTL_PLUGINS": ""}),
            "edgectl nodes --help": ([*edgectl, "nodes", "--help"], None),
        }
        for cmd, env in commands.values():  # warm the file cache and bytecode
            timed(cmd, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, (cmd, env) in commands.items():
                times[name].append(timed(cmd, env))
    print(f"plugins installed: {', '.join(installed_plugins()) or 'none'}")
    base = statistics.median(times["typer hello --help"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} median {median * 1000:7.1f} ms   ratio {median / base:5.2f}")
    ratio = statistics.median(times["edgectl --help"]) / base
    print(f"edgectl --help / typer hello --help = {ratio:.2f} (goal <= 1.5)")
    return ratio


if __name__ == "__main__":
    main()
