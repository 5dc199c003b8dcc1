"""SignatureVerifier: Amazon's own signed request, and every way a chain or signature is wrong."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from werkzeug.datastructures import Headers

from tests import pki
from verification import SignatureVerifier, VerificationFailed
from verification.chains import FAILURE_TTL, KNOWN_FAILURE_TTL, MAX_CONCURRENT_FETCHES
from verification.devca import local_chains_fetcher
from verification.errors import CertFetchFailed
from verification.signature import certifi_roots

FIXTURE = Path(__file__).parent / "fixtures" / "amazon-signed"
BODY = json.dumps(
    {
        "version": "1.0",
        "request": {"type": "LaunchRequest", "timestamp": "2030-06-01T12:00:00Z"},
    },
    indent=1,  # spaces and newlines, so re-serializing would change the bytes
).encode()


class CountingFetch:
    """A fetcher serving fixed chains by URL and counting calls."""

    def __init__(self, chains: dict[str, bytes]) -> None:
        self.chains = chains
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        with self._lock:
            self.calls.append(url)
        try:
            return self.chains[url]
        except KeyError:
            raise CertFetchFailed(f"no chain at {url}") from None


class Clock:
    """An injectable clock the test moves by hand."""

    def __init__(self, now: datetime = pki.NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def verifier_for(chain: pki.AlexaChain, **options) -> tuple[SignatureVerifier, CountingFetch]:
    fetch = CountingFetch({chain.url: chain.pem})
    options.setdefault("roots", [chain.root.cert])
    options.setdefault("now", Clock())
    return SignatureVerifier(fetch=fetch, **options), fetch


def refusal(verifier: SignatureVerifier, headers, body: bytes = BODY) -> str:
    with pytest.raises(VerificationFailed) as failure:
        verifier.verify(headers, body.decode("utf-8"), None)
    return failure.value.reason


def failure(verifier: SignatureVerifier, headers, body: bytes = BODY) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as caught:
        verifier.verify(headers, body.decode("utf-8"), None)
    return caught.value


@pytest.fixture(scope="module")
def chain() -> pki.AlexaChain:
    return pki.alexa_chain()


# --- Amazon's real request (docs/robustness.md) ---------------------------------------------------


def amazon_request() -> tuple[dict[str, str], bytes, datetime, bytes]:
    headers = json.loads((FIXTURE / "headers.json").read_text())
    body = (FIXTURE / "body.json").read_bytes()
    meta = json.loads((FIXTURE / "meta.json").read_text())
    sent = datetime.fromisoformat(meta["verify_time"])
    return headers, body, sent, (FIXTURE / "chain.pem").read_bytes()


def amazon_verifier(now: datetime, *, allow_sha1: bool = True) -> SignatureVerifier:
    headers, _, _, chain_pem = amazon_request()
    fetch = CountingFetch({headers["SignatureCertChainUrl"]: chain_pem})
    return SignatureVerifier(
        roots=certifi_roots(), fetch=fetch, now=lambda: now, allow_sha1=allow_sha1
    )


def test_fixture_is_the_exact_bytes_amazon_signed():
    assert len((FIXTURE / "body.json").read_bytes()) == 8556


def test_real_amazon_request_is_accepted_with_its_clock_sha1_and_certifi_roots():
    headers, body, sent, _ = amazon_request()
    amazon_verifier(sent).verify(headers, body.decode("utf-8"), None)


def test_real_amazon_request_with_one_byte_changed_is_refused():
    headers, body, sent, _ = amazon_request()
    tampered = body.replace(b'"new":true', b'"new":True', 1)
    assert len(tampered) == len(body) and tampered != body
    assert refusal(amazon_verifier(sent), headers, tampered) == "signature"


def test_real_amazon_request_without_allow_sha1_is_refused():
    headers, body, sent, _ = amazon_request()
    assert refusal(amazon_verifier(sent, allow_sha1=False), headers, body) == "headers"


def test_real_amazon_request_after_the_leaf_expired_is_refused():
    headers, body, _, chain_pem = amazon_request()
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    later = leaf.not_valid_after_utc + timedelta(seconds=1)
    assert refusal(amazon_verifier(later), headers, body) == "expired"


# --- chains the tests build ---------------------------------------------------------------------


def test_valid_chain_and_signature_are_accepted(chain):
    verifier, _ = verifier_for(chain)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)


def test_headers_are_found_case_insensitively_in_dicts_and_werkzeug_headers(chain):
    verifier, _ = verifier_for(chain)
    signed = chain.sign(BODY)
    verifier.verify({k.lower(): v for k, v in signed.items()}, BODY.decode(), None)
    verifier.verify(Headers({k.upper(): v for k, v in signed.items()}), BODY.decode(), None)


def test_expired_leaf_is_refused_as_expired():
    chain = pki.alexa_chain(
        not_before=pki.NOW - timedelta(days=400), not_after=pki.NOW - timedelta(days=1)
    )
    verifier, _ = verifier_for(chain)
    assert refusal(verifier, chain.sign(BODY)) == "expired"


def test_leaf_not_yet_valid_is_refused_as_not_yet_valid():
    chain = pki.alexa_chain(not_before=pki.NOW + timedelta(days=1))
    verifier, _ = verifier_for(chain)
    assert refusal(verifier, chain.sign(BODY)) == "not-yet-valid"


def test_leaf_for_another_name_is_refused_as_san():
    chain = pki.alexa_chain(dns_names=("example.com",))
    verifier, _ = verifier_for(chain)
    assert refusal(verifier, chain.sign(BODY)) == "san"


def test_wildcard_san_does_not_count_as_echo_api():
    chain = pki.alexa_chain(dns_names=("*.amazon.com",))
    verifier, _ = verifier_for(chain)
    assert refusal(verifier, chain.sign(BODY)) == "san"


def test_leaf_without_san_is_refused_as_san():
    chain = pki.alexa_chain(dns_names=())
    verifier, _ = verifier_for(chain)
    assert refusal(verifier, chain.sign(BODY)) == "san"


def test_chain_to_an_untrusted_root_is_refused_as_chain(chain):
    verifier, _ = verifier_for(chain, roots=[pki.root("Someone Else").cert])
    assert refusal(verifier, chain.sign(BODY)) == "chain"


def test_chain_missing_its_intermediate_is_refused_as_chain(chain):
    fetch = CountingFetch({chain.url: pki.chain_pem(chain.leaf)})
    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=fetch, now=Clock())
    assert refusal(verifier, chain.sign(BODY)) == "chain"


def test_leaf_signed_by_a_non_ca_certificate_is_refused_as_chain(chain):
    # A valid end-entity certificate of the trusted intermediate tries to act as a CA.
    impostor = pki.issue(chain.intermediate, "not a CA", ca=False, dns_names=("ca.example",))
    leaf = pki.alexa_leaf(impostor)
    fetch = CountingFetch({pki.CHAIN_URL: pki.chain_pem(leaf, impostor, chain.intermediate)})
    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=fetch, now=Clock())
    assert refusal(verifier, pki.sign(leaf, BODY)) == "chain"


def test_leaf_whose_key_usage_lacks_digital_signature_is_refused_as_chain():
    # RFC 5280 4.2.1.3: a key whose KeyUsage is keyEncipherment only must not verify signatures.
    chain = pki.alexa_chain(key_usage=("key_encipherment",))
    verifier, _ = verifier_for(chain)
    refused = failure(verifier, chain.sign(BODY))
    assert refused.reason == "chain"
    assert refused.detail is not None and "digitalSignature" in refused.detail


def test_leaf_without_a_key_usage_extension_is_accepted_as_unrestricted():
    # RFC 5280: an absent KeyUsage restricts nothing (Amazon's own leaf does carry one).
    chain = pki.alexa_chain(key_usage=None)
    verifier, _ = verifier_for(chain)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)


def test_leaf_with_digital_signature_as_its_only_key_usage_is_accepted():
    chain = pki.alexa_chain(key_usage=("digital_signature",))
    verifier, _ = verifier_for(chain)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)


@pytest.mark.parametrize(
    "usages",
    [
        (ExtendedKeyUsageOID.CLIENT_AUTH,),
        (ExtendedKeyUsageOID.CODE_SIGNING,),
        (ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,),
    ],
    ids=["clientAuth", "codeSigning", "anyExtendedKeyUsage"],
)
def test_leaf_whose_extended_key_usage_omits_server_auth_is_refused_as_chain(usages):
    # The web-PKI server policy's rule, kept as ours: a present EKU must name serverAuth.
    chain = pki.alexa_chain(extended_key_usage=usages)
    verifier, _ = verifier_for(chain)
    assert refusal(verifier, chain.sign(BODY)) == "chain"


def test_leaf_without_an_extended_key_usage_extension_is_accepted():
    # Nothing beyond the server policy: an absent EKU is unrestricted (RFC 5280 4.2.1.12).
    chain = pki.alexa_chain(extended_key_usage=None)
    verifier, _ = verifier_for(chain)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)


def test_garbage_chain_is_refused_as_chain():
    fetch = CountingFetch({pki.CHAIN_URL: b"<html>Access Denied</html>"})
    verifier = SignatureVerifier(roots=[pki.root().cert], fetch=fetch, now=Clock())
    assert refusal(verifier, pki.sign(pki.alexa_chain().leaf, BODY)) == "chain"


def test_body_tampered_by_one_byte_is_refused_as_signature(chain):
    verifier, _ = verifier_for(chain)
    headers = chain.sign(BODY)
    tampered = BODY.replace(b"LaunchRequest", b"LaunchRequesT")
    assert refusal(verifier, headers, tampered) == "signature"


def test_signature_over_reserialized_json_instead_of_raw_bytes_is_refused(chain):
    verifier, _ = verifier_for(chain)
    reserialized = json.dumps(json.loads(BODY), separators=(",", ":")).encode()
    assert reserialized != BODY
    assert refusal(verifier, chain.sign(reserialized), BODY) == "signature"


def test_signature_made_by_another_key_is_refused_as_signature(chain):
    verifier, _ = verifier_for(chain)
    other = pki.alexa_leaf(chain.intermediate, key_index=1)
    assert refusal(verifier, pki.sign(other, BODY)) == "signature"


@pytest.mark.parametrize("garbage", ["not base64!!", "QUJD=extra", "\u00e9t\u00e9", "QUJD"])
def test_garbage_signature_is_a_clean_signature_refusal(chain, garbage):
    verifier, _ = verifier_for(chain)
    headers = {**chain.sign(BODY), "Signature-256": garbage}
    assert refusal(verifier, headers) == "signature"


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_signature_header_counts_as_missing(chain, blank):
    verifier, _ = verifier_for(chain)
    assert refusal(verifier, {**chain.sign(BODY), "Signature-256": blank}) == "headers"


def test_sha1_only_request_is_refused_without_allow_sha1(chain):
    verifier, fetch = verifier_for(chain)
    assert refusal(verifier, chain.sign(BODY, sha1=True)) == "headers"
    assert fetch.calls == []


def test_sha1_only_request_is_accepted_with_allow_sha1(chain):
    verifier, _ = verifier_for(chain, allow_sha1=True)
    verifier.verify(chain.sign(BODY, sha1=True), BODY.decode(), None)


def test_a_bad_sha256_signature_never_falls_back_to_a_good_sha1_one(chain):
    verifier, _ = verifier_for(chain, allow_sha1=True)
    wrong = chain.sign(BODY[:-1])["Signature-256"]
    headers = {**chain.sign(BODY, sha1=True), "Signature-256": wrong}
    assert refusal(verifier, headers) == "signature"


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_present_but_blank_sha256_header_never_falls_back_to_sha1(chain, blank):
    # Present means used: a blank Signature-256 is refused as `headers` even when a good
    # SHA-1 Signature header is there and allow_sha1 is on.
    verifier, fetch = verifier_for(chain, allow_sha1=True)
    headers = {**chain.sign(BODY, sha1=True), "Signature-256": blank}
    assert refusal(verifier, headers) == "headers"
    assert fetch.calls == []


@pytest.mark.parametrize("missing", ["Signature-256", "SignatureCertChainUrl"])
def test_missing_header_is_refused_as_headers(chain, missing):
    verifier, fetch = verifier_for(chain)
    headers = chain.sign(BODY)
    del headers[missing]
    assert refusal(verifier, headers) == "headers"
    assert fetch.calls == []


@pytest.mark.parametrize(
    "url",
    [
        "http://s3.amazonaws.com/echo.api/test-chain.pem",
        "https://notamazon.com/echo.api/test-chain.pem",
        "https://s3.amazonaws.com/echo.api/../other/test-chain.pem",
    ],
)
def test_bad_certificate_url_is_refused_before_any_fetch(chain, url):
    verifier, fetch = verifier_for(chain)
    assert refusal(verifier, {**chain.sign(BODY), "SignatureCertChainUrl": url}) == "cert-url"
    assert fetch.calls == []


def test_fetch_failure_is_refused_as_cert_fetch(chain):
    verifier, _ = verifier_for(chain)
    other = "https://s3.amazonaws.com/echo.api/missing.pem"
    assert refusal(verifier, {**chain.sign(BODY), "SignatureCertChainUrl": other}) == "cert-fetch"


def test_an_injected_fetcher_raising_anything_is_a_cert_fetch_refusal(chain):
    def broken(url: str) -> bytes:
        raise ConnectionResetError("peer went away")

    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=broken, now=Clock())
    assert refusal(verifier, chain.sign(BODY)) == "cert-fetch"


def test_fetch_failure_message_is_fixed_text_and_the_detail_is_kept_for_the_log(chain):
    # `.message` reaches HTTP clients: no resolver errors, no exception text there.
    def unresolvable(url: str) -> bytes:
        raise socket.gaierror(-2, "Name or service not known")

    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=unresolvable, now=Clock())
    refused = failure(verifier, chain.sign(BODY))

    assert refused.reason == "cert-fetch"
    assert refused.message == "certificate chain could not be fetched"
    assert "gaierror" not in str(refused) and "Errno" not in str(refused)
    assert refused.detail is not None
    assert "gaierror" in refused.detail and "Name or service not known" in refused.detail


def test_fetcher_failure_text_goes_to_detail_not_message(chain):
    verifier, _ = verifier_for(chain)
    other = "https://s3.amazonaws.com/echo.api/missing.pem"
    refused = failure(verifier, {**chain.sign(BODY), "SignatureCertChainUrl": other})

    assert refused.message == "certificate chain could not be fetched"
    assert refused.detail is not None and "missing.pem" in refused.detail


def test_unreadable_local_dev_chain_keeps_its_path_out_of_the_message(chain, tmp_path):
    absent = tmp_path / "secret-place" / "chain.pem"
    fetch = local_chains_fetcher({chain.url: absent}, fallback=None)
    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=fetch, now=Clock())
    refused = failure(verifier, chain.sign(BODY))

    assert refused.reason == "cert-fetch"
    assert str(tmp_path) not in refused.message and "secret-place" not in refused.message
    assert refused.detail is not None and str(absent) in refused.detail


def test_chain_failure_message_is_fixed_text_with_the_detail_apart(chain):
    verifier, _ = verifier_for(chain, roots=[pki.root("Someone Else").cert])
    refused = failure(verifier, chain.sign(BODY))

    assert refused.reason == "chain"
    assert refused.message == "certificate chain does not validate"
    assert refused.detail


def test_verification_failed_detail_defaults_to_none():
    assert CertFetchFailed("short").detail is None
    assert CertFetchFailed("short", detail="long").detail == "long"


def test_fetcher_receives_the_normalized_url(chain):
    verifier, fetch = verifier_for(chain)
    dotted = "https://S3.AmazonAWS.com:443/echo.api/../echo.api/test-chain.pem"
    verifier.verify({**chain.sign(BODY), "SignatureCertChainUrl": dotted}, BODY.decode(), None)
    assert fetch.calls == [pki.CHAIN_URL]


def test_empty_roots_are_a_configuration_error():
    with pytest.raises(ValueError):
        SignatureVerifier(roots=[])


# --- the cache ----------------------------------------------------------------------------------


def test_warm_requests_reuse_the_validated_key_without_fetching_again(chain):
    verifier, fetch = verifier_for(chain)
    for _ in range(50):
        verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert len(fetch.calls) == 1


def test_cached_key_expires_with_the_leaf_by_the_injected_clock():
    chain = pki.alexa_chain(not_after=pki.NOW + timedelta(hours=1))
    clock = Clock()
    verifier, fetch = verifier_for(chain, now=clock)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    clock.now = pki.NOW + timedelta(minutes=59)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert len(fetch.calls) == 1
    clock.now = pki.NOW + timedelta(hours=1, seconds=1)
    assert refusal(verifier, chain.sign(BODY)) == "expired"
    assert len(fetch.calls) == 2  # fetched again, not served from the stale entry


def test_expired_entry_is_replaced_by_a_renewed_chain_at_the_same_url():
    first = pki.alexa_chain(not_after=pki.NOW + timedelta(hours=1))
    renewed_leaf = pki.alexa_leaf(first.intermediate, not_after=pki.NOW + timedelta(days=90))
    clock = Clock()
    verifier, fetch = verifier_for(first, now=clock)
    verifier.verify(first.sign(BODY), BODY.decode(), None)
    fetch.chains[first.url] = pki.chain_pem(renewed_leaf, first.intermediate)
    clock.now = pki.NOW + timedelta(hours=2)
    verifier.verify(pki.sign(renewed_leaf, BODY), BODY.decode(), None)
    assert len(fetch.calls) == 2


def test_cached_key_expires_with_an_intermediate_that_expires_before_the_leaf():
    top = pki.root()
    middle = pki.intermediate(top, not_after=pki.NOW + timedelta(hours=1))
    leaf = pki.alexa_leaf(middle)  # valid for a year
    chain = pki.AlexaChain(top, middle, leaf)
    clock = Clock()
    verifier, fetch = verifier_for(chain, now=clock)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    clock.now = pki.NOW + timedelta(hours=2)
    assert refusal(verifier, chain.sign(BODY)) == "chain"
    assert len(fetch.calls) == 2


def test_a_failed_validation_is_retried_once_its_failure_window_has_passed(chain):
    clock = Clock(pki.NOW - timedelta(days=60))  # before the leaf's notBefore
    verifier, fetch = verifier_for(chain, now=clock)
    assert refusal(verifier, chain.sign(BODY)) == "not-yet-valid"
    clock.now = pki.NOW
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert len(fetch.calls) == 2


def test_a_url_is_never_answered_from_another_urls_entry(chain):
    verifier, fetch = verifier_for(chain)
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    other = "https://s3.amazonaws.com/echo.api/other.pem"
    fetch.chains[other] = b"garbage"
    headers = {**chain.sign(BODY), "SignatureCertChainUrl": other}
    assert refusal(verifier, headers) == "chain"


def test_cache_of_chains_not_yet_known_is_bounded_and_evicts_the_least_recently_used(chain):
    urls = [f"https://s3.amazonaws.com/echo.api/chain-{n}.pem" for n in range(4)]
    fetch = CountingFetch(dict.fromkeys(urls, chain.pem))
    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=fetch, now=Clock(), cache_size=3)
    # Keys looked up but never used on a genuine signature: none of these URLs is known.
    for url in [*urls[:3], urls[0], urls[3], urls[0], urls[1]]:
        verifier.leaf_key(url)
    # urls[1] was least recently used when urls[3] arrived, so only it was fetched twice.
    assert fetch.calls == [*urls[:3], urls[3], urls[1]]


def test_twenty_concurrent_first_requests_fetch_the_chain_once(chain):
    release = threading.Event()
    inner = CountingFetch({chain.url: chain.pem})

    def slow_fetch(url: str) -> bytes:
        release.wait(timeout=10)  # hold the first fetch until every thread is in flight
        return inner(url)

    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=slow_fetch, now=Clock())
    start = threading.Barrier(21)
    errors: list[BaseException] = []
    headers = chain.sign(BODY)

    def request() -> None:
        start.wait()
        try:
            verifier.verify(headers, BODY.decode(), None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    start.wait()
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert len(inner.calls) == 1


def test_fetches_in_flight_are_bounded_and_a_new_url_past_the_bound_is_refused(chain):
    release = threading.Event()
    started = threading.Semaphore(0)

    def held_fetch(url: str) -> bytes:
        started.release()
        release.wait(timeout=10)
        return chain.pem

    verifier = SignatureVerifier(
        roots=[chain.root.cert], fetch=held_fetch, now=Clock(), max_concurrent_fetches=2
    )
    signed = chain.sign(BODY)
    urls = [f"https://s3.amazonaws.com/echo.api/held-{n}.pem" for n in range(3)]
    errors: list[BaseException] = []

    def request(url: str) -> None:
        try:
            verifier.verify({**signed, "SignatureCertChainUrl": url}, BODY.decode(), None)
        except BaseException as exc:
            errors.append(exc)

    held = [threading.Thread(target=request, args=(url,)) for url in urls[:2]]
    for thread in held:
        thread.start()
    for _ in held:
        assert started.acquire(timeout=10)  # both fetches are in flight
    with pytest.raises(CertFetchFailed) as refused:
        verifier.verify({**signed, "SignatureCertChainUrl": urls[2]}, BODY.decode(), None)
    assert refused.value.reason == "cert-fetch"
    release.set()
    for thread in held:
        thread.join(timeout=10)
    assert errors == []
    # The slots come back: the refused URL now loads.
    verifier.verify({**signed, "SignatureCertChainUrl": urls[2]}, BODY.decode(), None)


def test_concurrent_waiters_all_get_the_failure_with_its_reason():
    chain = pki.alexa_chain(dns_names=("example.com",))
    release = threading.Event()
    calls: list[str] = []

    def slow_fetch(url: str) -> bytes:
        calls.append(url)
        release.wait(timeout=10)
        return chain.pem

    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=slow_fetch, now=Clock())
    start = threading.Barrier(6)
    reasons: list[str] = []

    def request() -> None:
        start.wait()
        try:
            verifier.verify(chain.sign(BODY), BODY.decode(), None)
        except VerificationFailed as exc:
            reasons.append(exc.reason)

    threads = [threading.Thread(target=request) for _ in range(5)]
    for thread in threads:
        thread.start()
    start.wait()
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert reasons == ["san"] * 5


def test_prefetch_validates_and_caches_so_the_first_request_fetches_nothing(chain):
    verifier, fetch = verifier_for(chain)
    bad = "http://s3.amazonaws.com/echo.api/x.pem"
    results = verifier.prefetch([chain.url, bad])
    assert results[0] == (chain.url, None)
    assert results[1][0] == bad and results[1][1].reason == "cert-url"
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert fetch.calls == [chain.url]


# --- fetching cannot be abused (docs/robustness.md) -----------------------------------------------

UNSIGNED = {"Signature-256": base64.b64encode(b"\0" * 256).decode()}  # base64, but no signature


def bogus_url(n: int) -> str:
    return f"https://s3.amazonaws.com/echo.api/bogus-{n}.pem"


def spellings(url: str) -> list[str]:
    """64 header texts that all name `url` once dot segments, case and port are normalised."""
    path = url.removeprefix("https://s3.amazonaws.com")
    head, name = path.rsplit("/", 1)
    hosts = ["s3.amazonaws.com", "S3.AMAZONAWS.COM", "s3.amazonaws.com:443", "S3.AmazonAWS.com:443"]
    return [f"https://{hosts[n % 4]}{head}/x{n}/../{name}" for n in range(64)]


def flood(verifier: SignatureVerifier, urls: Iterable[str]) -> set[str]:
    """Unsigned requests naming each URL; the reasons they were refused with."""
    return {refusal(verifier, {**UNSIGNED, "SignatureCertChainUrl": url}) for url in urls}


def test_sixty_four_spellings_of_one_chain_url_fetch_it_once(chain):
    verifier, fetch = verifier_for(chain)
    assert len(set(spellings(chain.url))) == 64
    assert flood(verifier, spellings(chain.url)) == {"signature"}
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert fetch.calls == [chain.url]


def test_spellings_of_a_prefetched_url_neither_fetch_nor_evict_it(chain):
    verifier, fetch = verifier_for(chain, cache_size=8)
    verifier.prefetch([chain.url])
    flood(verifier, spellings(chain.url))
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert fetch.calls == [chain.url]


class AnyChainFetch:
    """The worst case for the cache: every URL serves a valid chain, counted by URL."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pem


