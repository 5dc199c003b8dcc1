"""SnsVerifier: AWS's own signed message, and every way an SNS delivery is wrong (docs/events)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests import pki
from verification import SnsVerifier
from verification.devca import local_chains_fetcher
from verification.errors import CertFetchFailed, SnsVerificationFailed
from verification.signature import certifi_roots

FIXTURE = Path(__file__).parent / "fixtures" / "sns-signed"
REAL = json.loads((FIXTURE / "notification.json").read_text())
REAL_CHAIN = (FIXTURE / "chain.pem").read_bytes()
REAL_SENT = datetime.fromisoformat(REAL["Timestamp"])
HEADERS = {"x-amz-sns-message-type": "Notification"}


class CountingFetch:
    """A fetcher for AWS's certificate hosts: fixed chains by URL, every call counted."""

    def __init__(
        self, chains: dict[str, bytes], fallback: Callable[[str], bytes] | None = None
    ) -> None:
        self.chains = chains
        self.fallback = fallback
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, url: str) -> bytes:
        with self._lock:
            self.calls.append(url)
        if url not in self.chains and self.fallback is not None:
            return self.fallback(url)
        try:
            return self.chains[url]
        except KeyError:
            raise CertFetchFailed(f"no chain at {url}") from None


def real_verifier(now: datetime = REAL_SENT) -> tuple[SnsVerifier, CountingFetch]:
    # The chain mapped to the local file, as [verification.local_chains] does; never fetched.
    local = local_chains_fetcher({REAL["SigningCertURL"]: FIXTURE / "chain.pem"}, fallback=None)
    fetch = CountingFetch({}, fallback=local)
    verifier = SnsVerifier(
        roots=certifi_roots(), fetch=fetch, now=lambda: now, topics=[REAL["TopicArn"]]
    )
    return verifier, fetch


@pytest.fixture(scope="module")
def signer() -> pki.SnsSigner:
    return pki.sns_signer()


def verifier_for(signer: pki.SnsSigner, **options: Any) -> tuple[SnsVerifier, CountingFetch]:
    fetch = options.pop("fetch", None) or CountingFetch({signer.url: signer.pem})
    options.setdefault("roots", [signer.root.cert])
    options.setdefault("now", lambda: pki.NOW)
    options.setdefault("topics", [pki.SNS_TOPIC])
    return SnsVerifier(fetch=fetch, **options), fetch


def body(message: dict[str, Any]) -> bytes:
    return json.dumps(message, indent=1).encode()


def headers_for(message: dict[str, Any]) -> dict[str, str]:
    return {"x-amz-sns-message-type": str(message.get("Type"))}


def refusal(verifier: SnsVerifier, message: Any, headers: dict[str, str] | None = None):
    raw = message if isinstance(message, bytes) else body(message)
    if headers is None:
        headers = headers_for(message) if isinstance(message, dict) else HEADERS
    with pytest.raises(SnsVerificationFailed) as refused:
        verifier.verify(headers, raw)
    return refused.value


# --- the real AWS-signed message ---------------------------------------------------------------


def test_the_real_aws_signed_message_verifies_at_its_own_timestamp():
    verifier, fetch = real_verifier()
    message = verifier.verify({"X-Amz-Sns-Message-Type": "Notification"}, body(REAL))
    assert message["MessageId"] == REAL["MessageId"]
    assert message["Subject"] == "Hello world"
    assert fetch.calls == [REAL["SigningCertURL"]]


@pytest.mark.parametrize("field", ["Message", "MessageId", "Subject", "Timestamp", "TopicArn"])
def test_the_real_message_with_a_signed_field_changed_is_refused(field):
    verifier, _ = real_verifier()
    changed = dict(REAL)
    if field == "Timestamp":
        changed[field] = "2022-07-28T22:53:56.086Z"  # one second later, still fresh
    else:
        changed[field] = REAL[field] + "x"
    refused = refusal(verifier, changed)
    # Refused on the signature, before the topic: an unsigned request learns nothing.
    assert refused.reason == "sns-signature"


def test_the_real_message_without_its_subject_is_refused():
    verifier, _ = real_verifier()
    changed = {k: v for k, v in REAL.items() if k != "Subject"}
    assert refusal(verifier, changed).reason == "sns-signature"


