"""ChainCache on its own: any sender's URL rules and validation, failure memory, known tiers."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from tests import pki
from verification.chains import ChainCache, SigningKey
from verification.errors import CertFetchFailed, CertUrlInvalid, ChainInvalid


def sns_style_url(url: str) -> str:
    """Another sender's rule, to show the cache has none of its own: sns.* hosts, .pem paths."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if (
        parts.scheme.lower() != "https"
        or not host.startswith("sns.")
        or parts.port not in (None, 443)
    ):
        raise CertUrlInvalid("not an SNS certificate URL")
    if not parts.path.endswith(".pem"):
        raise CertUrlInvalid("not a .pem path")
    return f"https://{host}{parts.path}"


def validate(pem: bytes, now) -> SigningKey:
    """Accepts b"good" for a day around the fixed clock; anything else is a bad chain."""
    if pem != b"good":
        raise ChainInvalid("certificate chain does not validate")
    return SigningKey(pem, pki.NOW - timedelta(days=1), pki.NOW + timedelta(days=1))


class Origin:
    """A fetcher whose URLs answer b"good", b"bad" or fail, counting calls."""

    def __init__(self, answers: dict[str, bytes] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if url not in self.answers:
            raise CertFetchFailed(f"nothing at {url}")
        return self.answers[url]


def sns(n: int) -> str:
    return f"https://sns.eu-west-1.amazonaws.com/cert-{n}.pem"


def cache_with(origin: Origin, **options) -> ChainCache:
    return ChainCache(origin, sns_style_url, validate, **options)


def test_spellings_under_the_owners_rules_share_one_entry():
    origin = Origin({sns(1): b"good"})
    cache = cache_with(origin)
    host = "sns.eu-west-1.amazonaws.com"
    for spelled in (
        sns(1),
        sns(1).replace(host, host.upper()),
        sns(1).replace(host, host + ":443"),
    ):
        assert cache.key(spelled, pki.NOW).key == b"good"
    assert origin.calls == [sns(1)]


def test_a_url_the_rules_refuse_is_never_fetched_nor_remembered():
    origin = Origin()
    cache = cache_with(origin)
    for _ in range(3):
        with pytest.raises(CertUrlInvalid):
            cache.key("https://s3.amazonaws.com/echo.api/x.pem", pki.NOW)
    assert origin.calls == []


def test_a_validation_failure_is_remembered_with_its_reason():
    origin = Origin({sns(1): b"bad"})
    cache = cache_with(origin)
    reasons = []
    for _ in range(3):
        with pytest.raises(ChainInvalid) as refused:
            cache.key(sns(1), pki.NOW)
        reasons.append(refused.value.reason)
    assert reasons == ["chain"] * 3
    assert origin.calls == [sns(1)]


def test_remembered_failures_are_bounded_oldest_forgotten_first():
    origin = Origin()
    cache = cache_with(origin, failure_cache_size=3)
    for url in [sns(1), sns(2), sns(3), sns(4), sns(1)]:
        with pytest.raises(CertFetchFailed):
            cache.key(url, pki.NOW)
    assert origin.calls == [sns(1), sns(2), sns(3), sns(4), sns(1)]


def test_a_clock_that_goes_back_ends_a_remembered_failure():
    # Otherwise a clock stepped back an hour would keep a failure for an hour.
    origin = Origin()
    cache = cache_with(origin)
    with pytest.raises(CertFetchFailed):
        cache.key(sns(1), pki.NOW)
    with pytest.raises(CertFetchFailed):
        cache.key(sns(1), pki.NOW - timedelta(hours=1))
    assert origin.calls == [sns(1), sns(1)]


def test_mark_known_skips_urls_these_rules_refuse_and_answers_the_normalised_ones():
    cache = cache_with(Origin())
    marked = cache.mark_known([sns(1).replace("sns.", "SNS."), "https://s3.amazonaws.com/x.pem"])
    assert marked == [sns(1)]
    assert cache.is_known(sns(1)) and not cache.is_known("https://s3.amazonaws.com/x.pem")


def test_declaring_a_url_known_ends_its_remembered_failure():
    origin = Origin()
    cache = cache_with(origin)
    with pytest.raises(CertFetchFailed):
        cache.key(sns(1), pki.NOW)
    origin.answers[sns(1)] = b"good"
    cache.mark_known([sns(1)])
    assert cache.key(sns(1), pki.NOW).key == b"good"


def flood(cache: ChainCache, first: int, count: int) -> None:
    for n in range(first, first + count):
        cache.key(sns(n), pki.NOW)


def test_urls_known_by_signature_are_bounded_and_the_oldest_returns_to_the_common_tier():
    origin = Origin({sns(n): b"good" for n in range(200)})
    cache = cache_with(origin, size=4, known_size=2)
    for n in (1, 2, 3):
        cache.key(sns(n), pki.NOW)
        cache.signature_verified(sns(n))
    assert not cache.is_known(sns(1)) and cache.is_known(sns(2)) and cache.is_known(sns(3))
    cache.key(sns(1), pki.NOW)  # demoted, not dropped: still cached
    assert origin.calls.count(sns(1)) == 1
    flood(cache, 100, 50)  # ... but no longer protected
    cache.key(sns(1), pki.NOW)
    cache.key(sns(2), pki.NOW)
    assert origin.calls.count(sns(1)) == 2 and origin.calls.count(sns(2)) == 1


def test_declared_urls_do_not_count_against_the_bound_of_urls_known_by_signature():
    origin = Origin({sns(n): b"good" for n in range(200)})
    cache = cache_with(origin, size=4, known_size=1)
    cache.mark_known([sns(1)])
    cache.key(sns(1), pki.NOW)
    for n in (2, 3, 4):
        cache.key(sns(n), pki.NOW)
        cache.signature_verified(sns(n))
    flood(cache, 100, 50)
    cache.key(sns(1), pki.NOW)
    assert cache.is_known(sns(1))
    assert origin.calls.count(sns(1)) == 1
