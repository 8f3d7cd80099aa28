"""Start-up time of `edgectl --help` against a minimal typer hello-world `--help`, in the same run.

Runs each command alternately, several times, and prints the medians and their ratio.
The goal is a ratio of at most 1.5.
"""

from __future__ import annotations

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


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(runs: int = 15) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text(HELLO)
        commands = {
            "typer hello --help": [sys.executable, str(hello), "--help"],
            "edgectl --help": [sys.executable, "-m", "edgectl", "--help"],
            "edgectl nodes --help": [sys.executable, "-m", "edgectl", "nodes", "--help"],
        }
        for cmd in commands.values():  # warm the file cache and bytecode
            timed(cmd)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, cmd in commands.items():
                times[name].append(timed(cmd))
    base = statistics.median(times["typer hello --help"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} median {median * 1000:7.1f} ms   ratio {median / base:5.2f}")
    ratio = statistics.median(times["edgectl --help"]) / base
    print(f"edgectl --help / typer hello --help = {ratio:.2f} (goal <= 1.5)")
    return ratio


if __name__ == "__main__":
    main()
