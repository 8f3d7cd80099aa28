"""The conformance suite every provider kind passes: subclass PurgeConformance or AnalyticsConformance in a test module.

    from edgectl.testing.conformance import AnalyticsConformance, PurgeConformance

    class TestFastlyPurgeConformance(PurgeConformance):
        kind = "fastly"
        secrets = {"FASTLY_TEST_KEY": "k-1234567890"}

        @pytest.fixture
        def api(self):
            with FakeFastly() as fake:
                yield fake

        def settings(self, api): return {"kind": "fastly", "hosts": ["www.example.com"], ...}
        def purges(self, api): return [("url", ("https://www.example.com/a",)), ...]

The suite drives edgectl through its own commands (`cdn purge`, `cdn providers test`, `analytics
pull`, `analytics export`), in-process, against the `api` fixture (a started `edgectl.testing.FakeAPI`
or `FaultProxy`), with its config, state and home in the test's tmp_path and no credentials from the
outside. It checks what edgectl promises its users about every kind, so each assertion says what the
provider did and what it should have done.

Hooks a subclass gives: `kind`, `secrets`, `api` (a fixture), `settings(api)`, and `purges(api)` (for
purges) or `seed(api, start, end)` (for analytics). Optional hooks, with their defaults: `wrong_secrets`,
`target(kind, i)`, `pacing_settings(api)`, `is_purge_request(seen)`, `setup(api)` and
`running_totals`; each is described where it is defined below.

What every kind is checked for: its class keeps the contract (contract_problem() is None), describe()
is JSON and agrees with the class, and `providers test` passes. For purges: each declared purge kind
purges and each undeclared one is refused (exit 2) before anything is sent; batch_size + 1 targets
make two requests, none over the limit (min(batch_size, 300) + 1 targets for a larger batch_size);
the purge requests' arrival times fit the declared token buckets; a 429 or 503 with Retry-After is
sent again no sooner and succeeds; refused credentials are not retried (exit 1, nothing sent after
the refusal); an answer lost to a reset connection is sent again as it was and succeeds; secrets
never reach stdout, stderr with --debug, or the state file. For analytics: a pull stores the
seeded totals, a second pull of the window stores nothing more, a 429 is waited out, refused
credentials fail the pull without retries, and secrets never leak.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import pytest

from edgectl.testing.environment import isolate
from edgectl.testing.loopback import FakeAPI, Seen

NAME = "conformance"  # the provider's name in the config the suite writes: [providers.conformance]
# A kind that takes thousands of items a request is checked with this many + 1, not with thousands:
# enough to show it is not split below its limit, without sending thousands of targets.
BATCH_CAP = 300
PACING_MAX_REQUESTS = 200  # a burst deeper than this many requests is not spent, only kept within
PACING_OVERFLOW_S = 1.0  # how long the pacing check runs past the burst, at the declared rate
EARLY_S = 0.25  # how much earlier than its bucket allows a request may arrive (loopback and scheduling jitter)
RETRY_AFTER_S = 1
RETRY_SLACK_S = 0.1  # a resend after Retry-After: 1 may arrive this much sooner, clocks being what they are
REFUSED = (401, 403)
MINUTE_MS = 60_000
_TARGET_FLAGS = {"url": "--url", "prefix": "--prefix", "tag": "--tag", "host": "--host"}


# -- running edgectl -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One edgectl command, run in-process."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError:
            raise AssertionError(f"{self.command} did not print JSON on stdout with -o json:\n{self.stdout[:2000]}")

    @property
    def command(self) -> str:
        shown = [a if len(a) < 80 else a[:77] + "..." for a in self.args]
        if len(shown) > 16:
            shown = shown[:14] + [f"... ({len(shown) - 14} more arguments)"]
        return "`edgectl " + " ".join(shown) + "`"

    def explain(self) -> str:
        err = self.stderr.strip()
        return f"{self.command} exited {self.exit_code}" + (f"; stderr:\n{err[-3000:]}" if err else "; stderr empty")


def _toml(settings: Mapping[str, Any]) -> str:
    import tomlkit

    document = tomlkit.document()
    providers = tomlkit.table(is_super_table=True)
    providers[NAME] = dict(settings)
    document["providers"] = providers
    return tomlkit.dumps(document)


def _floor(ms: int, step: int) -> int:
    return ms - ms % step


def _moment(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(requests: Sequence[Seen], limit: int = 12) -> str:
    """The requests as a plugin author would want them listed in a failure."""
    if not requests:
        return "  (none)"
    first = requests[0].at
    lines = []
    for seen in requests[:limit]:
        outcome = seen.fault if seen.fault in ("fail", "drop", "reset") else None
        answer = f"{seen.status}" if seen.status is not None else "no answer"
        if outcome:
            answer += f" (injected {outcome})"
        lines.append(f"  +{seen.at - first:6.3f}s {seen.method} {seen.target[:100]} -> {answer}")
    if len(requests) > limit:
        lines.append(f"  ... and {len(requests) - limit} more")
    return "\n".join(lines)


class ProviderConformance:
    """What every kind is checked for, whatever its capability: its declaration and its config.

    The class's own autouse fixture gives each test a world of its own: config, state and HOME in
    tmp_path, every EDGECTL_*, AWS_*, CLOUDFLARE_* and AZURE_* variable cleared, `secrets` set, and
    a config file whose [providers.conformance] table is `settings(api)`.
    """

    kind: ClassVar[str] = ""
    # env vars set for each test; settings name them as "env:NAME". Their values must never appear
    # in edgectl's output, its --debug log or its state file.
    secrets: ClassVar[Mapping[str, str]] = {}
    # what the api must refuse (401/403). None: each secret's value + "-wrong". {} (or no secrets at
    # all): the api cannot tell a wrong secret, so the suite injects api.fail_next(403) instead.
    wrong_secrets: ClassVar[Mapping[str, str] | None] = None
    capability: ClassVar[str] = ""  # set by PurgeConformance and AnalyticsConformance
    providers_group: ClassVar[tuple[str, ...]] = ("providers",)

    # -- hooks ---------------------------------------------------------------------------------------
    def settings(self, api) -> dict[str, Any]:
        """The [providers.conformance] table: kind, hosts, endpoint, secret references."""
        raise NotImplementedError(f"{type(self).__name__} must define settings(api)")

    def setup(self, api) -> None:
        """Optional: make the state what the settings need, through `self.edgectl(...)`, before each
        test; e.g. `self.edgectl("nodes", "add", "edge-1", "--endpoint", api.url, "-l", "conformance=true")`
        for a kind whose settings name nodes. Default: nothing."""

    # -- the world each test runs in ------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _conformance_world(self, api, tmp_path, monkeypatch):
        assert isinstance(api, FakeAPI), (
            f"the api fixture of {type(self).__name__} gave a {type(api).__name__}: the suite reads "
            "`requests` and injects faults, so it must be an edgectl.testing.FakeAPI or FaultProxy, started")
        home = isolate(tmp_path / "conformance", monkeypatch)
        self.home = home
        self.config_path = home / "edgectl.toml"
        self.state_path = home / "state.db"
        # edgectl redacts every secret it has resolved in this process, so one test's secrets would
        # hide another's leak: each test starts with none known, as a fresh edgectl process does
        import edgectl.logs

        monkeypatch.setattr(edgectl.logs, "_secrets", set())
        self.monkeypatch = monkeypatch
        self.api = api
        self.use_secrets(self.secrets)
        self.configure()
        self.setup(api)
        yield

    def use_secrets(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)

    def configure(self, **extra: Any) -> dict[str, Any]:
        """Write the config: settings(api), with `extra` settings over them."""
        table = {**self.settings(self.api), **extra}
        assert table.get("kind") == self.kind, (
            f"settings(api) must hold kind = {self.kind!r} (the kind under test), not {table.get('kind')!r}")
        self.config_path.write_text(_toml(table), encoding="utf-8")
        self.hosts = list(table.get("hosts") or [])
        return table

    def edgectl(self, *args: Any, input: str | None = None) -> Run:
        """Run an edgectl command in-process against this test's config and state."""
        from typer.testing import CliRunner

        from edgectl.cli.app import app

        argv = tuple(str(a) for a in args)
        result = CliRunner().invoke(app, list(argv), input=input, catch_exceptions=False)
        return Run(argv, result.exit_code, result.stdout, result.stderr)

    # -- what the kind declares ------------------------------------------------------------------------
    def provider_class(self):
        from edgectl.providers.registry import provider_class

        return provider_class(self.kind)

    def built(self):
        """The provider as edgectl builds it from this test's config (nothing is contacted)."""
        from edgectl.config import Config
        from edgectl.nodes.inventory import node_lookup
        from edgectl.providers.config import build, entry
        from edgectl.state import open_state

        config = Config(self.config_path, "option")
        state = open_state(self.state_path)
        try:
            return build(config, entry(config, NAME, self.capability), nodes=node_lookup(state))
        finally:
            state.close()

    def wrong(self) -> Mapping[str, str]:
        """The secrets the api must refuse; empty when it cannot tell and a 403 is injected instead."""
        if self.wrong_secrets is not None:
            return dict(self.wrong_secrets)
        return {name: value + "-wrong" for name, value in self.secrets.items()}

    def secret_values(self) -> list[str]:
        return [value for value in (*self.secrets.values(), *self.wrong().values()) if value]

    def state_bytes(self) -> bytes:
        return b"".join(path.read_bytes() for path in sorted(self.home.glob("state.db*")) if path.is_file())

    def assert_no_secret_in(self, runs: Iterable[Run]) -> None:
        for run in runs:
            for value in self.secret_values():
                assert value not in run.stdout, f"{run.command} printed a secret on stdout ({value[:4]}...)"
                assert value not in run.stderr, (
                    f"{run.command} wrote a secret to stderr ({value[:4]}...): register it for redaction "
                    "by resolving it through ProviderContext.resolve_secret / Provider.secret(), and keep "
                    "it out of exception messages")
        blob = self.state_bytes()
        for value in self.secret_values():
            assert value.encode() not in blob, (
                f"a secret ({value[:4]}...) is in the state file {self.state_path} (or its -wal): "
                "credentials never enter the state; keep them out of PurgeAccepted.detail, provider_ref "
                "and error messages")

    def assert_secrets_were_sent(self) -> None:
        """The leak checks mean something only if the api did receive the secrets."""
        if not self.secrets:
            return
        sent = [seen for seen in self.api.requests
                if any(v in " ".join(seen.headers.values()) or v.encode() in seen.body for v in self.secrets.values())]
        assert sent, (
            f"no request to the api carried any of the secrets ({', '.join(self.secrets)}), so the leak "
            "checks prove nothing: are the settings referring to them (api_token = \"env:NAME\")?\n"
            + _shown(self.api.requests))

    # -- checks ----------------------------------------------------------------------------------------
    def test_the_kind_keeps_its_contract(self):
        from edgectl.providers.base import CAPABILITIES

        cls = self.provider_class()
        problem = cls.contract_problem()
        assert problem is None, f"kind {self.kind!r}: {problem}"
        assert cls.kind == self.kind, f"the class registered as {self.kind!r} says kind = {cls.kind!r}"
        assert self.capability in cls.capabilities, (
            f"kind {self.kind!r} is checked for {self.capability} but declares capabilities = "
            f"{sorted(cls.capabilities)} (from {', '.join(CAPABILITIES)})")
        problems = cls.check_settings(self.settings(self.api))
        assert problems == [], f"kind {self.kind!r} refuses the suite's settings(api): {problems}"

    def test_describe_is_json_and_says_what_the_class_declares(self):
        provider = self.built()
        try:
            record = provider.describe()
            try:
                text = json.dumps(record)
            except (TypeError, ValueError) as exc:
                raise AssertionError(f"describe() of kind {self.kind!r} is not JSON: {exc}: {record!r}") from None
        finally:
            provider.close()
        assert json.loads(text)["kind"] == self.kind, f"describe() names kind {record.get('kind')!r}"
        assert set(record["capabilities"]) == set(type(provider).capabilities), (
            f"describe() lists capabilities {record['capabilities']}, the class declares "
            f"{sorted(type(provider).capabilities)}: leave describe()'s capabilities to the base class")
        shown = self.edgectl(*self.providers_group, "show", NAME, "-o", "json")
        assert shown.exit_code == 0, shown.explain()
        assert shown.json()["kind"] == self.kind, f"{shown.command} names kind {shown.json()['kind']!r}"

    def test_providers_test_passes(self):
        run = self.edgectl(*self.providers_group, "test", NAME, "-o", "json")
        assert run.exit_code == 0, (
            f"{run.explain()}\nProvider.test() should check credentials and reachability against the api "
            "and return one line; it failed against the suite's api:\n" + _shown(self.api.requests))
        [row] = run.json()
        assert row["result"] == "ok", f"`providers test` reported {row}: Provider.test() must raise for a failure"


