"""Slow and idle clients cannot starve the server (docs/robustness.md), over plain HTTP and TLS.

Real sockets against a real server shaped like production (2 workers × 8
threads): connections that send one byte and go silent, that trickle a header
line every 2 s, that trickle a body, or that stall a TLS handshake. Liveness
is asserted with a generous bound (an answer within a few seconds while they
are held), and the cut-off through the connection being closed or answered,
never by timing the test.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import (
    ANSWER_WITHIN,
    LIVENESS_READ_TIMEOUT,
    signed_launch,
    tls_server_env,
)

HELD = 40  # more than every thread of 2 workers × 8 threads, twice over


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


@contextlib.contextmanager
def held(url: str, first: bytes, *, count: int = HELD, every: bytes = b"") -> Iterator[list]:
    """`count` connections that each send `first`, then `every` every 2 s (if given)."""
    sockets = [socket.create_connection(_address(url), timeout=5) for _ in range(count)]
    stop = threading.Event()
    for sock in sockets:
        if first:
            sock.sendall(first)

    def trickle() -> None:
        line = 0
        while not stop.wait(2.0):  # the 2 s pace is the attack under test, not a wait
            line += 1
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(every.replace(b"#", str(line).encode()))

    pacer = threading.Thread(target=trickle, daemon=True)
    if every:
        pacer.start()
    try:
        yield sockets
    finally:
        stop.set()
        for sock in sockets:
            sock.close()


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing `sock` within `seconds`, or None if still open."""
    sock.settimeout(seconds)
    received = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
    except TimeoutError:
        return None
    except OSError:
        return received  # reset: closed too
    return None


def healthz(url: str, context: ssl.SSLContext | None = None) -> int:
    with urllib.request.urlopen(url + "/healthz", timeout=ANSWER_WITHIN, context=context) as r:
        return r.status


@pytest.fixture(scope="module")
def production_shaped(start_server):
    return start_server(
        workers=2, env={"FUNKER_DISPATCH_SERVER_READ_TIMEOUT": LIVENESS_READ_TIMEOUT}
    )


@pytest.mark.parametrize(
    "first, every",
    [
        (b"P", b""),  # one byte of a request line, then silence
        (b"POST / HTTP/1.1\r\nHost: x\r\n", b"X-Line-#: slow\r\n"),  # a header line every 2 s
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4000\r\n\r\n{",
            b" ",
        ),  # a complete head, then one byte of body every 2 s
    ],
    ids=["one-byte", "trickled-headers", "trickled-body"],
)
def test_held_connections_cannot_keep_healthz_or_alexa_from_an_answer(
    production_shaped, dev_ca, first, every
):
    with held(production_shaped.url, first, every=every):
        assert healthz(production_shaped.url) == 200
        assert "Welcome" in json.dumps(signed_launch(production_shaped.url, dev_ca))


@pytest.fixture(scope="module")
def tls_server(start_server, tmp_path_factory):
    env, context = tls_server_env(tmp_path_factory.mktemp("slow-tls"))
    server = start_server(
        workers=2,
        env={**env, "FUNKER_DISPATCH_SERVER_READ_TIMEOUT": "2"},
        scheme="https",
        ssl_context=context,
    )
    return server, context


def test_stalled_tls_handshakes_cannot_keep_healthz_or_alexa_from_an_answer(tls_server, dev_ca):
    server, context = tls_server
    with held(server.url, b"\x16"):  # the first byte of a TLS record, then silence
        assert healthz(server.url, context) == 200
        assert "Welcome" in json.dumps(signed_launch(server.url, dev_ca, context))


def test_a_stalled_tls_handshake_is_cut_off(tls_server):
    server, _context = tls_server
    with held(server.url, b"\x16", count=1) as (sock,):
        assert closed_within(sock, 15) is not None


@pytest.fixture(scope="module")
def quick_cutoff(start_server):
    """read_timeout = 2 s, so the cut-off itself can be observed quickly."""
    return start_server(env={"FUNKER_DISPATCH_SERVER_READ_TIMEOUT": "2"})


@pytest.mark.parametrize(
    "first, every",
    [
        (b"", b""),  # connects and sends nothing at all
        (b"P", b""),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Line-#: slow\r\n"),
    ],
    ids=["silent", "one-byte", "trickled-headers"],
)
def test_a_request_head_not_delivered_within_read_timeout_is_cut_off(quick_cutoff, first, every):
    with held(quick_cutoff.url, first, count=1, every=every) as (sock,):
        # Trickling keeps the socket busy, but the whole head is due within 2 s.
        assert closed_within(sock, 10) is not None


def test_a_body_not_delivered_within_read_timeout_gets_408_json(quick_cutoff):
    head = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4000\r\n\r\n{"
    )
    with held(quick_cutoff.url, head, count=1, every=b" ") as (sock,):
        answer = closed_within(sock, 10)
    assert answer is not None
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408")
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["error"] == "timeout"
