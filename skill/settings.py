"""Settings: the one place that reads the TOML file, the environment and flags (DESIGN §6)."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import socket
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dispatch.registry import (
    DEFAULT_FUNCTION_PORT,
    MAX_PROGRESSIVE_AFTER,
    Route,
    RouteError,
    parse_route,
)

if TYPE_CHECKING:
    from triggers.rules import Rule

ENV_PREFIX = "FUNKER_DISPATCH_"
RESERVED_ENV = frozenset({"FUNKER_DISPATCH_CONFIG", "FUNKER_DISPATCH_HOME"})

#: The fixed skill id of the embedded default (printed at start).
DEVELOPMENT_SKILL_ID = "amzn1.ask.skill.00000000-0000-4000-8000-000000000000"

#: Where `simulate` and `dialog` serve their stand-in for Alexa's directive API (DESIGN §13).
#: A fixed port, because the server and the tools load the embedded default separately and
#: must agree on it; the embedded default lists it in `[dispatch] progressive_hosts`.
SIMULATOR_API_ORIGIN = "http://127.0.0.1:3009"

EMBEDDED_SOURCE = "embedded default"

log = logging.getLogger("funker_dispatch")


class ConfigError(ValueError):
    """Configuration is invalid; the message names file, key and reason."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 3000
    workers: int = 2
    threads: int = 8
    path: str = "/"
    certfile: str | None = None
    keyfile: str | None = None
    forwarded_allow_ips: tuple[str, ...] = ()  # proxies whose X-Forwarded-* we trust
    graceful_timeout: float = 20.0
    access_log: bool = False
    # Request line, headers and body must all arrive within this (DESIGN §14).
    read_timeout: float = 10.0
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None  # None: the effective port + 1; 0: no admin listener
    admin_token_file: str | None = None
    admin_token: str | None = field(default=None, repr=False)  # read from admin_token_file
    # Connections each worker holds at once, idle ones included (granian's backpressure):
    # past it, new connections wait in the kernel's backlog until one closes (DESIGN §14).
    max_connections: int = 4096
    # Request body bytes each worker holds at once; event deliveries get 3/4 of it.
    max_body_bytes_in_flight: int = 64 * 1024 * 1024
    # Threads per worker for event deliveries, apart from the `threads` Alexa's requests use.
    event_threads: int = 8

    @property
    def event_body_budget(self) -> int:
        """Body bytes in flight event deliveries may hold: three quarters of the budget.

        The rest is kept for Alexa's path (and anything else), so no flood of
        deliveries can make an Alexa body wait for room (DESIGN §14).
        """
        return self.max_body_bytes_in_flight - self.max_body_bytes_in_flight // 4

    @property
    def main_body_budget(self) -> int:
        """Body bytes in flight everything but event deliveries may hold (Alexa's share)."""
        return self.max_body_bytes_in_flight - self.event_body_budget


@dataclass(frozen=True)
class SkillSettings:
    application_ids: tuple[str, ...] = ()
    verify_signature: bool = True
    verify_timestamp: bool = True
    interaction_models: str | None = None  # ask-cli skill package; None = the shipped one

    @property
    def models_dir(self) -> Path | None:
        return Path(self.interaction_models) if self.interaction_models else None


@dataclass(frozen=True)
class DispatchSettings:
    deadline: float = 6.5
    function_port: int = DEFAULT_FUNCTION_PORT
    naming: str = "intent"
    max_response_bytes: int = 256 * 1024
    discovery: str = "none"  # "docker": route to swarm services found on the engine socket
    discovery_socket: str | None = None  # default: $DOCKER_HOST (unix://), else the usual socket
    discovery_interval: float = 10.0
    # Progressive responses (DESIGN §13): seconds a function may take before "One moment."
    # is sent (0 = never), and origins besides Alexa's API hosts it may be sent to.
    progressive_after: float = 1.5
    progressive_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerificationSettings:
    trusted_roots: tuple[str, ...] = ()
    allow_sha1: bool = False
    prefetch: tuple[str, ...] = ()
    local_chains: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConsoleSettings:
    """`[console]`: the web console on the admin listener (DESIGN §12)."""

    enabled: bool = False


