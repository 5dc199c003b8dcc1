"""The funker protocol over real sockets: dispatch.funker.call, serve and make_server.

Functions here are real listeners on 127.0.0.x (threads, or processes in
tests/functions/); nothing mocks a socket. The only seam used is
`socket.getaddrinfo`, to give a made-up name the addresses a Swarm DNS would.
Tests synchronise on events, accepts and the call's own retries, never on sleeps.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dispatch import funker
from dispatch.funker import (
    FunctionDeadlineExceeded,
    FunctionError,
    FunctionProtocolError,
    FunctionRequestUnencodable,
    FunctionResponseTooLarge,
    FunctionServer,
    FunctionUnreachable,
    call,
    make_server,
)
from dispatch.registry import Route
from tests.helpers import accepts, free_port, wait_until

FUNCTIONS = Path(__file__).resolve().parent / "functions"
# Generous slack for "the deadline was honoured": a property, not a speed claim.
DEADLINE_SLACK = 2.0


def route(port: int, host: str = "127.0.0.1", **options: Any) -> Route:
    return Route(name="TestIntent", host=host, port=port, **options)


#: The deadline of calls and waits whose outcome is not a deadline: none that works reaches
#: it, however loaded the machine, so no verdict races the clock (docs/robustness.md).
PATIENCE = 60.0


def read_to_eof(conn: socket.socket) -> bytes:
    data = bytearray()
    while chunk := conn.recv(65536):
        data += chunk
    return bytes(data)


Behaviour = Callable[[socket.socket, int, "RawFunction"], None]


class RawFunction:
    """A function written on raw sockets, one thread per connection, that does as told.

    `behaviour(conn, n, self)` runs for the n-th connection (1-based); `connections`
    counts accepts; `release` frees behaviours that stall until the test ends.
    """

    def __init__(self, behaviour: Behaviour, listener: socket.socket | None = None) -> None:
        self.behaviour = behaviour
        self.listener = listener or socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.05)  # only to notice close(); accepts are the sync
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            worker = threading.Thread(target=self._run, args=(conn, n), daemon=True)
            self._workers.append(worker)
            worker.start()

    def _run(self, conn: socket.socket, n: int) -> None:
        conn.settimeout(10)
        # OSError: the client hung up, which several scenarios are about.
        with conn, contextlib.suppress(OSError):
            self.behaviour(conn, n, self)

    def close(self) -> None:
        self._stop.set()
        self.release.set()
        self._acceptor.join(5)
        self.listener.close()
        for worker in self._workers:
            worker.join(5)


@pytest.fixture
def raw_function() -> Iterator[Callable[..., RawFunction]]:
    started: list[RawFunction] = []

    def start(behaviour: Behaviour, listener: socket.socket | None = None) -> RawFunction:
        function = RawFunction(behaviour, listener)
        started.append(function)
        return function

    yield start
    for function in started:
        function.close()


def answering(answer: bytes) -> Behaviour:
    def behaviour(conn: socket.socket, n: int, function: RawFunction) -> None:
        read_to_eof(conn)
        conn.sendall(answer)

    return behaviour


@pytest.fixture
def function_server() -> Iterator[Callable[..., tuple[FunctionServer, int]]]:
    """make_server(handler, **bounds) on a free loopback port, serving until the test ends."""
    running: list[tuple[FunctionServer, threading.Thread]] = []

    def start(handler: Callable[[Any], Any], **bounds: Any) -> tuple[FunctionServer, int]:
        server = make_server(handler, "127.0.0.1", 0, **bounds)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return server, server.server_address[1]

    yield start
    for server, thread in running:
        if thread.is_alive():
            server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[str, int], list[Any]]]:
    """Made-up host names → addresses, through the real socket.getaddrinfo for the rest."""
    names: dict[str, Callable[[str, int], list[Any]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in names:
            return names[host](host, port)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def addresses(*ips: str) -> Callable[[str, int], list[Any]]:
    return lambda host, port: [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (ip, port)) for ip in ips
    ]


@pytest.fixture
def processes() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start helper processes; any still running at the end is killed (by its own handle)."""
    started: list[subprocess.Popen[str]] = []

    def start(*argv: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=FUNCTIONS
        )
        started.append(child)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)


