"""The sections of the configuration: what each holds, its keys, their defaults and bounds.

`[server]`, `[skill]`, `[dispatch]`, `[verification]` and `[console]` here; the
event triggers' tables in `triggers.py`; routes (`[intents.X]`) are parsed by
`dispatch.registry.parse_route`, rules (`[events.NAME]`) by
`triggers.rules.parse_rule`. Every key is a `Key`: how its value is read and
what it is for, from which the configuration reference is generated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dispatch.funker import DEFAULT_CONNECT_TIMEOUT
from dispatch.registry import DEFAULT_FUNCTION_PORT, MAX_PROGRESSIVE_AFTER, Route
from skill.settings.mcp import McpSettings
from skill.settings.triggers import TriggerSettings
from skill.settings.values import (
    Key,
    application_ids,
    boolean,
    choice,
    int_in,
    networks,
    origins,
    plain_path,
    seconds_from_zero_under,
    seconds_under,
    seconds_up_to,
    text,
    text_list,
)

if TYPE_CHECKING:
    from triggers.rules import Rule

#: Where the settings came from when no file was given (the embedded default of `make run`).
EMBEDDED_SOURCE = "embedded default"

ALEXA_WAITS = "Alexa waits 8 s for the whole answer"


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
    drain_seconds: float = 0.0  # SIGTERM: /healthz 503 this long before stopping
    access_log: bool = False
    # Request line, headers and body must all arrive within this.
    read_timeout: float = 10.0
    admin_host: str = "127.0.0.1"
    admin_port: int | None = None  # None: the effective port + 1; 0: no admin listener
    admin_token_file: str | None = None
    admin_token: str | None = field(default=None, repr=False)  # read from admin_token_file
    # Connections each worker holds at once, idle ones included (granian's backpressure):
    # past it, new connections wait in the kernel's backlog until one closes.
    max_connections: int = 4096
    # Request body bytes each worker holds at once; event deliveries get 3/4 of it.
    max_body_bytes_in_flight: int = 64 * 1024 * 1024
    # Threads per worker for event deliveries, apart from the `threads` Alexa's requests use.
    event_threads: int = 8

    @property
    def event_body_budget(self) -> int:
        """Body bytes in flight event deliveries may hold: three quarters of the budget.

        The rest is kept for Alexa's path (and anything else), so no flood of
        deliveries can make an Alexa body wait for room.
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
    # Your own skill on your own machine: the dev CA trusted, its skill id accepted, the
    # console on, loopback only (docs/get-started.md).
    development: bool = False

    @property
    def models_dir(self) -> Path | None:
        return Path(self.interaction_models) if self.interaction_models else None


@dataclass(frozen=True)
class DispatchSettings:
    deadline: float = 6.5
    # Seconds one address of a function may take to accept before the next is tried.
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    function_port: int = DEFAULT_FUNCTION_PORT
    naming: str = "intent"
    max_response_bytes: int = 256 * 1024
    discovery: str = "none"  # "docker": route to swarm services found on the engine socket
    discovery_socket: str | None = None  # default: $DOCKER_HOST (unix://), else the usual socket
    discovery_interval: float = 10.0
    # Progressive responses: seconds a function may take before "One moment."
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
    """`[console]`: the web console on the admin listener."""

    enabled: bool = False