def make_known_by_prefetch(verifier: SignatureVerifier, chain: pki.AlexaChain) -> None:
    assert verifier.prefetch([chain.url]) == [(chain.url, None)]


def make_known_as_a_local_chain(verifier: SignatureVerifier, chain: pki.AlexaChain) -> None:
    verifier.mark_known([chain.url])  # what the skill does for [verification.local_chains]
    verifier.leaf_key(chain.url)


def make_known_by_a_genuine_signature(verifier: SignatureVerifier, chain: pki.AlexaChain) -> None:
    verifier.verify(chain.sign(BODY), BODY.decode(), None)


KNOWN_BY = pytest.mark.parametrize(
    "make_known",
    [make_known_by_prefetch, make_known_as_a_local_chain, make_known_by_a_genuine_signature],
    ids=["prefetched", "local-chain", "verified-a-signature"],
)


@KNOWN_BY
def test_a_known_chain_keeps_its_entry_through_a_flood_of_a_thousand_bogus_urls(chain, make_known):
    fetch = AnyChainFetch(chain.pem)
    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=fetch, now=Clock())
    make_known(verifier, chain)
    # Each bogus URL even serves a valid chain, so each would take a cache entry.
    assert flood(verifier, (bogus_url(n) for n in range(1000))) == {"signature"}
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert fetch.calls.count(chain.url) == 1
    assert len(fetch.calls) == 1001


