"""Route probes (dispatch.probe): resolve by default, connect only when a route opts in.

Listeners are real sockets on 127.0.0.x. Whether a probe connected is read from
the listener's backlog after the probe returned (a connect completes in the
kernel before anyone accepts), so nothing waits or sleeps. The only seam is
`socket.getaddrinfo`, patched for made-up names only.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.probe import MAX_LOOKUPS_IN_FLIGHT, probe_route, probe_router, probe_table
from dispatch.registry import Route, Router

# Long enough never to be the reason a probe of a real loopback socket fails.
TIMEOUT = 5.0


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket nobody accepts on: the backlog counts connections made."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


def connections_made(listener: socket.socket) -> int:
    """Accept (without blocking) everything queued; check each sent nothing."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        with conn:
            conn.setblocking(True)
            conn.settimeout(TIMEOUT)
            assert conn.recv(1) == b"", "a probe must close without sending a request"
        count += 1


def route(port: int, host: str = "127.0.0.1", **options: Any) -> Route:
    return Route(name="HelloIntent", host=host, port=port, **options)


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """Made-up names resolve to the given IPv4 addresses; every other name really resolves."""
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_default_probe_resolves_without_connecting(listener: socket.socket) -> None:
    port = listener.getsockname()[1]

    result = probe_route(route(port), timeout=TIMEOUT)

    assert result["resolves"] is True
    assert result["addresses"] >= 1
    assert result["resolve_ms"] >= 0
    assert "error" not in result
    assert "connects" not in result
    assert connections_made(listener) == 0


def test_localhost_resolves_without_connecting(listener: socket.socket) -> None:
    result = probe_route(route(listener.getsockname()[1], host="localhost"), timeout=TIMEOUT)

    assert result["resolves"] is True
    assert result["addresses"] >= 1
    assert connections_made(listener) == 0


def test_connect_probe_opens_exactly_one_connection_and_sends_nothing(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]

    result = probe_route(route(port, probe="connect"), timeout=TIMEOUT)

    assert result["resolves"] is True
    assert result["connects"] is True
    assert result["connect_ms"] >= 0
    assert "error" not in result
    assert connections_made(listener) == 1


def test_connect_probe_reports_a_refused_connection() -> None:
    with socket.socket() as bound_not_listening:  # refuses every connect
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]

        result = probe_route(route(port, probe="connect"), timeout=TIMEOUT)

    assert result["resolves"] is True
    assert result["connects"] is False
    assert result["error"].startswith("connect: ")


def test_connect_probe_tries_the_next_replica_when_one_refuses(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    # Swarm dnsrr: 127.0.0.2 has nothing on this port, 127.0.0.1 does.
    fake_dns(monkeypatch, {"hello.dnsrr.test": ["127.0.0.2", "127.0.0.1"]})
    port = listener.getsockname()[1]

    result = probe_route(route(port, host="hello.dnsrr.test", probe="connect"), timeout=TIMEOUT)

    assert result["addresses"] == 2
    assert result["connects"] is True
    assert connections_made(listener) == 1


def test_unresolvable_name_does_not_resolve_and_says_why() -> None:
    result = probe_route(route(9999, host="nonexistent.invalid"), timeout=TIMEOUT)

    assert result["resolves"] is False
    assert result["addresses"] == 0
    assert isinstance(result["error"], str) and result["error"]


def test_unresolvable_name_with_connect_probe_neither_resolves_nor_connects() -> None:
    result = probe_route(route(9999, host="nonexistent.invalid", probe="connect"), timeout=TIMEOUT)

    assert result["resolves"] is False
    assert result["connects"] is False
    assert result["error"]


def test_name_with_several_addresses_counts_each_distinct_address_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dns(
        monkeypatch,
        {"hello.replicas.test": ["10.0.1.5", "10.0.1.6", "10.0.1.5", "10.0.1.7"]},
    )

    result = probe_route(route(9999, host="hello.replicas.test"), timeout=TIMEOUT)

    assert result == {"resolves": True, "addresses": 3, "resolve_ms": result["resolve_ms"]}


def test_lookup_that_hangs_is_reported_as_timeout_without_waiting_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "hung.test":
            release.wait(TIMEOUT * 4)  # a resolver that does not answer
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        result = probe_route(route(9999, host="hung.test", probe="connect"), timeout=0.05)
    finally:
        release.set()

    assert result["resolves"] is False
    assert result["connects"] is False
    assert result["error"] == "timeout"


def test_table_probes_every_route_and_keeps_their_order(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    fake_dns(monkeypatch, {"captains.test": ["10.0.2.1", "10.0.2.2"]})
    port = listener.getsockname()[1]
    routes = [
        Route(name="HelloIntent", host="127.0.0.1", port=port),
        Route(name="SpaceCountIntent", host="nonexistent.invalid", source="naming"),
        Route(name="CaptainsIntent", host="captains.test", source="discovery"),
        Route(name="HostnameIntent", host="127.0.0.1", port=port, probe="connect"),
    ]

    rows = probe_table(routes, timeout=TIMEOUT)

    assert [(r["name"], r["host"], r["port"], r["source"]) for r in rows] == [
        ("HelloIntent", "127.0.0.1", port, "config"),
        ("SpaceCountIntent", "nonexistent.invalid", 9999, "naming"),
        ("CaptainsIntent", "captains.test", 9999, "discovery"),
        ("HostnameIntent", "127.0.0.1", port, "config"),
    ]
    assert [r["resolves"] for r in rows] == [True, False, True, True]
    assert rows[2]["addresses"] == 2
    assert "connects" not in rows[0] and rows[3]["connects"] is True
    assert connections_made(listener) == 1  # only the route that opted in


def test_router_probe_covers_configured_and_naming_rows(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    router = Router({"HelloIntent": Route(name="HelloIntent", host="127.0.0.1", port=port)})

    rows = probe_router(router, ["HelloIntent", "localhost"], timeout=TIMEOUT)

    assert [(r["name"], r["source"], r["resolves"]) for r in rows] == [
        ("HelloIntent", "config", True),
        ("localhost", "naming", True),
    ]
    assert connections_made(listener) == 0


def test_empty_table_probes_nothing() -> None:
    assert probe_table([], timeout=TIMEOUT) == []


def test_repeated_probes_under_a_hung_resolver_do_not_pile_up_lookup_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /intents?probe=1 asked again and again while DNS hangs: every ask must not
    # leave another abandoned thread behind.
    release = threading.Event()
    calls = []

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        calls.append(host)
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        for _ in range(50):
            for host in ("a.test", "b.test", *(f"n{i}.test" for i in range(40))):
                result = probe_route(route(9999, host=host), timeout=0.001)
                assert result["resolves"] is False
        lookups = [t for t in threading.enumerate() if t.name.startswith("probe-lookup")]
        assert len(lookups) <= MAX_LOOKUPS_IN_FLIGHT
        assert len(calls) <= MAX_LOOKUPS_IN_FLIGHT  # a pending host is joined, not asked again
    finally:
        release.set()