# ---------------------------------------------------------------------------- client


def test_bytes_payload_is_sent_as_the_very_json_it_holds():
    body = b'{ "request" : {"type": "IntentRequest"},  "x": 1.50 }'
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def answer_once() -> None:
            conn, _ = listener.accept()
            with conn:
                received.append(read_to_eof(conn))
                conn.sendall(b"1")

        thread = threading.Thread(target=answer_once)
        thread.start()
        assert call(route(listener.getsockname()[1]), body, timeout=PATIENCE) == 1
        thread.join(5)
    assert received == [body]  # byte for byte: no re-encoding


def test_lone_surrogate_from_alexa_reaches_the_function_as_the_same_escape(function_server):
    _, port = function_server(lambda payload: payload)
    # JSON may carry "\ud800"; UTF-8 cannot: it travels as the escape it came as.
    assert call(route(port), {"text": "\ud800 ok"}, timeout=PATIENCE) == {"text": "\ud800 ok"}


@pytest.mark.parametrize(
    "payload",
    [
        {"version": "1.0", "request": {"type": "IntentRequest", "slots": [1, None, True]}},
        [1, "two", 3.5, False, None],
        "just a string",
        "Grüße aus 東京 🚀",
        "x" * 200_000,  # many recv() calls on both sides: both read to EOF
    ],
    ids=["dict", "list", "string", "unicode", "large"],
)
def test_round_trip_returns_the_functions_one_json_value(function_server, payload):
    _, port = function_server(lambda value: {"echo": value})

    assert call(route(port), payload, timeout=PATIENCE) == {"echo": payload}


def test_request_is_compact_utf8_json_ended_by_a_half_close(raw_function):
    received: list[bytes] = []

    def record(conn: socket.socket, n: int, function: RawFunction) -> None:
        # Reading to EOF only returns because the client half-closed its side.
        received.append(read_to_eof(conn))
        conn.sendall(b'"ok"')

    function = raw_function(record)
    payload = {"text": "café ☕", "n": [1, 2]}

    assert call(route(function.port), payload, timeout=PATIENCE) == "ok"
    assert received == ['{"text":"café ☕","n":[1,2]}'.encode()]


def test_refused_connection_is_unreachable_within_the_deadline():
    # Bound but not listening: the kernel refuses, and no one else can take the port.
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))
        started = time.monotonic()
        with pytest.raises(FunctionUnreachable) as caught:
            call(route(refusing.getsockname()[1]), {"q": 1}, timeout=0.5)
        elapsed = time.monotonic() - started

    assert caught.value.kind == "unreachable"
    assert caught.value.route == "TestIntent"
    assert "refused" in caught.value.detail
    assert elapsed < 0.5 + DEADLINE_SLACK


