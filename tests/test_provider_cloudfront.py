"""The cloudfront provider against moto on loopback, and a proxy that adds CloudFront's caps and faults."""

from __future__ import annotations

import time

import pytest

from edgectl.providers.base import (AuthError, Backpressure, Batch, InvalidTarget, ProviderContext, ProviderError,
                                    RetryableError)
from edgectl.providers.registry import provider_class
from tests.fakes.cloudfront_faults import CloudFrontFaults
from tests.fakes.health_servers import closed_port
from tests.fakes.moto_server import DISTRIBUTION_CONFIG, TEST_KEYS




@pytest.fixture(scope="module")
def admin(moto):
    """A boto3 client of our own, to set up and inspect what the provider did."""
    import boto3

    return boto3.client("cloudfront", endpoint_url=moto.url, **TEST_KEYS)


@pytest.fixture(scope="module")
def _faults(moto):
    proxy = CloudFrontFaults(moto.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def faults(_faults):
    _faults.reset()
    _faults.file_cap, _faults.wildcard_cap = 3000, 15
    yield _faults
    _faults.reset()


@pytest.fixture
def distribution(admin) -> str:
    reference = f"edgectl-test-{time.monotonic_ns()}"
    created = admin.create_distribution(DistributionConfig={"CallerReference": reference, **DISTRIBUTION_CONFIG})
    return created["Distribution"]["Id"]


def make(distribution_id: str, endpoint_url: str, **settings):
    cls = provider_class("cloudfront")
    merged = {"kind": "cloudfront", "distribution_id": distribution_id, "endpoint_url": endpoint_url,
              "poll_interval": 0.2, **settings}
    merged = {key: value for key, value in merged.items() if value is not None}
    assert cls.check_settings(merged) == []
    return cls("cdn", merged, ProviderContext(resolve_secret=lambda key, ref: ref, timeout=5))


@pytest.fixture
def direct(aws_env, moto, distribution):
    """The provider talking to moto itself."""
    provider = make(distribution, moto.url, hosts=["www.example.com"])
    yield provider
    provider.close()


@pytest.fixture
def proxied(aws_env, faults, distribution):
    """The provider talking to moto through the fault proxy."""
    provider = make(distribution, faults.url, hosts=["www.example.com"])
    yield provider
    provider.close()


def batch(kind: str, *items: str, reference: str = "journal-1/0001") -> Batch:
    return Batch(kind=kind, items=tuple(items), reference=reference)


def paths_of(admin, distribution: str, invalidation_id: str) -> list[str]:
    found = admin.get_invalidation(DistributionId=distribution, Id=invalidation_id)["Invalidation"]
    return found["InvalidationBatch"]["Paths"]["Items"]


def invalidation_count(admin, distribution: str) -> int:
    return admin.list_invalidations(DistributionId=distribution)["InvalidationList"]["Quantity"]


# -- purges ---------------------------------------------------------------------------------------
def test_url_prefix_and_everything_purges_create_invalidations_of_those_paths(direct, admin, distribution):
    urls = [direct.normalise("url", u) for u in ("https://www.example.com/index.html",
                                                  "https://www.example.com/a b/ü.png?v=2")]
    accepted = direct.purge(batch("url", *urls, reference="j/1"))
    assert paths_of(admin, distribution, accepted.provider_ref) == ["/index.html", "/a%20b/%C3%BC.png?v=2"]

    prefixes = [direct.normalise("prefix", p) for p in ("https://www.example.com/docs/", "/img/logo")]
    accepted = direct.purge(batch("prefix", *prefixes, reference="j/2"))
    assert paths_of(admin, distribution, accepted.provider_ref) == ["/docs/*", "/img/logo*"]

    accepted = direct.purge(batch("everything", direct.normalise("everything", ""), reference="j/3"))
    assert paths_of(admin, distribution, accepted.provider_ref) == ["/*"]
    assert invalidation_count(admin, distribution) == 3


def test_moto_completes_at_once_and_any_case_of_completed_counts(direct):
    # moto answers Status "COMPLETED" (real CloudFront: "Completed") the moment it is created
    accepted = direct.purge(batch("url", "/index.html"))
    assert accepted.completed is True
    assert direct.completion(accepted.provider_ref).state == "completed"


def test_a_resend_with_the_same_reference_returns_the_first_invalidation(proxied, faults, admin, distribution):
    first = proxied.purge(batch("url", "/a", "/b", reference="journal-7/0003"))
    again = proxied.purge(batch("url", "/a", "/b", reference="journal-7/0003"))
    assert again.provider_ref == first.provider_ref
    assert invalidation_count(admin, distribution) == 1
    # the same reference with other paths is a bug upstream, reported with AWS's own words
    with pytest.raises(ProviderError, match="InvalidationBatchAlreadyExists: Invalidation batch specified already"):
        proxied.purge(batch("url", "/c", reference="journal-7/0003"))


def test_completion_reports_in_progress_until_cloudfront_says_completed(proxied, faults):
    faults.hold = True
    accepted = proxied.purge(batch("url", "/slow.html"))
    assert accepted.completed is False
    assert proxied.completion(accepted.provider_ref).state == "in_progress"
    faults.release()
    assert proxied.completion(accepted.provider_ref).state == "completed"


def test_an_invalidation_asks_to_be_polled_as_the_sdk_waiter_does(aws_env, faults, distribution):
    faults.hold = True
    provider = make(distribution, faults.url, poll_interval=None)
    try:
        accepted = provider.purge(batch("url", "/slow.html"))
        completion = provider.completion(accepted.provider_ref)
    finally:
        provider.close()

    # boto3's InvalidationCompleted waiter "polls get_invalidation() every 20 seconds" (Delay: 20)
    assert (accepted.retry_after, completion.state, completion.retry_after) == (20.0, "in_progress", 20.0)


def test_poll_interval_is_the_wait_asked_for(proxied, faults):
    faults.hold = True
    accepted = proxied.purge(batch("url", "/slow.html"))

    assert accepted.retry_after == proxied.completion(accepted.provider_ref).retry_after == 0.2


def test_an_unknown_invalidation_has_failed(direct):
    assert direct.completion("INOSUCHTHING").state == "failed"


def test_an_unknown_distribution_is_a_provider_error_with_aws_message(aws_env, moto):
    provider = make("EDOESNOTEXIST1", moto.url)
    with pytest.raises(ProviderError) as caught:
        provider.purge(batch("url", "/index.html"))
    assert type(caught.value) is ProviderError
    assert "NoSuchDistribution: The specified distribution does not exist." in caught.value.message


def test_no_credentials_is_an_auth_error_naming_the_chain(monkeypatch, moto, distribution):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # else the chain waits on 169.254.169.254
    provider = make(distribution, moto.url)
    started = time.monotonic()
    with pytest.raises(AuthError, match="no usable AWS credentials.*AWS_ACCESS_KEY_ID.*instance role"):
        provider.purge(batch("url", "/index.html"))
    assert time.monotonic() - started < 3


def test_an_unknown_profile_is_an_auth_error(aws_env, moto, distribution):
    provider = make(distribution, moto.url, profile="nosuchprofile")
    with pytest.raises(AuthError, match="nosuchprofile"):
        provider.purge(batch("url", "/index.html"))


# -- faults ---------------------------------------------------------------------------------------
def test_throttling_is_retryable_after_one_attempt(proxied, faults):
    faults.inject("throttling")
    with pytest.raises(RetryableError, match="Throttling: Rate exceeded") as caught:
        proxied.purge(batch("url", "/index.html"))
    assert not isinstance(caught.value, Backpressure)
    assert caught.value.retry_after is None
    assert len(faults.calls("POST", "/invalidation")) == 1  # the SDK did not retry on its own
    assert proxied.purge(batch("url", "/index.html")).provider_ref  # the resend goes through


def test_retry_after_is_honoured_when_sent(proxied, faults):
    faults.inject("throttling", retry_after="3")
    with pytest.raises(RetryableError) as caught:
        proxied.purge(batch("url", "/index.html"))
    assert caught.value.retry_after == 3.0


def test_service_unavailable_is_retryable(proxied, faults):
    faults.inject("unavailable")
    with pytest.raises(RetryableError, match="ServiceUnavailable") as caught:
        proxied.purge(batch("url", "/index.html"))
    assert not isinstance(caught.value, Backpressure)
    assert len(faults.calls("POST", "/invalidation")) == 1


def test_a_reset_connection_is_retryable(proxied, faults):
    faults.inject("reset")
    with pytest.raises(RetryableError):
        proxied.purge(batch("url", "/index.html"))
    assert len(faults.calls("POST", "/invalidation")) == 1


def test_a_closed_port_is_retryable(aws_env, distribution):
    provider = make(distribution, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(RetryableError, match="EndpointConnectionError"):
        provider.purge(batch("url", "/index.html"))


def test_access_denied_is_an_auth_error(proxied, faults):
    faults.inject("denied")
    with pytest.raises(AuthError, match="AccessDenied: User: .* not authorized"):
        proxied.purge(batch("url", "/index.html"))


def test_too_many_invalidations_in_progress_is_backpressure(proxied, faults):
    faults.inject("too_many")
    with pytest.raises(Backpressure, match="TooManyInvalidationsInProgress") as caught:
        proxied.purge(batch("url", "/index.html"))
    assert caught.value.retry_after == pytest.approx(0.2)  # poll_interval


def test_the_wildcard_cap_holds_new_purges_back_until_earlier_ones_complete(proxied, faults, distribution):
    faults.hold = True
    faults.wildcard_cap = 3
    proxied.purge(batch("prefix", "/a/*", "/b/*", reference="j/1"))
    assert faults.in_progress(distribution) == (0, 2)
    # file paths have a cap of their own
    proxied.purge(batch("url", "/a/index.html", reference="j/2"))
    with pytest.raises(Backpressure):
        proxied.purge(batch("prefix", "/c/*", "/d/*", reference="j/3"))
    faults.release()
    assert proxied.purge(batch("prefix", "/c/*", "/d/*", reference="j/3")).provider_ref


def test_a_batch_over_the_caps_is_refused_before_sending(proxied, faults):
    with pytest.raises(ProviderError, match="exceeds") as caught:
        proxied.purge(batch("prefix", *(f"/p{i}/*" for i in range(16))))
    assert not isinstance(caught.value, RetryableError)  # waiting would never help
    assert faults.calls() == []


# -- targets --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, value, path", [
    ("url", "https://www.example.com/a b/naïve.html", "/a%20b/na%C3%AFve.html"),
    ("url", "https://WWW.Example.com./CaseKept.HTML", "/CaseKept.HTML"),
    ("url", "https://www.example.com/already%20done/x%2Fy", "/already%20done/x%2Fy"),
    ("url", "https://www.example.com/100%", "/100%25"),
    ("url", "https://www.example.com/~user/[1].html#top", "/%7Euser/%5B1%5D.html"),
    ("url", "https://www.example.com/search?q=a b&lang=en", "/search?q=a%20b&lang=en"),
    ("url", "https://www.example.com", "/"),
    ("url", "/bare/path.css", "/bare/path.css"),
    ("url", "https://www.example.com/日本/", "/%E6%97%A5%E6%9C%AC/"),
    ("prefix", "https://www.example.com/docs/", "/docs/*"),
    ("prefix", "/docs/v2", "/docs/v2*"),
    ("prefix", "/docs/*", "/docs/*"),
    ("everything", "", "/*"),
])
def test_normalise_writes_paths_as_cloudfront_wants_them(direct, kind, value, path):
    assert direct.normalise(kind, value) == path