def test_a_failing_url_is_fetched_once_within_the_failure_window(chain):
    clock = Clock()
    verifier, fetch = verifier_for(chain, now=clock)
    missing = "https://s3.amazonaws.com/echo.api/missing.pem"
    headers = {**chain.sign(BODY), "SignatureCertChainUrl": missing}
    first = failure(verifier, headers)
    clock.now += FAILURE_TTL - timedelta(seconds=1)
    again = [
        failure(verifier, {**headers, "SignatureCertChainUrl": url}) for url in spellings(missing)
    ]

    assert fetch.calls == [missing]
    assert {(refused.reason, refused.message) for refused in again} == {
        (first.reason, first.message)
    }
    assert all(refused.detail and "missing.pem" in refused.detail for refused in again)


def test_a_failing_url_is_fetched_again_once_the_failure_window_has_passed(chain):
    clock = Clock()
    verifier, fetch = verifier_for(chain, now=clock)
    missing = "https://s3.amazonaws.com/echo.api/missing.pem"
    headers = {**chain.sign(BODY), "SignatureCertChainUrl": missing}
    assert refusal(verifier, headers) == "cert-fetch"
    clock.now += FAILURE_TTL
    fetch.chains[missing] = chain.pem  # the chain has appeared meanwhile
    verifier.verify(headers, BODY.decode(), None)
    assert fetch.calls == [missing, missing]


