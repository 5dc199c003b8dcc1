"""GitHub webhook deliveries, verified as GitHub signs them: HMAC-SHA256 of the raw body (§11).

GitHub sends `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body, keyed
with the webhook's secret>`. Only that header counts. The legacy
`X-Hub-Signature` (HMAC-SHA1) is never accepted: not alone, and not beside a
wrong SHA-256 one, so a downgrade gains an attacker nothing. The digest is
compared in constant time, so a timing side channel reveals nothing of the
expected value.

Only the signature is checked here; the body is the caller's to parse
(`triggers/github.py`). Deliveries carry no signed timestamp: a captured
delivery can be replayed, and the per-id memory of `triggers/fanout.py` is
what catches that within `max_age`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from verification.errors import GitHubSignatureInvalid
from verification.signature import header

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_HEADER = "X-Hub-Signature"
_PREFIX = "sha256="
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body` under `secret`."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


class GitHubSignature:
    """`verify(headers, body)` returns None for a delivery signed with `secret`, else raises.

    The failure is a `GitHubSignatureInvalid` (reason `github-signature`, HTTP 401).
    """

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or not secret:
            raise ValueError("a GitHub webhook secret is non-empty bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "GitHubSignature(secret=<hidden>)"  # never the secret, in a log or a traceback

    def check_header(self, headers: Mapping[str, str]) -> bytes:
        """The digest `X-Hub-Signature-256` claims, if it is well-formed; else the refusal.

        Needs no body: a server can refuse a delivery on this before reading it.
        """
        given = header(headers, SIGNATURE_HEADER)
        if not given:
            legacy = header(headers, LEGACY_HEADER)
            raise GitHubSignatureInvalid(
                f"{SIGNATURE_HEADER} header is missing",
                detail="only the legacy SHA-1 X-Hub-Signature was sent; it is never accepted"
                if legacy
                else None,
            )
        digest = given.removeprefix(_PREFIX)
        if digest == given or len(digest) != 64 or not _HEX_DIGITS.issuperset(digest):
            raise GitHubSignatureInvalid(
                f"{SIGNATURE_HEADER} is not sha256=<64 hex digits>",
                detail=f"a {len(given)}-character {SIGNATURE_HEADER}",
            )
        return bytes.fromhex(digest)

    def hasher(self) -> hmac.HMAC:
        """An HMAC to feed the body into as it arrives; its digest() goes to `verify`."""
        return hmac.new(self._secret, digestmod=hashlib.sha256)

    def verify(
        self, headers: Mapping[str, str], body: bytes, *, digest: bytes | None = None
    ) -> None:
        """Refuse unless `body` is what the webhook's secret signed.

        `digest` is the body's HMAC when it was computed as the body arrived
        (`hasher()`, the server's bridge); without it, it is computed here.
        """
        claimed = self.check_header(headers)
        if digest is None:
            digest = hmac.new(self._secret, body, hashlib.sha256).digest()
        if not hmac.compare_digest(claimed, digest):
            raise GitHubSignatureInvalid(
                "signature does not match the body",
                detail="wrong webhook secret, or the body changed on the way",
            )
