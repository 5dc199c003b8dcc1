"""Test certificate authorities: root → intermediate → leaf chains, good and deliberately bad.

Certificates follow the web-PKI profile cryptography's verifier enforces
(SKI/AKI, critical basicConstraints, key usages, serverAuth on leaves), so a
test fails for the one defect it builds in and nothing else. RSA keys are
slow to generate, so a few are made once per process and shared; tests that
need distinct keys ask for another `key_index`.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ALEXA_SAN = "echo-api.amazon.com"
CHAIN_URL = "https://s3.amazonaws.com/echo.api/test-chain.pem"
#: A fixed "now" for tests that build chains and verify with an injected clock.
NOW = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
#: "default" gives the profile's usual extension for the certificate's role; None leaves it out.
Default = Literal["default"]
LEAF_KEY_USAGE = ("digital_signature", "key_encipherment")


@functools.cache
def rsa_key(key_index: int = 0) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key shared by every test asking for this index."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, able to issue more when it is a CA."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "funker-dispatch tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{name: enabled.get(name, False) for name in names})


def issue(
    issuer: Issued | None,
    common_name: str,
    *,
    ca: bool,
    key: PrivateKey | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    path_length: int | None = None,
    key_usage: Iterable[str] | Default | None = "default",
    extended_key_usage: Iterable[x509.ObjectIdentifier] | Default | None = "default",
) -> Issued:
    """One certificate; `issuer=None` makes it self-signed (a root).

    `key_usage` names the KeyUsage bits to set (`"key_encipherment"`, ...) and
    `extended_key_usage` the EKU OIDs; None omits the extension.
    """
    key = key or ec_key()
    not_before = not_before or NOW - timedelta(days=30)
    not_after = not_after or NOW + timedelta(days=365)
    subject = _name(common_name)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if key_usage == "default":
        key_usage = ("key_cert_sign", "crl_sign") if ca else LEAF_KEY_USAGE
    if key_usage is not None:
        builder = builder.add_extension(_key_usage(**dict.fromkeys(key_usage, True)), True)
    if extended_key_usage == "default":
        extended_key_usage = None if ca else (ExtendedKeyUsageOID.SERVER_AUTH,)
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)), False)
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def root(common_name: str = "Test Root", **options: object) -> Issued:
    return issue(None, common_name, ca=True, **options)  # type: ignore[arg-type]


def intermediate(issuer: Issued, common_name: str = "Test Intermediate", **options: object):
    return issue(issuer, common_name, ca=True, path_length=0, **options)  # type: ignore[arg-type]


def alexa_leaf(
    issuer: Issued, *, dns_names: tuple[str, ...] = (ALEXA_SAN,), key_index: int = 0, **options
) -> Issued:
    """An echo-api.amazon.com signing certificate (RSA, as Alexa's signatures are)."""
    key = rsa_key(key_index)
    return issue(issuer, ALEXA_SAN, ca=False, key=key, dns_names=dns_names, **options)


def chain_pem(*issued: Issued) -> bytes:
    """A PEM chain, leaf first, as Amazon serves it."""
    return b"".join(item.pem for item in issued)


@dataclass(frozen=True)
class AlexaChain:
    """root → intermediate → leaf, plus a signer that makes Alexa-style headers."""

    root: Issued
    intermediate: Issued
    leaf: Issued
    url: str = CHAIN_URL

    @property
    def pem(self) -> bytes:
        return chain_pem(self.leaf, self.intermediate)

    def sign(self, body: bytes, *, sha1: bool = False) -> dict[str, str]:
        return sign(self.leaf, body, url=self.url, sha1=sha1)


def alexa_chain(*, url: str = CHAIN_URL, **leaf_options: object) -> AlexaChain:
    """A fresh trusted-looking chain; `leaf_options` go to `alexa_leaf`."""
    top = root()
    middle = intermediate(top)
    return AlexaChain(top, middle, alexa_leaf(middle, **leaf_options), url)  # type: ignore[arg-type]


def sign(leaf: Issued, body: bytes, *, url: str = CHAIN_URL, sha1: bool = False) -> dict[str, str]:
    """Headers for `body` signed by `leaf`: `Signature-256`, or only legacy `Signature` if sha1."""
    assert isinstance(leaf.key, rsa.RSAPrivateKey)
    algorithm = hashes.SHA1() if sha1 else hashes.SHA256()
    signature = base64.b64encode(leaf.key.sign(body, padding.PKCS1v15(), algorithm)).decode()
    header = "Signature" if sha1 else "Signature-256"
    return {header: signature, "SignatureCertChainUrl": url}


def valid_today() -> dict[str, datetime]:
    """Validity around the real clock, for certificates OpenSSL itself checks (TLS servers)."""
    today = datetime.now(UTC)
    return {"not_before": today - timedelta(days=1), "not_after": today + timedelta(days=30)}


def tls_root(common_name: str = "Local TLS Root") -> Issued:
    """A root for local TLS test servers, valid by the real clock."""
    return root(common_name, **valid_today())


def server_certificate(issuer: Issued, host: str = "127.0.0.1") -> Issued:
    """A TLS server certificate for a local test server (IP SAN plus localhost), valid today."""
    return issue(
        issuer, host, ca=False, dns_names=("localhost",), ip_addresses=(host,), **valid_today()
    )


# --- SNS ------------------------------------------------------------------------------------

SNS_SAN = "sns.amazonaws.com"
SNS_CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem"
SNS_TOPIC = "arn:aws:sns:us-east-1:123456789012:uploads"


def sns_leaf(
    issuer: Issued, *, dns_names: tuple[str, ...] = (SNS_SAN,), key_index: int = 1, **options
) -> Issued:
    """An sns.amazonaws.com signing certificate (RSA, as SNS's signatures are)."""
    return issue(issuer, SNS_SAN, ca=False, key=rsa_key(key_index), dns_names=dns_names, **options)


@dataclass(frozen=True)
class SnsSigner:
    """root → intermediate → SNS leaf, and a signer that stamps messages as SNS does."""

    root: Issued
    intermediate: Issued
    leaf: Issued
    url: str = SNS_CERT_URL

    @property
    def pem(self) -> bytes:
        return chain_pem(self.leaf, self.intermediate)

    def sign(self, message: dict, *, version: str = "2", url: str | None = None) -> dict:
        """`message` with SignatureVersion, SigningCertURL and Signature over its signed fields."""
        from verification.sns import string_to_sign

        signed = {**message, "SignatureVersion": version, "SigningCertURL": url or self.url}
        assert isinstance(self.leaf.key, rsa.RSAPrivateKey)
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        raw = self.leaf.key.sign(string_to_sign(signed), padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(raw).decode()
        return signed


def sns_signer(
    *,
    url: str = SNS_CERT_URL,
    trusted_root: Issued | None = None,
    today: bool = False,
    **leaf_options: object,
) -> SnsSigner:
    """A fresh SNS signing chain (under `trusted_root` when given); options go to `sns_leaf`.

    `today`: every certificate valid by the real clock, for a real server to verify.
    """
    dates: dict[str, datetime] = valid_today() if today else {}
    top = trusted_root or root("Test SNS Root", **dates)
    middle = intermediate(top, "Test SNS Intermediate", **dates)
    leaf = sns_leaf(middle, **{**dates, **leaf_options})  # type: ignore[arg-type]
    return SnsSigner(top, middle, leaf, url)


def sns_timestamp(when: datetime) -> str:
    """A Timestamp as SNS writes it: UTC, milliseconds, Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def sns_notification(
    message: str,
    *,
    topic: str = SNS_TOPIC,
    subject: str | None = None,
    message_id: str = "6c1f0d5e-2f59-5e6f-9a2b-6b2a1c0d9e01",
    when: datetime = NOW,
) -> dict:
    """An unsigned SNS Notification as SNS delivers it over HTTP/S."""
    region = topic.split(":")[3]
    body = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic,
        "Message": message,
        "Timestamp": sns_timestamp(when),
        "UnsubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
        f"&SubscriptionArn={topic}:0d6e1c53-5b8b-4a70-b7a2-8f2e7d5c1a11",
    }
    if subject is not None:
        body["Subject"] = subject
    return body


def sns_confirmation(
    *,
    topic: str = SNS_TOPIC,
    kind: str = "SubscriptionConfirmation",
    subscribe_url: str | None = None,
    token: str = "2336412f37fb687f5d51e6e2425dacbba2ec5b2f",
    message_id: str = "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    when: datetime = NOW,
) -> dict:
    """An unsigned SubscriptionConfirmation (or UnsubscribeConfirmation) as SNS sends it."""
    region = topic.split(":")[3]
    url = subscribe_url or (
        f"https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription"
        f"&TopicArn={topic}&Token={token}"
    )
    return {
        "Type": kind,
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic,
        "Message": f"You have chosen to subscribe to the topic {topic}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": url,
        "Timestamp": sns_timestamp(when),
    }
