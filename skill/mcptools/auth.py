"""Who may call the tools: bearer tokens, and the dispatcher as its own OAuth server (docs/mcp.md).

Two kinds of token are accepted in `Authorization: Bearer`: the static one of
`[mcp] token_file`, compared in constant time; and an access token this
dispatcher issued by OAuth 2.0 client credentials (RFC 6749 §4.4) to a
`[[mcp.oauth.clients]]` entry — a JWT (RFC 9068 profile) signed ES256 by
the key of `[mcp.oauth] key_file`, whose audience is the endpoint's own URL
(RFC 8707), so a token minted for any other resource is refused. PyJWT signs
and checks them; nothing here parses a token by hand.

Discovery follows the MCP authorization spec: a 401 names the Protected
Resource Metadata (RFC 9728) in `WWW-Authenticate`, which names this server as
the authorization server, whose metadata (RFC 8414) lists the token endpoint.
"""

from __future__ import annotations

import base64
import hmac
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization

from skill.settings.mcp import McpSettings

ALGORITHM = "ES256"
#: RFC 9068's media type of a JWT access token, in its `typ` header.
ACCESS_TOKEN_TYPE = "at+jwt"
TOKEN_PATH = "/oauth/token"
AUTHORIZE_PATH = "/oauth/authorize"
RESOURCE_METADATA = "/.well-known/oauth-protected-resource"
SERVER_METADATA = "/.well-known/oauth-authorization-server"
#: Clock skew tolerated between the token's times and ours (one process signs and checks,
#: but several replicas may share a key).
LEEWAY = 30
# A Host header as a client sends it: a name or an address, and a port.
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


class Unauthorized(Exception):
    """The request carries no usable credential; `reason` is the log's code."""

    def __init__(self, reason: str, description: str, *, presented: bool) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.presented = presented  # a token was sent (invalid_token), or none at all


@dataclass(frozen=True)
class Caller:
    """Who is calling: an identity to hash into the envelope, and how they proved it."""

    identity: str
    method: str  # "token" | "oauth"