@dataclass(frozen=True)
class LocalFunction:
    """An example function the embedded default runs as a child process."""

    name: str
    script: Path
    port: int
    env: Mapping[str, str] = field(default_factory=dict)  # the operator's environment wins


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    skill: SkillSettings = field(default_factory=SkillSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    verification: VerificationSettings = field(default_factory=VerificationSettings)
    routes: Mapping[str, Route] = field(default_factory=dict)
    source: str = EMBEDDED_SOURCE
    embedded: bool = False
    functions: tuple[LocalFunction, ...] = ()  # started by `serve` (embedded default only)
    trust_dev_ca: bool = False  # only the embedded default trusts the dev CA unasked
    # Event triggers (DESIGN §11); see "event triggers" below.
    triggers: TriggerSettings = field(default_factory=lambda: TriggerSettings())
    rules: Mapping[str, Rule] = field(default_factory=dict)  # [events.NAME]
    console: ConsoleSettings = field(default_factory=ConsoleSettings)


# Each key: (parser, description of the expected value). Parsers take the TOML
# value or, from the environment, a string.
Parser = Callable[[Any], Any]


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _int_in(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be an integer") from None
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}")
        return value

    return parse


def _positive_float(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError("must be a number") from None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("must be a positive number")
    if not math.isfinite(value):  # TOML and float() both read inf and nan
        raise ValueError("must be a finite positive number of seconds")
    if not value > 0:
        raise ValueError("must be a positive number")
    return float(value)


def _seconds_up_to(high: float) -> Parser:
    def parse(value: Any) -> float:
        seconds = _positive_float(value)
        if seconds > high:
            raise ValueError(f"must be at most {high:g} seconds")
        return seconds

    return parse


def _seconds_from_zero_under(limit: float, why: str) -> Parser:
    """Seconds, 0 included (it turns the thing off), finite, under `limit`."""

    def parse(value: Any) -> float:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)  # TOML and float() both read inf and nan
            or value < 0
        ):
            raise ValueError("must be a finite number of seconds, 0 or more")
        if value >= limit:
            raise ValueError(f"must be under {limit:g} seconds ({why})")
        return float(value)

    return parse


def _origins(value: Any) -> tuple[str, ...]:
    from skill.progressive import origin  # the same rule the sender applies to apiEndpoint

    return tuple(origin(text) for text in _str_list(value))


def _seconds_under(limit: float, why: str) -> Parser:
    def parse(value: Any) -> float:
        seconds = _positive_float(value)
        if seconds >= limit:
            raise ValueError(f"must be under {limit:g} seconds ({why})")
        return seconds

    return parse


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # environment: comma-separated
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _networks(value: Any) -> tuple[str, ...]:
    networks = _str_list(value)
    for network in networks:
        try:
            ipaddress.ip_network(network)
        except ValueError:
            raise ValueError(f"{network!r} is not an IP address or network") from None
    return networks


def _choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(repr, choices))}")
        return value

    return parse


# RFC 3986 path characters without percent-escapes: no Flask converter syntax
# ("<path:rest>"), no dot segments, nothing a router could read as a pattern.
_PLAIN_PATH = re.compile(r"/(?:[A-Za-z0-9_~!$&'()*+,;=:@-][A-Za-z0-9._~!$&'()*+,;=:@-]*/?)*")
# Served on the public listener by the dispatcher itself (DESIGN §7, §11).
_RESERVED_PATHS = ("/healthz", "/events")


def _path(value: Any) -> str:
    if not isinstance(value, str) or not _PLAIN_PATH.fullmatch(value):
        raise ValueError('must be a plain path such as "/" or "/alexa"')
    if any(value == p or value.startswith(p + "/") for p in _RESERVED_PATHS):
        raise ValueError(f"{value!r} is reserved for the dispatcher's own endpoints")
    return value


def _application_ids(value: Any) -> tuple[str, ...]:
    ids = _str_list(value)
    for application_id in ids:
        if not application_id.startswith("amzn1."):
            raise ValueError(f"{application_id!r} is not an Alexa skill id (amzn1.ask.skill....)")
    return ids