@pytest.mark.parametrize("kind, value, message", [
    ("url", "https://other.example.net/index.html", "other.example.net is not a host of provider 'cdn'"),
    ("url", "ftp://www.example.com/x", "neither an http"),
    ("url", "index.html", "neither an http"),
    ("url", "https://www.example.com/a*", "purge a prefix instead"),
    ("prefix", "/a*/b", "only as the last character"),
    ("tag", "product-42", "cannot purge by tag"),
    ("url", "/" + "x" * 4000, "4000"),
])
def test_normalise_refuses_what_cloudfront_cannot_take(direct, kind, value, message):
    with pytest.raises(InvalidTarget, match=message):
        direct.normalise(kind, value)


def test_without_hosts_any_host_is_accepted(aws_env, moto, distribution):
    provider = make(distribution, moto.url)
    assert provider.normalise("url", "https://anything.example.org/x") == "/x"


# -- test, settings, limits -----------------------------------------------------------------------
def test_test_reads_the_distribution_and_running_invalidations(proxied, faults, distribution):
    line = proxied.test()
    assert line.startswith(f"distribution {distribution} (")
    assert line.endswith("reachable; 0 invalidations in progress")
    faults.hold = True
    proxied.purge(batch("url", "/x"))
    assert proxied.test().endswith("reachable; 1 invalidation in progress")
    assert faults.calls("POST") == [faults.calls("POST")[0]]  # test() itself changed nothing