def test_dns_failure_is_unreachable(resolver):
    def no_such_name(host: str, port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    resolver["missing.funker.test"] = no_such_name

    with pytest.raises(FunctionUnreachable, match=r"cannot resolve missing\.funker\.test"):
        call(route(9999, host="missing.funker.test"), {}, timeout=0.3)


def test_idna_invalid_host_is_unreachable_not_a_unicode_error():
    # A DNS label over 63 characters (a long intent name reached by naming) makes
    # getaddrinfo raise UnicodeError, a ValueError, before any lookup is made.
    long_host = Route(name="x", host="a" * 70, port=9)

    with pytest.raises(FunctionUnreachable, match="cannot resolve") as caught:
        call(long_host, {}, timeout=0.3)

    assert caught.value.kind == "unreachable"
    assert caught.value.route == "x"


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs on a full queue")
def test_connect_timeout_is_unreachable_within_the_deadline():
    # backlog 0 holds one unaccepted connection; Linux drops further SYNs, so a
    # connect to it times out exactly like one to a black-holed replica.
    with socket.socket() as full, socket.socket() as occupant:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        occupant.connect(full.getsockname())
        started = time.monotonic()
        with pytest.raises(FunctionUnreachable, match="timed out"):
            call(route(full.getsockname()[1]), {}, timeout=0.3)
        elapsed = time.monotonic() - started

    assert elapsed < 0.3 + DEADLINE_SLACK


def test_a_call_whose_time_ran_out_before_it_could_connect_is_a_deadline(resolver):
    # A busy dispatcher (or a slow resolver) can spend the last of a call's time before
    # the first connect: the function was never found unreachable, the time ran out.
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        started: list[float] = []

        def slow(host: str, port: int) -> list[Any]:
            # The lookup answers only once the call's 0.1 s are gone.
            wait_until(lambda: time.monotonic() - started[0] > 0.1, 10, "the call's time to pass")
            return addresses("127.0.0.1")(host, port)

        resolver["slow.funker.test"] = slow
        slow_route = Route(name="slow", host="slow.funker.test", port=listening.getsockname()[1])
        started.append(time.monotonic())
        with pytest.raises(FunctionDeadlineExceeded) as caught:
            call(slow_route, {}, timeout=0.1)
    assert caught.value.kind == "deadline"


def test_function_down_at_first_then_up_is_answered_within_the_deadline(resolver):
    # A function that exited after its last request, restarted by Swarm a moment later.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # refuses until listen()
    port = listener.getsockname()[1]
    lookups = 0
    retrying = threading.Event()

    def restarting(host: str, port: int) -> list[Any]:
        nonlocal lookups
        lookups += 1
        if lookups == 2:  # the first attempt was refused: the client is retrying
            retrying.set()
        return addresses("127.0.0.1")(host, port)

    resolver["restarting.funker.test"] = restarting

    def come_up() -> None:
        if retrying.wait(10):
            listener.listen()
            conn, _ = listener.accept()
            with conn:
                read_to_eof(conn)
                conn.sendall(b'{"up":true}')

    thread = threading.Thread(target=come_up, daemon=True)
    thread.start()
    try:
        answer = call(route(port, host="restarting.funker.test"), {}, timeout=PATIENCE)
    finally:
        thread.join(5)
        listener.close()

    assert answer == {"up": True}
    assert lookups >= 2


def test_stalled_function_exceeds_the_deadline_and_is_not_resent(raw_function):
    def stall(conn: socket.socket, n: int, function: RawFunction) -> None:
        read_to_eof(conn)
        function.release.wait()

    function = raw_function(stall)
    started = time.monotonic()
    with pytest.raises(FunctionDeadlineExceeded) as caught:
        call(route(function.port, idempotent=True), {}, timeout=0.3)
    elapsed = time.monotonic() - started

    assert caught.value.kind == "deadline"
    assert function.connections == 1
    assert elapsed < 0.3 + DEADLINE_SLACK


def reset(conn: socket.socket, n: int, function: RawFunction) -> None:
    read_to_eof(conn)
    # SO_LINGER 0: close() sends RST, as a function killed mid-request does.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize(
    ("behaviour", "detail"),
    [
        (answering(b""), "closed without answering"),
        (reset, "reset"),
        (answering(b'{"speech": "cut off'), "not one JSON value"),
        (answering(b'{"a": 1} {"b": 2}'), "not one JSON value"),
        (answering(b'{"total": NaN}'), "not one JSON value"),
        (answering(b'"caf\xe9"'), "not UTF-8"),
    ],
    ids=["closes-without-answering", "reset", "invalid-json", "two-values", "nan", "latin-1"],
)
def test_broken_answers_are_protocol_errors(raw_function, behaviour, detail):
    function = raw_function(behaviour)

    with pytest.raises(FunctionProtocolError, match=detail) as caught:
        call(route(function.port), {"q": 1}, timeout=PATIENCE)

    assert caught.value.kind == "protocol"
    assert function.connections == 1


def test_answer_nested_too_deeply_to_parse_is_a_protocol_error(raw_function):
    # 100000 levels fit well under the size cap; json.loads gives up with RecursionError.
    function = raw_function(answering(b"[" * 100_000 + b"]" * 100_000))

    with pytest.raises(FunctionProtocolError, match="nested too deeply") as caught:
        call(route(function.port), {}, timeout=PATIENCE)

    assert caught.value.kind == "protocol"


