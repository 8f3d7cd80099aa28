"""The README's alerts crontab line, run as written (by bash) against a webhook receiver on loopback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.fakes.webhook_receiver import WebhookReceiver, alertmanager_problems

README = Path(__file__).resolve().parent.parent / "README.md"
CONFIG = "/etc/edgectl/edgectl.toml"


def alerts_part() -> str:
    return README.read_text().split("#### Alerts", 1)[1].split("\n## ", 1)[0]


def alerts_cron_line() -> tuple[list[str], str]:
    """(schedule fields, command) of the crontab line in the README's Alerts part."""
    [line] = re.search(r"```crontab\n(.*?)```", alerts_part(), re.S).group(1).strip().splitlines()
    fields = line.split(None, 5)
    return fields[:5], fields[5]


def readme_error() -> str:
    """The error line the README quotes for a receiver that fails while alerts fire."""
    [said] = re.findall(r"\(`(error: .*?)`\)", " ".join(alerts_part().split()))
    return said


def test_the_readme_alerts_line_is_quiet_while_firing_and_loud_when_a_receiver_fails(cli, tmp_path, isolated):
    """Firing and told: exit 3, which the line turns into success, silent. A receiver that fails
    through the retries, firing or resolved: exit 1, the line fails, and cron mails the error."""
    when, line = alerts_cron_line()
    assert when == ["*/5", "*", "*", "*", "*"]
    assert line.startswith(f"edgectl --config {CONFIG} analytics alerts check")
    command, tail = line.split(" || ", 1)
    assert tail == "test $? -eq 3"
    config = tmp_path / "edgectl.toml"
    config.write_text(f'[state]\npath = "{isolated / "state.db"}"\n')
    written = line.replace(CONFIG, str(config))
    alone = command.replace(CONFIG, str(config))

    with WebhookReceiver() as hook:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGECTL_")}
        env.update(ALERTMANAGER_WEBHOOK=hook.url + "/alerts",
                   PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")

        def run(text: str) -> subprocess.CompletedProcess:
            return subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True, timeout=120)

        added = cli("--config", str(config), "analytics", "alerts", "add", "slow-edge", "--metric", "latency",
                    "--stat", "p95", "--by", "node", "--above", "200ms", "--for", "5m", "--webhook",
                    "env:ALERTMANAGER_WEBHOOK")
        assert added.exit_code == 0, added.stderr
        samples = tmp_path / "slow.jsonl"
        now = time.time()
        samples.write_text("".join(
            f'{{"time": {now - 30 - 60 * m + i / 10}, "metric": "latency", "value": {value}, "unit": "ms", '
            f'"node": "{node}"}}\n'
            for m in range(1, 7) for i in range(20) for node, value in (("fra-1", 320), ("ams-1", 45))))
        assert cli("--config", str(config), "analytics", "ingest", str(samples), "--format", "jsonl").exit_code == 0

        hook.fail_always(503)  # firing, and the pager's receiver is down
        unheard = run(written)
        assert unheard.returncode == 1 and unheard.stdout == ""
        errors = [line for line in unheard.stderr.splitlines() if line.startswith("error:")]
        assert errors == [readme_error()]
        assert "alert slow-edge: notification not delivered after 4 attempt(s)" in unheard.stderr
        assert "/alerts" not in unheard.stderr

        hook.reset()
        firing = run(written)
        assert (firing.returncode, firing.stdout, firing.stderr) == (0, "", "")  # cron mails nothing
        [body] = hook.received
        assert alertmanager_problems(body) == [] and body["status"] == "firing"
        assert [a["labels"]["node"] for a in body["alerts"]] == ["fra-1"]
        still = run(alone)
        assert (still.returncode, still.stdout, still.stderr) == (3, "", "")
        assert len(hook.requests) == 1  # within the cooldown: not told again

        fast = tmp_path / "fast.jsonl"
        fast.write_text("".join(f'{{"time": {time.time() - 1}, "metric": "latency", "value": 40, "unit": "ms", '
                                f'"node": "fra-1"}}\n' for _ in range(50)))
        assert cli("--config", str(config), "analytics", "ingest", str(fast), "--format", "jsonl").exit_code == 0
        hook.fail_always(503)
        failing = run(written)
        assert failing.returncode == 1 and failing.stdout == ""
        assert "alert slow-edge: notification not delivered after 4 attempt(s)" in failing.stderr
        assert ("error: no alert firing, and 1 notification(s) not delivered: slow-edge (1 resolved) to "
                "env:ALERTMANAGER_WEBHOOK") in failing.stderr
        assert "/alerts" not in failing.stderr  # the receiver's host, not its path

        hook.reset()
        resolved = run(written)
        assert (resolved.returncode, resolved.stdout, resolved.stderr) == (0, "", "")
        [body] = hook.received
        assert alertmanager_problems(body) == [] and body["status"] == "resolved"
        assert body["alerts"][0]["labels"] == {"alertname": "slow-edge", "severity": "warning", "node": "fra-1"}
        assert run(alone).returncode == 0