SERVER_KEYS: dict[str, Parser] = {
    "host": _str,
    "port": _int_in(0, 65535),
    "workers": _int_in(1, 64),
    "threads": _int_in(1, 256),
    "path": _path,
    "certfile": _str,
    "keyfile": _str,
    "forwarded_allow_ips": _networks,
    # Below granian's and Docker's own limits; a stop must not wait for ever.
    "graceful_timeout": _seconds_up_to(600),
    "access_log": _bool,
    # The HTTP server's header read timeout tops out at 60 s.
    "read_timeout": _seconds_up_to(60),
    "admin_host": _str,
    "admin_port": _int_in(0, 65535),
    "admin_token_file": _str,
    "max_connections": _int_in(64, 1_000_000),
    "max_body_bytes_in_flight": _int_in(1024 * 1024, 64 * 1024**3),
    "event_threads": _int_in(1, 256),
}
SKILL_KEYS: dict[str, Parser] = {
    "application_ids": _application_ids,
    "verify_signature": _bool,
    "verify_timestamp": _bool,
    "interaction_models": _str,
}
DISPATCH_KEYS: dict[str, Parser] = {
    # Alexa gives up after 8 s; the apology must reach it before that.
    "deadline": _seconds_under(8, "Alexa waits 8 s for the whole answer"),
    "function_port": _int_in(1, 65535),
    "naming": _choice("intent", "none"),
    "max_response_bytes": _int_in(1024, 64 * 1024 * 1024),
    "discovery": _choice("none", "docker"),
    "discovery_socket": _str,
    "discovery_interval": _seconds_up_to(3600),
    # Checked again against the deadline in _check: either may come from the environment.
    "progressive_after": _seconds_from_zero_under(
        MAX_PROGRESSIVE_AFTER, "Alexa waits 8 s for the whole answer"
    ),
    "progressive_hosts": _origins,
}
VERIFICATION_KEYS: dict[str, Parser] = {
    "trusted_roots": _str_list,
    "allow_sha1": _bool,
    "prefetch": _str_list,
}
CONSOLE_KEYS: dict[str, Parser] = {"enabled": _bool}
# "triggers" and "events": the event triggers (below).
SECTIONS = {
    *("server", "skill", "dispatch", "verification", "intents", "triggers", "events"),
    "console",
}


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Load settings: file (or the embedded default), then environment, then flags.

    `overrides` are `[server]` keys from command-line flags (None values ignored).
    Raises ConfigError naming the file, key and reason.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        path = environ.get("FUNKER_DISPATCH_CONFIG") or None
    settings = embedded_default() if path is None else _from_file(Path(path))
    settings = _apply_environment(settings, environ)
    settings = trigger_credentials(settings, environ)
    settings = _apply_overrides(settings, overrides or {})
    return _check(settings)


def _from_file(path: Path) -> Settings:
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "-", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "-", f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from None
    return settings_from_mapping(data, source)


def settings_from_mapping(data: Mapping[str, Any], source: str) -> Settings:
    """Settings from an already-parsed TOML document."""
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(source, section, f"unknown section (allowed: {sorted(SECTIONS)})")
    dispatch = _section(data, "dispatch", DISPATCH_KEYS, DispatchSettings, source)
    verification_table = dict(_table(data, "verification", source))
    local_chains = verification_table.pop("local_chains", {})
    if not isinstance(local_chains, Mapping) or not all(
        isinstance(v, str) for v in local_chains.values()
    ):
        raise ConfigError(source, "verification.local_chains", "must map URLs to PEM file paths")
    verification = replace(
        _section(
            {"verification": verification_table},
            "verification",
            VERIFICATION_KEYS,
            VerificationSettings,
            source,
        ),
        local_chains=dict(local_chains),
    )
    routes = {}
    for name, table in _table(data, "intents", source).items():
        if not isinstance(table, Mapping):
            raise ConfigError(source, f"intents.{name}", "must be a table")
        try:
            routes[name] = parse_route(name, table, default_port=dispatch.function_port)
        except RouteError as exc:
            raise ConfigError(source, f"intents.{_quote(name)}.{exc.key}", exc.reason) from None
    triggers, rules = triggers_from_mapping(data, source, default_port=dispatch.function_port)
    return Settings(
        server=_section(data, "server", SERVER_KEYS, ServerSettings, source),
        skill=_section(data, "skill", SKILL_KEYS, SkillSettings, source),
        dispatch=dispatch,
        verification=verification,
        routes=routes,
        source=source,
        triggers=triggers,
        rules=rules,
        console=_section(data, "console", CONSOLE_KEYS, ConsoleSettings, source),
    )


def _quote(name: str) -> str:
    return f'"{name}"' if "." in name else name


def _table(data: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, Mapping):
        raise ConfigError(source, name, "must be a table")
    return table


def _section(
    data: Mapping[str, Any], name: str, keys: Mapping[str, Parser], cls: type, source: str
) -> Any:
    values = {}
    for key, value in _table(data, name, source).items():
        parser = keys.get(key)
        if parser is None:
            raise ConfigError(source, f"{name}.{key}", f"unknown key (allowed: {', '.join(keys)})")
        try:
            values[key] = parser(value)
        except ValueError as exc:
            raise ConfigError(source, f"{name}.{key}", str(exc)) from None
    return cls(**values)


