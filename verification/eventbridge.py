"""EventBridge API destination deliveries, authenticated as the connection sends them (docs/events).

An API destination calls an HTTPS endpoint with the credentials of an
EventBridge *connection*: an API key (a header name and value the operator
chose) or Basic (username and password). EventBridge signs nothing, so the
credential is the whole proof: it is compared in constant time, and a
missing or wrong one is `eventbridge-auth` (HTTP 401). What the body says
is the caller's to parse (`triggers/eventbridge.py`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from verification.errors import EventBridgeAuthFailed
from verification.signature import header

AUTHORIZATION = "Authorization"


@dataclass(frozen=True)
class EventBridgeAuth:
    """`verify(headers)` returns None when the connection's credential is there, else raises.

    Build one with `EventBridgeAuth.api_key(header, key)` or
    `EventBridgeAuth.basic(username, password)`.
    """

    header: str
    _key: bytes = field(default=b"", repr=False)
    _username: bytes = field(default=b"", repr=False)
    _password: bytes = field(default=b"", repr=False)

    @classmethod
    def api_key(cls, header: str, key: str) -> EventBridgeAuth:
        if not header or not key:
            raise ValueError("an API key connection has a header name and a key")
        return cls(header, _key=key.encode("utf-8"))

    @classmethod
    def basic(cls, username: str, password: str) -> EventBridgeAuth:
        if not username or not password or ":" in username:
            raise ValueError("Basic needs a username without ':' and a password")
        return cls(AUTHORIZATION, _username=username.encode(), _password=password.encode())

    @property
    def kind(self) -> str:
        """Which credential the connection sends: "api-key" or "basic"."""
        return "basic" if self._username else "api-key"

    def verify(self, headers: Mapping[str, str]) -> None:
        given = header(headers, self.header)
        if not given:
            raise EventBridgeAuthFailed(
                "credential missing", detail=f"no {self.header} header ({self.kind})"
            )
        if self.kind == "api-key":
            if not hmac.compare_digest(given.encode("utf-8", "replace"), self._key):
                raise EventBridgeAuthFailed(
                    "credential refused", detail=f"wrong API key in {self.header}"
                )
            return
        username, password = _basic(given)
        # Both compared whatever the first says: how far it got is not measurable.
        right = hmac.compare_digest(username, self._username) & hmac.compare_digest(
            password, self._password
        )
        if not right:
            raise EventBridgeAuthFailed("credential refused", detail="wrong Basic credentials")


def _basic(value: str) -> tuple[bytes, bytes]:
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise EventBridgeAuthFailed(
            "credential refused", detail="Authorization is not Basic credentials"
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise EventBridgeAuthFailed(
            "credential refused", detail="Basic credentials are not base64"
        ) from None
    username, colon, password = decoded.partition(b":")
    if not colon:
        raise EventBridgeAuthFailed("credential refused", detail="Basic credentials have no ':'")
    return username, password