def test_the_real_message_claiming_another_type_is_refused():
    verifier, _ = real_verifier()
    changed = {**REAL, "Type": "UnsubscribeConfirmation"}
    assert refusal(verifier, changed).status == 400


def test_the_real_message_claiming_signature_version_1_is_refused():
    verifier, _ = real_verifier()
    assert refusal(verifier, {**REAL, "SignatureVersion": "1"}).reason == "sns-signature"


def test_the_real_message_is_refused_today_its_certificate_has_expired():
    verifier, _ = real_verifier(now=datetime.now(UTC))
    refused = refusal(verifier, REAL)
    assert refused.reason == "sns-chain"
    assert "expired" in (refused.detail or "")


def test_the_real_message_is_stale_an_hour_and_a_second_later():
    verifier, _ = real_verifier(now=REAL_SENT + timedelta(seconds=3601))
    assert refusal(verifier, REAL).reason == "sns-stale"


# --- test-CA-signed messages -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [None, "New upload"])
def test_a_signed_notification_verifies(signer, version, subject):
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello", subject=subject), version=version)
    assert verifier.verify(headers_for(message), body(message)) == message


def test_a_null_subject_is_unsigned_as_aws_validators_read_it(signer):
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    message["Subject"] = None
    assert verifier.verify(headers_for(message), body(message))["Message"] == "hello"


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_confirmation_verifies(signer, kind, version):
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_confirmation(kind=kind), version=version)
    assert verifier.verify(headers_for(message), body(message))["Token"] == message["Token"]


@pytest.mark.parametrize("field", ["SubscribeURL", "Token", "Message", "TopicArn"])
def test_a_confirmation_with_a_signed_field_changed_is_refused(signer, field):
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_confirmation())
    message[field] += "x"
    assert refusal(verifier, message).reason == "sns-signature"


@pytest.mark.parametrize("field", ["Message", "Subject"])
def test_a_tampered_message_or_subject_is_refused(signer, field):
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello", subject="Hi"))
    message[field] = "forged"
    assert refusal(verifier, message).reason == "sns-signature"


def test_a_warm_message_costs_no_fetch(signer):
    verifier, fetch = verifier_for(signer)
    for index in range(3):
        message = signer.sign(pki.sns_notification(f"n{index}", message_id=f"id-{index}"))
        verifier.verify(headers_for(message), body(message))
    assert fetch.calls == [signer.url]


def test_a_china_region_message_verifies():
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-cn.pem"
    signer = pki.sns_signer(url=url)
    topic = "arn:aws-cn:sns:cn-north-1:123456789012:uploads"
    verifier, _ = verifier_for(signer, topics=[topic])
    message = signer.sign(pki.sns_notification("hello", topic=topic))
    assert verifier.verify(headers_for(message), body(message))["TopicArn"] == topic


# --- the SigningCertURL rule: refused before any fetch -----------------------------------------

BAD_CERT_URLS = [
    "https://s3.amazonaws.com/sns/SimpleNotificationService-x.pem",  # any bucket can serve it
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.crt",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem?x=1",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem#f",
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://evil.sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sqs.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
    "https://sns.cn-north-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem/..",
    "https://sns.us-east-1.amazonaws.com/x%2epem",
    "https://127.0.0.1/SimpleNotificationService-x.pem",
]


@pytest.mark.parametrize("url", BAD_CERT_URLS)
def test_a_bad_signing_cert_url_is_refused_before_any_fetch(url):
    signer = pki.sns_signer(url=url)
    verifier, fetch = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    assert refusal(verifier, message).reason == "sns-cert-url"
    assert fetch.calls == []


def test_a_missing_signing_cert_url_is_refused(signer):
    verifier, fetch = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    del message["SigningCertURL"]
    assert refusal(verifier, message).reason == "sns-cert-url"
    assert fetch.calls == []


# --- the chain -----------------------------------------------------------------------------------


def test_a_chain_from_an_untrusted_root_is_refused(signer):
    verifier, _ = verifier_for(signer, roots=[pki.root("Someone else").cert])
    message = signer.sign(pki.sns_notification("hello"))
    assert refusal(verifier, message).reason == "sns-chain"


