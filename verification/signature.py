"""Alexa's request signature, as an ASK SDK verifier built on `cryptography` alone.

Per request: the signature header, Amazon's URL rules, then the leaf key for
that URL, then one RSA PKCS#1 v1.5 verification over the body bytes exactly
as received. Getting the leaf key is the expensive part (fetch, parse, path
validation), so the *validated* key is cached per normalised URL until the
path's earliest notAfter, measured with the injected clock, in a
`ChainCache` that keeps unsigned floods from costing fetches or evicting the
chains Alexa uses. A warm request is a few dict lookups, an expiry compare and
one RSA verify.
"""

from __future__ import annotations

import base64
import binascii
import threading
import warnings
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import certifi
from ask_sdk_webservice_support.verifier import AbstractVerifier
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import DNSName, PolicyBuilder, Store, VerificationError

from verification.certurl import check_cert_url
from verification.chains import (
    CACHE_SIZE,
    MAX_CONCURRENT_FETCHES,
    ChainCache,
    SigningKey,
)
from verification.errors import (
    CertExpired,
    CertNotYetValid,
    ChainInvalid,
    HeadersMissing,
    SanMismatch,
    SignatureInvalid,
    VerificationFailed,
)
from verification.fetch import fetch_chain

SIGNATURE_256_HEADER = "Signature-256"
SIGNATURE_SHA1_HEADER = "Signature"
CERT_URL_HEADER = "SignatureCertChainUrl"
ALEXA_SAN = "echo-api.amazon.com"

_PADDING = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
_SHA1 = hashes.SHA1()

_certifi_roots: list[x509.Certificate] | None = None
_certifi_lock = threading.Lock()


