"""A development CA, so local requests are signed and verified like Alexa's, not waved through.

`DevCA.load_or_create(home)` keeps a root, an intermediate and an
`echo-api.amazon.com` leaf under `home/devca/`. The simulator signs with the
leaf; a server told to trust the root maps `chain_url` (an
`https://s3.amazonaws.com/echo.api/...` URL, so the real URL rules apply) to
`chain_path` through `local_chains_fetcher` instead of fetching it.

Beside it, under `devca/sns/`, an `sns.amazonaws.com` leaf signs SNS messages
(`sign_sns`, for `events send`); its `sns_chain_url` is an
`https://sns.us-east-1.amazonaws.com/...pem` URL, so SNS's URL rule applies
to it just the same. A CA made before SNS support gains it on first load.

Creation is atomic: everything is written into a temporary directory beside
the target and renamed into place, and a process that loses the race loads
the winner's CA. The leaf certificate is reissued when it has less than 30
days left, *with the same key*, so a server still holding the old leaf in its
cache verifies signatures made after the renewal.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from verification.certurl import check_cert_url
from verification.errors import CertFetchFailed, CertUrlInvalid, SnsCertUrl
from verification.fetch import fetch_chain
from verification.sns import string_to_sign
from verification.snsurl import check_signing_cert_url

CA_DIR = "devca"
CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
# Certificates start a little in the past so a clock a few minutes behind accepts them.
BACKDATE = timedelta(hours=1)
LEAF_SAN = "echo-api.amazon.com"

ROOT_CERT, ROOT_KEY = "root.pem", "root.key"
INTERMEDIATE_CERT, INTERMEDIATE_KEY = "intermediate.pem", "intermediate.key"
LEAF_KEY, CHAIN = "leaf.key", "chain.pem"
SNS_DIR = "sns"  # the SNS leaf's key and chain, created apart (and later) from the rest
SNS_SAN = "sns.amazonaws.com"
SNS_REGION = "us-east-1"

CAKey = ec.EllipticCurvePrivateKey


def default_home() -> Path:
    """`$FUNKER_DISPATCH_HOME`, else `$XDG_STATE_HOME/funker-dispatch`, else ~/.local/state/…."""
    home = os.environ.get("FUNKER_DISPATCH_HOME")
    if home:
        return Path(home)
    state = os.environ.get("XDG_STATE_HOME")  # empty means unset, per the XDG spec
    if state:
        return Path(state) / "funker-dispatch"
    return Path.home() / ".local" / "state" / "funker-dispatch"


@dataclass(frozen=True)
class DevCA:
    """A loaded development CA: what a signer and a trusting server need."""

    path: Path
    root: x509.Certificate
    leaf: x509.Certificate
    chain_path: Path
    chain_url: str
    _leaf_key: rsa.RSAPrivateKey = field(repr=False)
    sns_leaf: x509.Certificate
    sns_chain_path: Path
    sns_chain_url: str
    _sns_leaf_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def load_or_create(
        cls, home: Path | str | None = None, *, now: Callable[[], datetime] | None = None
    ) -> DevCA:
        """Load the CA under `home/devca/`, creating it (atomically) the first time."""
        clock = now or (lambda: datetime.now(UTC))
        base = Path(home) if home is not None else default_home()
        base.mkdir(parents=True, exist_ok=True)
        target = base / CA_DIR
        if not (target / CHAIN).exists():
            _create(base, target, clock())
        return _load(target, clock())

    def sign(self, body: bytes) -> dict[str, str]:
        """The headers Alexa would send with `body`: `Signature-256` and `SignatureCertChainUrl`."""
        if not isinstance(body, bytes | bytearray):
            raise TypeError("sign() takes the body bytes exactly as they will be sent")
        signature = self._leaf_key.sign(bytes(body), padding.PKCS1v15(), hashes.SHA256())
        return {
            "Signature-256": base64.b64encode(signature).decode("ascii"),
            "SignatureCertChainUrl": self.chain_url,
        }

    def sign_sns(self, message: Mapping[str, Any], *, version: str = "2") -> dict[str, Any]:
        """`message` as SNS would deliver it signed: SignatureVersion, SigningCertURL, Signature.

        `version` "2" signs with SHA256withRSA, "1" with SHA1withRSA, as SNS does.
        """
        algorithms = {"1": hashes.SHA1(), "2": hashes.SHA256()}
        if version not in algorithms:
            raise ValueError(f"SignatureVersion must be 1 or 2, not {version!r}")
        signed = {
            **message,
            "SignatureVersion": version,
            "SigningCertURL": self.sns_chain_url,
        }
        signed.pop("Signature", None)
        raw = self._sns_leaf_key.sign(
            string_to_sign(signed), padding.PKCS1v15(), algorithms[version]
        )
        signed["Signature"] = base64.b64encode(raw).decode("ascii")
        return signed


def local_chains_fetcher(
    mapping: Mapping[str, Path | str], fallback: Callable[[str], bytes] | None = fetch_chain
) -> Callable[[str], bytes]:
    """A `fetch(url)` that reads mapped chain URLs from local files, else uses `fallback`.

    Keys are compared after the URL rules' normalization (Alexa's or SNS's,
    whichever the URL obeys), because each verifier hands its fetcher the
    normalized URL. The file is read at each
    fetch (the verifier caches the validated key), so a renewed dev leaf is
    picked up once the cached one expires. `fallback=None` refuses unmapped URLs.
    """
    files: dict[str, Path] = {}
    for url, path in mapping.items():
        files[_normalised(url)] = Path(path)

    def fetch(url: str) -> bytes:
        path = files.get(url)
        if path is None:
            if fallback is None:
                raise CertFetchFailed("certificate URL is not mapped to a local chain")
            return fallback(url)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CertFetchFailed(
                "local certificate chain is unreadable",
                detail=f"local chain {path} unreadable: {exc.strerror}",
            ) from None

    return fetch


def _normalised(url: str) -> str:
    try:
        return check_cert_url(url)
    except CertUrlInvalid:
        pass
    try:
        return check_signing_cert_url(url)
    except SnsCertUrl:
        return url  # neither sender's URL; only exact matches reach it


def _create(base: Path, target: Path, now: datetime) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".devca-", dir=base))  # mode 0700
    try:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name("funker-dispatch development root")
        root = _certificate(
            subject=root_name,
            issuer=root_name,
            public_key=root_key.public_key(),
            issuer_key=root_key,
            not_before=now - BACKDATE,
            not_after=now + CA_VALIDITY,
            ca=True,
        )
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        intermediate = _intermediate(root, root_key, intermediate_key.public_key(), now)
        # RSA: Alexa's signatures are RSA PKCS#1 v1.5, and so must ours be.
        leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf = _leaf(intermediate, intermediate_key, leaf_key.public_key(), now)
        _write(staging / ROOT_KEY, _private_pem(root_key), private=True)
        _write(staging / INTERMEDIATE_KEY, _private_pem(intermediate_key), private=True)
        _write(staging / LEAF_KEY, _private_pem(leaf_key), private=True)
        _write(staging / ROOT_CERT, _pem(root))
        _write(staging / INTERMEDIATE_CERT, _pem(intermediate))
        _write(staging / CHAIN, _pem(leaf) + _pem(intermediate))
        try:
            os.rename(staging, target)
        except OSError:
            # Another process renamed its CA into place first (ENOTEMPTY/EEXIST):
            # theirs is complete, so use it and drop ours.
            if not (target / CHAIN).exists():
                raise ValueError(
                    f"{target} exists but holds no complete development CA; remove it"
                ) from None
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _load(target: Path, now: datetime) -> DevCA:
    try:
        root = x509.load_pem_x509_certificate((target / ROOT_CERT).read_bytes())
        leaf_key = serialization.load_pem_private_key(
            (target / LEAF_KEY).read_bytes(), password=None
        )
        chain = x509.load_pem_x509_certificates((target / CHAIN).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"development CA at {target} is unreadable: {exc}") from None
    if not isinstance(leaf_key, rsa.RSAPrivateKey):
        raise ValueError(f"development CA at {target}: {LEAF_KEY} is not an RSA key")
    leaf, intermediate = chain[0], chain[-1]
    if intermediate.not_valid_after_utc - now < RENEW_BEFORE:
        intermediate = _renew_intermediate(target, root, intermediate, now)
        leaf = _renew_leaf(target, intermediate, leaf_key, now)
    elif leaf.not_valid_after_utc - now < RENEW_BEFORE:
        leaf = _renew_leaf(target, intermediate, leaf_key, now)
    sns_leaf, sns_key = _load_sns(target, intermediate, now)
    digest = hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()
    return DevCA(
        path=target,
        root=root,
        leaf=leaf,
        chain_path=target / CHAIN,
        # The root's fingerprint in the name: two dev CAs never share a URL,
        # so a verifier's per-URL cache cannot mix them up.
        chain_url=f"https://s3.amazonaws.com/echo.api/funker-dispatch-dev-{digest[:16]}.pem",
        _leaf_key=leaf_key,
        sns_leaf=sns_leaf,
        sns_chain_path=target / SNS_DIR / CHAIN,
        sns_chain_url=f"https://sns.{SNS_REGION}.amazonaws.com/"
        f"SimpleNotificationService-funker-dispatch-dev-{digest[:16]}.pem",
        _sns_leaf_key=sns_key,
    )


def _load_sns(
    target: Path, intermediate: x509.Certificate, now: datetime
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """The SNS leaf and its key, made (atomically, like the CA) when this CA has none yet."""
    folder = target / SNS_DIR
    if not (folder / CHAIN).exists():
        _create_sns(target, folder, intermediate, now)
    try:
        key = serialization.load_pem_private_key((folder / LEAF_KEY).read_bytes(), password=None)
        chain = x509.load_pem_x509_certificates((folder / CHAIN).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"development CA at {target}: SNS leaf is unreadable: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"development CA at {target}: {SNS_DIR}/{LEAF_KEY} is not an RSA key")
    leaf = chain[0]
    # A renewed intermediate (or a leaf close to expiry) means a new chain, same key.
    if chain[-1] != intermediate or leaf.not_valid_after_utc - now < RENEW_BEFORE:
        intermediate_key = _ca_key(target / INTERMEDIATE_KEY)
        leaf = _leaf(intermediate, intermediate_key, key.public_key(), now, san=SNS_SAN)
        _replace(folder / CHAIN, _pem(leaf) + _pem(intermediate))
    return leaf, key


def _create_sns(target: Path, folder: Path, intermediate: x509.Certificate, now: datetime) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".sns-", dir=target))  # mode 0700
    try:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf = _leaf(
            intermediate, _ca_key(target / INTERMEDIATE_KEY), key.public_key(), now, san=SNS_SAN
        )
        _write(staging / LEAF_KEY, _private_pem(key), private=True)
        _write(staging / CHAIN, _pem(leaf) + _pem(intermediate))
        try:
            os.rename(staging, folder)
        except OSError:
            # Another process made its SNS leaf first: keep theirs, key and chain together.
            if not (folder / CHAIN).exists():
                raise ValueError(f"{folder} exists but holds no SNS leaf; remove it") from None
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _renew_leaf(
    target: Path, intermediate: x509.Certificate, leaf_key: rsa.RSAPrivateKey, now: datetime
) -> x509.Certificate:
    intermediate_key = _ca_key(target / INTERMEDIATE_KEY)
    leaf = _leaf(intermediate, intermediate_key, leaf_key.public_key(), now)
    # Same key, new dates: concurrent renewals each write a valid chain; the last wins.
    _replace(target / CHAIN, _pem(leaf) + _pem(intermediate))
    return leaf


def _renew_intermediate(
    target: Path, root: x509.Certificate, old: x509.Certificate, now: datetime
) -> x509.Certificate:
    root_key = _ca_key(target / ROOT_KEY)
    intermediate = _intermediate(root, root_key, old.public_key(), now)
    _replace(target / INTERMEDIATE_CERT, _pem(intermediate))
    return intermediate


def _intermediate(
    root: x509.Certificate, root_key: CAKey, public_key: ec.EllipticCurvePublicKey, now: datetime
) -> x509.Certificate:
    return _certificate(
        subject=_name("funker-dispatch development intermediate"),
        issuer=root.subject,
        public_key=public_key,
        issuer_key=root_key,
        not_before=now - BACKDATE,
        not_after=min(now + CA_VALIDITY, root.not_valid_after_utc),
        ca=True,
        path_length=0,
    )


def _leaf(
    intermediate: x509.Certificate,
    intermediate_key: CAKey,
    public_key: rsa.RSAPublicKey,
    now: datetime,
    *,
    san: str = LEAF_SAN,
) -> x509.Certificate:
    return _certificate(
        subject=_name(san),
        issuer=intermediate.subject,
        public_key=public_key,
        issuer_key=intermediate_key,
        not_before=now - BACKDATE,
        not_after=min(now + LEAF_VALIDITY, intermediate.not_valid_after_utc),
        ca=False,
        san=san,
    )


def _certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer_key: CAKey,
    not_before: datetime,
    not_after: datetime,
    ca: bool,
    path_length: int | None = None,
    san: str | None = None,
) -> x509.Certificate:
    """One certificate in the web-PKI profile cryptography's verifier enforces."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        usage = _key_usage(key_cert_sign=True, crl_sign=True)
    else:
        usage = _key_usage(digital_signature=True, key_encipherment=True)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        ).add_extension(x509.SubjectAlternativeName([x509.DNSName(san or LEAF_SAN)]), False)
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(enabled)
    return x509.KeyUsage(**flags)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "funker-dispatch development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key(path: Path) -> CAKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not the development CA's EC key")
    return key


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _private_pem(key: CAKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    # Created with the final mode: a key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())  # complete on disk before the directory rename publishes it


def _replace(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)  # readers see the old chain or the new one, never half
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