def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    server: dict[str, Any] = {}
    skill: dict[str, Any] = {}
    dispatch: dict[str, Any] = {}
    for variable, raw in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable in RESERVED_ENV:
            continue
        if variable in TRIGGER_SECRET_ENV:  # read with the trigger's table, below
            continue
        key = variable[len(ENV_PREFIX) :].lower()
        if key.startswith("server_") and key[len("server_") :] in SERVER_KEYS:
            key = key[len("server_") :]
            target, parser = server, SERVER_KEYS[key]
        elif key in SKILL_KEYS:
            target, parser = skill, SKILL_KEYS[key]
        elif key in DISPATCH_KEYS:
            target, parser = dispatch, DISPATCH_KEYS[key]
        else:
            raise ConfigError("environment", variable, "unknown setting")
        if not raw.strip():
            # A compose file interpolating an unset variable gives "": it must
            # never silently empty an allowlist or reset a value.
            raise ConfigError(
                "environment", variable, "is set but empty (unset it, or give a value)"
            )
        try:
            target[key] = parser(raw)
        except ValueError as exc:
            raise ConfigError("environment", variable, str(exc)) from None
    return replace(
        settings,
        server=replace(settings.server, **server),
        skill=replace(settings.skill, **skill),
        dispatch=replace(settings.dispatch, **dispatch),
    )


def _apply_overrides(settings: Settings, overrides: Mapping[str, Any]) -> Settings:
    server = {}
    for key, value in overrides.items():
        if value is None:
            continue
        try:
            server[key] = SERVER_KEYS[key](value)
        except ValueError as exc:
            raise ConfigError("command line", f"--{key}", str(exc)) from None
    return replace(settings, server=replace(settings.server, **server))


def _check(settings: Settings) -> Settings:
    """Cross-key rules, checked once at start; fills in derived values."""
    server = settings.server
    if (server.certfile is None) != (server.keyfile is None):
        raise ConfigError(settings.source, "server.certfile", "certfile and keyfile go together")
    for key in ("certfile", "keyfile"):
        value = getattr(server, key)
        if value is not None and not Path(value).is_file():
            raise ConfigError(settings.source, f"server.{key}", f"no such file: {value}")
    if server.certfile and server.keyfile:
        check_secret_file(server.keyfile, "server.keyfile", settings.source)
        _check_tls_pair(settings.source, server.certfile, server.keyfile)
    for index, root in enumerate(settings.verification.trusted_roots):
        _check_pem(settings.source, f"verification.trusted_roots[{index}]", root)
    for url, chain in settings.verification.local_chains.items():
        _check_pem(settings.source, f'verification.local_chains."{url}"', chain)
    _check_triggers(settings)
    models = settings.skill.models_dir
    if models is not None and not (models / "interactionModels" / "custom").is_dir():
        raise ConfigError(
            settings.source,
            "skill.interaction_models",
            f"{models} is not an ask-cli skill package (no interactionModels/custom/)",
        )
    if settings.dispatch.discovery == "docker" and settings.dispatch.discovery_socket is None:
        from dispatch.discovery import docker_socket

        try:
            docker_socket()
        except ValueError as exc:
            raise ConfigError("environment", "DOCKER_HOST", str(exc)) from None
    _check_progressive(settings)
    if settings.embedded and not _is_loopback(server.host):
        raise ConfigError(
            settings.source,
            "server.host",
            f"the embedded default serves on loopback only, not {server.host!r}; "
            "pass --config to serve elsewhere",
        )
    if settings.console.enabled and not _is_loopback(server.admin_host):
        # The console signs whatever it is asked to with the development CA and the
        # trigger credentials: reachable from another machine, it would sign for anyone.
        raise ConfigError(
            settings.source,
            "console.enabled",
            f"the console is a signing service and is served on a loopback [server] "
            f"admin_host only, not {server.admin_host!r}; turn it off or bind the admin "
            "listener to 127.0.0.1",
        )
    return replace(settings, server=_admin(settings.source, server))


def _check_progressive(settings: Settings) -> None:
    """A progressive response must be due before the answer's own deadline, or it never is."""
    dispatch = settings.dispatch
    if dispatch.progressive_after >= dispatch.deadline:
        raise ConfigError(
            settings.source,
            "dispatch.progressive_after",
            f"must be under dispatch.deadline ({dispatch.deadline:g} s), or 0 to turn it off",
        )
    for name, route in settings.routes.items():
        if not route.progressive_after:
            continue
        deadline = min(dispatch.deadline, route.timeout or dispatch.deadline)
        if route.progressive_after >= deadline:
            raise ConfigError(
                settings.source,
                f"intents.{_quote(name)}.progressive_after",
                f"must be under the route's deadline ({deadline:g} s), or 0 to turn it off",
            )


def _admin(source: str, server: ServerSettings) -> ServerSettings:
    """The admin listener's port (default: the effective public port + 1) and token."""
    port = server.admin_port
    if port is None:
        port = server.port + 1 if server.port else 0  # an ephemeral public port: no default
        if port > 65535:
            raise ConfigError(
                source, "server.admin_port", "the default (port + 1) would be 65536; set it"
            )
    if port and port == server.port:
        raise ConfigError(source, "server.admin_port", "must differ from server.port")
    token = _secret({}, None, server.admin_token_file, "server.admin_token_file", source)
    return replace(server, admin_port=port, admin_token=token)


