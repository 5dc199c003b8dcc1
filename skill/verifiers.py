"""The verifiers the server runs: Alexa's list (signature, timestamp, application id) and SNS's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ask_sdk_webservice_support.verifier import AbstractVerifier
from cryptography import x509

from skill.settings import Settings
from verification import ApplicationIdVerifier, SignatureVerifier, SnsVerifier, TimestampVerifier
from verification.devca import DevCA, local_chains_fetcher
from verification.signature import certifi_roots

log = logging.getLogger("funker_dispatch")


def build_verifiers(settings: Settings) -> list[AbstractVerifier]:
    """Verifiers from settings; built once per app, so roots and caches are shared."""
    verifiers: list[AbstractVerifier] = []
    if settings.skill.verify_signature:
        verifiers.append(signature_verifier(settings))
    if settings.skill.verify_timestamp:
        verifiers.append(TimestampVerifier())
    verifiers.append(ApplicationIdVerifier(settings.skill.application_ids))
    return verifiers


def _trust(
    settings: Settings, dev_chain: Callable[[DevCA], tuple[str, str | Path]]
) -> tuple[list[x509.Certificate] | None, dict[str, Path]]:
    """Roots (None: certifi's) and local chains: the operator's, plus the dev CA's
    `dev_chain` (its Alexa or its SNS leaf) for the embedded default."""
    config = settings.verification
    roots = load_roots(config.trusted_roots) if config.trusted_roots else None
    local = {url: Path(path) for url, path in config.local_chains.items()}
    if settings.trust_dev_ca:
        # Only the embedded default trusts the dev CA without being told to.
        ca = DevCA.load_or_create()
        url, path = dev_chain(ca)
        local[url] = Path(path)
        roots = [*(roots or certifi_roots()), ca.root]
    return roots, local


def signature_verifier(settings: Settings) -> SignatureVerifier:
    roots, local = _trust(settings, lambda ca: (ca.chain_url, ca.chain_path))
    fetch = local_chains_fetcher(local) if local else None
    allow_sha1 = settings.verification.allow_sha1
    verifier = SignatureVerifier(roots=roots, fetch=fetch, allow_sha1=allow_sha1)
    # The operator mapped these: they keep their cache entries and fetch capacity (§14).
    verifier.mark_known(local)
    return verifier


def sns_verifier(settings: Settings) -> SnsVerifier | None:
    """The SNS verifier for `[triggers.sns]`, or None when that endpoint is off.

    It trusts what Alexa's verifier trusts (`trusted_roots`, `local_chains`,
    the dev CA for the embedded default) but keeps its own chain cache: SNS
    URLs normalise by SNS's rule, and each sender's flood stays its own.
    """
    sns = settings.triggers.sns
    if sns is None:
        return None
    roots, local = _trust(settings, lambda ca: (ca.sns_chain_url, ca.sns_chain_path))
    fetch = local_chains_fetcher(local) if local else None
    verifier = SnsVerifier(roots=roots, fetch=fetch, topics=sns.topics, max_age=sns.max_age)
    verifier.mark_known(local)  # Alexa's URLs among them are skipped: SNS's rule refuses them
    return verifier


def load_roots(paths: tuple[str, ...]) -> list[x509.Certificate]:
    roots: list[x509.Certificate] = []
    for path in paths:
        roots.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
    return roots
