"""Failover on a real sandbox fleet: a node taken down is found by its probes, and resolve moves to its failover."""

from __future__ import annotations

import pytest

from tests.fakes.sandbox_fleet import register, running_fleet


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with running_fleet(tmp_path_factory.mktemp("failover-sandbox"), regions=("eu-central", "eu-west"),
                       pages=10) as sandbox:
        yield sandbox


def test_a_node_that_goes_down_is_failed_by_its_probes_and_resolve_moves_to_the_failover(cli, box, state_path):
    from edgectl.sandbox.fleet import set_fault

    register(box, state_path)
    primary, failover = (node.name for node in box.nodes)
    assert cli("routing", "rules", "add", "--country", "DE", "--target", primary, "--failover", failover).exit_code == 0
    checks = ("nodes", "check", "--all", "--fail-after", "2", "--recover-after", "1", "--timeout", "2s")
    assert cli(*checks).exit_code == 0
    assert cli("routing", "resolve", "DE", "-o", "json").json()["node"] == primary

    set_fault(box, primary, {"down": True})
    try:
        assert cli(*checks).exit_code == 0  # one failed probe: not failed yet
        assert cli("routing", "resolve", "DE", "-o", "json").json()["node"] == primary
        assert cli(*checks).exit_code == 1  # two: failed
        moved = cli("routing", "resolve", "DE", "--explain", "-o", "json").json()
        assert (moved["node"], moved["via"]) == (failover, "failover of rule 1")
        dropped = next(s for s in moved["steps"] if s["step"] == "candidates")["candidates"][0]
        assert (dropped["node"], dropped["kept"], dropped["reason"]) == (primary, False, "status failed")
    finally:
        set_fault(box, primary, {"down": False})
    assert cli(*checks).exit_code == 0
    assert cli("routing", "resolve", "DE", "-o", "json").json()["node"] == primary  # and back once it recovers