def _check_tls_pair(source: str, certfile: str, keyfile: str) -> None:
    """The certificate chain and its private key load together, as the server will load them."""
    import ssl

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise ConfigError(
            source,
            "server.keyfile",
            f"{certfile} and {keyfile} do not load as a TLS pair: {reason}",
        ) from None
    except OSError as exc:
        raise ConfigError(source, "server.certfile", f"cannot read: {exc.strerror}") from None


def _check_pem(source: str, key: str, path: str) -> None:
    """A PEM file of certificates that exists and parses, or a ConfigError."""
    from cryptography import x509

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, key, f"cannot read {path}: {exc.strerror}") from None
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(source, key, f"{path} holds no PEM certificate") from None


def admin_origin(server: ServerSettings) -> str:
    """`http://host:port` of the admin listener, as a browser or a client on this machine
    names it (the console's own origin)."""
    host = server.admin_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal in a URL
    return f"http://{host}:{server.admin_port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- event triggers (DESIGN §11): [triggers.sns], [events.NAME] ---------------------------------


@dataclass(frozen=True)
class SnsTriggerSettings:
    """`[triggers.sns]`: POST /events/sns exists only when this table does."""

    topics: tuple[str, ...] = ()  # TopicArn globs; empty accepts nothing
    confirm: str = "auto"  # "auto": GET a checked SubscribeURL; "log": log it for the operator
    allow_raw: bool = False  # raw message delivery is unsigned: off unless asked for
    max_age: float = 3600.0  # replay window, and how long succeeded event ids are remembered
    deadline: float = 12.0  # every rule's function call, under SNS's 15 s
    max_body_bytes: int = 320 * 1024  # a 256 KiB message plus its envelope


@dataclass(frozen=True)
class EventBridgeTriggerSettings:
    """`[triggers.eventbridge]`: POST /events/eventbridge exists only when this table does.

    The connection authenticates one way: an API key in `api_key_header`
    (from `api_key_file` or FUNKER_DISPATCH_EVENTBRIDGE_API_KEY), or Basic
    (`username`, `password_file`). Secrets are read once, at start.
    """

    api_key_header: str = "x-api-key"
    api_key_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    max_age: float = 86400.0  # EventBridge retries for up to 24 h; ids remembered this long
    deadline: float = 4.0  # every rule's function call, under EventBridge's 5 s
    max_body_bytes: int = 1024 * 1024  # an event is 256 KiB at most; a Pipes batch several
    api_key: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GitHubTriggerSettings:
    """`[triggers.github]`: POST /events/github exists only when this table does.

    The webhook's secret comes from `secret_file` or FUNKER_DISPATCH_GITHUB_SECRET.
    """

    secret_file: str | None = None
    max_age: float = 86400.0  # replays of a captured delivery are caught this long
    deadline: float = 8.0  # every rule's function call, under GitHub's 10 s
    max_body_bytes: int = 25 * 1024 * 1024  # GitHub's own maximum payload
    secret: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TriggerSettings:
    sns: SnsTriggerSettings | None = None  # None: no SNS endpoint (a 404)
    eventbridge: EventBridgeTriggerSettings | None = None
    github: GitHubTriggerSettings | None = None

    @property
    def configured(self) -> bool:
        """Whether any event endpoint is on (else nothing of the triggers is even imported)."""
        return any((self.sns, self.eventbridge, self.github))


# An SNS topic ARN glob: `*` in the partition, region or name, never in the account: anyone
# can create topics in their own account and subscribe this endpoint to them.
_TOPIC_GLOB = re.compile(r"arn:[a-z*-]+:sns:[a-z0-9*-]+:[0-9]{12}:[A-Za-z0-9_.*-]+")


def _topics(value: Any) -> tuple[str, ...]:
    topics = _str_list(value)
    for topic in topics:
        if not _TOPIC_GLOB.fullmatch(topic):
            raise ValueError(
                f"{topic!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME, `*` "
                "allowed in REGION and NAME; the 12-digit account spelled out)"
            )
    return topics


SNS_TRIGGER_KEYS: dict[str, Parser] = {
    "topics": _topics,
    "confirm": _choice("auto", "log"),
    "allow_raw": _bool,
    # SNS retries for an hour at most; a longer window only widens replays.
    "max_age": _seconds_up_to(3600),
    "deadline": _seconds_under(15, "SNS waits 15 s for an answer, then retries"),
    "max_body_bytes": _int_in(1024, 16 * 1024 * 1024),
}
# An HTTP header name (RFC 9110 token): EventBridge sends the API key in it.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")


def _header_name(value: Any) -> str:
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise ValueError("must be an HTTP header name, such as x-api-key")
    return value


