"""`[mcp]` and `[mcp.oauth]`: the functions as MCP tools for Alexa+ and any client (docs/mcp.md).

Off unless `[mcp] enabled = true`. When on, every request needs a bearer
token: the static one of `token_file`, or an access token the dispatcher
issued to a `[[mcp.oauth.clients]]` entry. With neither configured everything
is refused (and the start says so), except under the embedded default, whose
development token lives in `$FUNKER_DISPATCH_HOME` and is printed at start.
Secrets and the signing key are read once, here, at start.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skill.settings.secrets import check_secret_file, read_secret
from skill.settings.values import (
    ConfigError,
    Key,
    boolean,
    int_in,
    parse_section,
    plain_path,
    read_table,
    reject_unknown,
    text,
    text_list,
)

if TYPE_CHECKING:
    from skill.settings.sections import Settings

#: The MCP endpoint's body cap: a tool call is a few hundred bytes (docs/mcp.md).
MAX_MCP_BODY_BYTES = 64 * 1024
#: The embedded default's development token, in `$FUNKER_DISPATCH_HOME` (made on first use).
DEVELOPMENT_TOKEN_FILE = "mcp-development-token"
#: The signing key of issued access tokens when `[mcp.oauth] key_file` is not given.
DEFAULT_KEY_FILE = "mcp-oauth-key.pem"


@dataclass(frozen=True)
class OAuthClient:
    """One `[[mcp.oauth.clients]]` entry: who may obtain access tokens by client credentials."""

    client_id: str
    secret_file: str
    secret: str = field(default="", repr=False)  # read from secret_file at start


@dataclass(frozen=True)
class McpOAuthSettings:
    """`[mcp.oauth]`: the dispatcher as its own authorization server (client credentials)."""

    key_file: str | None = None  # PEM EC P-256 private key; default under $FUNKER_DISPATCH_HOME
    token_lifetime: int = 900  # seconds an access token is valid
    clients: tuple[OAuthClient, ...] = ()
    key: bytes = field(default=b"", repr=False)  # the PEM, read at start


@dataclass(frozen=True)
class McpSettings:
    """`[mcp]`: POST /mcp, the routed custom intents as MCP tools."""

    enabled: bool = False
    path: str = "/mcp"
    intents: tuple[str, ...] = ("*",)  # globs of the intents served as tools
    locale: str | None = None  # the requests' locale; None: the model's first
    token_file: str | None = None
    # The endpoint's public URL (the tokens' audience); None: from the request's Host.
    resource: str | None = None
    allowed_origins: tuple[str, ...] = ()  # browser origins allowed besides the resource's own
    oauth: McpOAuthSettings | None = None  # None: no [mcp.oauth] table, no token endpoint
    token: str | None = field(default=None, repr=False)  # read from token_file at start
    development_token: bool = False  # the embedded default's: made in $FUNKER_DISPATCH_HOME

    @property
    def refuses_everything(self) -> bool:
        """On, but with no credential anyone could present."""
        return self.enabled and self.token is None and not (self.oauth and self.oauth.clients)


_LOCALE = re.compile(r"[a-z]{2}-[A-Z]{2}")
# RFC 6749 client_id: printable ASCII; ':' would break HTTP Basic, which splits on it.
_CLIENT_ID = re.compile(r"[!#-9;-~]{1,128}")


def locale(value: Any) -> str:
    if not isinstance(value, str) or not _LOCALE.fullmatch(value):
        raise ValueError('must be a locale such as "en-US"')
    return value


locale.bound = 'a locale ("en-US")'


def resource_url(value: Any) -> str:
    from urllib.parse import urlsplit

    if not isinstance(value, str):
        raise ValueError("must be a URL")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be an http(s) URL without query or fragment, as clients reach /mcp")
    return value.rstrip("/") if parts.path not in ("", "/") else value


resource_url.bound = "the endpoint's public URL (https://host/mcp)"


def exact_origins(value: Any) -> tuple[str, ...]:
    from skill.progressive import origin

    return tuple(origin(entry) for entry in text_list(value))


exact_origins.bound = 'list of origins, "scheme://host[:port]"'

MCP_KEYS: dict[str, Key] = {
    "enabled": Key(boolean, "serve the routed custom intents as MCP tools (POST /mcp)"),
    "path": Key(plain_path, "the MCP endpoint's path on the public listener"),
    "intents": Key(text_list, "globs of the intents served as tools (default: every routed one)"),
    "locale": Key(
        locale, "the locale of the requests tool calls become (default: the model's first)"
    ),
    "token_file": Key(text, "file of a static bearer token clients present"),
    "resource": Key(
        resource_url,
        "the endpoint's public URL: the access tokens' audience and the metadata's resource "
        "(default: from the request's Host; set it in production)",
    ),
    "allowed_origins": Key(
        exact_origins, "browser origins allowed to call it (any other Origin header gets 403)"
    ),
}
MCP_OAUTH_KEYS: dict[str, Key] = {
    "key_file": Key(
        text,
        "PEM EC P-256 private key signing access tokens (default: made in $FUNKER_DISPATCH_HOME)",
    ),
    "token_lifetime": Key(int_in(60, 86400), "seconds an issued access token is valid"),
}
#: Keys of one `[[mcp.oauth.clients]]` entry (the reference lists these).
MCP_CLIENT_KEYS: dict[str, str] = {
    "client_id": "the client's id (printable ASCII without `:`)",
    "secret_file": "file of its secret (refused if others can write it)",
}


def mcp_from_mapping(data: Mapping[str, Any], source: str) -> McpSettings:
    """`[mcp]` and `[mcp.oauth]` from a parsed TOML document (secrets are read later)."""
    table = dict(read_table(data, "mcp", source))
    oauth_table = table.pop("oauth", None)
    settings = parse_section({"mcp": table}, "mcp", MCP_KEYS, McpSettings, source)
    if oauth_table is None:
        return settings
    if not isinstance(oauth_table, Mapping):
        raise ConfigError(source, "mcp.oauth", "must be a table")
    oauth_table = dict(oauth_table)
    entries = oauth_table.pop("clients", [])
    oauth = parse_section(
        {"mcp.oauth": oauth_table}, "mcp.oauth", MCP_OAUTH_KEYS, McpOAuthSettings, source
    )
    if not isinstance(entries, list):
        raise ConfigError(source, "mcp.oauth.clients", "must be an array of tables")
    clients = []
    for index, entry in enumerate(entries):
        key = f"mcp.oauth.clients[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(source, key, "must be a table with client_id and secret_file")
        reject_unknown(entry, MCP_CLIENT_KEYS, key, source)
        client_id, secret_file = entry.get("client_id"), entry.get("secret_file")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise ConfigError(source, f"{key}.client_id", "must be printable ASCII without ':'")
        if not isinstance(secret_file, str) or not secret_file:
            raise ConfigError(source, f"{key}.secret_file", "must name the client's secret file")
        if any(known.client_id == client_id for known in clients):
            raise ConfigError(source, f"{key}.client_id", f"{client_id!r} is listed twice")
        clients.append(OAuthClient(client_id, secret_file))
    return replace(settings, oauth=replace(oauth, clients=tuple(clients)))


def mcp_credentials(settings: Settings, home: Path | None = None) -> Settings:
    """The static token, the clients' secrets and the signing key, read (or made) now."""
    mcp, source = settings.mcp, settings.source
    if not mcp.enabled:
        return settings
    token = read_secret({}, None, mcp.token_file, "mcp.token_file", source)
    if token is not None and (not token.isascii() or not token.isprintable() or " " in token):
        raise ConfigError(
            source, "mcp.token_file", "the token must be printable ASCII without spaces"
        )
    if token is None and mcp.development_token:
        token = development_token(home)
    oauth = mcp.oauth
    if oauth is not None:
        clients = tuple(
            replace(
                client,
                secret=read_secret(
                    {}, None, client.secret_file, f"mcp.oauth.clients[{i}].secret_file", source
                )
                or "",
            )
            for i, client in enumerate(oauth.clients)
        )
        oauth = replace(oauth, clients=clients, key=_signing_key(oauth.key_file, source, home))
    return replace(settings, mcp=replace(mcp, token=token, oauth=oauth))