def nested_lists(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "payload",
    [
        {"request": {"value": float("inf")}},
        {"request": {"value": float("-inf")}},
        {"request": {"value": float("nan")}},
        {"request": nested_lists(100_000)},
    ],
    ids=["infinity", "minus-infinity", "nan", "nested-too-deeply"],
)
def test_request_json_cannot_carry_is_refused_before_anything_is_sent(raw_function, payload):
    function = raw_function(answering(b'"never asked"'))

    with pytest.raises(FunctionRequestUnencodable, match="cannot be encoded") as caught:
        call(route(function.port), payload, timeout=PATIENCE)

    # A protocol failure by family and by reason code: the request, not the function.
    assert isinstance(caught.value, FunctionProtocolError)
    assert caught.value.kind == "protocol"
    assert caught.value.route == "TestIntent"
    assert function.connections == 0


def test_answer_over_the_cap_is_too_large_and_reading_stops(raw_function):
    function = raw_function(answering(json.dumps("x" * (1024 * 1024)).encode()))

    with pytest.raises(FunctionResponseTooLarge, match=str(256 * 1024)) as caught:
        call(route(function.port), {}, timeout=PATIENCE)

    assert caught.value.kind == "too-large"


def test_answer_exactly_at_the_cap_is_accepted(raw_function):
    answer = json.dumps("y" * 998).encode()
    function = raw_function(answering(answer))

    assert call(route(function.port), {}, timeout=5, max_response_bytes=len(answer)) == "y" * 998


def hang_up_once(conn: socket.socket, n: int, function: RawFunction) -> None:
    read_to_eof(conn)
    if n > 1:
        conn.sendall(b'{"attempt":%d}' % n)


def test_payload_is_never_resent_to_a_route_that_is_not_idempotent(raw_function):
    function = raw_function(hang_up_once)

    with pytest.raises(FunctionProtocolError):
        call(route(function.port), {"charge": 10}, timeout=PATIENCE)

    assert function.connections == 1


def test_idempotent_route_is_resent_after_a_hang_up(raw_function):
    function = raw_function(hang_up_once)

    assert call(route(function.port, idempotent=True), {}, timeout=PATIENCE) == {"attempt": 2}
    assert function.connections == 2


def test_dnsrr_name_tries_the_next_address_when_one_refuses(raw_function, resolver):
    refusing = socket.socket()
    refusing.bind(("127.0.0.2", 0))  # a replica that is down
    port = refusing.getsockname()[1]
    function = raw_function(
        answering(b'"from replica 3"'), socket.create_server(("127.0.0.3", port))
    )
    resolver["replicas.funker.test"] = addresses("127.0.0.2", "127.0.0.3")

    try:
        answer = call(route(port, host="replicas.funker.test"), {}, timeout=PATIENCE)
    finally:
        refusing.close()

    assert answer == "from replica 3"
    assert function.connections == 1


@pytest.fixture
def no_suspects() -> Iterator[None]:
    """Addresses that failed in other tests must not reorder this one's."""
    funker._suspects.clear()
    yield
    funker._suspects.clear()


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs on a full queue")
def test_a_black_holed_replica_costs_the_connect_timeout_not_the_deadline(
    raw_function, resolver, no_suspects
):
    # A task on a node that just died: its address stays in Swarm's DNS for seconds and
    # its SYNs go unanswered. Before connect_timeout the call gave it half its deadline.
    with socket.socket() as full, socket.socket() as occupant:
        full.bind(("127.0.0.2", 0))
        full.listen(0)
        occupant.connect(full.getsockname())  # the backlog is full: further SYNs dropped
        port = full.getsockname()[1]
        function = raw_function(answering(b'"alive"'), socket.create_server(("127.0.0.3", port)))
        resolver["dead-first.funker.test"] = addresses("127.0.0.2", "127.0.0.3")
        started = time.monotonic()

        answer = call(
            route(port, host="dead-first.funker.test"), {}, timeout=PATIENCE, connect_timeout=0.2
        )
        elapsed = time.monotonic() - started

    assert answer == "alive"
    assert function.connections == 1
    # Not a speed claim: the old share of the deadline was PATIENCE / 2 for the dead one.
    assert elapsed < PATIENCE / 4