@pytest.mark.parametrize(
    "names", [("example.com",), ("*.amazonaws.com",), ("sns.amazonaws.com.evil.com",)]
)
def test_a_leaf_for_another_name_is_refused(names):
    signer = pki.sns_signer(dns_names=names)
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    refused = refusal(verifier, message)
    assert refused.reason == "sns-chain" and "san" in (refused.detail or "")


def test_a_regional_sns_leaf_is_accepted():
    signer = pki.sns_signer(dns_names=("sns.eu-west-1.amazonaws.com",))
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    assert verifier.verify(headers_for(message), body(message))


def test_a_leaf_that_may_not_sign_is_refused():
    signer = pki.sns_signer(key_usage=("key_encipherment",))
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    assert refusal(verifier, message).reason == "sns-chain"


@pytest.mark.parametrize(
    "dates",
    [
        {"not_before": pki.NOW - timedelta(days=60), "not_after": pki.NOW - timedelta(days=1)},
        {"not_before": pki.NOW + timedelta(days=1), "not_after": pki.NOW + timedelta(days=60)},
    ],
    ids=["expired", "not-yet-valid"],
)
def test_a_leaf_outside_its_validity_is_refused(dates):
    signer = pki.sns_signer(**dates)
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    assert refusal(verifier, message).reason == "sns-chain"


def test_a_chain_that_cannot_be_fetched_is_refused_and_remembered(signer):
    fetch = CountingFetch({})
    verifier, _ = verifier_for(signer, fetch=fetch)
    message = signer.sign(pki.sns_notification("hello"))
    assert refusal(verifier, message).reason == "sns-cert-fetch"
    assert refusal(verifier, message).reason == "sns-cert-fetch"
    assert fetch.calls == [signer.url]  # the negative cache answered the second time


def test_a_refused_chain_is_remembered_too():
    signer = pki.sns_signer(dns_names=("example.com",))
    verifier, fetch = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    assert refusal(verifier, message).reason == "sns-chain"
    assert refusal(verifier, message).reason == "sns-chain"
    assert len(fetch.calls) == 1


def test_spellings_of_one_cert_url_share_one_fetch(signer):
    verifier, fetch = verifier_for(signer)
    for url in (
        signer.url,
        signer.url.replace("sns.us-east-1.amazonaws.com", "SNS.us-east-1.AmazonAWS.com:443"),
    ):
        message = signer.sign(pki.sns_notification("hello"), url=url)
        verifier.verify(headers_for(message), body(message))
    assert fetch.calls == [signer.url]


# --- the signature -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3", "", None, 2, ["2"]])
def test_an_unknown_signature_version_is_refused(signer, version):
    verifier, fetch = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    message["SignatureVersion"] = version
    assert refusal(verifier, message).reason == "sns-signature"
    assert fetch.calls == []


@pytest.mark.parametrize("signature", [None, "", "not base64!", 42])
def test_a_missing_or_unreadable_signature_costs_no_fetch(signer, signature):
    verifier, fetch = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    message["Signature"] = signature
    assert refusal(verifier, message).reason == "sns-signature"
    assert fetch.calls == []


def test_a_signature_by_another_key_is_refused(signer):
    other = pki.sns_signer(key_index=2)
    verifier, _ = verifier_for(signer)
    message = other.sign(pki.sns_notification("hello"))
    assert refusal(verifier, message).reason == "sns-signature"


# --- topic, age, headers, shape ------------------------------------------------------------------


def test_an_unlisted_topic_is_forbidden(signer):
    verifier, _ = verifier_for(signer, topics=["arn:aws:sns:us-east-1:123456789012:other"])
    refused = refusal(verifier, signer.sign(pki.sns_notification("hello")))
    assert (refused.reason, refused.status) == ("sns-topic", 403)


def test_an_empty_allowlist_refuses_every_topic(signer):
    verifier, _ = verifier_for(signer, topics=[])
    assert refusal(verifier, signer.sign(pki.sns_notification("hello"))).reason == "sns-topic"


def test_a_topic_glob_stays_within_one_arn_field(signer):
    verifier, _ = verifier_for(signer, topics=["arn:aws:sns:*:123456789012:uploads"])
    assert verifier.topic_allowed("arn:aws:sns:eu-west-1:123456789012:uploads")
    assert not verifier.topic_allowed("arn:aws:sns:eu-west-1:999999999999:x:123456789012:uploads")
    assert not verifier.topic_allowed("arn:aws:sns:eu-west-1:123456789012:uploads2")