def test_a_chain_that_fails_validation_is_not_fetched_again_within_the_window():
    chain = pki.alexa_chain(dns_names=("example.com",))
    verifier, fetch = verifier_for(chain)
    assert [refusal(verifier, chain.sign(BODY)) for _ in range(5)] == ["san"] * 5
    assert fetch.calls == [chain.url]


def test_a_flood_of_failing_bogus_urls_costs_one_fetch_each(chain):
    verifier, fetch = verifier_for(chain)
    urls = [bogus_url(n) for n in range(100)]
    for _ in range(3):
        assert flood(verifier, urls) == {"cert-fetch"}
    assert fetch.calls == urls


def test_a_known_urls_failed_fetch_is_retried_after_seconds_not_a_minute(chain):
    # A prefetch that failed at start (network not up yet) must not refuse Alexa for a minute.
    clock = Clock()
    fetch = CountingFetch({})
    verifier = SignatureVerifier(roots=[chain.root.cert], fetch=fetch, now=clock)
    assert verifier.prefetch([chain.url])[0][1].reason == "cert-fetch"
    fetch.chains[chain.url] = chain.pem
    assert refusal(verifier, chain.sign(BODY)) == "cert-fetch"  # still within its short window
    clock.now += KNOWN_FAILURE_TTL
    verifier.verify(chain.sign(BODY), BODY.decode(), None)
    assert fetch.calls == [chain.url, chain.url]


