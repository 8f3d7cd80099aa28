"""Whatever a user types, edgectl answers with a documented exit code, never an unhandled exception."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from edgectl.cli.app import app

TEMPLATES = [
    ["nodes", "add", "{}", "--endpoint", "{}"],
    ["nodes", "add", "n1", "--endpoint", "http://h", "--country", "{}", "--lat", "{}", "--lon", "1"],
    ["nodes", "add", "n1", "--endpoint", "http://h", "--label", "{}", "--token", "{}"],
    ["nodes", "list", "--status", "{}", "--label", "{}"],
    ["nodes", "show", "{}"],
    ["nodes", "update", "{}", "--health-path", "{}"],
    ["nodes", "events", "{}", "--since", "{}"],
    ["nodes", "check", "{}", "--timeout", "{}"],
    ["nodes", "maintenance", "{}", "{}"],
    ["nodes", "heartbeat", "{}", "--json-file", "{}"],
    ["providers", "show", "{}"],
    ["cdn", "providers", "test", "{}", "{}"],
    ["config", "get", "{}"],
    ["config", "set", "{}", "{}"],
    ["--output", "{}", "nodes", "list"],
    ["state", "backup", "{}"],
    ["sandbox", "fault", "{}", "--latency", "{}"],
    ["routing", "resolve", "{}", "--strategy", "{}"],
    ["routing", "resolve", "{}", "--window", "{}"],
    ["routing", "resolve", "--locations", "{}", "--key", "{}"],
    ["routing", "rules", "add", "--country", "{}", "--target", "{}"],
    ["routing", "rules", "add", "--subdivision", "{}", "--target", "n1", "--latency-threshold", "{}"],
    ["routing", "rules", "add", "--region", "{}", "--target", "n1", "--condition", "{}"],
    ["routing", "simulate", "--fail", "{}", "--locations", "{}"],
    ["routing", "performance", "--since", "{}", "{}"],
    ["analytics", "cache", "--by", "{}", "--step", "{}"],
    ["analytics", "usage", "--since", "{}", "{}"],
    ["analytics", "top", "--since", "{}", "--limit", "{}"],
    ["analytics", "performance", "--since", "{}", "--interval", "{}"],
]

text = st.text(alphabet=string.printable + "é☃\u200b", max_size=20)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=st.sampled_from(TEMPLATES), values=st.lists(text, min_size=2, max_size=2))
def test_random_input_never_crashes(isolated, template, values):
    args, fill = [], iter(values)
    for part in template:
        args.append(next(fill) if part == "{}" else part)
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.stderr)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert "Traceback" not in result.stderr