def _username(value: Any) -> str:
    if not isinstance(value, str) or not value or ":" in value or not value.isprintable():
        raise ValueError("must be a non-empty username without ':' (Basic separates on it)")
    return value


EVENTBRIDGE_TRIGGER_KEYS: dict[str, Parser] = {
    "api_key_header": _header_name,
    "api_key_file": _str,
    "username": _username,
    "password_file": _str,
    "max_age": _seconds_up_to(86400),
    "deadline": _seconds_under(5, "EventBridge waits 5 s for an answer, then retries"),
    "max_body_bytes": _int_in(1024, 16 * 1024 * 1024),
}
GITHUB_TRIGGER_KEYS: dict[str, Parser] = {
    "secret_file": _str,
    "max_age": _seconds_up_to(86400),
    "deadline": _seconds_under(10, "GitHub waits 10 s for an answer and never retries"),
    "max_body_bytes": _int_in(1024, 25 * 1024 * 1024),
}
# [triggers.X] tables this build serves; each X is one endpoint, POST /events/X.
TRIGGER_TABLES: dict[str, tuple[dict[str, Parser], type]] = {
    "sns": (SNS_TRIGGER_KEYS, SnsTriggerSettings),
    "eventbridge": (EVENTBRIDGE_TRIGGER_KEYS, EventBridgeTriggerSettings),
    "github": (GITHUB_TRIGGER_KEYS, GitHubTriggerSettings),
}
GITHUB_SECRET_ENV = "FUNKER_DISPATCH_GITHUB_SECRET"
EVENTBRIDGE_API_KEY_ENV = "FUNKER_DISPATCH_EVENTBRIDGE_API_KEY"
TRIGGER_SECRET_ENV = frozenset({GITHUB_SECRET_ENV, EVENTBRIDGE_API_KEY_ENV})


def trigger_credentials(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """The EventBridge and GitHub secrets, read now: the environment, else the file.

    A table with no credential at all is a config error naming the key to
    set; so is an empty file or variable (an unset compose variable must not
    become an empty secret that anything matches).
    """
    triggers, source = settings.triggers, settings.source
    eventbridge, github = triggers.eventbridge, triggers.github
    if eventbridge is not None:
        eventbridge = _eventbridge_credentials(eventbridge, environ, source)
    if github is not None:
        secret = _secret(
            environ, GITHUB_SECRET_ENV, github.secret_file, "triggers.github.secret_file", source
        )
        secret = secret.encode("utf-8") if secret is not None else github.secret
        if secret is None:
            raise ConfigError(
                source,
                "triggers.github.secret_file",
                f"no webhook secret: set secret_file (a Docker secret) or {GITHUB_SECRET_ENV}",
            )
        github = replace(github, secret=secret)
    return replace(settings, triggers=replace(triggers, eventbridge=eventbridge, github=github))


def _eventbridge_credentials(
    table: EventBridgeTriggerSettings, environ: Mapping[str, str], source: str
) -> EventBridgeTriggerSettings:
    key = _secret(
        environ,
        EVENTBRIDGE_API_KEY_ENV,
        table.api_key_file,
        "triggers.eventbridge.api_key_file",
        source,
    )
    key = key if key is not None else table.api_key
    basic = table.username is not None or table.password_file is not None
    if key is not None and basic:
        raise ConfigError(
            source,
            "triggers.eventbridge.username",
            "a connection authenticates one way: an API key or Basic (username, password_file), "
            "not both",
        )
    if key is not None:
        # WSGI hands header values over as latin-1 text; only printable ASCII survives intact.
        if not key.isascii() or not key.isprintable() or key != key.strip():
            raise ConfigError(
                source,
                "triggers.eventbridge.api_key_file",
                "the API key must be printable ASCII without leading or trailing spaces",
            )
        return replace(table, api_key=key)
    if not basic and table.password is None:
        raise ConfigError(
            source,
            "triggers.eventbridge.api_key_file",
            f"no credential: set api_key_file (or {EVENTBRIDGE_API_KEY_ENV}) for an API key "
            "connection, or username and password_file for Basic",
        )
    if table.username is None:
        raise ConfigError(source, "triggers.eventbridge.username", "password_file needs username")
    password = _secret({}, None, table.password_file, "triggers.eventbridge.password_file", source)
    password = password if password is not None else table.password
    if password is None:
        raise ConfigError(
            source, "triggers.eventbridge.password_file", "username needs password_file"
        )
    return replace(table, password=password)


def check_secret_file(path: str, key: str, source: str) -> None:
    """Refuse a secret file that others can write; warn when others can read it.

    As ssh refuses a private key others can change: whoever can write the
    webhook secret or the admin token can forge what it authenticates. A
    Docker secret is 0444 unless the stack says otherwise (it says 0400).
    """
    try:
        mode = os.stat(path).st_mode  # follows a symlink (Kubernetes mounts secrets so)
    except OSError:
        return  # reading it fails next, with the reason
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            source,
            key,
            f"{path} is writable by its group or others (mode {stat.S_IMODE(mode):04o}): "
            f"anyone who can write it controls the secret; chmod go-w {path}",
        )
    if mode & stat.S_IROTH:
        log.warning(
            "%s: %s: %s is readable by others (mode %04o); chmod o-r, or mode 0400 in the stack",
            source,
            key,
            path,
            stat.S_IMODE(mode),
        )


