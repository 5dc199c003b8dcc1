"""Amazon SNS HTTP/S deliveries, verified as strictly as Alexa's requests (docs/events/index.md).

Per delivery: the message-type header against the body's `Type`, the signed
fields, the `SignatureVersion` ("1": SHA1withRSA, "2": SHA256withRSA), the
SigningCertURL rule (`snsurl.py`, before anything is fetched), the chain
through the same hardened fetcher and `ChainCache` as Alexa's (its own
instance: SNS URLs normalise by SNS's rule), the leaf's SAN
(`sns.amazonaws.com` or an `sns.<region>` host), one RSA PKCS#1 v1.5 verify
of the string to sign, then the topic allowlist and the age. The signature
comes before the topic, so an unsigned request learns nothing about the
allowlist. Deduplication by MessageId is the caller's (triggers/).

Python has no official validator: the popular PyPI one verifies only
SignatureVersion 1 and refuses the China regions; this one does both
versions and both partitions, with `cryptography` alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.x509.verification import Store

from verification.chains import CACHE_SIZE, MAX_CONCURRENT_FETCHES, ChainCache, SigningKey
from verification.errors import (
    CertFetchFailed,
    CertUrlInvalid,
    SnsCertFetch,
    SnsCertUrl,
    SnsChain,
    SnsHeaders,
    SnsMalformed,
    SnsRaw,
    SnsSignature,
    SnsStale,
    SnsTopic,
    SnsVerificationFailed,
    VerificationFailed,
)
from verification.fetch import fetch_chain
from verification.signature import certifi_roots, header, validate_chain
from verification.snsurl import REGION, check_signing_cert_url

MESSAGE_TYPE_HEADER = "x-amz-sns-message-type"
#: Set by SNS on a raw message delivery, whose body is the bare message: nothing is signed.
RAW_DELIVERY_HEADER = "x-amz-sns-rawdelivery"

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
#: The signed fields per Type, in the order SNS signs them (`Key\nValue\n` each).
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: _CONFIRMATION_FIELDS,
    UNSUBSCRIBE_CONFIRMATION: _CONFIRMATION_FIELDS,
}
#: Signed only when present.
OPTIONAL_FIELDS = frozenset({"Subject"})
ALGORITHMS: dict[str, hashes.HashAlgorithm] = {"1": hashes.SHA1(), "2": hashes.SHA256()}

#: SNS retries a delivery for up to an hour; an older Timestamp is a replay.
DEFAULT_MAX_AGE = 3600.0
#: A Timestamp this far ahead of our clock is refused too (a clock that far off is broken).
MAX_FUTURE = timedelta(seconds=300)

SNS_SAN = "sns.amazonaws.com"
# A regional signing certificate: sns.us-east-1.amazonaws.com, sns.cn-north-1.amazonaws.com.cn.
_REGIONAL_SAN = re.compile(rf"sns\.{REGION}\.amazonaws\.com(?:\.cn)?")

_PADDING = padding.PKCS1v15()


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """What SNS signs for `message`: `Key\\nValue\\n` for each signed field of its Type."""
    fields = SIGNED_FIELDS[message["Type"]]
    parts = []
    for name in fields:
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode("utf-8")


def glob_pattern(glob: str, *, within: str | None = None) -> re.Pattern[str]:
    """`glob` as a full-match pattern where only `*` is special.

    With `within`, a `*` does not cross that character: in a topic glob it
    stays inside one ARN field (`arn:aws:sns:*:123456789012:x` names one
    account's topic `x` in any region, nothing longer).
    """
    star = f"[^{re.escape(within)}]*" if within else ".*"
    return re.compile(star.join(re.escape(part) for part in glob.split("*")), re.DOTALL)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sns_name(names: set[str]) -> str | None:
    if SNS_SAN in names:
        return SNS_SAN
    return next((name for name in sorted(names) if _REGIONAL_SAN.fullmatch(name)), None)


class SnsVerifier:
    """Verify SNS HTTP/S deliveries: `verify(headers, body) -> message` or a refusal.

    `roots` are the trusted certificates (certifi's by default), `fetch(url)
    -> bytes` gets a chain (the hardened HTTPS fetcher by default), `now()`
    returns an aware datetime. `topics` are TopicArn globs (`*` within one
    ARN field); empty refuses every message. `max_age` is the replay window
    in seconds.
    """

    def __init__(
        self,
        roots: Iterable[x509.Certificate] | None = None,
        fetch: Callable[[str], bytes] | None = None,
        now: Callable[[], datetime] | None = None,
        topics: Iterable[str] = (),
        max_age: float = DEFAULT_MAX_AGE,
        *,
        cache_size: int = CACHE_SIZE,
        max_concurrent_fetches: int = MAX_CONCURRENT_FETCHES,
    ) -> None:
        self.roots = list(roots) if roots is not None else certifi_roots()
        if not self.roots:
            raise ValueError("SnsVerifier needs at least one trusted root")
        if not max_age > 0:
            raise ValueError("max_age must be a positive number of seconds")
        self._store = Store(self.roots)
        self._now = now if now is not None else _utcnow
        self.topics = tuple(topics)
        self._topics = [glob_pattern(topic, within=":") for topic in self.topics]
        self.max_age = timedelta(seconds=max_age)
        #: Validated keys by normalised SigningCertURL.
        self.chains = ChainCache(
            fetch if fetch is not None else fetch_chain,
            check_signing_cert_url,
            self._validate,
            size=cache_size,
            max_concurrent_fetches=max_concurrent_fetches,
        )

    def verify(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The parsed, verified message, or an SnsVerificationFailed naming the reason."""
        if (header(headers, RAW_DELIVERY_HEADER) or "").lower() == "true":
            raise SnsRaw("raw message delivery is not signed; refused")
        declared = header(headers, MESSAGE_TYPE_HEADER)
        if not declared:
            raise SnsHeaders(f"{MESSAGE_TYPE_HEADER} header is missing")
        message = _parse(body)
        kind = message.get("Type")
        if not isinstance(kind, str):
            raise SnsMalformed("message has no Type")
        if kind != declared:
            raise SnsHeaders(f"{MESSAGE_TYPE_HEADER} header is not the message's Type")
        if kind not in SIGNED_FIELDS:
            raise SnsMalformed("message Type is not one SNS sends")
        for name in SIGNED_FIELDS[kind]:
            value = message.get(name)
            # AWS's own validators sign Subject only when it is set: null is "not set".
            if value is None and name in OPTIONAL_FIELDS:
                continue
            if not isinstance(value, str):
                raise SnsMalformed(f"signed field {name} is missing or not a string")
        version = message.get("SignatureVersion")
        algorithm = ALGORITHMS.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise SnsSignature("SignatureVersion is missing or not 1 or 2")
        signature_b64 = message.get("Signature")
        if not isinstance(signature_b64, str) or not signature_b64:
            raise SnsSignature("message has no Signature")
        try:  # before the key: a signature that is not even base64 costs no fetch
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            raise SnsSignature("Signature is not base64") from None
        url = message.get("SigningCertURL")
        if not isinstance(url, str):
            raise SnsCertUrl("message has no SigningCertURL")
        now = self._clock()
        key = self.leaf_key(url, now)
        try:
            key.verify(signature, string_to_sign(message), _PADDING, algorithm)
        except InvalidSignature:
            raise SnsSignature("signature does not match the message") from None
        self.chains.signature_verified(url)  # a genuine signature: SNS's own chain
        topic = message["TopicArn"]
        if not self.topic_allowed(topic):
            raise SnsTopic("topic is not allowed here", detail=f"topic {topic} is not allowlisted")
        self._check_age(message["Timestamp"], now)
        return message

    def topic_allowed(self, topic_arn: str) -> bool:
        """Whether `topic_arn` matches a configured glob (never, with none configured)."""
        return any(pattern.fullmatch(topic_arn) for pattern in self._topics)

    def leaf_key(self, url: str, now: datetime | None = None) -> RSAPublicKey:
        """The validated leaf key for a SigningCertURL, cached or fetched and validated once."""
        try:
            return self.chains.key(url, now or self._clock()).key
        except SnsVerificationFailed:
            raise
        except CertUrlInvalid as exc:  # cannot happen with SNS's rule; mapped all the same
            raise SnsCertUrl(exc.message, detail=exc.detail) from None
        except CertFetchFailed as exc:
            raise SnsCertFetch(exc.message, detail=exc.detail) from None
        except VerificationFailed as exc:
            raise SnsChain(exc.message, detail=exc.detail) from None

    def mark_known(self, urls: Iterable[str]) -> list[str]:
        """Declare SigningCertURLs the operator trusts (local chains); see ChainCache."""
        return self.chains.mark_known(urls)

    def _clock(self) -> datetime:
        now = self._now()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    def _check_age(self, timestamp: str, now: datetime) -> None:
        try:
            sent = datetime.fromisoformat(timestamp)
        except ValueError:
            raise SnsMalformed("Timestamp is not an ISO 8601 time") from None
        if sent.tzinfo is None:
            raise SnsMalformed("Timestamp has no time zone")
        if now - sent > self.max_age:
            raise SnsStale("message is too old", detail=f"message sent at {timestamp}; too old")
        if sent - now > MAX_FUTURE:
            raise SnsStale("message is from the future", detail=f"message dated {timestamp}")

    def _validate(self, pem: bytes, now: datetime) -> SigningKey:
        try:
            return validate_chain(pem, now, self._store, _sns_name)
        except VerificationFailed as exc:
            # Every chain defect is one reason for SNS; the detail keeps which one.
            raise SnsChain(
                "signing certificate chain is not trusted",
                detail=f"{exc.reason}: {exc.detail or exc.message}",
            ) from None


def _parse(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise SnsMalformed("body is not JSON") from None
    if not isinstance(message, dict):
        raise SnsMalformed("body is not a JSON object")
    return message
