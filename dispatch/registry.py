"""Intent routing: which funker function serves an intent or request type."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_FUNCTION_PORT = 9999
#: A route's timeout only shortens its endpoint's deadline; anything longer is a typo.
MAX_ROUTE_TIMEOUT = 60.0
#: Alexa waits 8 s for the whole answer: a progressive response due later could never be heard.
#: (The configuration checks the tighter bound, the route's own deadline, once all keys are read.)
MAX_PROGRESSIVE_AFTER = 8.0

#: Keys a route table may carry (docs/configuration.md); anything else fails at start.
ROUTE_KEYS = frozenset(
    {
        *("host", "port", "timeout", "arguments", "idempotent", "concurrency", "speech", "probe"),
        *("progressive", "progressive_after", "description"),
    }
)

# One label of a DNS name a Docker service may have: 1-63 letters, digits, '-' and '_',
# not starting or ending with '-'. Longer labels make getaddrinfo raise UnicodeError (IDNA).
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_MAX_HOST = 253
# The host the naming convention makes of an intent name: one label that starts with a
# letter, so no intent name can be read as an address ("2130706433" is 127.0.0.1 to
# getaddrinfo, as is "0x7f000001") however the request names it.
_NAMED_HOST = re.compile(r"[A-Za-z]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def is_host(host: str) -> bool:
    """An IP literal (10.0.0.5, fd00::5), or a DNS name a configured route may name.

    A name is dot-separated labels (see _LABEL), at most 253 characters, and its last
    label is not all digits (RFC 3696 §2): getaddrinfo would read "2130706433" or
    "127.1" as an IPv4 address, not look it up.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    labels = host.split(".")
    return (
        len(host) <= _MAX_HOST
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


class NoRoute(LookupError):
    """Nothing serves this intent or request type."""

    kind = "no-route"

    def __init__(self, name: str) -> None:
        super().__init__(f"no route for {name!r}")
        self.name = name


class RouteError(ValueError):
    """A route table is invalid; `key` names the offending key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Route:
    """Where one intent (or request type) is served, and how to call it."""

    name: str
    host: str
    port: int = DEFAULT_FUNCTION_PORT
    timeout: float | None = None  # only ever shortens [dispatch] deadline
    arguments: tuple[str, ...] | None = None  # top-level request keys sent; None = all
    idempotent: bool = False  # may be resent after the payload went out
    concurrency: int | None = None  # calls in flight from this process; None = unbounded
    speech: str | Mapping[str, str] | None = None  # template for data answers
    probe: str | None = None  # "connect" opts in to TCP probes
    # Progressive response (docs/alexa.md): its text (plain, or a table by locale; None = the
    # skill's localized "One moment."), and seconds before it is sent (None = [dispatch]'s,
    # 0 = never for this route).
    progressive: str | Mapping[str, str] | None = None
    progressive_after: float | None = None
    # What the intent's MCP tool says it does (docs/mcp.md); None: built from its samples.
    description: str | None = None
    source: str = "config"  # "config" | "naming" | "discovery"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "port": self.port, "source": self.source}


def parse_route(name: str, table: Mapping[str, Any], *, default_port: int) -> Route:
    """Build a Route from one `[intents.NAME]` table; RouteError names the bad key."""
    unknown = sorted(set(table) - ROUTE_KEYS)
    if unknown:
        raise RouteError(unknown[0], f"unknown key (allowed: {', '.join(sorted(ROUTE_KEYS))})")
    host = table.get("host")
    if not isinstance(host, str) or not is_host(host):
        raise RouteError("host", "must be a host name or address")
    port = table.get("port", default_port)
    if not _is_int(port) or not 0 < port < 65536:
        raise RouteError("port", "must be an integer between 1 and 65535")
    timeout = table.get("timeout")
    if timeout is not None and (not _is_number(timeout) or not timeout > 0):
        raise RouteError("timeout", "must be a positive number of seconds")
    if timeout is not None and not math.isfinite(timeout):
        raise RouteError("timeout", "must be a finite number of seconds")
    if timeout is not None and timeout > MAX_ROUTE_TIMEOUT:
        raise RouteError("timeout", f"must be at most {MAX_ROUTE_TIMEOUT:g} seconds")
    arguments = table.get("arguments")
    if arguments is not None:
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            raise RouteError("arguments", "must be a list of top-level request keys")
        arguments = tuple(arguments)
    idempotent = table.get("idempotent", False)
    if not isinstance(idempotent, bool):
        raise RouteError("idempotent", "must be true or false")
    concurrency = table.get("concurrency")
    if concurrency is not None and (not _is_int(concurrency) or concurrency < 1):
        raise RouteError("concurrency", "must be a positive integer")
    speech = table.get("speech")
    if speech is not None:
        _check_speech(speech)
    probe = table.get("probe")
    if probe not in (None, "connect", "resolve"):
        raise RouteError("probe", 'must be "resolve" (default) or "connect"')
    progressive = table.get("progressive")
    if progressive is not None:
        _check_progressive(progressive)
    progressive_after = table.get("progressive_after")
    if progressive_after is not None:
        _check_progressive_after(progressive_after)
    description = table.get("description")
    if description is not None and (
        not isinstance(description, str) or not description.strip() or len(description) > 1024
    ):
        raise RouteError("description", "must be a non-empty string of at most 1024 characters")
    return Route(
        name=name,
        host=host,
        port=port,
        timeout=float(timeout) if timeout is not None else None,
        arguments=arguments,
        idempotent=idempotent,
        concurrency=concurrency,
        speech=dict(speech) if isinstance(speech, Mapping) else speech,
        probe=probe if probe == "connect" else None,
        progressive=dict(progressive) if isinstance(progressive, Mapping) else progressive,
        progressive_after=float(progressive_after) if progressive_after is not None else None,
        description=description,
    )


def _locale_texts(key: str, value: Any) -> list[str]:
    """The texts of a string or a non-empty table of locale = string; RouteError for `key`."""
    if isinstance(value, str):
        return [value]
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        return list(value.values())
    raise RouteError(key, "must be a string or a table of locale = string")


def _check_speech(speech: Any) -> None:
    _locale_texts("speech", speech)


# C0 and C1 controls cannot appear in SSML; the text is escaped into <speak>, never parsed.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _check_progressive(text: Any) -> None:
    for value in _locale_texts("progressive", text):
        if not value.strip():
            raise RouteError("progressive", "must not be empty")
        if value.lstrip().startswith("<"):
            # It is spoken as written: "<speak>" would be read out, not obeyed.
            raise RouteError("progressive", "must be plain text (it is escaped into SSML)")
        if _CONTROL.search(value):
            raise RouteError("progressive", "must not contain control characters")


def _check_progressive_after(seconds: Any) -> None:
    if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
        raise RouteError("progressive_after", "must be a finite number of seconds, 0 or more")
    if seconds >= MAX_PROGRESSIVE_AFTER:
        raise RouteError(
            "progressive_after",
            f"must be under {MAX_PROGRESSIVE_AFTER:g} seconds (Alexa waits 8 s for the answer)",
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_custom_intent(name: str) -> bool:
    """Custom intent names: no namespace dot (AMAZON.*, Alexa.*, request types have one)."""
    return "." not in name and not name.endswith("Request")


@dataclass
class Router:
    """Resolves intent names and request types to routes.

    Configured routes win; with `naming = "intent"` an unrouted custom intent
    goes to the host of its own name (a Swarm service named after the intent) when
    that name is one DNS label starting with a letter; any other name has no route.
    """

    routes: Mapping[str, Route] = field(default_factory=dict)
    naming: str = "intent"
    function_port: int = DEFAULT_FUNCTION_PORT

    def resolve(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is not None:
            return route
        if self.naming == "intent" and is_custom_intent(name) and _NAMED_HOST.fullmatch(name):
            return Route(name=name, host=name, port=self.function_port, source="naming")
        raise NoRoute(name)

    def has_route(self, name: str) -> bool:
        return name in self.routes

    def table(self, extra_intents: Iterable[str] = ()) -> list[dict[str, Any]]:
        """The routing table: configured routes, then model intents reached by naming."""
        rows = [route.as_dict() for route in self.routes.values()]
        for name in extra_intents:
            if name not in self.routes:
                try:
                    rows.append(self.resolve(name).as_dict())
                except NoRoute:
                    continue
        return rows