# ==== purge ===============================================================================================

@dataclass
class Window:
    """What reached the api from one moment on: its requests, the purge requests among them, the purges applied."""

    suite: "PurgeConformance"
    requests_before: int
    purges_before: int

    @property
    def requests(self) -> list[Seen]:
        return self.suite.api.requests[self.requests_before:]

    @property
    def purge_requests(self) -> list[Seen]:
        return [seen for seen in self.requests if self.suite.is_purge_request(seen)]

    @property
    def purges(self) -> list[tuple[str, tuple[str, ...]]]:
        return [(kind, tuple(items)) for kind, items in self.suite.purges(self.suite.api)[self.purges_before:]]

    def items(self, kind: str | None = None) -> list[str]:
        return [item for k, items in self.purges for item in items if kind is None or k == kind]


class PurgeConformance(ProviderConformance):
    """The purge capability: declarations, batching, pacing, retries, refusals, resends, secrets.

    Hooks besides the common ones: `purges(api)` (required), `target(kind, i)`, `pacing_settings(api)`
    and `is_purge_request(seen)`.
    """

    capability = "purge"
    providers_group = ("cdn", "providers")
    purge_timeout: ClassVar[str] = "60s"  # each `cdn purge` the suite runs gives up after this long

    # -- hooks ---------------------------------------------------------------------------------------
    def purges(self, api) -> list[tuple[str, tuple[str, ...]]]:
        """Each purge request the api accepted and applied, in arrival order, as (purge kind, items),
        the items named as edgectl's targets name them (absolute URLs, prefixes and tags as given,
        hostnames; ('*',) for everything)."""
        raise NotImplementedError(f"{type(self).__name__} must define purges(api)")

    def target(self, kind: str, i: int) -> str:
        """The i-th target of a purge kind, as it is given to `cdn purge`. Default: url
        https://HOST/conformance/I, prefix https://HOST/conformance/pI/, tag conformance-I, host HOST
        for i = 0 and conformance-I.HOST after it (HOST: the first of the settings' hosts)."""
        assert self.hosts, "settings(api) must name hosts (the first is used to build URL targets), or override target()"
        host = self.hosts[0]
        if kind == "url":
            return f"https://{host}/conformance/{i}"
        if kind == "prefix":
            return f"https://{host}/conformance/p{i}/"
        if kind == "tag":
            return f"conformance-{i}"
        if kind == "host":
            return host if i == 0 else f"conformance-{i}.{host}"
        return "*"

    def pacing_settings(self, api) -> dict[str, Any]:
        """Optional: settings that lower the declared limits so the pacing check is quick (a plan with
        a faster bucket, a smaller batch size). Default: none."""
        return {}

    def is_purge_request(self, seen: Seen) -> bool:
        """Whether a request the api received asked for a purge (not a lookup or a completion poll).
        Default: every request that is not GET, HEAD or OPTIONS."""
        return seen.method not in ("GET", "HEAD", "OPTIONS")

    # -- helpers -----------------------------------------------------------------------------------------
    def window(self) -> Window:
        return Window(self, len(self.api.requests), len(self.purges(self.api)))

    def declared(self) -> frozenset[str]:
        return frozenset(self.provider_class().purge_kinds)

    def limits(self) -> dict[str, Any]:
        """The limits the provider declares with the config as it is now, as `cdn providers show` has them."""
        shown = self.edgectl("cdn", "providers", "show", NAME, "-o", "json")
        assert shown.exit_code == 0, shown.explain()
        return shown.json()["limits"]

    def batchable(self) -> list[str]:
        """The declared kinds a purge can carry many of, in edgectl's order (everything is one target)."""
        from edgectl.providers.base import PURGE_KINDS

        return [kind for kind in PURGE_KINDS if kind in self.declared() and kind != "everything"]

    def targets(self, kind: str, count: int, first: int = 0) -> list[str]:
        found = [self.target(kind, i) for i in range(first, first + count)]
        assert len(set(found)) == len(found), (
            f"target({kind!r}, i) gave the same target twice for i in {first}..{first + count - 1}: "
            "override target() so that each i names a different one")
        return found

    def purge(self, wanted: Mapping[str, Sequence[str]], *front: str) -> Run:
        """`cdn purge -p conformance -o json` of the targets by kind; `front` goes before it (--debug)."""
        args: list[str] = []
        for kind, values in wanted.items():
            if kind == "everything":
                args += ["--everything", "--yes"]
            elif kind == "url" and len(values) > 20:
                path = self.home / f"urls-{time.monotonic_ns()}.txt"
                path.write_text("".join(v + "\n" for v in values), encoding="utf-8")
                args += ["--urls-file", str(path)]
            else:
                args += [arg for value in values for arg in (_TARGET_FLAGS[kind], value)]
        return self.edgectl(*front, "cdn", "purge", "-p", NAME, "-o", "json", "--timeout", self.purge_timeout, *args)

    def first_kind(self) -> str:
        kinds = self.batchable() or sorted(self.declared())
        assert kinds, f"kind {self.kind!r} declares no purge kinds"
        return kinds[0]

    def lead(self, kind: str) -> int:
        """How many requests a purge sends before its first purge request (lookups and the like), found
        by a purge without faults, so that a fault can be queued for the purge request itself."""
        window = self.window()
        run = self.purge({kind: [self.target(kind, 9000 + len(self.api.requests))]})
        assert run.exit_code == 0, f"a purge without faults failed: {run.explain()}\n" + _shown(window.requests)
        for index, seen in enumerate(window.requests):
            if self.is_purge_request(seen):
                return index
        raise AssertionError(f"a {kind} purge reached the api with no request that is_purge_request() takes for "
                             "a purge; override is_purge_request(seen) to say which requests purge:\n"
                             + _shown(window.requests))

    def arm(self, kind: str, fault: str, **options: Any) -> None:
        """Queue a fault for the next purge's first purge request, letting its lookups through."""
        lead = self.lead(kind)
        if lead:
            self.api.delay_next(0, count=lead)
        getattr(self.api, fault)(**options)

    # -- declarations agree with behaviour --------------------------------------------------------------
    def test_describe_states_the_declared_purge_kinds_and_limits(self):
        from edgectl.providers.base import PURGE_KINDS

        provider = self.built()
        try:
            limits = provider.limits()
        finally:
            provider.close()
        declared = self.declared()
        assert declared and declared <= set(PURGE_KINDS), (
            f"purge_kinds = {sorted(declared)}: a kind purges by some of {', '.join(PURGE_KINDS)}")
        for kind in declared:
            assert int(limits.batch_size.get(kind, 0)) >= 1, (
                f"Limits.batch_size has no size of at least 1 for {kind!r}, which purge_kinds declares")
            assert kind in limits.bucket_for and limits.bucket_for[kind] in limits.buckets, (
                f"Limits.bucket_for must map the declared purge kind {kind!r} to one of the buckets "
                f"{sorted(limits.buckets)}")
        for name, bucket in limits.buckets.items():
            assert bucket.rate > 0 and bucket.burst >= 1, f"bucket {name!r}: rate must be > 0 and burst >= 1: {bucket}"
        assert limits.max_in_flight >= 1, "Limits.max_in_flight must be at least 1"
        shown = self.limits()
        assert shown["batch_size"] == {k: int(v) for k, v in limits.batch_size.items()}

    @pytest.mark.parametrize("purge_kind", ["url", "prefix", "tag", "host", "everything"])
    def test_each_purge_kind_is_done_if_declared_and_refused_before_sending_if_not(self, purge_kind):
        target = self.target(purge_kind, 0)
        window = self.window()
        run = self.purge({purge_kind: [target]})
        if purge_kind in self.declared():
            assert run.exit_code == 0, (
                f"kind {self.kind!r} declares {purge_kind!r} in purge_kinds, yet a purge of {target!r} failed: "
                f"{run.explain()}\n" + _shown(window.requests))
            assert run.json()["status"] in ("completed", "accepted"), (
                f"a purge that exited 0 should be completed or accepted, not {run.json()['status']!r}: {run.json()}")
            assert window.purges == [(purge_kind, (target,))], (
                f"a purge of one {purge_kind} target {target!r} should reach the api as one purge request "
                f"of it; purges(api) shows {window.purges}\n" + _shown(window.requests))
            return
        assert run.exit_code == 2, (
            f"kind {self.kind!r} does not declare {purge_kind!r}, so edgectl must refuse to purge by it "
            f"with exit 2 (bad input) before sending anything: {run.explain()}")
        assert f"cannot purge by {purge_kind}" in run.stderr, (
            f"the refusal should say the provider cannot purge by {purge_kind}; stderr: {run.stderr}")
        assert window.requests == [], (
            f"an undeclared purge kind ({purge_kind!r}) must be refused before anything is sent, yet the api "
            "received:\n" + _shown(window.requests))

    # -- batching -----------------------------------------------------------------------------------------
    def test_batches_carry_up_to_the_declared_batch_size(self):
        """n = batch_size + 1 targets of each kind make exactly 2 requests (min(batch_size, 300) + 1
        targets and as many requests as that needs, for a kind that takes more than 300 a request)."""
        limits = self.limits()
        for kind in self.batchable():
            size = int(limits["batch_size"][kind])
            count = min(size, BATCH_CAP) + 1
            wanted = self.targets(kind, count)
            expected = math.ceil(count / size)
            window = self.window()
            run = self.purge({kind: wanted})
            assert run.exit_code == 0, f"a purge of {count} {kind} targets failed: {run.explain()}"
            sent = window.purge_requests
            assert len(sent) == expected, (
                f"Limits.batch_size[{kind!r}] = {size}, so {count} {kind} targets should go in {expected} "
                f"purge request(s); the api received {len(sent)}. One batch must be one API request:\n"
                + _shown(sent))
            applied = window.purges
            assert len(applied) == expected, f"purges(api) shows {len(applied)} purge(s), not {expected}: {applied}"
            for got_kind, items in applied:
                assert got_kind == kind, f"a {kind} purge was applied as a {got_kind} purge"
                assert len(items) <= size, (
                    f"a request carried {len(items)} {kind} items, over its declared batch_size of {size}")
            missing = sorted(set(wanted) - set(window.items(kind)))
            extra = sorted(set(window.items(kind)) - set(wanted))
            assert not missing, f"{len(missing)} {kind} target(s) were never purged, e.g. {missing[:3]}"
            assert not extra, f"{kind} items purged that were not asked for, e.g. {extra[:3]}"

    # -- pacing -------------------------------------------------------------------------------------------
    def test_requests_arrive_within_the_declared_buckets(self):
        """Purge requests' arrival times at the api, replayed through each declared token bucket: none
        may come sooner than its bucket allows (EARLY_S of slack). Each bucket is tested with the
        kind that fills it fastest, with enough requests to spend its burst and go on a while at its
        rate: at most PACING_MAX_REQUESTS, and no more than its rate lets through in about
        PACING_OVERFLOW_S past edgectl's own burst (so a slow bucket is checked within its burst
        alone; pacing_settings(api) may give settings that make it faster, to check more)."""
        extra = self.pacing_settings(self.api)
        if extra:
            self.configure(**extra)
        limits = self.limits()
        for name, bucket in limits["buckets"].items():
            kinds = [k for k in self.batchable() if limits["bucket_for"].get(k) == name]
            if not kinds:
                continue  # only `everything` uses it: one request a purge, nothing to pace
            kind = min(kinds, key=lambda k: int(limits["batch_size"][k]))
            size = int(limits["batch_size"][kind])
            per_item = bucket["unit"] == "item"
            rate, burst = float(bucket["rate_per_s"]), float(bucket["burst"])
            cost = size if per_item else 1
            # edgectl keeps its own bucket shallower than the declared one (what may be in flight and a
            # reserve), and what goes past that goes at the declared rate: no more is sent than that
            # allows in PACING_OVERFLOW_S, however deep the burst
            kept = max(1.0, burst - int(limits["max_in_flight"]) * cost - rate * 0.05)
            needed = math.ceil((burst + min(rate * PACING_OVERFLOW_S, 10.0 * cost)) / cost)
            affordable = math.floor((kept + rate * PACING_OVERFLOW_S) / cost)
            requests = max(2, min(PACING_MAX_REQUESTS, needed, affordable))
            wanted = self.targets(kind, requests * size, first=100_000)
            window = self.window()
            run = self.purge({kind: wanted})
            assert run.exit_code == 0, f"the pacing check's purge failed: {run.explain()}"
            sent = [seen for seen in window.purge_requests if seen.fault is None]
            applied = window.purges
            assert len(sent) == len(applied) == requests, (
                f"{requests} {kind} purge request(s) were expected, each applied; the api received {len(sent)} "
                f"and applied {len(applied)}. A refusal here means the api's limit is below the declared "
                f"bucket {name!r}:\n" + _shown(window.requests))
            costs = [len(items) if per_item else 1 for _, items in applied]
            self.replay(name, rate, burst, sorted(seen.at for seen in sent), costs)

    @staticmethod
    def replay(name: str, rate: float, burst: float, arrivals: Sequence[float], costs: Sequence[float]) -> None:
        tokens, last, first = burst, arrivals[0], arrivals[0]
        slack = rate * EARLY_S
        for number, (at, cost) in enumerate(zip(arrivals, costs), 1):
            tokens = min(burst, tokens + (at - last) * rate)
            last = at
            tokens -= min(cost, burst)
            assert tokens >= -slack, (
                f"purge request {number} of {len(arrivals)} arrived at +{at - first:.3f}s, "
                f"{-tokens / rate:.3f}s before bucket {name!r} ({rate:g}/s, burst {burst:g}) had room for it "
                f"(cost {cost:g}). edgectl paces by Limits alone: does each batch make exactly one request, "
                "and does limits() describe the buckets purge() really spends?")

    # -- retries -----------------------------------------------------------------------------------------
    @pytest.mark.parametrize("status", [429, 503])
    def test_a_retry_after_answer_is_waited_out_and_the_purge_succeeds(self, status):
        kind = self.first_kind()
        target = self.target(kind, 1)
        self.arm(kind, "fail_next", status=status, retry_after=RETRY_AFTER_S)
        window = self.window()
        run = self.purge({kind: [target]})
        sent = window.purge_requests
        assert run.exit_code == 0, (
            f"after an HTTP {status} with Retry-After: {RETRY_AFTER_S}, the purge should be sent again and "
            f"succeed: {run.explain()}\nraise RateLimited (429) or RetryableError (5xx) with "
            "retry_after=parse_retry_after(...) and let edgectl retry:\n" + _shown(window.requests))
        assert sent and sent[0].fault == "fail" and sent[0].status == status, (
            f"the injected {status} should have answered the first purge request:\n" + _shown(window.requests))
        assert len(sent) >= 2, "the refused purge request was never sent again:\n" + _shown(window.requests)
        gap = sent[1].at - sent[0].at
        assert gap >= RETRY_AFTER_S - RETRY_SLACK_S, (
            f"the purge was sent again {gap:.3f}s after an HTTP {status} with Retry-After: {RETRY_AFTER_S}: "
            "pass the header's value as retry_after so edgectl waits as long as the api said")
        assert (kind, (target,)) in window.purges, f"the resent purge of {target!r} was not applied: {window.purges}"

    def test_throttling_never_uses_up_a_batchs_attempts(self):
        """More 429s in a row than a batch has attempts: they are waited out, as throttling always is."""
        from edgectl.cdn.execute import MAX_ATTEMPTS

        kind = self.first_kind()
        target = self.target(kind, 1)
        self.arm(kind, "fail_next", status=429, count=MAX_ATTEMPTS, retry_after=0)
        window = self.window()
        run = self.purge({kind: [target]})
        assert run.exit_code == 0, (
            f"{MAX_ATTEMPTS} answers of 429 in a row (a batch's attempts), each with Retry-After: 0, should be "
            "waited out, since throttling never counts as a failed attempt: raise RateLimited for a 429, not "
            f"RetryableError: {run.explain()}\n" + _shown(window.requests))
        assert (kind, (target,)) in window.purges, f"the throttled purge of {target!r} was not applied: {window.purges}"

    def test_refused_credentials_are_not_retried(self):
        """Wrong secrets (or, when the api cannot tell, an injected 403): exit 1, one refused request
        and nothing sent after it, retries included, however many batches were left."""
        self.configure(max_in_flight=1)  # one request on the wire: nothing can be in flight beside the refused one
        kinds = self.batchable()
        limits = self.limits()
        if len(kinds) >= 2:
            wanted = {kinds[0]: [self.target(kinds[0], 2)], kinds[1]: [self.target(kinds[1], 2)]}
        else:
            kind = self.first_kind()
            count = min(int(limits["batch_size"][kind]), BATCH_CAP) + 1 if kind != "everything" else 1
            wanted = {kind: self.targets(kind, count, first=2)}
        wrong = self.wrong()
        if wrong:
            self.use_secrets(wrong)
        else:
            self.arm(next(iter(wanted)), "fail_next", status=403)
        window = self.window()
        run = self.purge(wanted)
        requests = window.requests
        assert run.exit_code == 1, (
            f"a purge with refused credentials must fail with exit 1: {run.explain()}\n" + _shown(requests))
        refused = [i for i, seen in enumerate(requests) if seen.status in REFUSED]
        assert refused, (
            "the api never refused the credentials (401/403): with wrong_secrets = None the api must refuse "
            "each secret + '-wrong'; set wrong_secrets = {} if it cannot tell\n" + _shown(requests))
        after = requests[refused[0] + 1:]
        assert after == [], (
            "more requests reached the api after the credentials were refused: raise AuthError for a 401/403, which "
            "is never retried and stops the batches behind it:\n" + _shown(requests))
        assert len(window.purge_requests) <= 1, (
            "with max_in_flight = 1 and refused credentials, one purge request at most may go out:\n"
            + _shown(requests))
        record = run.json()
        batches = sum(p["batches"] for p in record["providers"])
        assert record["status"] == "failed" and len(record["failed"]) == batches, (
            f"every batch of a purge whose credentials were refused should have failed: {record}")
        assert sum(1 for f in record["failed"] if f["attempts"]) <= 1, (
            f"only the first batch should have been sent; the rest fail unsent: {record['failed']}")

    def test_a_dropped_answer_is_resent_with_the_same_items(self):
        """The connection is reset after the api applied the purge: an unknown outcome, which edgectl
        sends again; the resend carries the same items (and the same body), and the purge succeeds."""
        kind = self.first_kind()
        size = int(self.limits()["batch_size"][kind])
        wanted = self.targets(kind, min(size, 3), first=3) if kind != "everything" else ["*"]
        self.arm(kind, "drop_next")
        window = self.window()
        run = self.purge({kind: wanted})
        sent = window.purge_requests
        assert run.exit_code == 0, (
            f"after an answer lost to a reset connection the purge should be sent again and succeed: "
            f"{run.explain()}\nraise RetryableError for a connection error:\n" + _shown(window.requests))
        assert sent and sent[0].fault == "drop", "the drop should have hit the purge request:\n" + _shown(sent)
        assert len(sent) >= 2, "the purge whose answer was lost was never sent again:\n" + _shown(window.requests)
        assert sent[1].body == sent[0].body and sent[1].target == sent[0].target, (
            "the resend differs from the request whose answer was lost: a batch is sent again as it was "
            f"(Batch.reference stays the same for idempotency keys)\nfirst: {sent[0].target} {sent[0].body[:300]!r}\n"
            f"again: {sent[1].target} {sent[1].body[:300]!r}")
        assert set(window.items(kind)) == set(wanted), (
            f"after the resend, purges(api) should cover exactly {wanted}; it shows {window.purges}")
        assert all(items == window.purges[0][1] for _, items in window.purges), (
            f"every purge applied should carry the batch's items, sent again as they were: {window.purges}")

    # -- secrets ----------------------------------------------------------------------------------------
    def test_secrets_never_reach_output_debug_logs_or_state(self):
        kind = self.first_kind()
        runs = [self.purge({kind: [self.target(kind, 4)]}, "--debug")]
        assert runs[0].exit_code == 0, runs[0].explain()
        purge_id = runs[0].json()["id"]
        runs += [self.edgectl("--debug", "cdn", "providers", "test", NAME, "-o", "json"),
                 self.edgectl("cdn", "providers", "show", NAME, "-o", "json"),
                 self.edgectl("cdn", "show", purge_id, "-o", "json"),
                 self.edgectl("-v", "cdn", "purge", "-p", NAME, _TARGET_FLAGS.get(kind, "--everything"),
                              *([self.target(kind, 5)] if kind != "everything" else ["--yes"]))]
        assert all(r.exit_code == 0 for r in runs), [r.explain() for r in runs if r.exit_code]
        wrong = self.wrong()
        if wrong:
            self.use_secrets(wrong)
            refused = self.purge({kind: [self.target(kind, 6)]}, "--debug")
            assert refused.exit_code == 1, refused.explain()
            runs.append(refused)
        self.assert_secrets_were_sent()
        self.assert_no_secret_in(runs)


