"""The funker protocol, both sides: one JSON value each way over one TCP connection.

This is the cut between the skill and the network, as httpx's transport layer is
for HTTP: plain values and sockets in, one JSON value out. It knows nothing of the
ASK SDK or Flask, so a function author can `serve()` with the standard library only.

Client: connect, send UTF-8 JSON, half-close (SHUT_WR), read to EOF, parse one value.
Server: accept, read to EOF, call the handler, write one JSON value, close.
Both sides interoperate with Python funker 0.0.1 and Node funker (docs/functions.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dispatch.registry import DEFAULT_FUNCTION_PORT, Route

log = logging.getLogger(__name__)

DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024
MAX_REQUEST_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
# A function that exits after each request is down while Swarm restarts it: try
# again soon, back off a little, and never past the caller's deadline.
_FIRST_BACKOFF = 0.025
_MAX_BACKOFF = 0.2
#: Seconds a client of `serve()` has to send its whole request (and to take the answer).
DEFAULT_READ_TIMEOUT = 30.0
#: Connections `serve()` handles at once; past it, the rest wait in the listen backlog.
DEFAULT_MAX_HANDLERS = 64
#: Seconds a connect may take before the next address is tried ([dispatch] connect_timeout).
#: A live task on an overlay network accepts in milliseconds; one on a node that just died
#: never answers the SYN, and Swarm keeps its address in DNS until the node is marked down.
DEFAULT_CONNECT_TIMEOUT = 0.5
#: Seconds an address that failed stays last in the order addresses are tried: long
#: enough to outlast Swarm noticing a dead node (a few heartbeats), short enough that a
#: task back on that address is soon used again. Only the order changes: nothing is skipped.
SUSPECT_SECONDS = 10.0

Handler = Callable[[Any], Any]


class FunctionError(Exception):
    """A funker function gave no usable answer."""

    kind = "function-error"

    def __init__(self, route: str, detail: str) -> None:
        super().__init__(detail)
        self.route = route  # the route's name, for the operator log
        self.detail = detail  # what happened, never payload content


class FunctionUnreachable(FunctionError):
    """No connection could be made (refused, DNS failure, connect timeout); nothing was sent."""

    kind = "unreachable"


class FunctionDeadlineExceeded(FunctionError):
    """The call's deadline passed before the function answered."""

    kind = "deadline"


class FunctionProtocolError(FunctionError):
    """The function hung up without answering, reset the connection, or answered bad JSON."""

    kind = "protocol"


class FunctionRequestUnencodable(FunctionProtocolError):
    """The request cannot be sent as strict JSON (NaN, infinity, too deep); nothing was sent."""


class FunctionResponseTooLarge(FunctionError):
    """The answer exceeded the size cap; reading stopped there."""

    kind = "too-large"


class _HungUp(Exception):
    """Closed or reset after the payload went out: resendable only for idempotent routes."""


# ---------------------------------------------------------------------------- client