def _secret(
    environ: Mapping[str, str], variable: str | None, path: str | None, key: str, source: str
) -> str | None:
    """A secret from the environment variable, else the file, one trailing newline stripped."""
    if variable is not None and variable in environ:
        value = environ[variable].removesuffix("\n").removesuffix("\r")
        if not value.strip():
            raise ConfigError("environment", variable, "is set but empty (unset it, or give one)")
        return value
    if path is None:
        return None
    check_secret_file(path, key, source)
    try:
        value = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(source, key, f"cannot read {path}: {reason}") from None
    value = value.removesuffix("\n").removesuffix("\r")  # one trailing newline, as echo writes
    if not value.strip():
        raise ConfigError(source, key, f"{path} is empty")
    return value


def triggers_from_mapping(
    data: Mapping[str, Any], source: str, *, default_port: int
) -> tuple[TriggerSettings, dict[str, Rule]]:
    """`[triggers.*]` and `[events.NAME]` from a parsed TOML document."""
    tables = _table(data, "triggers", source)
    endpoints: dict[str, Any] = {}
    for name, table in tables.items():
        if name not in TRIGGER_TABLES:
            allowed = ", ".join(TRIGGER_TABLES)
            raise ConfigError(source, f"triggers.{name}", f"unknown trigger (allowed: {allowed})")
        if not isinstance(table, Mapping):
            raise ConfigError(source, f"triggers.{name}", "must be a table")
        keys, cls = TRIGGER_TABLES[name]
        endpoints[name] = _section(
            {f"triggers.{name}": table}, f"triggers.{name}", keys, cls, source
        )
    rules: dict[str, Rule] = {}
    events = _table(data, "events", source)
    if events:
        from triggers.rules import RuleError, parse_rule

        for name, table in events.items():
            key = f"events.{_quote(name)}"
            if not isinstance(table, Mapping):
                raise ConfigError(source, key, "must be a table")
            try:
                rules[name] = parse_rule(name, table, default_port=default_port)
            except RuleError as exc:
                raise ConfigError(
                    source, key if exc.key == "-" else f"{key}.{exc.key}", exc.reason
                ) from None
    return TriggerSettings(**endpoints), rules


def _check_triggers(settings: Settings) -> None:
    """Rules reach an endpoint that exists; local chains are URLs some verifier can ask for;
    every endpoint's largest body fits in the share of the body budget deliveries get."""
    budget = settings.server.max_body_bytes_in_flight
    share = settings.server.event_body_budget
    for name in ("sns", "eventbridge", "github"):
        table = getattr(settings.triggers, name)
        if table is not None and table.max_body_bytes > share:
            raise ConfigError(
                settings.source,
                "server.max_body_bytes_in_flight",
                f"{budget} leaves event deliveries {share} bytes (three quarters), less than "
                f"one [triggers.{name}] body of max_body_bytes = {table.max_body_bytes}; "
                "raise it or lower that",
            )
    if settings.rules:  # imported only then: a skill without triggers never loads them
        from triggers.rules import ENDPOINT
    for name, rule in settings.rules.items():
        endpoint = ENDPOINT[rule.source]
        if getattr(settings.triggers, endpoint) is None:
            raise ConfigError(
                settings.source,
                f"events.{_quote(name)}.source",
                f"{rule.source!r} events arrive through [triggers.{endpoint}], which is not "
                "configured",
            )
    from verification.certurl import check_cert_url
    from verification.errors import CertUrlInvalid, SnsCertUrl
    from verification.snsurl import check_signing_cert_url

    for url in settings.verification.local_chains:
        try:
            check_cert_url(url)
            continue
        except CertUrlInvalid:
            pass
        try:
            check_signing_cert_url(url)
        except SnsCertUrl as exc:
            raise ConfigError(
                settings.source,
                f'verification.local_chains."{url}"',
                "neither an Alexa chain URL (https://s3.amazonaws.com/echo.api/...) nor an SNS "
                f"SigningCertURL (https://sns.<region>.amazonaws.com/....pem): {exc.detail}",
            ) from None


# --- the embedded default -------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "functions"