def certifi_roots() -> list[x509.Certificate]:
    """certifi's bundle as certificates, parsed once per process."""
    global _certifi_roots
    with _certifi_lock:
        if _certifi_roots is None:
            with open(certifi.where(), "rb") as bundle, warnings.catch_warnings():
                # A few roots have non-positive serials; cryptography warns about
                # each, which would fail every `-W error` run for data we do not own.
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                _certifi_roots = x509.load_pem_x509_certificates(bundle.read())
        return list(_certifi_roots)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SignatureVerifier(AbstractVerifier):
    """Verify `Signature-256` (or, with `allow_sha1`, legacy `Signature`) against Amazon's chain.

    `roots` are the trusted certificates (certifi's by default), `fetch(url)
    -> bytes` gets a chain (the HTTPS fetcher by default), `now()` returns an
    aware datetime (the system clock by default).
    """

    def __init__(
        self,
        roots: Iterable[x509.Certificate] | None = None,
        fetch: Callable[[str], bytes] | None = None,
        now: Callable[[], datetime] | None = None,
        allow_sha1: bool = False,
        *,
        cache_size: int = CACHE_SIZE,
        max_concurrent_fetches: int = MAX_CONCURRENT_FETCHES,
    ) -> None:
        self.roots = list(roots) if roots is not None else certifi_roots()
        if not self.roots:
            raise ValueError("SignatureVerifier needs at least one trusted root")
        self._store = Store(self.roots)
        self._fetch = fetch if fetch is not None else fetch_chain
        self._now = now if now is not None else _utcnow
        self.allow_sha1 = allow_sha1
        #: Validated keys by normalised URL (Amazon's rules normalise and refuse).
        self.chains = ChainCache(
            self._fetch,
            check_cert_url,
            self._validate,
            size=cache_size,
            max_concurrent_fetches=max_concurrent_fetches,
        )

    def verify(
        self, headers: Any, serialized_request_env: str, deserialized_request_env: Any
    ) -> None:
        signature_b64, algorithm = self._signature_header(headers)
        url = header(headers, CERT_URL_HEADER)
        if not url:
            raise HeadersMissing(f"{CERT_URL_HEADER} header is missing")
        try:  # before the key: a signature that is not even base64 costs no fetch
            signature = base64.b64decode(signature_b64, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureInvalid("signature header is not base64") from None
        key = self.leaf_key(url)
        body = (
            serialized_request_env.encode("utf-8")
            if isinstance(serialized_request_env, str)
            else bytes(serialized_request_env)
        )
        try:
            key.verify(signature, body, _PADDING, algorithm)
        except InvalidSignature:
            raise SignatureInvalid("signature does not match the request body") from None
        self.chains.signature_verified(url)  # a genuine signature: Alexa's own chain

    def _signature_header(self, headers: Any) -> tuple[str, hashes.HashAlgorithm]:
        """The signature to check and its hash: Signature-256 whenever it is present at all.

        Present means used: a `Signature-256` header, even empty or blank, is the one
        checked (blank is refused as `headers`); the legacy SHA-1 `Signature` is read only
        when `Signature-256` is absent and `allow_sha1` is on. A fallback would let anyone
        who can blank one header downgrade the request to SHA-1.
        """
        value = header(headers, SIGNATURE_256_HEADER)
        if value is not None:
            if not value:
                raise HeadersMissing(f"{SIGNATURE_256_HEADER} header is empty")
            return value, _SHA256
        if self.allow_sha1:
            value = header(headers, SIGNATURE_SHA1_HEADER)
            if value:
                return value, _SHA1
            raise HeadersMissing(
                f"{SIGNATURE_256_HEADER} and {SIGNATURE_SHA1_HEADER} headers are missing"
            )
        raise HeadersMissing(f"{SIGNATURE_256_HEADER} header is missing")

    def leaf_key(self, url: str) -> RSAPublicKey:
        """The validated leaf key for `url`, from the cache or fetched and validated once."""
        now = self._now()
        if now.tzinfo is None:  # an injected clock may be naive; Alexa's times are UTC
            now = now.replace(tzinfo=UTC)
        return self.chains.key(url, now).key

    def mark_known(self, urls: Iterable[str]) -> list[str]:
        """Declare chain URLs the operator trusts to be used (local chains); see ChainCache."""
        return self.chains.mark_known(urls)

    def _validate(self, pem: bytes, now: datetime) -> SigningKey:
        """Parse and validate a PEM chain (leaf first) at `now`; return its leaf key."""
        return validate_chain(pem, now, self._store, _alexa_name)

    def prefetch(self, urls: Iterable[str]) -> list[tuple[str, VerificationFailed | None]]:
        """Fetch, validate and cache each URL now (at start); report each URL's failure.

        Listed URLs are known whether or not this first fetch works: the operator
        named them, and a later retry must get its fetch capacity.
        """
        urls = list(urls)
        self.mark_known(urls)
        results: list[tuple[str, VerificationFailed | None]] = []
        for url in urls:
            try:
                self.leaf_key(url)
            except VerificationFailed as exc:
                results.append((url, exc))
            else:
                results.append((url, None))
        return results


def _alexa_name(names: set[str]) -> str | None:
    return ALEXA_SAN if ALEXA_SAN in names else None


def validate_chain(
    pem: bytes, now: datetime, store: Store, signer_name: Callable[[set[str]], str | None]
) -> SigningKey:
    """Parse and validate a PEM chain (leaf first) at `now` against `store`; its leaf key.

    `signer_name(san_dns_names)` picks the name the leaf must be valid for from
    its SAN (lower-cased, literal) or returns None when none is the sender's.
    Shared by Alexa's and SNS's verifiers; each brings its own names.
    """
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except Exception:  # ValueError, or a deprecation warning turned error by -W
        raise ChainInvalid("certificate chain is not a PEM chain") from None
    if not certificates:
        raise ChainInvalid("certificate chain is empty")
    leaf, intermediates = certificates[0], certificates[1:]
    # Explicit checks first so each failure has its own reason code; the
    # policy verifier below would fold them all into one error.
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now > not_after:
        raise CertExpired(
            "signing certificate has expired",
            detail=f"signing certificate expired at {not_after.isoformat()}",
        )
    if now < not_before:
        raise CertNotYetValid(
            "signing certificate is not valid yet",
            detail=f"signing certificate valid from {not_before.isoformat()}",
        )
    names = _san_dns_names(leaf)
    name = signer_name(names)
    if name is None:
        shown = ", ".join(sorted(names)) or "no DNS names"
        raise SanMismatch(
            "signing certificate SAN does not name the sender",
            detail=f"signing certificate SAN does not name the sender ({shown})",
        )
    verifier = PolicyBuilder().store(store).time(now).build_server_verifier(DNSName(name))
    try:
        path = verifier.verify(leaf, intermediates)
    except VerificationError as exc:
        raise ChainInvalid(
            "certificate chain does not validate",
            detail=f"certificate chain does not validate: {exc}",
        ) from None
    _require_digital_signature(leaf)
    key = leaf.public_key()
    if not isinstance(key, RSAPublicKey):
        raise ChainInvalid("signing certificate key is not RSA")
    # The key is trustworthy only while the whole validated path is: an
    # intermediate expiring before the leaf ends the cache entry too.
    return SigningKey(
        key,
        max(certificate.not_valid_before_utc for certificate in path),
        min(certificate.not_valid_after_utc for certificate in path),
    )


def _san_dns_names(certificate: x509.Certificate) -> set[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    except ValueError:  # a malformed extension
        raise ChainInvalid("signing certificate extensions do not parse") from None
    # DNS names compare case-insensitively, but only literally: "*.amazon.com" is not ours.
    return {name.lower() for name in san.value.get_values_for_type(x509.DNSName)}


def _require_digital_signature(certificate: x509.Certificate) -> None:
    """Refuse a key its certificate does not allow to verify signatures (RFC 5280 4.2.1.3).

    The server policy only forbids keyCertSign on a leaf, so a keyEncipherment-only
    leaf would pass it. An absent KeyUsage restricts nothing and is accepted.
    """
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    except ValueError:  # a malformed extension
        raise ChainInvalid("signing certificate extensions do not parse") from None
    if not usage.digital_signature:
        raise ChainInvalid(
            "certificate chain does not validate",
            detail="signing certificate KeyUsage does not include digitalSignature",
        )


def header(headers: Any, name: str) -> str | None:
    """A header by name, case-insensitively, from werkzeug Headers or a plain dict."""
    value = headers.get(name)  # werkzeug's Headers.get is already case-insensitive
    if value is None and isinstance(headers, dict):
        lowered = name.lower()
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == lowered:
                value = candidate
                break
    if value is None:
        return None
    # Present but not text counts as present and empty, never as absent.
    return value.strip() if isinstance(value, str) else ""
