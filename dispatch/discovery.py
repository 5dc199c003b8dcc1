"""Docker discovery: route intents to Swarm services listed, read-only, by the Docker Engine API.

Optional (`[dispatch] discovery = "docker"`); without it the dispatcher never
needs the Docker socket. `DockerDiscovery` lists services every `interval`
seconds in a background thread and keeps the table as an immutable snapshot,
so the request path only reads a reference. A failed listing keeps the last
good table (a Docker outage must not unroute functions that still run).

Which service serves which intent:

1. A service whose labels (`deploy.labels`, i.e. `Spec.Labels`, or container
   `labels`, i.e. `Spec.TaskTemplate.ContainerSpec.Labels`; the service's own
   win) carry `funker.intent` serves the intents it names, comma-separated —
   any name, built-ins and request types too (`funker.intent=AMAZON.HelpIntent`).
   `funker.port` sets the port (default: `[dispatch] function_port`). An empty
   `funker.intent` opts a service out of rule 2.
2. Otherwise a service serves the custom intent (one of `intents`: the routed
   and interaction-model intents) whose name, lowercased and less a trailing
   "Intent", equals the service's name less its stack prefix
   (`com.docker.stack.namespace` + "_"), lowercased: `funker_hello` deployed by
   `docker stack deploy ... funker` serves `HelloIntent`, as do `hello` and
   `hellointent`. The example stack's `spacecount`, `hello`, `hostname` and
   `captains` serve SpaceCountIntent, HelloIntent, HostnameIntent, CaptainsIntent.

Labels win over names; when two services claim one intent, the first by
service name wins and a warning names both. The route's host is the full
service name (`funker_hello`), which resolves on any network the dispatcher
shares with the service, not only inside its own stack.

Why the standard library and not the `docker` package: discovery is one GET
over a unix socket and a JSON parse. `http.client` does that in a few dozen
lines and needs nothing installed; the docker SDK would add itself, requests
and urllib3 to the image (and to armv7 builds) for that one call, and would
offer every write operation this module promises never to make. Here
read-only is visible in the code: the client can only send GET.

API version: `GET /_ping` reports the engine's API version and the listing is
made under that prefix (`/v1.47/services`). A pinned old version stops working
when engines raise their minimum API version, and unversioned paths are
deprecated; the fields read here (`Spec.Name`, labels) are the same in every
version since 1.24. An engine that reports no version gets `/services`.
Listing services needs a Swarm manager's socket; a worker node answers 503,
which is logged as the reason.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from dispatch.registry import DEFAULT_FUNCTION_PORT, Route, Router, is_custom_intent

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/docker.sock"
INTENT_LABEL = "funker.intent"
PORT_LABEL = "funker.port"
STACK_LABEL = "com.docker.stack.namespace"
#: Cap on one listing; a swarm with thousands of services stays far below it.
MAX_LISTING_BYTES = 16 * 1024 * 1024

_API_VERSION = re.compile(r"^\d+\.\d+$")
# What Docker accepts as a service name, which is also the DNS name it serves under.
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class DiscoveryError(Exception):
    """The Docker Engine API gave no usable service listing; the message says why."""


class RouteSource(Protocol):
    """Anything that offers a current table of routes (DockerDiscovery, or a test's stub)."""

    def routes(self) -> Mapping[str, Route]: ...


def docker_socket(environ: Mapping[str, str] | None = None) -> str:
    """The socket path: `DOCKER_HOST=unix:///path`, else /var/run/docker.sock."""
    environ = os.environ if environ is None else environ
    host = environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://") and len(host) > len("unix://"):
        return host[len("unix://") :]
    raise ValueError(
        f"DOCKER_HOST={host!r}: discovery reads only a unix:// socket; set discovery_socket"
    )


class DockerDiscovery:
    """Swarm services → routes, refreshed every `interval` seconds once `start()`ed."""

    def __init__(
        self,
        socket_path: str | None = None,
        *,
        default_port: int = DEFAULT_FUNCTION_PORT,
        interval: float = 10.0,
        timeout: float = 2.0,
        intents: Iterable[str] | None = None,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive seconds")
        self.socket_path = socket_path or docker_socket()
        self.default_port = default_port
        self.interval = interval
        self.timeout = timeout
        self.intents = tuple(intents or ())
        #: Why the last refresh failed, or None when it succeeded (for health pages).
        self.last_error: str | None = None
        self._routes: Mapping[str, Route] = MappingProxyType({})
        self._refreshing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._api_prefix: str | None = None  # "/v1.47", "" (unversioned), None = ask again
        self._problems: frozenset[str] = frozenset()

    def routes(self) -> Mapping[str, Route]:
        """The current table (read-only). Replaced whole on refresh, never mutated: no lock."""
        return self._routes

    def refresh(self) -> dict[str, Route]:
        """List services once and return the table; a failure keeps (and returns) the last one.

        Never raises: the app calls this (via `start()`) on the request path, where an
        exception would answer every request, /healthz too, with a 500. An unexpected
        error (a bug) is logged as a warning with its reason, like an engine outage.
        """
        with self._refreshing:
            try:
                routes, problems = routes_from_services(
                    self._list_services(), intents=self.intents, default_port=self.default_port
                )
            except Exception as exc:
                self._api_prefix = None  # the engine may have been replaced: ask again
                if isinstance(exc, DiscoveryError):
                    reason = str(exc)
                else:
                    reason = f"unexpected {type(exc).__name__}: {exc}"
                if reason != self.last_error:  # once per outage, not every interval
                    log.warning(
                        "docker discovery failed, keeping the last %d routes: socket=%s reason=%s",
                        len(self._routes),
                        self.socket_path,
                        reason,
                    )
                self.last_error = reason
                return dict(self._routes)
            for problem in sorted(set(problems) - self._problems):
                log.warning("docker discovery: %s", problem)
            self._problems = frozenset(problems)
            if self.last_error is not None:
                log.info("docker discovery recovered: socket=%s", self.socket_path)
            self.last_error = None
            if routes != dict(self._routes):
                described = ", ".join(f"{n}={r.host}:{r.port}" for n, r in sorted(routes.items()))
                log.info("docker discovery: %d routes: %s", len(routes), described or "none")
            self._routes = MappingProxyType(routes)
            return dict(routes)

    def start(self) -> None:
        """Refresh once now (so the first request sees the table), then every `interval`.

        Threads do not survive fork: under gunicorn start it in each worker. Never raises
        (it runs on the request path): a failed first listing leaves the table as it was and
        the background thread keeps trying; a second start() while running only warns.
        """
        if self._thread is not None and self._thread.is_alive():
            log.warning("docker discovery already started: socket=%s", self.socket_path)
            return
        self._stop.clear()
        try:
            self.refresh()
        except Exception as exc:  # refresh() does not raise; this guards the request path
            log.warning("docker discovery first refresh failed: %s: %s", type(exc).__name__, exc)
        self._thread = threading.Thread(target=self._run, name="docker-discovery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing; returns once a refresh in progress has finished (or timed out)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            # A refresh is two requests, each bounded by `timeout` per socket operation.
            thread.join(timeout=self.timeout * 6)

    def __enter__(self) -> DockerDiscovery:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # a bug here must not end discovery for the process' life
                log.exception("docker discovery refresh failed")

    # ------------------------------------------------------------- Docker Engine API

    def _list_services(self) -> Any:
        if self._api_prefix is None:
            status, headers, _body = self._get("/_ping")
            version = headers.get("api-version", "")
            self._api_prefix = f"/v{version}" if _API_VERSION.match(version) else ""
        status, _headers, body = self._get(f"{self._api_prefix}/services")
        if status != 200:
            raise DiscoveryError(f"GET /services answered {status}: {_message(body)}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise DiscoveryError(f"service listing is not JSON: {exc}") from None

    def _get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """GET path over the unix socket — the only request this module ever sends."""
        connection = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            connection.request("GET", path, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read(MAX_LISTING_BYTES + 1)
            headers = {name.lower(): value for name, value in response.getheaders()}
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or exc
            raise DiscoveryError(f"cannot talk to {self.socket_path}: {reason}") from None
        except http.client.HTTPException as exc:
            detail = f"{type(exc).__name__} {exc}".strip()
            raise DiscoveryError(f"bad HTTP answer from {self.socket_path}: {detail}") from None
        finally:
            connection.close()
        if len(body) > MAX_LISTING_BYTES:
            raise DiscoveryError(f"GET {path} answer exceeds {MAX_LISTING_BYTES} bytes")
        return response.status, headers, body


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 to the Docker Engine over its unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)  # Host header only; the socket decides
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _message(body: bytes) -> str:
    """The engine's `{"message": ...}` error text, else the start of the body."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    if isinstance(message, str):
        return message
    return body[:200].decode("utf-8", "replace") or "(empty body)"


# ------------------------------------------------------------------ services → routes


def routes_from_services(
    services: Any, *, intents: Iterable[str] = (), default_port: int = DEFAULT_FUNCTION_PORT
) -> tuple[dict[str, Route], list[str]]:
    """Routes from one `GET /services` listing, and the problems found (for the log).

    The naming rule is in the module docstring. Raises DiscoveryError only when
    the listing is not a list; a malformed service is skipped as a problem.
    """
    if not isinstance(services, list):
        raise DiscoveryError("service listing is not a JSON array")
    by_name = _intents_by_service_name(intents)
    labelled: dict[str, Route] = {}
    matched: dict[str, Route] = {}
    problems: list[str] = []
    for name, labels in sorted(_services(services, problems)):
        port = _port(name, labels, default_port, problems)
        if port is None:
            continue
        if INTENT_LABEL in labels:
            claimed = [i.strip() for i in labels[INTENT_LABEL].split(",") if i.strip()]
            claims = labelled
        else:
            intent = by_name.get(_short_name(name, labels).lower())
            claimed = [intent] if intent else []
            claims = matched
        for intent in claimed:
            route = Route(name=intent, host=name, port=port, source="discovery")
            earlier = claims.setdefault(intent, route)
            if earlier.host != name:
                problems.append(
                    f"{intent} is claimed by services {earlier.host} and {name}; "
                    f"using {earlier.host}"
                )
    return {**matched, **labelled}, problems


def _services(services: list[Any], problems: list[str]) -> Iterable[tuple[str, dict[str, str]]]:
    """(service name, merged labels) of each well-formed service in a listing."""
    for service in services:
        spec = service.get("Spec") if isinstance(service, dict) else None
        name = spec.get("Name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not _SERVICE_NAME.match(name):
            problems.append(f"skipped a service without a usable name: {name!r}")
            continue
        container = _get_path(spec, "TaskTemplate", "ContainerSpec", "Labels")
        labels = {**_string_labels(container), **_string_labels(spec.get("Labels"))}
        yield name, labels


def _port(name: str, labels: Mapping[str, str], default: int, problems: list[str]) -> int | None:
    text = labels.get(PORT_LABEL)
    if text is None:
        return default
    # ASCII digits only: str.isdigit() is true for "²" and "١", which int() refuses or reads.
    digits = text.strip()
    port = int(digits) if digits.isascii() and digits.isdigit() else 0
    if not 0 < port < 65536:
        problems.append(f"service {name}: {PORT_LABEL}={text!r} is not a port; not routed")
        return None
    return port


def _intents_by_service_name(intents: Iterable[str]) -> dict[str, str]:
    """Lowercased service name → custom intent: `hellointent` and `hello` → HelloIntent."""
    exact: dict[str, str] = {}
    stripped: dict[str, str] = {}
    for intent in sorted(set(intents)):
        if not is_custom_intent(intent):
            continue  # built-ins and request types are routed by label only
        key = intent.lower()
        exact.setdefault(key, intent)
        if key.endswith("intent") and len(key) > len("intent"):
            stripped.setdefault(key.removesuffix("intent"), intent)
    return {**stripped, **exact}  # an exact name beats a stripped one


def _short_name(name: str, labels: Mapping[str, str]) -> str:
    stack = labels.get(STACK_LABEL)
    if stack and name.startswith(f"{stack}_"):
        return name[len(stack) + 1 :]
    return name


def _string_labels(labels: Any) -> dict[str, str]:
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def _get_path(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# ---------------------------------------------------------------------------- routing


@dataclass
class DiscoveringRouter(Router):
    """A Router that also knows discovered services: configured → discovered → naming."""

    discovery: RouteSource = field(kw_only=True)

    def resolve(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is not None:
            return route
        route = self.discovery.routes().get(name)
        if route is not None:
            return route
        return super().resolve(name)

    def has_route(self, name: str) -> bool:
        return name in self.routes or name in self.discovery.routes()

    def table(self, extra_intents: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Configured routes, then discovered ones (source "discovery"), then naming."""
        discovered = self.discovery.routes()  # one snapshot for the whole table
        rows = [route.as_dict() for route in self.routes.values()]
        rows += [r.as_dict() for name, r in discovered.items() if name not in self.routes]
        for name in extra_intents:
            if name in self.routes or name in discovered:
                continue
            try:
                rows.append(super().resolve(name).as_dict())
            except LookupError:
                continue
        return rows
