"""The fastly kind through edgectl's commands from end to end: a purge as a real process, and warming again what it purged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import provider_table
from fake_fastly import KEY

HOST = "www.sandbox.test"  # the host the sandbox fleet's nodes serve
README = Path(__file__).parent.parent / "README.md"


def readme_command(start: str, id: int) -> list[str]:
    """The arguments after `edgectl` of the README's one command line starting with `start`, its purge id replaced."""
    [line] = [line.partition("#")[0].split() for line in README.read_text().splitlines() if line.startswith(start)]
    return [str(id) if word.isdigit() else word for word in line[1:]]


def test_cdn_purge_as_a_process_data_on_stdout_and_never_the_key(fake, isolated, key):
    (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url))
    done = subprocess.run([sys.executable, "-m", "edgectl", "--debug", "cdn", "purge", "--provider", "fastly-prod",
                           "--url", "https://www.example.com/a.css", "--tag", "assets", "--yes", "-o", "json"],
                          capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"status": "completed"' in done.stdout and "fastly-prod" in done.stdout
    assert KEY not in done.stdout + done.stderr
    assert sorted(p.kind for p in fake.purged()) == ["keys", "url"]
    assert KEY.encode() not in (isolated / "state.db").read_bytes()


def test_a_url_goes_to_the_service_whose_hosts_name_its_host(cli, fake, config):
    run = cli("cdn", "purge", "--url", "https://WWW.example.com/mapped", "--yes", "-o", "json")
    assert run.exit_code == 0, run.stderr
    assert [p["provider"] for p in run.json()["providers"]] == ["fastly-prod"]
    assert [p.items for p in fake.purged()] == [("www.example.com/mapped",)]
    elsewhere = cli("cdn", "purge", "--url", "https://static.example.org/x", "--yes")
    assert elsewhere.exit_code == 2 and "no provider serves static.example.org" in elsewhere.stderr


def test_history_and_show_report_a_fastly_purge(cli, fake, config):
    run = cli("cdn", "purge", "--provider", "fastly-prod", "--url", "https://www.example.com/", "--tag", "home",
              "--yes")
    assert run.exit_code == 0, run.stderr
    show = cli("cdn", "show", "1", "-o", "json")
    assert show.exit_code == 0, show.stderr
    batches = {b["kind"]: b for b in show.json()["batch_list"]}
    assert (batches["url"]["detail"], batches["tag"]["detail"]) == ("purged", "1 surrogate key purged")
    for batch in batches.values():  # Fastly's purge id is kept as the batch's reference
        assert batch["state"] == "completed" and batch["provider_ref"].startswith("4133-")


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    from edgectl.sandbox import fleet

    where = tmp_path_factory.mktemp("fastly-sandbox")
    sandbox = fleet.start(where / "box", where / "state.db", nodes=1, regions=["eu-west"], pages=40)
    yield sandbox
    fleet.stop(sandbox)


def test_cache_warm_from_purge_warms_the_urls_and_the_tagged_entries_a_fastly_purge_cleared(cli, box, fake, isolated,
                                                                                           key):
    from edgectl.sandbox import fleet
    from edgectl.state import open_state

    state = open_state(isolated / "state.db")
    try:
        fleet.register(state, box)
    finally:
        state.close()
    (isolated / "edgectl.toml").write_text(provider_table("fastly-prod", fake.url, hosts=[HOST]))
    node = box.nodes[0].name
    assert cli("cache", "policies", "add", "--match", "/news/*", "--ttl", "1h", "--tag", "news").exit_code == 0
    news = [f"https://{HOST}/news/page-{n:04d}.html" for n in (4, 8, 12)]
    warmed = cli("cache", "warm", *[a for u in news for a in ("--url", u)], "--nodes", node, "-o", "json")
    assert warmed.exit_code == 0, warmed.stderr

    docs = f"https://{HOST}/docs/page-0001.html"
    purge = cli("cdn", "purge", "--provider", "fastly-prod", "--url", docs, "--tag", "news", "--yes", "-o", "json")
    assert purge.exit_code == 0, purge.stderr
    assert sorted((p.kind, p.items) for p in fake.purged()) == [("keys", ("news",)), ("url", (docs.split("://")[1],))]

    # as the README shows it, through the nodes labelled region=eu
    assert cli("nodes", "update", node, "--label", "region=eu").exit_code == 0
    again = cli(*readme_command("edgectl cache warm --from-purge", id=purge.json()["id"]), "-o", "json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["requests"] == 1 + len(news)  # the URL, and the entries warming recorded under the tag
    entries = cli("cache", "entries", "-o", "json").json()
    assert {e["url"] for e in entries} == {docs, *news}