def test_a_forged_message_for_an_unlisted_topic_learns_only_that_it_is_unsigned(signer):
    verifier, _ = verifier_for(signer, topics=[])
    message = signer.sign(pki.sns_notification("hello"))
    message["Message"] = "forged"
    assert refusal(verifier, message).reason == "sns-signature"


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (timedelta(seconds=3599), True),
        (timedelta(seconds=3601), False),
        (timedelta(seconds=-299), True),
        (timedelta(seconds=-301), False),
    ],
)
def test_the_replay_window_is_max_age_back_and_300_s_ahead(signer, age, accepted):
    verifier, _ = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello", when=pki.NOW - age))
    if accepted:
        assert verifier.verify(headers_for(message), body(message))
    else:
        assert refusal(verifier, message).reason == "sns-stale"


def test_max_age_is_the_operators(signer):
    verifier, _ = verifier_for(signer, max_age=60)
    message = signer.sign(pki.sns_notification("hello", when=pki.NOW - timedelta(seconds=61)))
    assert refusal(verifier, message).reason == "sns-stale"


def test_a_timestamp_that_is_not_a_time_is_malformed(signer):
    verifier, _ = verifier_for(signer)
    message = signer.sign({**pki.sns_notification("hello"), "Timestamp": "yesterday"})
    assert refusal(verifier, message).reason == "sns-malformed"


def test_a_missing_message_type_header_is_refused(signer):
    verifier, _ = verifier_for(signer)
    assert refusal(verifier, signer.sign(pki.sns_notification("x")), {}).reason == "sns-headers"


def test_a_message_type_header_unlike_the_body_is_refused(signer):
    verifier, fetch = verifier_for(signer)
    message = signer.sign(pki.sns_notification("x"))
    headers = {"x-amz-sns-message-type": "SubscriptionConfirmation"}
    assert refusal(verifier, message, headers).reason == "sns-headers"
    assert fetch.calls == []


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1, 2]", b'"Notification"', b"\xff\xfe", b"[" * 100_000]
)
def test_a_body_that_is_not_a_json_object_is_malformed(signer, raw):
    verifier, _ = verifier_for(signer)
    assert refusal(verifier, raw).reason == "sns-malformed"


@pytest.mark.parametrize("field", ["Message", "MessageId", "Timestamp", "TopicArn"])
@pytest.mark.parametrize("value", ["missing", 5, None, ["x"]])
def test_a_signed_field_missing_or_not_a_string_is_malformed(signer, field, value):
    verifier, fetch = verifier_for(signer)
    message = signer.sign(pki.sns_notification("hello"))
    if value == "missing":
        del message[field]
    else:
        message[field] = value
    assert refusal(verifier, message).reason == "sns-malformed"
    assert fetch.calls == []


def test_an_unknown_type_is_malformed(signer):
    verifier, _ = verifier_for(signer)
    message = {**signer.sign(pki.sns_notification("x")), "Type": "Surprise"}
    assert refusal(verifier, message).reason == "sns-malformed"


def test_a_raw_delivery_is_refused_as_unsigned(signer):
    verifier, _ = verifier_for(signer)
    headers = {"x-amz-sns-message-type": "Notification", "x-amz-sns-rawdelivery": "true"}
    assert refusal(verifier, b'{"any": "thing"}', headers).reason == "sns-raw"


def test_the_verifier_needs_roots():
    with pytest.raises(ValueError):
        SnsVerifier(roots=[])


def test_every_refusal_message_is_fixed_text_without_the_url(signer):
    verifier, _ = verifier_for(signer, fetch=CountingFetch({}))
    message = signer.sign(pki.sns_notification("hello"))
    refused = refusal(verifier, message)
    assert signer.url not in refused.message and "sns.us-east-1" not in refused.message


def test_the_real_chain_holds_the_sns_leaf():
    leaf = x509.load_pem_x509_certificates(REAL_CHAIN)[0]
    assert leaf.subject.rfc4514_string() == "CN=sns.amazonaws.com"