def call(
    route: Route,
    payload: Any,
    *,
    timeout: float,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Any:
    """Send `payload` to the function serving `route` and return its one JSON answer.

    `timeout` bounds the whole call: waiting for a concurrency slot, connecting,
    retrying, sending and reading (a hung system resolver is the one thing it
    cannot interrupt). The host is resolved again on every attempt (a Swarm
    dnsrr name lists the tasks running now), and each of its addresses gets at
    most `connect_timeout` seconds before the next is tried; addresses that
    failed lately are tried last. `route.concurrency` bounds calls in flight from this
    process only, not across workers or replicas. Raises a FunctionError
    subclass: FunctionRequestUnencodable, before anything is sent, for a
    payload that strict JSON cannot carry (NaN, infinity, nesting too deep);
    a payload holding non-JSON Python objects is the caller's bug (TypeError).

    `payload` as `bytes` is taken as one JSON value already encoded (the
    dispatcher forwards Alexa's body byte for byte this way, without a
    re-encode); any other value is encoded here.
    """
    deadline = time.monotonic() + timeout
    body = (
        bytes(payload)
        if isinstance(payload, bytes | bytearray)
        else _encode_request(route, payload)
    )
    with _slot(route, deadline):
        return _call(route, body, deadline, max_response_bytes, connect_timeout)


def _encode_request(route: Route, payload: Any) -> bytes:
    try:
        return _encode(payload)
    except (ValueError, RecursionError) as exc:
        # Data, not a bug: a narrowed Alexa request can hold a number that parsed as
        # infinity. The json module's messages name the problem, never the values.
        detail = f"request cannot be encoded as JSON: {exc}"
        raise FunctionRequestUnencodable(route.name, detail) from None


def _call(route: Route, body: bytes, deadline: float, limit: int, connect_timeout: float) -> Any:
    backoff = _FIRST_BACKOFF
    attempts = 0
    failure: FunctionError = FunctionDeadlineExceeded(route.name, "no time left to connect")
    while deadline - time.monotonic() > 0:
        attempts += 1
        try:
            sock, address = _connect(route, deadline, connect_timeout)
        except FunctionUnreachable as exc:
            failure = exc  # nothing was sent: always safe to try again
        except FunctionDeadlineExceeded as exc:
            failure = exc
            break
        else:
            with sock:
                try:
                    return _exchange(route, sock, body, deadline, limit)
                except _HungUp as exc:
                    _suspect(address)  # a replica going away: the resend goes elsewhere
                    failure = FunctionProtocolError(route.name, str(exc))
                    # The function may have acted on the payload before hanging up.
                    if not route.idempotent:
                        raise failure from None
        time.sleep(max(0.0, min(backoff, deadline - time.monotonic())))
        backoff = min(backoff * 2, _MAX_BACKOFF)
    raise type(failure)(route.name, f"{failure.detail} ({attempts} attempts)")


def _connect(route: Route, deadline: float, connect_timeout: float) -> tuple[socket.socket, Any]:
    """Connect to the first address of the route's host that accepts; sends nothing."""
    try:
        addresses = _resolve(route.host, route.port)
    except OSError as exc:
        detail = f"cannot resolve {route.host}: {exc.strerror or exc}"
        raise FunctionUnreachable(route.name, detail) from None
    except UnicodeError:
        # getaddrinfo IDNA-encodes the name first and raises UnicodeError (a ValueError) for
        # one it cannot encode, e.g. a label over 63 characters from a long intent name.
        detail = f"cannot resolve {route.host}: not a valid DNS name"
        raise FunctionUnreachable(route.name, detail) from None
    failure = f"{route.host} resolves to no address"
    addresses = _suspects_last(addresses)
    for index, (family, address) in enumerate(addresses):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if index == 0:
                # The time ran out before the function could be tried (a busy process, a
                # slow lookup): a deadline, not a function found unreachable.
                raise FunctionDeadlineExceeded(route.name, "no time left to connect")
            break
        sock = socket.socket(family, socket.SOCK_STREAM)
        # A black-holed replica (a dead node's task, still in Swarm's DNS) gets at most
        # connect_timeout, and never more than its share of the time left: its siblings
        # must still have time to answer.
        sock.settimeout(min(connect_timeout, remaining / (len(addresses) - index)))
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            _suspect(address)
            failure = f"{_describe(exc)} at {address[0]}:{address[1]}"
            continue
        return sock, address
    raise FunctionUnreachable(route.name, failure)


# Addresses that refused, timed out or hung up lately → when (monotonic). Shared by every
# route and thread of the process; a plain dict, whose single operations the GIL keeps whole.
_suspects: dict[Any, float] = {}


def _suspect(address: Any) -> None:
    _suspects[address] = time.monotonic()
    if len(_suspects) > 1024:  # bounded: drop the expired ones
        stale = time.monotonic() - SUSPECT_SECONDS
        for key, when in list(_suspects.items()):
            if when < stale:
                _suspects.pop(key, None)


def _suspects_last(addresses: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Addresses in DNS order, those that failed within SUSPECT_SECONDS moved to the end."""
    if not _suspects:
        return addresses
    stale = time.monotonic() - SUSPECT_SECONDS
    return sorted(addresses, key=lambda pair: _suspects.get(pair[1], -math.inf) >= stale)


def _resolve(host: str, port: int) -> list[tuple[int, Any]]:
    """Every distinct (family, sockaddr) of host: several under Swarm dnsrr."""
    addresses: list[tuple[int, Any]] = []
    for family, _type, _proto, _name, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        if (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    return addresses


def _exchange(route: Route, sock: socket.socket, body: bytes, deadline: float, limit: int) -> Any:
    answer = bytearray()
    try:
        _time_left(sock, deadline)
        sock.sendall(body)
        sock.shutdown(socket.SHUT_WR)  # the function reads to EOF: this ends the request
        while True:
            _time_left(sock, deadline)
            # Never ask for more than one byte past the cap: an oversize answer stops here.
            chunk = sock.recv(min(_CHUNK, limit + 1 - len(answer)))
            if not chunk:
                break
            answer += chunk
            if len(answer) > limit:
                raise FunctionResponseTooLarge(route.name, f"answer exceeds {limit} bytes")
    except TimeoutError:
        raise FunctionDeadlineExceeded(route.name, "no answer before the deadline") from None
    except OSError as exc:
        raise _HungUp(f"{_describe(exc)} after the request was sent") from None
    if not answer:
        raise _HungUp("closed without answering")
    return _parse(route, bytes(answer))


def _time_left(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:  # settimeout(0) would mean non-blocking, not "expired"
        raise TimeoutError
    sock.settimeout(remaining)


def _parse(route: Route, answer: bytes) -> Any:
    try:
        text = answer.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"answer is not UTF-8 (byte {exc.start})"
        raise FunctionProtocolError(route.name, detail) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError names a position, never the content
        raise FunctionProtocolError(route.name, f"answer is not one JSON value: {exc}") from None
    except RecursionError:  # "[[[[...]]]]" deep enough for the parser's recursion limit
        raise FunctionProtocolError(route.name, "answer is nested too deeply to parse") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _describe(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    return (exc.strerror or type(exc).__name__).lower()


# Per-process bound on calls in flight to one route (docs/functions.md: a published function
# serves one connection at a time and resets the ones queued behind it). Keyed with
# the limit so a reloaded route with a new limit gets a fresh semaphore.
_slots: dict[tuple[str, str, int, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


@contextlib.contextmanager
def _slot(route: Route, deadline: float) -> Iterator[None]:
    if route.concurrency is None:
        yield
        return
    key = (route.name, route.host, route.port, route.concurrency)
    with _slots_lock:
        slots = _slots.get(key)
        if slots is None:
            slots = _slots[key] = threading.BoundedSemaphore(route.concurrency)
    if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
        detail = f"no free slot (concurrency {route.concurrency}) before the deadline"
        raise FunctionDeadlineExceeded(route.name, detail)
    try:
        yield
    finally:
        slots.release()


# ---------------------------------------------------------------------------- server


#: Seconds `serve()` waits for in-flight requests after a stop signal.
SHUTDOWN_GRACE = 10.0


class FunctionServer(socketserver.ThreadingTCPServer):
    """A funker function: one JSON request per connection, each in its own thread.

    Both bounds hold against slow or idle clients: `read_timeout` is for the
    whole request (not per recv), and at most `max_handlers` connections are
    handled at once; past that, connections are not accepted yet, so they wait
    in the listen backlog instead of costing a thread each.
    """

    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # a burst must queue, not be refused

    def __init__(
        self,
        handler: Handler,
        host: str,
        port: int,
        *,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_handlers: int = DEFAULT_MAX_HANDLERS,
    ) -> None:
        if not 0 < read_timeout < math.inf:  # NaN fails both comparisons too
            raise ValueError(f"read_timeout must be a positive number of seconds: {read_timeout}")
        if max_handlers < 1:
            raise ValueError(f"max_handlers must be at least 1: {max_handlers}")
        self.handler = handler
        self.read_timeout = read_timeout
        self.max_handlers = max_handlers
        self._free = threading.BoundedSemaphore(max_handlers)
        self._stopping = threading.Event()
        self._poll_interval = 0.1
        self._active = 0
        self._idle = threading.Condition()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Connection)

    @property
    def handling(self) -> int:
        """Connections being handled right now (reading, in the handler, or answering)."""
        with self._idle:
            return self._active

    def get_request(self) -> tuple[socket.socket, Any]:
        # Accept only with a handler free. Until then the kernel completes handshakes
        # into the listen backlog; waking each poll interval keeps shutdown() prompt.
        while not self._free.acquire(timeout=self._poll_interval):
            if self._stopping.is_set():
                raise OSError("shutting down")  # serve_forever skips it and checks the flag
        try:
            return super().get_request()
        except BaseException:
            self._free.release()
            raise

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started (cannot start one): it frees nothing
            self._free.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._idle:
            self._active += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()
            self._free.release()

    def close_gracefully(self, grace: float = SHUTDOWN_GRACE) -> bool:
        """After serve_forever() returned: answer what already waits, then stop listening.

        Connections the kernel completed into the listen backlog have sent their
        request already; closing the listener would reset them, and the caller
        could not tell whether the request was acted on. So they are accepted and
        handled first, then the listener closes (new connects are refused, which a
        caller may always retry), then in-flight requests get the rest of `grace`.
        True when every request finished in time.
        """
        deadline = time.monotonic() + grace
        self.socket.setblocking(False)
        while True:
            try:
                request, address = self.socket.accept()
            except OSError:  # BlockingIOError: the backlog is empty
                break
            request.settimeout(None)  # the handler sets its own deadline
            if not self._free.acquire(timeout=max(0.0, deadline - time.monotonic())):
                request.close()
                continue
            self.process_request(request, address)
        self.server_close()
        return self.drain(max(0.0, deadline - time.monotonic()))

    def drain(self, timeout: float) -> bool:
        """Wait until no request is being handled (True), or `timeout` passes (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def serve_forever(self, poll_interval: float = 0.1) -> None:
        # shutdown() (and so SIGTERM) waits up to one poll interval: keep it short.
        self._poll_interval = poll_interval
        try:
            super().serve_forever(poll_interval)
        finally:
            self._stopping.clear()

    def shutdown(self) -> None:
        self._stopping.set()  # first: get_request() may be waiting for a free handler
        super().shutdown()


class _Connection(socketserver.BaseRequestHandler):
    """One request. A request that cannot be served gets no answer at all, only a log line.

    Closing without an answer is what the published runtimes do when their
    handler fails (the process dies), and it is the one thing a caller cannot
    mistake for success: the dispatcher reports a protocol failure, an event's
    sender is told to retry, and the replay memory does not mark it done. An
    `{"error": ...}` answer would be an ordinary JSON value, and count as one.
    """

    server: FunctionServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        # One deadline for the whole request: with a timeout per recv, a byte every
        # few seconds would hold this thread (and a handler slot) for ever.
        deadline = time.monotonic() + self.server.read_timeout
        request = bytearray()
        try:
            while True:
                _time_left(sock, deadline)
                chunk = sock.recv(_CHUNK)
                if not chunk:
                    break
                request += chunk
                if len(request) > MAX_REQUEST_BYTES:
                    self._refuse(f"request larger than {MAX_REQUEST_BYTES} bytes")
                    return
        except TimeoutError:
            self._refuse(f"request not received within {self.server.read_timeout:g} s")
            return
        except OSError:
            return  # the client went away: nobody to answer, nothing to tell
        if not request:
            return  # a port probe (connect and close) is not a request
        try:
            payload = json.loads(request.decode("utf-8"), parse_constant=_reject_constant)
        except ValueError:  # includes UnicodeDecodeError
            self._refuse("request is not one UTF-8 JSON value")
            return
        except RecursionError:
            self._refuse("request is nested too deeply to parse")
            return
        try:
            answer = _encode(self.server.handler(payload))
        except Exception:
            # The traceback is the function author's to read; the caller learns only
            # that no answer came (FunctionProtocolError), never the details.
            log.exception("funker handler failed: the request gets no answer")
            return
        self._reply(answer)

    def _refuse(self, reason: str) -> None:
        log.error("funker request refused, no answer sent: %s", reason)

    def _reply(self, answer: bytes) -> None:
        # sendall's timeout bounds the whole send: a client that never reads the
        # answer gives the thread back after as long as it had for the request.
        self.request.settimeout(self.server.read_timeout)
        with contextlib.suppress(OSError):  # the caller gave up (deadline): nothing to do
            self.request.sendall(answer)
        # socketserver then half-closes and closes: the caller's EOF ends the answer.


def _encode(value: Any) -> bytes:
    """Compact UTF-8 JSON; NaN refused, as other implementations would reject it."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (legal in a JSON "\\ud800" escape, not in UTF-8): keep
        # it as the same escape, so the function receives what Alexa sent.
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def make_server(
    handler: Handler,
    host: str = "0.0.0.0",
    port: int = DEFAULT_FUNCTION_PORT,
    *,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    max_handlers: int = DEFAULT_MAX_HANDLERS,
) -> FunctionServer:
    """A bound, not yet serving FunctionServer (port 0 picks a free port)."""
    return FunctionServer(handler, host, port, read_timeout=read_timeout, max_handlers=max_handlers)


def serve(
    handler: Handler,
    host: str = "0.0.0.0",
    port: int = DEFAULT_FUNCTION_PORT,
    *,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    max_handlers: int = DEFAULT_MAX_HANDLERS,
) -> None:
    """Serve `handler(payload) -> answer` until SIGTERM/SIGINT; prints nothing but errors.

    A client has `read_timeout` seconds for its whole request; at most
    `max_handlers` requests are handled at once and the rest wait their turn
    in the listen backlog, so slow clients cannot exhaust threads. A handler
    that raises, and a request too large, too slow or not one JSON value, get
    no answer: the connection closes and the reason is logged here, so the
    caller sees a failure (docs/robustness.md), never an ordinary `{"error": ...}` value.

    On a stop signal it answers the connections already waiting, accepts nothing
    more and lets requests already being handled finish (up to `SHUTDOWN_GRACE`
    seconds), so a swarm update neither resets a request nor cuts a reply off.
    """
    server = make_server(handler, host, port, read_timeout=read_timeout, max_handlers=max_handlers)
    with server, _stop_on_signals(server):
        server.serve_forever()
        server.close_gracefully(SHUTDOWN_GRACE)


@contextlib.contextmanager
def _stop_on_signals(server: FunctionServer) -> Iterator[None]:
    # Python only lets the main thread install signal handlers; elsewhere the
    # embedder stops the server with shutdown().
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever() to return, which runs in this very
        # thread underneath the signal handler: ask from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def run(
    handler: Handler, argv: Sequence[str] | None = None, *, description: str | None = None
) -> None:
    """A function's whole `main`: `--host` ($FUNKER_HOST, else 0.0.0.0), `--port` ($FUNKER_PORT,
    else 9999), serve. `serve`'s function supervisor sets both: loopback, and the port it chose."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--host",
        default=os.environ.get("FUNKER_HOST", "0.0.0.0"),
        help="address to listen on (default $FUNKER_HOST, else 0.0.0.0)",
    )
    # A string default goes through type=int too, so a bad FUNKER_PORT is a usage error.
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("FUNKER_PORT", str(DEFAULT_FUNCTION_PORT)),
        help=f"TCP port (default $FUNKER_PORT, else {DEFAULT_FUNCTION_PORT})",
    )
    args = parser.parse_args(argv)
    serve(handler, args.host, args.port)