def test_a_replica_that_just_failed_is_tried_last_by_the_next_call(
    raw_function, resolver, no_suspects
):
    going = raw_function(hang_up_once)  # a task being stopped: takes the request, no answer
    port = going.port
    staying = raw_function(
        answering(b'"from the other"'), socket.create_server(("127.0.0.3", port))
    )
    resolver["rolling.funker.test"] = addresses("127.0.0.1", "127.0.0.3")
    rolling = route(port, host="rolling.funker.test", idempotent=True)

    first = call(rolling, {}, timeout=PATIENCE)
    second = call(rolling, {}, timeout=PATIENCE)

    assert (first, second) == ("from the other", "from the other")
    assert going.connections == 1  # the second call did not start with it again
    assert staying.connections == 2


def test_concurrency_limit_keeps_one_call_in_flight_and_answers_all(raw_function):
    in_flight = 0
    most = 0

    def one_at_a_time(conn: socket.socket, n: int, function: RawFunction) -> None:
        nonlocal in_flight, most
        with function.lock:
            in_flight += 1
            most = max(most, in_flight)
        request = json.loads(read_to_eof(conn))
        function.release.wait(0.02)  # simulated work, so unbounded calls would overlap
        with function.lock:
            in_flight -= 1  # before answering: the caller's next call may start at once
        conn.sendall(json.dumps({"n": request["n"]}).encode())

    function = raw_function(one_at_a_time)
    limited = route(function.port, concurrency=1)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda n: call(limited, {"n": n}, timeout=10), range(10)))

    assert answers == [{"n": n} for n in range(10)]
    assert most == 1
    assert function.connections == 10


def test_waiting_for_a_concurrency_slot_counts_against_the_deadline(raw_function):
    holding = threading.Event()

    def stall(conn: socket.socket, n: int, function: RawFunction) -> None:
        read_to_eof(conn)
        holding.set()
        function.release.wait()

    function = raw_function(stall)
    # Its own name: concurrency slots are shared per route across the process.
    limited = Route(name="SlotIntent", host="127.0.0.1", port=function.port, concurrency=1)
    outcome: list[BaseException] = []

    def hold_the_slot() -> None:
        try:
            call(limited, {}, timeout=10)
        except FunctionError as exc:
            outcome.append(exc)

    holder = threading.Thread(target=hold_the_slot, daemon=True)
    holder.start()
    assert holding.wait(10)

    with pytest.raises(FunctionDeadlineExceeded, match="slot"):
        call(limited, {}, timeout=0.3)

    assert function.connections == 1
    function.release.set()
    holder.join(10)
    assert [type(exc) for exc in outcome] == [FunctionProtocolError]  # released, no answer


# ---------------------------------------------------------------------------- server


def test_server_runs_requests_in_parallel_one_thread_each(function_server):
    both_in = threading.Barrier(2, timeout=PATIENCE)

    def meet(payload: Any) -> Any:
        both_in.wait()  # only passes if two requests are in the handler at once
        return payload

    _, port = function_server(meet)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda n: call(route(port), n, timeout=10), [1, 2]))

    assert answers == [1, 2]