@dataclass(frozen=True)
class LocalFunction:
    """A function `serve` runs as a child process on a loopback port: a `[functions.NAME]`
    entry, or an example function of the embedded default."""

    name: str
    dir: Path
    command: tuple[str, ...]  # run in `dir`; a leading "python" is the dispatcher's interpreter
    port: int
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    skill: SkillSettings = field(default_factory=SkillSettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    verification: VerificationSettings = field(default_factory=VerificationSettings)
    routes: Mapping[str, Route] = field(default_factory=dict)
    source: str = EMBEDDED_SOURCE
    embedded: bool = False
    functions: tuple[LocalFunction, ...] = ()  # [functions.NAME], started by `serve`
    trust_dev_ca: bool = False  # only the embedded default trusts the dev CA unasked
    # Event triggers: [triggers.sns], [triggers.eventbridge], [triggers.github].
    triggers: TriggerSettings = field(default_factory=lambda: TriggerSettings())
    rules: Mapping[str, Rule] = field(default_factory=dict)  # [events.NAME]
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    mcp: McpSettings = field(default_factory=McpSettings)  # [mcp], [mcp.oauth] (docs/mcp.md)


# Environment: FUNKER_DISPATCH_SERVER_<KEY>.
SERVER_KEYS: dict[str, Key] = {
    "host": Key(text, "address the public listener binds"),
    "port": Key(int_in(0, 65535), "port of the public listener (0: any free one)"),
    "workers": Key(int_in(1, 64), "processes serving the public listener"),
    "threads": Key(int_in(1, 256), "threads per worker answering Alexa (and all but deliveries)"),
    "path": Key(plain_path, "the Alexa endpoint's path"),
    "certfile": Key(text, "PEM certificate chain: serve HTTPS directly (with keyfile)"),
    "keyfile": Key(
        text, "PEM private key of certfile; a secret file (refused if others can write it)"
    ),
    "forwarded_allow_ips": Key(networks, "proxies whose X-Forwarded-Proto/-For are believed"),
    # Below granian's and Docker's own limits; a stop must not wait for ever.
    "graceful_timeout": Key(seconds_up_to(600), "how long SIGTERM lets requests in flight finish"),
    "drain_seconds": Key(
        seconds_from_zero_under(600, "a drain is not a way to keep serving"),
        "on SIGTERM, /healthz answers 503 this long first while requests are still served, "
        "so a balancer stops sending (its checks' fall × interval, and some); 0: stop at once",
    ),
    "access_log": Key(boolean, "granian's access log, besides the JSON request log"),
    # The HTTP server's header read timeout tops out at 60 s.
    "read_timeout": Key(seconds_up_to(60), "request line, headers and body must arrive within it"),
    "admin_host": Key(text, "address of the admin listener (/readyz, /metrics, /intents, console)"),
    "admin_port": Key(int_in(0, 65535), "port of the admin listener (default port + 1; 0: off)"),
    "admin_token_file": Key(text, "file of a bearer token every admin path but /healthz needs"),
    "max_connections": Key(
        int_in(64, 1_000_000), "connections a worker holds at once, idle ones included"
    ),
    "max_body_bytes_in_flight": Key(
        int_in(1024 * 1024, 64 * 1024**3),
        "request body bytes a worker holds at once; event deliveries get three quarters",
    ),
    "event_threads": Key(int_in(1, 256), "threads per worker for event deliveries, apart"),
}
# Environment: FUNKER_DISPATCH_<KEY>.
SKILL_KEYS: dict[str, Key] = {
    "application_ids": Key(application_ids, "skill ids accepted (empty: any, with a warning)"),
    "verify_signature": Key(boolean, "check Alexa's request signature (off: any client is Alexa)"),
    "verify_timestamp": Key(boolean, "refuse requests more than 150 s from now (replays)"),
    "interaction_models": Key(text, "ask-cli skill package (default: the shipped one)"),
    "development": Key(
        boolean,
        "your own machine: trust the development CA, accept its skill id, the console on, "
        "loopback only",
    ),
}
# Environment: FUNKER_DISPATCH_<KEY>.
DISPATCH_KEYS: dict[str, Key] = {
    # Alexa gives up after 8 s; the apology must reach it before that.
    "deadline": Key(
        seconds_under(8, ALEXA_WAITS), "a function call's whole time, retries included"
    ),
    # Checked again against the deadline at start: either may come from the environment.
    "connect_timeout": Key(
        seconds_under(8, ALEXA_WAITS),
        "seconds one address may take to accept before the next is tried (a dead node's task)",
    ),
    "function_port": Key(int_in(1, 65535), "port of a route that names none"),
    "naming": Key(
        choice("intent", "none"), "an unrouted custom intent goes to the host of its name"
    ),
    "max_response_bytes": Key(int_in(1024, 64 * 1024 * 1024), "a function's answer at most"),
    "discovery": Key(choice("none", "docker"), "route to swarm services found on the engine"),
    "discovery_socket": Key(text, "the engine's socket (default $DOCKER_HOST, else the usual)"),
    "discovery_interval": Key(seconds_up_to(3600), "seconds between two service listings"),
    # Checked again against the deadline at start: either may come from the environment.
    "progressive_after": Key(
        seconds_from_zero_under(MAX_PROGRESSIVE_AFTER, ALEXA_WAITS),
        'a function slower than this makes "One moment." be sent (0: never)',
    ),
    "progressive_hosts": Key(
        origins, "origins besides Alexa's API a progressive response may reach"
    ),
}
VERIFICATION_KEYS: dict[str, Key] = {
    "trusted_roots": Key(text_list, "PEM files of the roots chains must reach (empty: certifi's)"),
    "allow_sha1": Key(boolean, "also accept the legacy SHA-1 Signature header (old captures)"),
    "prefetch": Key(text_list, "chain URLs fetched and validated at start"),
}
CONSOLE_KEYS: dict[str, Key] = {
    "enabled": Key(boolean, "the web console on the admin listener (a loopback one only)"),
}
# "intents" (routes), "triggers" and "events" are read apart.
SECTIONS = {
    *("server", "skill", "dispatch", "verification", "intents", "triggers", "events"),
    "console",
    "functions",
    "mcp",
}


def admin_origin(server: ServerSettings) -> str:
    """`http://host:port` of the admin listener, as a browser or a client on this machine
    names it (the console's own origin)."""
    host = server.admin_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal in a URL
    return f"http://{host}:{server.admin_port}"


def public_origin(server: ServerSettings) -> str:
    """Where this machine reaches the public listener: a wildcard address means loopback."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal in a URL
    scheme = "https" if server.certfile else "http"
    return f"{scheme}://{host}:{server.port}"


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
