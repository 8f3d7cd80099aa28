"""The README's nightly crontab line, run as written against a sandbox fleet (its sitemap and nodes)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fakes.sandbox_fleet import register, running_fleet

README = Path(__file__).resolve().parent.parent / "README.md"


def cron_lines() -> list[tuple[list[str], list[str]]]:
    """(schedule fields, command words) of each line of the README's crontab block."""
    block = re.search(r"```crontab\n(.*?)```", README.read_text(), re.S).group(1).strip()
    lines = []
    for line in block.splitlines():
        fields = line.split(None, 5)  # minute hour day month weekday command
        assert len(fields) == 6
        lines.append((fields[:5], shlex.split(fields[5])))
    return lines


def test_the_readme_cron_lines_warm_every_node_quietly_and_rewarm_what_went_stale(tmp_path):
    (nightly_when, command), (stale_when, stale_command) = cron_lines()
    assert nightly_when == ["30", "3", "*", "*", "*"] and stale_when == ["*/15", "*", "*", "*", "*"]
    assert command[0] == stale_command[0] == "edgectl"
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
        assert first.stdout == "" and first.stderr == ""  # cron mails any output: a good run prints none
        for node in box.nodes:
            assert httpx.get(node.url + "/.edge/stats", trust_env=False).json()["entries"] >= 30
        again = subprocess.run([sys.executable, "-m", "edgectl", *args, "-o", "json"], env=env, capture_output=True,
                               text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        report = json.loads(again.stdout)
        assert report["errors"] == 0 and report["hit_ratio_before"] > 0.9

        # the quarter-hourly line: what expires within 15 minutes (the sandbox's news pages live 30 s),
        # once through every node; within a day, everything the nightly run found with a TTL
        import sqlite3
        from datetime import datetime, timedelta, timezone

        def expiring(seconds: float) -> int:
            cutoff = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            with sqlite3.connect(state) as db:
                return db.execute("SELECT count(DISTINCT url) FROM edge_cache_entries WHERE expires_at <= ?",
                                  [cutoff]).fetchone()[0]

        stale = [str(config) if a == "/etc/edgectl/edgectl.toml" else a for a in stale_command[1:]]
        due = expiring(15 * 60)
        quarter = subprocess.run([sys.executable, "-m", "edgectl", *stale, "-o", "json"], env=env, capture_output=True,
                                 text=True, timeout=120)
        assert quarter.returncode == 0, quarter.stderr
        assert 0 < json.loads(quarter.stdout)["requests"] <= due * len(box.nodes) + len(box.nodes)
        day = [("1d" if a == "15m" else a) for a in stale]
        rewarm = subprocess.run([sys.executable, "-m", "edgectl", *day, "-o", "json"], env=env, capture_output=True,
                                text=True, timeout=120)
        assert rewarm.returncode == 0, rewarm.stderr
        assert json.loads(rewarm.stdout)["requests"] == expiring(86400) * len(box.nodes)