def test_test_of_an_unknown_distribution_fails(aws_env, moto):
    with pytest.raises(ProviderError, match="NoSuchDistribution"):
        make("EDOESNOTEXIST1", moto.url).test()


def test_check_settings():
    cls = provider_class("cloudfront")
    assert cls.check_settings({"kind": "cloudfront", "distribution_id": "E2QWRUHAPOMQZL"}) == []
    problems = cls.check_settings({"kind": "cloudfront", "distribution_id": "e2qwruhapomqzl", "poll_interval": 0,
                                   "endpoint_url": "localhost:5000", "aws_secret_access_key": "env:X"})
    assert [p.split(":")[0] for p in problems] == ["aws_secret_access_key", "endpoint_url", "distribution_id",
                                                   "poll_interval"]
    assert "credential chain" in problems[0]
    assert cls.check_settings({"kind": "cloudfront"}) == ["distribution_id: required for kind 'cloudfront'"]


def test_limits_and_description(aws_env, moto, distribution):
    provider = make(distribution, moto.url, max_in_flight=3)
    limits = provider.limits()
    assert dict(limits.batch_size) == {"url": 3000, "prefix": 15, "everything": 1}
    assert {limits.bucket(kind).rate for kind in ("url", "prefix", "everything")} == {2.0}
    assert limits.max_in_flight == 3
    assert make(distribution, moto.url).limits().max_in_flight == 2
    described = provider.describe()
    assert described["capabilities"] == ["purge", "analytics"]
    assert described["purge_kinds"] == ["url", "prefix", "everything"]
    assert described["async_completion"] is True