class TokenError(Exception):
    """A token request refused as RFC 6749 §5.2 says: the error code and the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def request_resource(settings: McpSettings, scheme: str, host: str | None) -> str:
    """The endpoint's URL: `[mcp] resource`, else the request's scheme, Host and path.

    ValueError for a Host header that is no host (nothing is built from it then).
    """
    if settings.resource is not None:
        return settings.resource
    if not host or not _HOST.fullmatch(host):
        raise ValueError("Host header missing or not a host")
    return f"{scheme}://{host.lower()}{settings.path}"


class McpAuth:
    """Checks bearer tokens; issues access tokens to configured clients; the metadata."""

    def __init__(self, settings: McpSettings, *, now: Any = time.time) -> None:
        self.settings = settings
        self._now = now
        self._token = settings.token.encode("utf-8") if settings.token else None
        oauth = settings.oauth
        self.oauth = oauth is not None
        clients = oauth.clients if oauth else ()
        self._secrets = {client.client_id: client.secret.encode("utf-8") for client in clients}
        self._lifetime = oauth.token_lifetime if oauth else 0
        self._private = self._public = None
        if oauth is not None and oauth.key:
            self._private = serialization.load_pem_private_key(oauth.key, password=None)
            self._public = self._private.public_key()

    # --- the resource server: checking what a request presents --------------------------

    def authenticate(self, authorization: str | None, resource: str) -> Caller:
        """The caller of a request with this Authorization header; Unauthorized otherwise."""
        if not authorization:
            raise Unauthorized("mcp-unauthorized", "a bearer token is required", presented=False)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("mcp-unauthorized", "a bearer token is required", presented=False)
        if self._token is not None and hmac.compare_digest(token.encode("utf-8"), self._token):
            return Caller("token", "token")
        if self._public is not None and token.count(".") == 2:
            return self._verify_jwt(token, resource)
        raise Unauthorized("mcp-token", "the token is not valid", presented=True)

    def _verify_jwt(self, token: str, resource: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != ACCESS_TOKEN_TYPE:
                raise jwt.InvalidTokenError("not an access token")
            claims = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],  # never the token's own choice
                audience=resource,
                issuer=origin_of(resource),
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "aud", "iss", "sub", "client_id"]},
            )
        except jwt.InvalidAudienceError:
            raise Unauthorized(
                "mcp-audience", "the token is for another resource", presented=True
            ) from None
        except jwt.ExpiredSignatureError:
            raise Unauthorized("mcp-expired", "the token has expired", presented=True) from None
        except jwt.InvalidTokenError:
            raise Unauthorized("mcp-token", "the token is not valid", presented=True) from None
        client_id = claims.get("client_id")
        if client_id not in self._secrets:  # a client removed from the config since
            raise Unauthorized("mcp-token", "the token's client is unknown", presented=True)
        return Caller(f"client:{client_id}", "oauth")

    def challenge(self, resource: str, failure: Unauthorized | None = None) -> str:
        """The `WWW-Authenticate` of a 401 (RFC 6750 §3, RFC 9728 §5.1)."""
        parts = ['Bearer realm="mcp"']
        if self.oauth:
            parts.append(f'resource_metadata="{resource_metadata_url(resource)}"')
        if failure is not None and failure.presented:
            parts.append('error="invalid_token"')
            parts.append(f'error_description="{failure.description}"')
        return ", ".join(parts)

    # --- the authorization server: issuing tokens -------------------------------------

    def issue(
        self, form: Mapping[str, str], authorization: str | None, resource: str
    ) -> tuple[str, dict[str, Any]]:
        """The client and the token response to a client credentials request; TokenError as
        RFC 6749 §5.2 says otherwise."""
        if self._private is None:
            raise TokenError("unsupported_grant_type", "this server issues no tokens")
        client_id = self._authenticate_client(form, authorization)
        grant = form.get("grant_type")
        if grant != "client_credentials":
            raise TokenError("unsupported_grant_type", "only client_credentials is supported")
        wanted = form.get("resource")
        if wanted is not None and wanted.rstrip("/") != resource.rstrip("/"):
            # RFC 8707 §2: a token is only ever for this endpoint.
            raise TokenError("invalid_target", f"this server issues tokens for {resource} only")
        now = int(self._now())
        claims = {
            "iss": origin_of(resource),
            "sub": client_id,
            "client_id": client_id,
            "aud": resource,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            claims, self._private, algorithm=ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE}
        )
        return client_id, {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self._lifetime,
        }

    def _authenticate_client(self, form: Mapping[str, str], authorization: str | None) -> str:
        """The client id, from HTTP Basic or the form body (RFC 6749 §2.3.1), secret checked."""
        basic = authorization is not None and authorization[:6].lower() == "basic "
        in_form = "client_secret" in form
        if basic and in_form:
            raise TokenError("invalid_request", "send the credentials one way, not both")
        if basic:
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise TokenError("invalid_client", "unreadable Basic credentials", 401) from None
            user, sep, password = decoded.partition(":")
            if not sep:
                raise TokenError("invalid_client", "unreadable Basic credentials", 401)
            client_id, secret = unquote_plus(user), unquote_plus(password)
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        expected = self._secrets.get(client_id)
        # Compared even for an unknown client, so timing tells nothing about which ids exist.
        known = hmac.compare_digest(secret.encode("utf-8"), expected or b"\0" * 32)
        if expected is None or not known:
            raise TokenError("invalid_client", "client authentication failed", 401)
        return client_id

    # --- metadata ------------------------------------------------------------------------

    def resource_metadata(self, resource: str) -> dict[str, Any]:
        """RFC 9728's Protected Resource Metadata of the endpoint."""
        return {
            "resource": resource,
            "authorization_servers": [origin_of(resource)],
            "bearer_methods_supported": ["header"],
            "resource_name": "funker-dispatch",
        }

    def server_metadata(self, resource: str) -> dict[str, Any]:
        """RFC 8414's Authorization Server Metadata of this dispatcher as its own issuer."""
        issuer = origin_of(resource)
        return {
            "issuer": issuer,
            # No user-facing authorization here (client credentials only): the endpoint exists,
            # because clients (the official SDK's among them) expect one, and refuses every request.
            "authorization_endpoint": issuer + AUTHORIZE_PATH,
            "token_endpoint": issuer + TOKEN_PATH,
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }


def resource_metadata_url(resource: str) -> str:
    """Where RFC 9728 §3.1 puts the metadata of `resource`: the well-known path, then its path."""
    parts = urlsplit(resource)
    path = parts.path if parts.path != "/" else ""
    return f"{parts.scheme}://{parts.netloc}{RESOURCE_METADATA}{path}"
