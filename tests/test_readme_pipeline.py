"""The README's deploy-pipeline step, run as written (bash, jq) against the local fake Cloudflare API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.cloudflare_api import DEFAULT_TOKEN, DEFAULT_ZONES, FakeCloudflare

README = Path(__file__).resolve().parent.parent / "README.md"
SHA = "4f2a9c1e0b7d3a5f6e8c9d0a1b2c3d4e5f6a7b8c"


def pipeline_step() -> tuple[str, dict[str, str]]:
    """The `run: |` script and the `env:` names of the README's GitHub Actions step."""
    block = re.search(r"```yaml\n(- name: Purge the CDNs.*?)```", README.read_text(), re.S).group(1)
    env_names = re.findall(r"^    ([A-Z_]+):", block, re.M)
    script = block.split("  run: |\n", 1)[1]
    lines = [line[4:] if line.startswith("    ") else line for line in script.splitlines()]
    return "\n".join(lines) + "\n", env_names


@pytest.fixture
def fake():
    server = FakeCloudflare().start()
    yield server
    server.stop()


def run_step(fake, tmp_path: Path, token: str) -> subprocess.CompletedProcess:
    script, env_names = pipeline_step()
    assert set(env_names) == {"EDGECTL_CONFIG", "EDGECTL_STATE", "CLOUDFLARE_API_TOKEN"}
    work = tmp_path / "repo"
    (work / "deploy").mkdir(parents=True)
    (tmp_path / "runner").mkdir()  # runner.temp always exists
    (work / "deploy" / "edgectl.toml").write_text(
        f'[providers.cf]\nkind = "cloudflare"\nzone_id = "{DEFAULT_ZONES["example.com"]}"\n'
        f'api_token = "env:CLOUDFLARE_API_TOKEN"\nendpoint_url = "{fake.url}"\nhosts = ["www.example.com"]\n')
    (work / "changed-urls.txt").write_text("".join(f"https://www.example.com/assets/app-{i}.js\n" for i in range(45)))
    env = {key: value for key, value in os.environ.items() if not key.startswith("EDGECTL_")}
    env.update(EDGECTL_CONFIG="deploy/edgectl.toml", EDGECTL_STATE=str(tmp_path / "runner" / "edgectl.db"),
               CLOUDFLARE_API_TOKEN=token, GITHUB_SHA=SHA,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # GitHub runs `run:` scripts with `bash -e`
    return subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=60)


def test_the_readme_pipeline_step_purges_and_reports(fake, tmp_path):
    done = run_step(fake, tmp_path, DEFAULT_TOKEN)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^purge 1: completed; 3 requests, 0 retried$", done.stdout, re.M), done.stdout
    purged = fake.purged
    assert sorted(p["kind"] for p in purged) == ["tag", "url", "url"]
    urls = [u for p in purged if p["kind"] == "url" for u in p["items"]]
    assert len(urls) == 45 and len(set(urls)) == 45
    assert [p["items"] for p in purged if p["kind"] == "tag"] == [[f"release-{SHA[:7]}"]]


def test_the_readme_pipeline_step_fails_the_job_with_the_resume_command(fake, tmp_path):
    done = run_step(fake, tmp_path, "not-the-token")
    assert done.returncode == 1
    assert "::error::purge incomplete; edgectl cdn purge --resume 1 --wait" in done.stdout
    assert re.search(r"^batch 1 at cf: .+", done.stdout, re.M), done.stdout
    assert fake.purged == []
    assert "not-the-token" not in done.stdout + done.stderr