# Environment of an example function: spacecount is slow on purpose, as the original's remote
# API was, so `make run` + `dialog` shows a progressive response (SPACECOUNT_DELAY=0 turns it off).
EMBEDDED_FUNCTION_ENV: dict[str, dict[str, str]] = {"spacecount": {"SPACECOUNT_DELAY": "2"}}

# intent or request type -> (example function folder, extra route keys)
EMBEDDED_ROUTES: dict[str, tuple[str, dict[str, Any]]] = {
    "SpaceCountIntent": ("spacecount", {"timeout": 3.0}),
    "HelloIntent": ("hello", {}),
    "HostnameIntent": ("hostname", {}),
    "CaptainsIntent": (
        "captains",
        {
            "arguments": ["session", "request", "version"],
            "speech": "There are {total_captains} Docker captains.",
        },
    ),
    # The two faces of one function: events go in (EMBEDDED_RULES), Alexa asks.
    "AlarmStatusIntent": ("alarms", {}),
    "UploadsIntent": ("uploads", {}),
    "LastDeployIntent": ("deploys", {}),
}

#: The development topic the embedded default allowlists; `events send` publishes to it.
DEVELOPMENT_TOPIC = "arn:aws:sns:us-east-1:123456789012:funker-dispatch-dev"
#: The embedded default's EventBridge API key and GitHub webhook secret: development only, on
#: loopback; `events send` authenticates with them. A real config reads its own from files.
DEVELOPMENT_EVENTBRIDGE_API_KEY = "funker-dispatch-development-api-key"
DEVELOPMENT_GITHUB_SECRET = b"funker-dispatch-development-webhook-secret"
# rule name -> (example function folder, rule keys): the events the example functions remember.
EMBEDDED_RULES: dict[str, tuple[str, dict[str, Any]]] = {
    "alarms": ("alarms", {"source": "cloudwatch"}),
    "uploads": ("uploads", {"source": "s3", "event": "ObjectCreated:*"}),
    "deploys": ("deploys", {"source": "github", "event": "push"}),
    # Examples of the two EventBridge sources, so `events send eventbridge|dynamodb` reaches a
    # function: deploys answers them and keeps nothing. Point such rules at your own functions.
    "instances": ("deploys", {"source": "eventbridge", "event_source": "aws.ec2"}),
    "orders": ("deploys", {"source": "dynamodb", "table": "Orders"}),
}


def embedded_default() -> Settings:
    """Example functions on loopback ports, dev CA trusted, bound to 127.0.0.1.

    Ports are picked free at load time so a second checkout or a test run
    does not collide with a running `make run`. A function serving both an
    intent and a rule is one process on one port. SNS is on with the
    development topic allowlisted; confirmations are only logged, so nothing
    reaches AWS. EventBridge and GitHub are on with development credentials
    (`events send` uses the same).
    """
    from triggers.rules import parse_rule

    ports: dict[str, int] = {}
    for folder, _ in (*EMBEDDED_ROUTES.values(), *EMBEDDED_RULES.values()):
        ports.setdefault(folder, free_port())
    functions = [
        LocalFunction(
            folder,
            EXAMPLES / folder / "function.py",
            port,
            dict(EMBEDDED_FUNCTION_ENV.get(folder, {})),
        )
        for folder, port in ports.items()
    ]
    routes = {}
    for intent, (folder, extra) in EMBEDDED_ROUTES.items():
        port = ports[folder]
        routes[intent] = parse_route(
            intent, {"host": "127.0.0.1", "port": port, **extra}, default_port=port
        )
    rules = {}
    for name, (folder, table) in EMBEDDED_RULES.items():
        port = ports[folder]
        rules[name] = parse_rule(
            name, {"host": "127.0.0.1", "port": port, **table}, default_port=port
        )
    return Settings(
        server=ServerSettings(host="127.0.0.1", port=3000, workers=1, threads=8),
        skill=SkillSettings(application_ids=(DEVELOPMENT_SKILL_ID,)),
        # The simulator's stand-in for Alexa's API may receive progressive responses.
        dispatch=DispatchSettings(progressive_hosts=(SIMULATOR_API_ORIGIN,)),
        routes=routes,
        source=EMBEDDED_SOURCE,
        embedded=True,
        functions=tuple(functions),
        trust_dev_ca=True,
        triggers=TriggerSettings(
            sns=SnsTriggerSettings(topics=(DEVELOPMENT_TOPIC,), confirm="log"),
            eventbridge=EventBridgeTriggerSettings(api_key=DEVELOPMENT_EVENTBRIDGE_API_KEY),
            github=GitHubTriggerSettings(secret=DEVELOPMENT_GITHUB_SECRET),
        ),
        rules=rules,
        console=ConsoleSettings(enabled=True),  # `make run` is a developer's own machine
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