class HeldFetch:
    """Serves `chains`; any other URL blocks until `release` is set, then fails."""

    def __init__(self, chains: dict[str, bytes]) -> None:
        self.chains = chains
        self.calls: list[str] = []
        self.held = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        if url in self.chains:
            return self.chains[url]
        self.held.release()
        self.release.wait(timeout=10)
        raise CertFetchFailed(f"no chain at {url}")


def hold_every_fetch_slot(verifier: SignatureVerifier, fetch: HeldFetch) -> list[threading.Thread]:
    """MAX_CONCURRENT_FETCHES unsigned requests whose fetches hang in the fetcher."""
    threads = [
        threading.Thread(target=flood, args=(verifier, [bogus_url(n)]))
        for n in range(MAX_CONCURRENT_FETCHES)
    ]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert fetch.held.acquire(timeout=10)
    return threads


@KNOWN_BY
def test_a_known_url_whose_entry_expired_is_fetched_while_bogus_fetches_hold_every_slot(
    make_known,
):
    first = pki.alexa_chain(not_after=pki.NOW + timedelta(hours=1))
    renewed = pki.alexa_leaf(first.intermediate, not_after=pki.NOW + timedelta(days=90))
    fetch = HeldFetch({first.url: first.pem})
    clock = Clock()
    verifier = SignatureVerifier(roots=[first.root.cert], fetch=fetch, now=clock)
    make_known(verifier, first)
    fetch.chains[first.url] = pki.chain_pem(renewed, first.intermediate)
    clock.now = pki.NOW + timedelta(hours=2)  # the cached entry has expired
    threads = hold_every_fetch_slot(verifier, fetch)
    try:
        verifier.verify(pki.sign(renewed, BODY), BODY.decode(), None)
        # The bound still holds for URLs that are not known.
        assert flood(verifier, [bogus_url(99)]) == {"cert-fetch"}
    finally:
        fetch.release.set()
        for thread in threads:
            thread.join(timeout=10)
    assert fetch.calls.count(first.url) == 2
    assert bogus_url(99) not in fetch.calls


def test_a_signature_that_is_not_base64_costs_no_fetch(chain):
    verifier, fetch = verifier_for(chain)
    assert refusal(verifier, {**chain.sign(BODY), "Signature-256": "not base64!!"}) == "signature"
    assert fetch.calls == []