# ==== analytics ===========================================================================================

class AnalyticsConformance(ProviderConformance):
    """The analytics capability: a pull stores what the api held, once; throttling waits; refusals stop.

    Hooks besides the common ones: `seed(api, start, end)` (required) and `running_totals`.
    """

    capability = "analytics"
    # True for a kind whose points are running totals read at the moment of the pull ("counter"
    # points, as the http kind's /.edge/stats): the suite pulls once before seeding to set the
    # baseline, `seed` makes the traffic happen now and returns its totals, which the next pull
    # must store as increases.
    running_totals: ClassVar[bool] = False
    pull_timeout: ClassVar[str] = "60s"

    def seed(self, api, start: datetime, end: datetime) -> dict[str, float]:
        """Make the api hold traffic over [start, end) (UTC, whole minutes) and return the totals edgectl
        should store for that window by catalogued metric name (edgectl/analytics/metrics.py)."""
        raise NotImplementedError(f"{type(self).__name__} must define seed(api, start, end)")

    # -- helpers ----------------------------------------------------------------------------------------
    def seeded_window(self) -> tuple[int, int, int]:
        """(start, end, --since in seconds): a few of the kind's steps, settled, well inside the pull's window."""
        cls = self.provider_class()
        step = max(MINUTE_MS, int(cls.step_ms))
        now = int(time.time() * 1000)
        if self.running_totals:
            start = _floor(now, MINUTE_MS)
            return start, start + MINUTE_MS, 3600
        end = _floor(now - int(cls.settle_ms) - step, step)
        start = end - 3 * step
        since = math.ceil((now - start) / 1000) + 180
        return start, end, since

    def pull(self, since_s: int, *front: str) -> Run:
        return self.edgectl(*front, "analytics", "pull", "-p", NAME, "--since", f"{since_s}s", "--timeout",
                            self.pull_timeout, "-o", "json")

    def row(self, run: Run) -> dict[str, Any]:
        rows = run.json()["providers"]
        assert len(rows) == 1 and rows[0]["provider"] == NAME, f"the pull should report one provider, {NAME}: {rows}"
        return rows[0]

    def stored(self, start: int | None = None, end: int | None = None) -> dict[str, float]:
        """What the history holds from the provider's pulls, by metric, read back with `analytics export`."""
        run = self.edgectl("analytics", "export", "-f", "jsonl", "--since", "400d")
        assert run.exit_code == 0, run.explain()
        totals: dict[str, float] = {}
        for line in run.stdout.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row["provider"] != NAME or row["labels"].get("source") != "pull" or row["kind"] == "gauge":
                continue
            at = int(datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp() * 1000)
            if (start is None or at >= start) and (end is None or at < end):
                totals[row["metric"]] = totals.get(row["metric"], 0.0) + float(row["value"])
        return totals

    def seeded(self) -> tuple[dict[str, float], int, int, int]:
        start, end, since = self.seeded_window()
        if self.running_totals:
            baseline = self.pull(since)
            assert baseline.exit_code == 0, f"the baseline pull failed: {baseline.explain()}"
        totals = self.seed(self.api, datetime.fromtimestamp(start / 1000, timezone.utc),
                           datetime.fromtimestamp(end / 1000, timezone.utc))
        from edgectl.analytics.metrics import CATALOGUE

        unknown = sorted(set(totals) - set(CATALOGUE))
        assert not unknown, f"seed() returned metrics edgectl does not catalogue: {unknown}"
        assert totals and any(totals.values()), "seed() must return the totals of some traffic"
        return totals, start, end, since

    def assert_stored(self, totals: Mapping[str, float], start: int, end: int, run: Run) -> None:
        got = self.stored(None, None) if self.running_totals else self.stored(start, end)
        for metric, value in totals.items():
            assert got.get(metric, 0.0) == pytest.approx(value, rel=1e-9, abs=1e-6), (
                f"the history holds {got.get(metric, 0.0):g} {metric} for {_moment(start)}..{_moment(end)}, the api "
                f"served {value:g}. Each Point is one interval's value (a count, not a rate), at the start "
                f"of its interval, in the catalogue's unit; stored by metric: {got}\npull: {self.row(run)}")

    # -- checks ----------------------------------------------------------------------------------------
    def test_a_pull_stores_the_seeded_totals(self):
        totals, start, end, since = self.seeded()
        window = len(self.api.requests)
        run = self.pull(since)
        assert run.exit_code == 0, f"{run.explain()}\n" + _shown(self.api.requests[window:])
        row = self.row(run)
        assert row["status"] == "ok" and row["stored"] > 0, (
            f"a pull of a window holding traffic should store samples; it reported {row}")
        assert row["requests"] == len(self.api.requests[window:]), (
            f"the pull sent {len(self.api.requests[window:])} request(s) but counted {row['requests']}: send "
            "every API request of a pull through self.send(what, call), which counts and retries it")
        self.assert_stored(totals, start, end, run)

    def test_a_second_pull_of_the_same_window_stores_nothing_more(self):
        totals, start, end, since = self.seeded()
        first = self.pull(since)
        assert first.exit_code == 0, first.explain()
        before = self.stored()
        again = self.pull(since)
        assert again.exit_code == 0, again.explain()
        assert self.row(again)["stored"] == 0, (
            f"a second pull of the same window stored {self.row(again)['stored']} more sample(s): a provider "
            "answers the same figures for the same interval, so edgectl keeps the first")
        after = self.stored()
        assert after == before, f"a second pull of the same window changed the history's totals: {before} -> {after}"
        self.assert_stored(totals, start, end, first)

    def test_a_429_with_retry_after_during_a_pull_is_waited_out(self):
        totals, start, end, since = self.seeded()
        self.api.fail_next(429, retry_after=RETRY_AFTER_S)
        window = len(self.api.requests)
        run = self.pull(since)
        requests = self.api.requests[window:]
        assert run.exit_code == 0, (
            f"a pull that met an HTTP 429 with Retry-After: {RETRY_AFTER_S} should wait and go on: {run.explain()}\n"
            "raise RateLimited(message, retry_after) and send every request through self.send():\n" + _shown(requests))
        assert requests and requests[0].fault == "fail", (
            "the injected 429 should have answered the pull's first request:\n" + _shown(requests))
        assert len(requests) >= 2, "the throttled request was never sent again:\n" + _shown(requests)
        gap = requests[1].at - requests[0].at
        assert gap >= RETRY_AFTER_S - RETRY_SLACK_S, (
            f"the request after the 429 came {gap:.3f}s later, sooner than its Retry-After: {RETRY_AFTER_S}")
        assert self.row(run)["retries"] >= 1, f"the pull should count the request it sent again: {self.row(run)}"
        self.assert_stored(totals, start, end, run)

    def test_refused_credentials_fail_the_pull_without_retries(self):
        _, _, since = self.seeded_window()
        wrong = self.wrong()
        if wrong:
            self.use_secrets(wrong)
        else:
            self.api.fail_next(403)
        window = len(self.api.requests)
        run = self.pull(since)
        requests = self.api.requests[window:]
        assert run.exit_code == 1, f"a pull with refused credentials must exit 1: {run.explain()}\n" + _shown(requests)
        row = self.row(run)
        assert row["status"] == "failed" and row["error"], (
            f"a pull whose credentials were refused should report the provider failed, with its error: {row}")
        refused = [i for i, seen in enumerate(requests) if seen.status in REFUSED]
        assert refused, (
            "the api never refused the credentials (401/403): with wrong_secrets = None the api must refuse "
            "each secret + '-wrong'; set wrong_secrets = {} if it cannot tell\n" + _shown(requests))
        assert requests[refused[0] + 1:] == [], (
            "the pull went on after the credentials were refused: raise AuthError for a 401/403, which is "
            "never retried:\n" + _shown(requests))

    def test_secrets_never_reach_output_debug_logs_or_state(self):
        totals, start, end, since = self.seeded()
        runs = [self.pull(since, "--debug"), self.edgectl("--debug", "providers", "test", NAME, "-o", "json"),
                self.edgectl("providers", "show", NAME, "-o", "json")]
        assert all(r.exit_code == 0 for r in runs), [r.explain() for r in runs if r.exit_code]
        wrong = self.wrong()
        if wrong:
            self.use_secrets(wrong)
            refused = self.pull(since, "--debug")
            assert refused.exit_code == 1, refused.explain()
            runs.append(refused)
        self.assert_secrets_were_sent()
        self.assert_no_secret_in(runs)


__all__ = ["AnalyticsConformance", "NAME", "PurgeConformance", "ProviderConformance", "Run", "Window"]
