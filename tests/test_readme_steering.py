"""The README's steering CI steps, run as written (bash, jq): plan on a pull request, apply on merge, against moto."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.fakes.moto_server import TEST_KEYS

README = Path(__file__).resolve().parent.parent / "README.md"

INVENTORY = """
[nodes.fra-1]
endpoint = "https://fra-1.edge.example.net"
address = "198.51.100.10"
country = "DE"

[nodes.iad-1]
endpoint = "https://iad-1.edge.example.net"
address = "198.51.100.30"
country = "US"
"""
RULES = """
[[rules]]
default = true
target = "iad-1"

[[rules]]
continent = "EU"
target = "fra-1"
failover = "iad-1"
"""


def steps() -> dict[str, str]:
    """The `run: |` scripts of the README's steering steps, by step name."""
    out = {}
    for name, block in re.findall(r"- name: ((?:Plan|Apply) the steering)\n(.*?)(?=\n- name: |```)", README.read_text(), re.S):
        script = block.split("  run: |\n", 1)[1]
        out[name] = "\n".join(line[4:] for line in script.splitlines()) + "\n"
    return out


@pytest.fixture
def repo(tmp_path, moto):
    zone = boto3.client("route53", endpoint_url=moto.url, **TEST_KEYS).create_hosted_zone(
        Name="example.com", CallerReference=f"readme-{time.monotonic_ns()}")["HostedZone"]["Id"].split("/")[-1]
    work = tmp_path / "repo"
    (work / "deploy").mkdir(parents=True)
    (work / "deploy" / "inventory.toml").write_text(INVENTORY)
    (work / "deploy" / "rules.toml").write_text(RULES)
    (work / "deploy" / "edgectl.toml").write_text(
        f'[providers.dns]\nkind = "route53"\nhosted_zone_id = "{zone}"\nrecord_name = "www.example.com"\n'
        f'endpoint_url = "{moto.url}"\n')
    return work


def run(repo: Path, tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
    # each job starts on a fresh runner: a state file of its own
    runner = tmp_path / f"runner-{time.monotonic_ns()}"
    runner.mkdir()
    env.update(EDGECTL_CONFIG="deploy/edgectl.toml", EDGECTL_STATE=str(runner / "edgectl.db"),
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(["bash", "-e", "-c", script], cwd=repo, env=env, capture_output=True, text=True, timeout=120)


def test_the_readme_steering_steps_plan_then_apply(repo, tmp_path):
    scripts = steps()
    assert set(scripts) == {"Plan the steering", "Apply the steering"}
    planned = run(repo, tmp_path, scripts["Plan the steering"])
    assert planned.returncode == 0, planned.stderr
    assert re.search(r"^dns: \d+ create, 0 update, 0 delete$", planned.stdout, re.M), planned.stdout
    plan = json.loads((repo / "plan.json").read_text())
    assert plan["counts"]["create"] > 0 and plan["providers"][0]["kind"] == "route53"
    applied = run(repo, tmp_path, scripts["Apply the steering"])
    assert applied.returncode == 0, applied.stderr
    assert "synced" in applied.stdout
    again = run(repo, tmp_path, scripts["Plan the steering"])
    assert again.returncode == 0 and re.search(r"^dns: 0 create, 0 update, 0 delete$", again.stdout, re.M)