def test_handler_exception_gets_no_answer_so_the_caller_sees_a_failure(function_server, caplog):
    def fragile(payload: Any) -> Any:
        if payload == "boom":
            raise ValueError("secret detail")
        return "fine"

    _, port = function_server(fragile)

    with (
        caplog.at_level(logging.ERROR, logger="dispatch.funker"),
        pytest.raises(FunctionProtocolError, match="closed without answering") as caught,
    ):
        call(route(port), "boom", timeout=PATIENCE)
    assert "secret detail" not in str(caught.value)  # the caller learns nothing of it
    assert call(route(port), "again", timeout=PATIENCE) == "fine"  # and the server keeps serving
    failed = [r for r in caplog.records if "handler failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None  # the author gets the traceback


def test_unserialisable_answer_gets_no_answer(function_server):
    _, port = function_server(lambda payload: {"when": object()})

    with pytest.raises(FunctionProtocolError, match="closed without answering"):
        call(route(port), {}, timeout=PATIENCE)


def send_raw(port: int, data: bytes) -> bytes:
    """What the server sends back for `data`: b"" when it closes (or resets) without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
            return read_to_eof(conn)
        except ConnectionResetError:  # closed with our bytes unread: no answer either
            return b""


@pytest.mark.parametrize(
    "request_bytes, reason",
    [
        (b"{not json", "not one UTF-8 JSON value"),
        (b'"caf\xe9"', "not one UTF-8 JSON value"),
        (b"1 2", "not one UTF-8 JSON value"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b" " * (1024 * 1024 + 1), "larger than 1048576 bytes"),
    ],
    ids=["json", "utf8", "two-values", "too-deep", "too-large"],
)
def test_unreadable_request_gets_no_answer_no_handler_call_and_a_log_line(
    function_server, caplog, request_bytes, reason
):
    calls: list[Any] = []
    _, port = function_server(calls.append)

    with caplog.at_level(logging.ERROR, logger="dispatch.funker"):
        assert send_raw(port, request_bytes) == b""

    assert calls == []
    assert any(reason in record.getMessage() for record in caplog.records)


def test_a_function_that_cannot_read_the_request_is_a_protocol_error_for_the_caller(
    function_server,
):
    _, port = function_server(lambda payload: "unreachable")

    with pytest.raises(FunctionProtocolError):
        call(route(port), "x" * (1024 * 1024), timeout=PATIENCE)


def test_port_probe_is_not_a_request(function_server):
    calls: list[Any] = []

    def record(payload: Any) -> Any:
        calls.append(payload)
        return payload

    _, port = function_server(record)
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as probe:
        probe.shutdown(socket.SHUT_WR)
        assert read_to_eof(probe) == b""

    assert call(route(port), "real", timeout=PATIENCE) == "real"
    assert calls == ["real"]


# A client is "cut off" when the server closes on it; tests allow this long for that.
LIVENESS = 60.0


def trickle(port: int, within: float = LIVENESS) -> bool:
    """Send a byte every 0.1 s and never half-close; True once the server closes the connection.

    0.1 s between bytes is far inside any per-recv timeout: only a deadline for
    the whole request ends this. False if the connection is still open after `within`.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as conn:
        conn.settimeout(0.1)  # recv() waiting for the server's close paces the bytes
        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            try:
                conn.sendall(b" ")
                if conn.recv(1) == b"":
                    return True
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return True
    return False


def test_clients_trickling_bytes_are_cut_off_at_the_whole_request_deadline(function_server):
    calls: list[Any] = []
    _, port = function_server(calls.append, read_timeout=0.5)

    with ThreadPoolExecutor(max_workers=5) as pool:
        closed = list(pool.map(lambda _: trickle(port), range(5)))

    assert closed == [True] * 5
    assert calls == []  # none of them ever finished a request


def test_a_client_is_answered_while_trickling_clients_hold_every_handler(function_server):
    server, port = function_server(
        lambda payload: {"echo": payload}, read_timeout=0.5, max_handlers=2
    )

    with ThreadPoolExecutor(max_workers=2) as pool:
        tricklers = [pool.submit(trickle, port) for _ in range(2)]
        wait_until(lambda: server.handling == 2, 30, "both handlers to be held by tricklers")
        # Its connection waits in the listen backlog until a trickler is cut off.
        answer = call(route(port), "well-behaved", timeout=LIVENESS)
        closed = [trickler.result() for trickler in tricklers]

    assert answer == {"echo": "well-behaved"}
    assert closed == [True, True]


def test_past_max_handlers_connections_wait_in_the_backlog_not_in_new_threads(function_server):
    entered = threading.Condition()
    inside: list[Any] = []
    most = 0
    release = threading.Event()

    def held(payload: Any) -> Any:
        nonlocal most
        with entered:
            inside.append(payload)
            most = max(most, len(inside))
            entered.notify_all()
        release.wait(LIVENESS)
        with entered:
            inside.remove(payload)
        return payload

    _, port = function_server(held, max_handlers=2)

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = [pool.submit(call, route(port), n, timeout=LIVENESS * 2) for n in range(3)]
        with entered:
            assert entered.wait_for(lambda: len(inside) >= 2, 30)
            # The one check for something that must not happen: a third handler running.
            assert not entered.wait_for(lambda: len(inside) > 2, 0.5)
        release.set()
        assert sorted(answer.result() for answer in answers) == [0, 1, 2]

    assert most == 2


def test_a_client_that_never_reads_the_answer_releases_its_handler(function_server):
    started = threading.Event()

    def big(payload: Any) -> str:
        started.set()  # said by the handler itself: no poll can miss a short-lived state
        return "x" * (32 * 1024 * 1024)

    server, port = function_server(big, read_timeout=0.5)

    with socket.socket() as conn:
        # A tiny receive window: the answer backs up into the server's send buffer.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(("127.0.0.1", port))
        conn.sendall(b'"answer me"')
        conn.shutdown(socket.SHUT_WR)
        assert started.wait(30), "the handler never ran"
        wait_until(lambda: server.handling == 0, LIVENESS, "the unread answer to be given up")


@pytest.mark.parametrize(
    "bounds",
    [
        {"read_timeout": 0},
        {"read_timeout": -1.0},
        {"read_timeout": float("inf")},
        {"read_timeout": float("nan")},
        {"max_handlers": 0},
    ],
    ids=["zero-timeout", "negative-timeout", "infinite-timeout", "nan-timeout", "no-handlers"],
)
def test_server_bounds_must_be_real_bounds(bounds):
    with pytest.raises(ValueError):
        make_server(lambda payload: payload, "127.0.0.1", 0, **bounds)


def test_server_defaults_bound_a_request_to_30_seconds_and_64_handlers():
    with make_server(lambda payload: payload, "127.0.0.1", 0) as server:
        assert (server.read_timeout, server.max_handlers) == (30.0, 64)


def test_shutdown_stops_serve_forever_promptly():
    server = make_server(lambda payload: payload, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert call(route(server.server_address[1]), "up", timeout=PATIENCE) == "up"

    server.shutdown()
    thread.join(5)
    server.server_close()

    assert not thread.is_alive()


def test_a_request_waiting_in_the_backlog_at_shutdown_is_answered_not_reset():
    # A swarm task being stopped: one request in its only handler, the next one already
    # sent into the listen backlog. Closing the listener would reset the second, after
    # its payload went out, and the caller could not know whether it was acted on.
    release = threading.Event()
    entered = threading.Event()

    def handler(payload: Any) -> Any:
        if payload == "first":
            entered.set()
            release.wait(PATIENCE)
        return {"echo": payload}

    server = make_server(handler, "127.0.0.1", 0, max_handlers=1)
    port = server.server_address[1]
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    answers: list[Any] = []
    first = threading.Thread(
        target=lambda: answers.append(call(route(port), "first", timeout=PATIENCE))
    )
    first.start()
    assert entered.wait(PATIENCE)
    waiting = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    waiting.sendall(b'"second"')
    waiting.shutdown(socket.SHUT_WR)

    server.shutdown()
    serving.join(PATIENCE)
    closing = threading.Thread(target=server.close_gracefully, args=(PATIENCE,))
    closing.start()
    wait_until(lambda: not accepts(port), PATIENCE, "the listener to close")
    release.set()

    with waiting:
        assert json.loads(read_to_eof(waiting)) == {"echo": "second"}
    first.join(PATIENCE)
    closing.join(PATIENCE)
    assert answers == [{"echo": "first"}]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_process_exits_cleanly_on_signal(processes, signum):
    port = free_port()
    child = processes(sys.executable, "echo_function.py", str(port))

    # call() retries refusals within its deadline: that is the readiness wait.
    assert call(route(port), "ready?", timeout=10) == {"echo": "ready?"}
    child.send_signal(signum)
    out, err = child.communicate(timeout=10)

    assert child.returncode == 0
    assert (out, err) == ("", "")  # serve() prints nothing but errors


def test_sigterm_lets_a_request_in_flight_finish(tmp_path):
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, str(FUNCTIONS / "held_function.py"), str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        answers: list[Any] = []
        caller = threading.Thread(
            target=lambda: answers.append(call(route(port), "in flight", timeout=20))
        )
        caller.start()
        assert child.stdout.readline().strip() == "started"  # the handler is running
        child.send_signal(signal.SIGTERM)
        # Release the answer only once the function refuses new connections: it
        # is shutting down, and only the drain keeps the reply alive.
        wait_until(lambda: not accepts(port), 30, "the listener to close")
        child.stdin.write("release\n")
        child.stdin.flush()
        caller.join(20)
        assert answers == [{"echo": "in flight"}]
        assert child.wait(timeout=20) == 0
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------------------- compatibility


@pytest.fixture
def port_9999() -> Iterator[int]:
    """Python funker 0.0.1 can only listen on 9999: hold it for one test at a time.

    A lock file serialises test runs on this machine (two runs would answer each
    other's calls); a port taken by anything else skips rather than fights.
    """
    with open(Path(tempfile.gettempdir()) / "funker-dispatch-port-9999.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", 9999))
            except OSError:
                pytest.skip("port 9999 is in use: Python funker 0.0.1 cannot listen elsewhere")
        yield 9999


ALEXA_REQUEST = {
    "version": "1.0",
    "session": {"new": True, "sessionId": "amzn1.echo-api.session.1", "attributes": {}},
    "context": {"System": {"application": {"applicationId": "amzn1.ask.skill.test"}}},
    "request": {"type": "IntentRequest", "requestId": "amzn1.echo-api.request.1"},
}


def test_python_funker_001_function_answers_our_call(port_9999, processes):
    child = processes(sys.executable, "funker001_function.py", "echo")

    answer = call(route(port_9999), {"name": "Zoë", "count": 3}, timeout=10)

    assert answer == {"echo": {"name": "Zoë", "count": 3}}
    assert child.wait(timeout=10) == 0  # it serves one request and exits


def test_python_funker_001_fixed_signature_handler_gets_a_narrowed_payload(port_9999, processes):
    processes(sys.executable, "funker001_function.py", "alexa")
    narrowed = {key: ALEXA_REQUEST[key] for key in ("session", "request", "version")}

    answer = call(route(port_9999), narrowed, timeout=10)

    assert answer["response"]["outputSpeech"]["text"] == "You asked for IntentRequest."
    assert answer["sessionAttributes"] == {"session": "amzn1.echo-api.session.1"}


def test_python_funker_001_handler_given_unknown_keys_hangs_up(port_9999, processes):
    # Why routes have `arguments`: func(**payload) rejects `context`, and 0.0.1 just closes.
    child = processes(sys.executable, "funker001_function.py", "alexa")

    with pytest.raises(FunctionProtocolError):
        call(route(port_9999), ALEXA_REQUEST, timeout=10)

    _, err = child.communicate(timeout=10)
    assert "unexpected keyword argument 'context'" in err


def test_python_funker_001_client_calls_our_server(port_9999):
    import funker

    server = make_server(lambda payload: {"got": payload}, "127.0.0.1", port_9999)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        answer = funker.call("127.0.0.1", question="how many?", n=2)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

    assert answer == {"got": {"question": "how many?", "n": 2}}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH: Node funker test")
def test_node_funker_function_answers_our_call(processes):
    port = free_port()
    child = processes("node", "node_function.js", str(port))

    answer = call(route(port), {"text": "héllo", "n": [1, 2]}, timeout=10)

    assert answer == {"echo": {"text": "héllo", "n": [1, 2]}}
    assert child.wait(timeout=10) == 0
