"""The README's nightly crontab line, run as written against a sandbox fleet (its sitemap and nodes)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fakes.sandbox_fleet import register, running_fleet

README = Path(__file__).resolve().parent.parent / "README.md"


def cron_line() -> list[str]:
    block = re.search(r"```crontab\n(.*?)```", README.read_text(), re.S).group(1).strip()
    fields = block.split(None, 5)  # minute hour day month weekday command
    assert len(fields) == 6 and fields[:5] == ["30", "3", "*", "*", "*"]
    return shlex.split(fields[5])


def test_the_readme_cron_line_warms_every_node_quietly(tmp_path):
    command = cron_line()
    assert command[0] == "edgectl"
    with running_fleet(tmp_path / "fleet", pages=30) as box:
        state = tmp_path / "state.db"
        register(box, state)
        config = tmp_path / "edgectl.toml"
        config.write_text(f'[state]\npath = "{state}"\n')
        args = [str(config) if a == "/etc/edgectl/edgectl.toml" else
                box.origin + "/sitemap.xml" if a == "https://www.example.com/sitemap.xml" else a
                for a in command[1:]]
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
        first = subprocess.run([sys.executable, "-m", "edgectl", *args], env=env, capture_output=True, text=True,
                               timeout=120)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == "" or "NODE" in first.stdout  # the summary table; nothing on stderr
        assert first.stderr == ""
        for node in box.nodes:
            assert httpx.get(node.url + "/.edge/stats", trust_env=False).json()["entries"] >= 30
        again = subprocess.run([sys.executable, "-m", "edgectl", *args, "-o", "json"], env=env, capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        import json

        report = json.loads(again.stdout)
        assert report["errors"] == 0 and report["hit_ratio_before"] > 0.9
