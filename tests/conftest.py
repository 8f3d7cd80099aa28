"""Every test runs with its own config and state dirs, and no credentials from the outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgectl.testing import invoke, isolate
from tests.fakes.health_servers import HealthFleet


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    # config files are passed with --config, so none is named in the environment
    return isolate(tmp_path, monkeypatch, config=False)


@pytest.fixture
def cli():
    """Run edgectl in-process: cli('nodes', 'list', '-o', 'json') -> edgectl.testing.Result."""
    return invoke


@pytest.fixture(scope="session")
def fleet():
    """Health endpoints on loopback, shared by the session; tests add the ports they need."""
    servers = HealthFleet().start()
    yield servers
    servers.stop()


@pytest.fixture
def state_path(isolated) -> Path:
    return isolated / "state.db"


@pytest.fixture(scope="module")
def moto():
    """moto in server mode on loopback, one per test module."""
    from tests.fakes.moto_server import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials moto accepts, in the environment where the AWS chain finds them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def _cloudwatch_faults(moto):
    from tests.fakes.cloudwatch_faults import CloudWatchFaults

    with CloudWatchFaults(moto.url) as proxy:
        yield proxy


@pytest.fixture
def cloudwatch_faults(_cloudwatch_faults):
    """The CloudWatch proxy in front of the module's moto, with no faults, raw values or log left over."""
    yield from _cloudwatch_faults.fresh()


@pytest.fixture(scope="module")
def _route53_faults(moto):
    from tests.fakes.route53_faults import Route53Faults

    with Route53Faults(moto.url) as proxy:
        yield proxy


@pytest.fixture
def route53_faults(_route53_faults):
    """The Route 53 fault proxy in front of the module's moto, with no faults, changes or log left over."""
    _route53_faults.reset()
    yield _route53_faults
    _route53_faults.reset()


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    """A folder on sys.path for this test, where tests.fakes.plugins.install puts distributions."""
    import importlib
    import sys

    from edgectl import plugins

    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    plugins.reset()  # the entry points are read once per command: this test's are read afresh
    yield path
    plugins.reset()
    for name, module in list(sys.modules.items()):  # the next test's plugin of the same name is another module
        found = getattr(module, "__dict__", {})  # not getattr: a plugin's module __getattr__ may raise anything
        places = [found.get("__file__") or "", *(found.get("__path__") or [])]
        if any(str(place).startswith(str(path)) for place in places):  # namespace packages have only a path
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def geoip_db(tmp_path) -> str:
    """A GeoLite2-City-shaped database with a few documentation networks."""
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-City", languages=["en"],
                        description={"en": "edgectl test"}, ipv4_compatible=True)
    writer.insert_network(IPSet(["203.0.113.0/24"]), {
        "continent": {"code": "NA"},
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
        "location": {"latitude": 37.7749, "longitude": -122.4194},
    })
    writer.insert_network(IPSet(["198.51.100.0/25"]), {"country": {"iso_code": "DE"}})
    writer.insert_network(IPSet(["198.51.100.128/25"]), {"continent": {"code": "EU"}})
    writer.insert_network(IPSet(["192.0.2.0/24"]), {"country": {"iso_code": "XK"}})
    writer.insert_network(IPSet(["2001:db8::/32"]), {
        "country": {"iso_code": "JP"}, "subdivisions": [{"iso_code": "13", "names": {"en": "Tokyo"}}],
    })
    path = tmp_path / "GeoLite2-City-test.mmdb"
    writer.to_db_file(str(path))
    return str(path)
