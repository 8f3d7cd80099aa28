"""The conformance suite can fail: a plugin kind that keeps the contract passes it, and each one that breaks a rule
fails at the check for that rule (and only there), run by pytest in a subprocess as a plugin's tests would be."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.fakes.plugins import install

# A provider kind from outside edgectl, and variants of it that each break one rule of the contract.
PLUGIN = '''
"""The `lab` provider kind, and variants of it that each get one thing wrong."""
import os
import threading

from edgectl.providers.analytics import AnalyticsProvider, Point
from edgectl.providers.base import (AuthError, Bucket, Limits, ProviderError, PurgeAccepted, PurgeProvider,
                                    RateLimited, RetryableError, parse_retry_after)

EDGECTL_PLUGIN_API = "1.0"


class LabProvider(PurgeProvider, AnalyticsProvider):
    """One POST /purge per batch; GET /traffic for a window's minutes."""

    kind = "lab"
    capabilities = frozenset({"purge", "analytics"})
    purge_kinds = frozenset({"url", "tag", "everything"})
    required_settings = ("endpoint", "token")
    optional_settings = ("rate",)
    secret_settings = ("token",)
    settle_ms = 120_000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()
        self._http = None

    def limits(self):
        rate = float(self.settings.get("rate", 100))
        return Limits(batch_size={kind: (1 if kind == "everything" else 10) for kind in self.purge_kinds},
                      buckets={"calls": Bucket(rate=rate, burst=rate)},
                      bucket_for={kind: "calls" for kind in self.purge_kinds}, max_in_flight=self.max_in_flight(4))

    def token(self):
        return self.secret("token")

    def client(self):
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(base_url=self.settings["endpoint"], timeout=self.context.timeout,
                                          headers={"Authorization": f"Bearer {self.token()}"}, trust_env=False)
            return self._http

    def retry_after(self, response):
        return parse_retry_after(response.headers.get("Retry-After"))

    def call(self, method, path, **options):
        import httpx

        try:
            response = self.client().request(method, path, **options)
        except httpx.HTTPError as exc:
            raise RetryableError(f"lab: {exc.__class__.__name__}") from None
        if response.status_code == 429:
            raise RateLimited("lab: HTTP 429", self.retry_after(response))
        if response.status_code >= 500:
            raise RetryableError(f"lab: HTTP {response.status_code}", self.retry_after(response))
        if response.status_code in (401, 403):
            raise AuthError(f"lab: the token was refused (HTTP {response.status_code})")
        if response.status_code >= 400:
            raise ProviderError(f"lab: HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    def prepare(self):
        self.client()

    def purge(self, batch):
        doc = self.call("POST", "/purge", json={"kind": batch.kind, "items": list(batch.items)})
        return PurgeAccepted(str(doc["id"]), completed=True, detail=f"{len(batch.items)} purged")

    def test(self):
        self.call("GET", "/check")
        return "token accepted"

    def fetch_traffic(self, window):
        return self.call("GET", "/traffic", params={"start": window.start_ms, "end": window.end_ms})

    def pull(self, window):
        doc = self.send("traffic", lambda: self.fetch_traffic(window))
        for minute in doc["minutes"]:
            for key, metric in (("requests", "requests"), ("hits", "cache.hits"), ("bytes", "bytes")):
                yield Point(metric, minute["at"], float(minute[key]))

    def close(self):
        if self._http is not None:
            self._http.close()


class ChattyLab(LabProvider):
    """One request per item, not per batch."""

    kind = "lab_chatty"

    def purge(self, batch):
        for item in batch.items:
            self.call("POST", "/purge", json={"kind": batch.kind, "items": [item]})
        return PurgeAccepted(None, completed=True)


class DeafLab(LabProvider):
    """Retry-After is not read."""

    kind = "lab_deaf"

    def retry_after(self, response):
        return None


class ImpatientLab(LabProvider):
    """A 429 is raised as any other retryable error, so throttling spends the batch's attempts."""

    kind = "lab_impatient"

    def call(self, method, path, **options):
        try:
            return super().call(method, path, **options)
        except RateLimited as exc:
            raise RetryableError(exc.message, exc.retry_after) from None


class StubbornLab(LabProvider):
    """A refused token is tried once more."""

    kind = "lab_stubborn"

    def purge(self, batch):
        try:
            return super().purge(batch)
        except AuthError:
            return super().purge(batch)


class LeakyLab(LabProvider):
    """The token is read from the environment behind edgectl's back, and put in the purge's detail."""

    kind = "lab_leaky"

    def token(self):
        return os.environ[self.settings["token"][len("env:"):]]

    def purge(self, batch):
        accepted = super().purge(batch)
        return PurgeAccepted(accepted.provider_ref, completed=True, detail=f"purged as {self.token()}")


class LiarLab(LabProvider):
    """Declares prefix purges it cannot do."""

    kind = "lab_liar"
    purge_kinds = frozenset({"url", "prefix", "tag", "everything"})

    def purge(self, batch):
        if batch.kind == "prefix":
            raise ProviderError("lab: prefixes are not supported")
        return super().purge(batch)


class UnsentLab(LabProvider):
    """Pulls without the domain's sender: its requests are neither counted nor retried."""

    kind = "lab_unsent"

    def pull(self, window):
        doc = self.fetch_traffic(window)
        for minute in doc["minutes"]:
            for key, metric in (("requests", "requests"), ("hits", "cache.hits"), ("bytes", "bytes")):
                yield Point(metric, minute["at"], float(minute[key]))
'''

# (kind, its class in the plugin, the test class that runs the suite for it, the suite it runs)
VARIANTS = [
    ("lab", "LabProvider", "TestLabPurge", "LabPurge"),
    ("lab", "LabProvider", "TestLabAnalytics", "LabAnalytics"),
    ("lab_chatty", "ChattyLab", "TestChattyPurge", "LabPurge"),
    ("lab_deaf", "DeafLab", "TestDeafPurge", "LabPurge"),
    ("lab_stubborn", "StubbornLab", "TestStubbornPurge", "LabPurge"),
    ("lab_impatient", "ImpatientLab", "TestImpatientPurge", "LabPurge"),
    ("lab_leaky", "LeakyLab", "TestLeakyPurge", "LabPurge"),
    ("lab_liar", "LiarLab", "TestLiarPurge", "LabPurge"),
    ("lab_unsent", "UnsentLab", "TestUnsentAnalytics", "LabAnalytics"),
]
ENTRY_POINTS = "[edgectl.providers]\n" + "".join(
    f"{kind} = edgectl_lab:{cls}\n" for kind, cls in dict.fromkeys((kind, cls) for kind, cls, _, _ in VARIANTS))

# The plugin's own test module: its fake API and the suite subclassed for each variant.
CONFORMANCE_TESTS = '''
from datetime import timedelta

import pytest

from edgectl.testing import Answer, FakeAPI
from edgectl.testing.conformance import AnalyticsConformance, PurgeConformance

TOKEN = "lab-Secr3t-token-0042"


class FakeLab(FakeAPI):
    """The lab API: a bearer token, at most 10 items a purge, a minute's traffic by its start."""

    def __init__(self):
        super().__init__()
        self.applied = []
        self.traffic = {}

    def handle(self, seen):
        if seen.headers.get("authorization") != f"Bearer {TOKEN}":
            return Answer(401, {"error": "bad token"})
        if seen.method == "GET" and seen.path == "/check":
            return Answer(200, {"ok": True})
        if seen.method == "POST" and seen.path == "/purge":
            body = seen.json()
            if not 1 <= len(body["items"]) <= 10:
                return Answer(400, {"error": "1 to 10 items"})
            self.applied.append((body["kind"], tuple(body["items"])))
            return Answer(200, {"id": len(self.applied)})
        if seen.method == "GET" and seen.path == "/traffic":
            start, end = int(seen.query["start"][0]), int(seen.query["end"][0])
            return Answer(200, {"minutes": [{"at": at, **figures} for at, figures in sorted(self.traffic.items())
                                            if start <= at < end]})
        return Answer(404, {"error": "no such path"})


class Lab:
    kind = "lab"
    secrets = {"LAB_TOKEN": TOKEN}

    @pytest.fixture
    def api(self):
        with FakeLab() as fake:
            yield fake

    def settings(self, api):
        return {"kind": self.kind, "endpoint": api.url, "token": "env:LAB_TOKEN", "hosts": ["www.example.com"]}


class LabPurge(Lab, PurgeConformance):
    def purges(self, api):
        return list(api.applied)

    def pacing_settings(self, api):
        return {"rate": 20}


class LabAnalytics(Lab, AnalyticsConformance):
    def seed(self, api, start, end):
        totals = {"requests": 0, "cache.hits": 0, "bytes": 0}
        minute, n = start, 0
        while minute < end:
            n += 1
            figures = {"requests": 100 * n, "hits": 60 * n, "bytes": 5000 * n}
            api.traffic[int(minute.timestamp() * 1000)] = figures
            totals["requests"] += figures["requests"]
            totals["cache.hits"] += figures["hits"]
            totals["bytes"] += figures["bytes"]
            minute += timedelta(minutes=1)
        return totals
'''


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, str]]:
    """class name -> {test name: "passed" | "failed: <message>" | ...}, from one pytest run of the plugin's tests."""
    root = tmp_path_factory.mktemp("lab")
    site = root / "site"
    install(site, "edgectl-lab", "1.0", ENTRY_POINTS, PLUGIN)
    tests = root / "tests"
    tests.mkdir()
    (tests / "pytest.ini").write_text("[pytest]\n")
    classes = "".join(f"\n\nclass {test}({suite}):\n    kind = {kind!r}\n" for kind, _, test, suite in VARIANTS)
    (tests / "test_lab_conformance.py").write_text(textwrap.dedent(CONFORMANCE_TESTS) + classes)
    report = root / "report.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGECTL_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                          "--rootdir", str(tests), str(tests)], cwd=tests, env=env, capture_output=True, text=True,
                         timeout=600)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    found: dict[str, dict[str, str]] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = f"{child.tag}: {child.get('message', '')}"
        found.setdefault(case.get("classname").rsplit(".", 1)[-1], {})[case.get("name")] = outcome
    return found


PURGE_TESTS = {
    "test_the_kind_keeps_its_contract", "test_describe_is_json_and_says_what_the_class_declares",
    "test_providers_test_passes", "test_describe_states_the_declared_purge_kinds_and_limits",
    *(f"test_each_purge_kind_is_done_if_declared_and_refused_before_sending_if_not[{kind}]"
      for kind in ("url", "prefix", "tag", "host", "everything")),
    "test_batches_carry_up_to_the_declared_batch_size", "test_requests_arrive_within_the_declared_buckets",
    "test_a_retry_after_answer_is_waited_out_and_the_purge_succeeds[429]",
    "test_a_retry_after_answer_is_waited_out_and_the_purge_succeeds[503]",
    "test_throttling_never_uses_up_a_batchs_attempts",
    "test_refused_credentials_are_not_retried", "test_a_dropped_answer_is_resent_with_the_same_items",
    "test_secrets_never_reach_output_debug_logs_or_state",
}
ANALYTICS_TESTS = {
    "test_the_kind_keeps_its_contract", "test_describe_is_json_and_says_what_the_class_declares",
    "test_providers_test_passes", "test_a_pull_stores_the_seeded_totals",
    "test_a_second_pull_of_the_same_window_stores_nothing_more",
    "test_a_429_with_retry_after_during_a_pull_is_waited_out", "test_refused_credentials_fail_the_pull_without_retries",
    "test_secrets_never_reach_output_debug_logs_or_state",
}


def failures(outcomes, cls: str, every: set[str]) -> dict[str, str]:
    """The failed tests of one class and why; every one of `every` ran, and none was skipped or errored."""
    ran = outcomes.get(cls, {})
    assert set(ran) == every, f"{cls}: ran {sorted(ran)}"
    odd = {name: outcome for name, outcome in ran.items() if outcome.startswith(("error", "skipped"))}
    assert not odd, odd
    return {name: outcome for name, outcome in ran.items() if outcome != "passed"}


def test_a_kind_that_keeps_the_contract_passes_every_check(outcomes):
    assert failures(outcomes, "TestLabPurge", PURGE_TESTS) == {}
    assert failures(outcomes, "TestLabAnalytics", ANALYTICS_TESTS) == {}


def test_one_request_per_item_fails_batching_pacing_and_resending(outcomes):
    failed = failures(outcomes, "TestChattyPurge", PURGE_TESTS)
    assert set(failed) == {"test_batches_carry_up_to_the_declared_batch_size",
                           "test_requests_arrive_within_the_declared_buckets",
                           "test_a_dropped_answer_is_resent_with_the_same_items"}, failed
    assert "should go in 2 purge request(s); the api received 11" in failed[
        "test_batches_carry_up_to_the_declared_batch_size"]


def test_ignoring_retry_after_fails_the_retry_checks(outcomes):
    failed = failures(outcomes, "TestDeafPurge", PURGE_TESTS)
    assert set(failed) == {"test_a_retry_after_answer_is_waited_out_and_the_purge_succeeds[429]",
                           "test_a_retry_after_answer_is_waited_out_and_the_purge_succeeds[503]"}, failed
    assert all("with Retry-After: 1: pass the header's value as retry_after" in m for m in failed.values()), failed


def test_throttling_spent_as_attempts_fails_the_throttling_check(outcomes):
    failed = failures(outcomes, "TestImpatientPurge", PURGE_TESTS)
    assert set(failed) == {"test_throttling_never_uses_up_a_batchs_attempts"}, failed
    assert "raise RateLimited for a 429, not RetryableError" in failed["test_throttling_never_uses_up_a_batchs_attempts"]


def test_retrying_a_refused_token_fails_the_refusal_check(outcomes):
    failed = failures(outcomes, "TestStubbornPurge", PURGE_TESTS)
    assert set(failed) == {"test_refused_credentials_are_not_retried"}, failed
    assert "more requests reached the api after the credentials were refused" in failed[
        "test_refused_credentials_are_not_retried"]


def test_a_secret_kept_from_redaction_fails_the_secrets_check(outcomes):
    failed = failures(outcomes, "TestLeakyPurge", PURGE_TESTS)
    assert set(failed) == {"test_secrets_never_reach_output_debug_logs_or_state"}, failed
    assert "printed a secret on stdout" in failed["test_secrets_never_reach_output_debug_logs_or_state"]


def test_a_declared_kind_that_does_not_purge_fails_its_declaration_check(outcomes):
    failed = failures(outcomes, "TestLiarPurge", PURGE_TESTS)
    assert set(failed) == {"test_each_purge_kind_is_done_if_declared_and_refused_before_sending_if_not[prefix]",
                           "test_batches_carry_up_to_the_declared_batch_size"}, failed
    assert "declares 'prefix' in purge_kinds, yet a purge" in failed[
        "test_each_purge_kind_is_done_if_declared_and_refused_before_sending_if_not[prefix]"]


def test_a_pull_that_bypasses_the_sender_fails_counting_and_throttling(outcomes):
    failed = failures(outcomes, "TestUnsentAnalytics", ANALYTICS_TESTS)
    assert set(failed) == {"test_a_pull_stores_the_seeded_totals",
                           "test_a_429_with_retry_after_during_a_pull_is_waited_out"}, failed
    assert "send every API request of a pull through self.send" in failed["test_a_pull_stores_the_seeded_totals"]


def test_the_pacing_replay_refuses_a_request_sooner_than_its_bucket_allows():
    from edgectl.testing.conformance import PurgeConformance

    # 10 a second, 5 saved up: five at once, then one each 0.1 s, keeps within it
    PurgeConformance.replay("calls", 10, 5, [0.0] * 5 + [0.1 * i for i in range(1, 6)], [1] * 10)
    # three more at once than the bucket holds is 0.3 s early, past the 0.25 s of slack
    with pytest.raises(AssertionError, match=r"request 8 of 8 arrived at \+0.000s, 0.300s before bucket 'calls'"):
        PurgeConformance.replay("calls", 10, 5, [0.0] * 8, [1] * 8)
    # a bucket counted in items: two requests of 30 URLs at once, where 30 fit
    with pytest.raises(AssertionError, match="request 2 of 2"):
        PurgeConformance.replay("files", 100, 30, [0.0, 0.0], [30, 30])
