"""Route probes: does each route's host resolve, and — only when the route opts in — accept.

A funker function takes any connection as its one request: the published Python
`funker.handle` crashes on the empty body of a bare connect and exits, so a
connect probe would cost every function a restart. A probe therefore only looks
the host up (how many addresses: several under Swarm `endpoint_mode: dnsrr`)
unless the route says `probe = "connect"`; then it also connects and closes
without sending anything.

Every probe is bounded by its `timeout`. A system DNS lookup cannot be
interrupted, so each runs in a daemon thread that is abandoned (reported as
`"error": "timeout"`) when it takes too long; it ends on its own with the
resolver's own timeout and never holds up the caller or interpreter exit.
A name already being looked up is joined, not asked again, and at most
MAX_LOOKUPS_IN_FLIGHT lookups run at once (past that: `"error": "busy"`), so
a hung resolver cannot pile up threads however often probes are asked.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from dispatch.registry import NoRoute, Route

DEFAULT_PROBE_TIMEOUT = 1.0
# Probes mostly wait (on DNS, on a connect): a few threads cover a routing table.
_MAX_WORKERS = 8
#: Lookups abandoned to a hung resolver still run; past this many, a probe says "busy".
MAX_LOOKUPS_IN_FLIGHT = 16


class _Failed(Exception):
    """A probe step failed; the message is the short reason reported as `error`."""


class RoutingTable(Protocol):
    """What `probe_router` needs: `Router` and `DiscoveringRouter` both are one."""

    def table(self, extra_intents: Iterable[str] = ()) -> list[dict[str, Any]]: ...

    def resolve(self, name: str) -> Route: ...


def probe_route(route: Route, *, timeout: float = DEFAULT_PROBE_TIMEOUT) -> dict[str, Any]:
    """Probe one route within `timeout` seconds (lookup and, if opted in, connect).

    Returns `{"resolves", "addresses", "resolve_ms"}`, plus `"connects"` and
    `"connect_ms"` for `probe = "connect"` routes, plus a short `"error"` when
    a step failed ("timeout", "no address", the resolver's message, or
    "connect: <reason>"). Never raises for a failed probe.
    """
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    result: dict[str, Any]
    try:
        addresses = _lookup(route.host, route.port, timeout)
    except _Failed as exc:
        result = {"resolves": False, "addresses": 0, "resolve_ms": _ms_since(started)}
        result["error"] = str(exc)
        if route.probe == "connect":
            result.update(connects=False, connect_ms=0.0)
        return result
    result = {
        "resolves": bool(addresses),
        "addresses": len({sockaddr[0] for _family, sockaddr in addresses}),
        "resolve_ms": _ms_since(started),
    }
    if not addresses:
        result["error"] = "no address"
    if route.probe != "connect":
        return result
    started = time.perf_counter()
    try:
        _connect_once(addresses, deadline)
    except _Failed as exc:
        result.update(connects=False, connect_ms=_ms_since(started))
        result.setdefault("error", f"connect: {exc}")
    else:
        result.update(connects=True, connect_ms=_ms_since(started))
    return result


def probe_table(
    routes: Iterable[Route], *, timeout: float = DEFAULT_PROBE_TIMEOUT
) -> list[dict[str, Any]]:
    """Probe routes concurrently; rows `{"name", "host", "port", "source", **probe}` in order."""
    routes = list(routes)
    if not routes:
        return []
    workers = min(_MAX_WORKERS, len(routes))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe") as pool:
        probes = list(pool.map(lambda route: probe_route(route, timeout=timeout), routes))
    return [{**route.as_dict(), **probe} for route, probe in zip(routes, probes, strict=True)]


def probe_router(
    router: RoutingTable,
    extra_intents: Iterable[str] = (),
    *,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
) -> list[dict[str, Any]]:
    """Probe every row of `router.table(extra_intents)`: what `GET /intents?probe=1` shows."""
    routes = []
    for row in router.table(extra_intents):
        try:
            routes.append(router.resolve(row["name"]))
        except NoRoute:
            continue  # a discovered service vanished between listing and probing
    return probe_table(routes, timeout=timeout)


class _Lookup:
    """One getaddrinfo in its own thread; every probe of the same name waits on it."""

    def __init__(self, host: str, port: int) -> None:
        self.done = threading.Event()
        self.outcome: Any = None
        self.thread = threading.Thread(
            target=self._run, args=(host, port), name=f"probe-lookup-{host}", daemon=True
        )

    def _run(self, host: str, port: int) -> None:
        try:
            self.outcome = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # gaierror, or UnicodeError for a name IDNA refuses
            self.outcome = exc
        finally:
            with _pending_lock:
                _pending.pop((host, port), None)
            _lookup_slots.release()
            self.done.set()


# Lookups still running, by (host, port): a hung resolver costs one thread per
# name, however often /intents?probe=1 is asked, and at most MAX_LOOKUPS_IN_FLIGHT.
_pending: dict[tuple[str, int], _Lookup] = {}
_pending_lock = threading.Lock()
_lookup_slots = threading.BoundedSemaphore(MAX_LOOKUPS_IN_FLIGHT)


def _lookup(host: str, port: int, timeout: float) -> list[tuple[int, Any]]:
    """Distinct (family, sockaddr) of host, or _Failed; gives up waiting after `timeout`."""
    with _pending_lock:
        lookup = _pending.get((host, port))
        if lookup is None:
            if not _lookup_slots.acquire(blocking=False):
                raise _Failed("busy")  # the resolver is not answering the ones running
            lookup = _pending[(host, port)] = _Lookup(host, port)
            lookup.thread.start()
    if not lookup.done.wait(timeout):
        raise _Failed("timeout")
    answer = lookup.outcome
    if isinstance(answer, Exception):
        reason = answer.strerror if isinstance(answer, OSError) else None
        raise _Failed((reason or type(answer).__name__).lower())
    addresses: list[tuple[int, Any]] = []
    for family, _type, _proto, _name, sockaddr in answer:
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    return addresses


def _connect_once(addresses: list[tuple[int, Any]], deadline: float) -> None:
    """Connect to the first address that accepts, then close without sending a byte."""
    failure = "no address"
    for index, (family, sockaddr) in enumerate(addresses):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            failure = "timeout"
            break
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            # As funker.call does: one black-holed replica must not eat its siblings' time.
            sock.settimeout(remaining / (len(addresses) - index))
            try:
                sock.connect(sockaddr)
            except TimeoutError:
                failure = "timeout"
                continue
            except OSError as exc:
                failure = (exc.strerror or type(exc).__name__).lower()
                continue
            return
    raise _Failed(failure)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