def _home(home: Path | None) -> Path:
    from verification.devca import default_home

    base = home if home is not None else default_home()
    base.mkdir(parents=True, exist_ok=True)
    return base


def development_token(home: Path | None = None) -> str:
    """The embedded default's token, made on first use (mode 0600) and kept, so the tools and
    every start agree on it without anyone typing it."""
    path = _home(home) / DEVELOPMENT_TOKEN_FILE
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32).encode("ascii"))
    return path.read_text(encoding="ascii").strip()


def _signing_key(key_file: str | None, source: str, home: Path | None) -> bytes:
    """The PEM of the key that signs access tokens: `key_file`, else one made in the home."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if key_file is None:
        path = _home(home) / DEFAULT_KEY_FILE
        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(
                path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        key_file, shown = str(path), "mcp.oauth.key_file (default)"
    else:
        shown = "mcp.oauth.key_file"
        check_secret_file(key_file, shown, source)
    try:
        pem = Path(key_file).read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
    except OSError as exc:
        raise ConfigError(source, shown, f"cannot read {key_file}: {exc.strerror}") from None
    except (ValueError, TypeError):
        reason = f"{key_file} is not an unencrypted PEM private key"
        raise ConfigError(source, shown, reason) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(source, shown, f"{key_file} must hold an EC P-256 key (tokens are ES256)")
    return pem


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` readable by its owner only, atomically: two processes may start together."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    try:
        os.link(partial, path)  # fails if another process made it first: theirs is kept
    except FileExistsError:
        pass
    finally:
        partial.unlink()


def check_mcp(settings: Settings) -> None:
    """Cross-key rules of `[mcp]`, at start."""
    mcp, source = settings.mcp, settings.source
    if not mcp.enabled:
        return
    if mcp.path == settings.server.path:
        raise ConfigError(source, "mcp.path", f"{mcp.path!r} is the Alexa endpoint's [server] path")
    if mcp.path.startswith(("/.well-known", "/oauth")):
        raise ConfigError(source, "mcp.path", f"{mcp.path!r} is reserved for the OAuth endpoints")
    if mcp.resource is not None:
        from urllib.parse import urlsplit

        if urlsplit(mcp.resource).path != mcp.path:
            raise ConfigError(
                source,
                "mcp.resource",
                f"{mcp.resource} does not end in [mcp] path {mcp.path!r}: it is the endpoint's "
                "own URL as clients reach it",
            )
