"""The RSGI application granian serves: each request read whole under a deadline, then WSGI.

granian parses HTTP in Rust and bounds the request head (its header read
timeout, its buffer size) and TLS handshakes without holding a Python thread.
Its WSGI interface, though, streams the body into the application's thread,
so a client trickling a body holds that thread for as long as it likes
(measured: 40 such connections stop `/healthz` of 2 workers × 8 threads).
This bridge receives the body on the worker's event loop, capped and within
`read_timeout`, and only then hands the request to a thread of a bounded
pool that runs the Flask app. No published adapter buffers first under a
deadline (asgiref's WsgiToAsgi buffers without one, a2wsgi streams), which
is why these few lines exist. What it also owns (docs/robustness.md):

- Body bytes in flight per worker have a budget (`[server]
  max_body_bytes_in_flight`), counted as they arrive, never as a client
  claims: a body that would exceed it waits (the client's TCP window fills)
  within `read_timeout`, else 503. Event deliveries and everything else
  (Alexa's path) draw on separate shares of it, so no flood of deliveries
  can make an Alexa body wait.
- Event deliveries run on threads of their own (`EventAdmission`); when all
  are busy a delivery is answered 503 at once, and Alexa's threads never
  see it.
- A path may check the headers before the body is read (`BodyCheck`): GitHub's
  signature and event headers, the HMAC then computed as the body arrives.
- Every request's arrival time goes to the app, so deadlines count from it.

A body that is too large, too slow or broken is not answered here: the app
gets the request with an empty body and `BODY_ERROR` in its environ, and
refuses it through its own JSON errors, log line and metrics, like any other
refusal.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import ipaddress
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from io import BytesIO
from typing import Any, Protocol

from skill.environ import (
    ARRIVED,
    BODY_DIGEST,
    BODY_ERROR,
    BODY_UNREAD,
    BodyCheck,
    BodyFailure,
    BodyHash,
    EventAdmission,
)

log = logging.getLogger("funker_dispatch")

#: Body bytes the requests of one worker hold at once by default (event deliveries aside).
DEFAULT_BODY_BUDGET = 16 * 1024 * 1024

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SERVER_ERROR = (
    500,
    [("content-type", "application/json")],
    b'{"error": "internal", "message": "internal error"}',
)
_BUSY = (
    503,
    [("content-type", "application/json"), ("retry-after", "1")],
    b'{"error": "busy", "message": "too many deliveries in progress; retry"}',
)


class _TooLarge(Exception):
    pass


TIMEOUT = BodyFailure("timeout", 408, "request body not received in time")
BROKEN = BodyFailure("malformed", 400, "request body could not be read")
OVER_BUDGET = BodyFailure("busy", 503, "too many request bodies in flight; retry")


class Gauge(Protocol):
    def inc(self, amount: float = 1, /) -> None: ...


class RequestBridge:
    """Serve a WSGI app over RSGI: body first (capped, budgeted, in time), then a thread."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        threads: int,
        read_timeout: float,
        body_cap: Callable[[str], int],
        forwarded_allow_ips: Sequence[str] = (),
        body_budget: int = DEFAULT_BODY_BUDGET,
        events: EventAdmission | None = None,
        body_checks: Mapping[str, BodyCheck] | None = None,
        budget_gauges: tuple[Gauge, Gauge] | None = None,
    ) -> None:
        """`budget_gauges`: where the main lane's and the events' body bytes held are shown."""
        self.app = app
        self.threads = threads
        self.read_timeout = read_timeout
        self.body_cap = body_cap
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in forwarded_allow_ips
        )
        self.events = events
        self.body_checks = dict(body_checks or {})
        main_gauge, event_gauge = budget_gauges or (None, None)
        self._main_budget = _Budget(body_budget, main_gauge)
        self._event_budget = _Budget(events.body_budget if events else 0, event_gauge)
        self._pool: _Pool | None = None
        self._event_pool: _Pool | None = None
        self._events_running = 0  # touched on the event loop only: no lock

    # RSGI calls these in each worker process, after the fork: threads start there.
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # uvloop where the package installs it, else asyncio's (granian's "auto").
        log.info("event loop: %s", type(loop).__module__.partition(".")[0])
        self._start(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        for pool in (self._pool, self._event_pool):
            if pool is not None:
                pool.shutdown()  # requests in flight finish before the worker exits

    def _start(self, loop: asyncio.AbstractEventLoop) -> _Pool:
        self._pool = _Pool(self.threads, loop, "request")
        if self.events is not None:
            self._event_pool = _Pool(self.events.threads, loop, "event")
        return self._pool

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return  # websockets are off; nothing else reaches an RSGI app
        arrived = time.monotonic()
        pool = self._pool
        if pool is None:  # not initialised by the server (direct use): lazily, once
            pool = self._start(asyncio.get_running_loop())
        event = self.events is not None and scope.path in self.events.paths
        if event and self._events_busy(scope.path):
            # Refused before its body is read: the connection cannot be reused.
            status, headers, out = _BUSY
            protocol.response_bytes(status, [*headers, ("connection", "close")], out)
            return
        budget = self._event_budget if event else self._main_budget
        body = _Body()
        try:
            failure = await self._receive(scope, protocol, budget, body)
            if failure is None and body.data is None:
                return  # the client went away mid-body: nobody to answer
            environ = self.environ(scope, body.data or b"", failure)
            environ[ARRIVED] = arrived
            environ.update(body.environ)
            if event:
                if self._events_busy(scope.path):  # others took the threads while it arrived
                    protocol.response_bytes(*_BUSY)
                    return
                status, headers, out = await self._run_event(environ)
            else:
                status, headers, out = await self._run(pool, environ)
        finally:
            budget.give(body.held)
        if failure is not None or BODY_UNREAD in environ:
            headers = [*headers, ("connection", "close")]  # the rest of the body is not read
        protocol.response_bytes(status, headers, out)

    def _events_busy(self, path: str) -> bool:
        assert self.events is not None
        if self._events_running < self.events.threads:
            return False
        try:
            self.events.refused(path)
        except Exception:  # bookkeeping must never turn an answer into a failure
            log.exception("could not log a refused delivery")
        return True

    async def _run_event(self, environ: dict[str, Any]) -> tuple[int, list[Any], bytes]:
        assert self._event_pool is not None
        self._events_running += 1
        try:
            return await self._run(self._event_pool, environ)
        finally:
            self._events_running -= 1

    async def _run(self, pool: _Pool, environ: dict[str, Any]) -> tuple[int, list[Any], bytes]:
        try:
            return await pool.run(self.call, environ)
        except Exception:
            log.exception("the WSGI application failed outside its own error handling")
            return _SERVER_ERROR

    async def _receive(
        self, scope: Any, protocol: Any, budget: _Budget, body: _Body
    ) -> BodyFailure | None:
        """Read the body into `body` (its bytes counted against `budget` as they arrive).

        Returns why it could not be read, or None; `body.data` None means the
        client went away and nobody is left to answer.
        """
        cap = self.body_cap(scope.path)
        length = scope.headers.get("content-length")
        if length is None and "transfer-encoding" not in scope.headers:
            body.data = b""
            return None  # no body announced (a GET): nothing to wait for
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > cap:
            body.data = b""
            return _too_large(cap)  # refused on what it claims, before a byte of it is read
        check = self.body_checks.get(scope.path)
        verdict = check(scope.headers) if check is not None else True
        if verdict is False:
            body.data = b""
            body.environ[BODY_UNREAD] = True
            return None
        digest = None if verdict is True else verdict
        try:
            async with asyncio.timeout(self.read_timeout):
                await _read(protocol, cap, declared, budget, body, digest)
        except TimeoutError:
            body.data = b""
            return OVER_BUDGET if body.waiting else TIMEOUT
        except _TooLarge:
            body.data = b""
            return _too_large(cap)
        except _Broken:
            body.data = b""
            return BROKEN
        except Exception as exc:
            if type(exc).__name__ == "RSGIProtocolClosed":
                body.data = None
                return None
            body.data = b""
            return BROKEN  # a reset mid-body
        if digest is not None:
            body.environ[BODY_DIGEST] = digest.digest()
        return None

    def environ(self, scope: Any, body: bytes, failure: BodyFailure | None) -> dict[str, Any]:
        """The WSGI environ (PEP 3333) for an RSGI scope and its whole body."""
        server_host, server_port = _split_address(scope.server)
        client_host, client_port = _split_address(scope.client)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            # RSGI gives the path percent-decoded as text; WSGI wants its bytes as latin-1.
            "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_host,
            "REMOTE_PORT": client_port,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in scope.headers.items():
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body is whole: its length is what we hold
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        environ["CONTENT_LENGTH"] = str(len(body))
        if failure is not None:
            environ[BODY_ERROR] = failure
            if failure.error == "too-large":
                environ["CONTENT_LENGTH"] = scope.headers.get("content-length") or ""
        if self.trusted and self._trusts(client_host):
            self._apply_forwarded(environ)
        return environ

    def _trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)

    @staticmethod
    def _apply_forwarded(environ: dict[str, Any]) -> None:
        # Only from proxies the operator named ([server] forwarded_allow_ips).
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        forwarded_for = environ.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded_for:
            environ["REMOTE_ADDR"] = forwarded_for

    def call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        """Run the WSGI app on one environ; returns status, headers and the whole body."""
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):
            started[:] = [status, headers]
            return _no_write

        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return int(status[:3]), list(headers), body


class _Pool:
    """Threads that run one request each and hand the result back to the event loop.

    Not concurrent.futures: its executor wraps every call in a Future chained to
    an asyncio one, which costs about 25 µs a request more than a queue and one
    `call_soon_threadsafe` (bench/bridge.py). Each request runs in a fresh
    context, so nothing a previous request set on a thread leaks into it.
    """

    def __init__(self, threads: int, loop: asyncio.AbstractEventLoop, name: str) -> None:
        self._loop = loop
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, function: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = self._loop.create_future()
        self._work.put((future, function, args))
        return future

    def shutdown(self) -> None:
        """Let every queued request finish, then stop the threads."""
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, function, args = item
            try:
                outcome = (contextvars.Context().run(function, *args), None)
            except BaseException as exc:  # handed to the awaiting coroutine, not lost here
                outcome = (None, exc)
            # A closed loop (the worker is gone) has nobody awaiting this any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting request was cancelled (worker stopping)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _no_write(data: bytes) -> None:
    raise RuntimeError("the write() callable is not supported; return the body instead")


class _Broken(Exception):
    pass


class _Body:
    """A request body as it is read: its bytes, what it holds of the budget, what the app learns."""

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.held = 0  # bytes of the budget taken for it, given back once it is answered
        self.waiting = False  # waiting for budget (a timeout then is 503, not 408)
        self.environ: dict[str, Any] = {}


async def _read(
    protocol: Any,
    cap: int,
    declared: int | None,
    budget: _Budget,
    body: _Body,
    digest: BodyHash | None,
) -> None:
    """Read the body chunk by chunk, each chunk's bytes taken from `budget` before it is kept.

    Counting what arrives, not what Content-Length claims, means a client
    holds only as much of the budget as it has really sent.

    granian's body stream does not raise on broken framing, and cannot tell
    it from a chunked body's trailer fields: either arrives as an empty chunk
    before the end (which is one more). A chunked body is therefore taken as
    whole at its first empty chunk — trailers are valid HTTP/1.1 (RFC 9112
    §7.1.2) and a broken body is refused by its own content (a signature, an
    HMAC, JSON). With a Content-Length, the count decides: fewer bytes is broken.
    """
    chunks = []
    size = 0
    async for chunk in protocol:
        if not chunk:
            break
        size += len(chunk)
        if size > cap:
            raise _TooLarge
        body.waiting = True
        await budget.take(len(chunk))
        body.waiting = False
        body.held += len(chunk)
        if digest is not None:
            digest.update(chunk)
        chunks.append(chunk)
    if declared is not None and size != declared:
        raise _Broken
    body.data = chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _Budget:
    """Bytes a worker's request bodies may hold at once; a taker over it waits its turn.

    Lives on the worker's event loop (no locks). First come, first served: a
    large body is not starved by small ones slipping past it.
    """

    def __init__(self, total: int, gauge: Gauge | None = None) -> None:
        self.total = total
        self.held = 0
        self._gauge = gauge  # the lane's funker_dispatch_body_bytes_in_flight
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def take(self, size: int) -> None:
        if not self._waiting and self.held + size <= self.total:
            self._hold(size)
            return
        entry = (size, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await entry[1]
        except BaseException:  # the deadline: step out of the line, or give back what came
            if entry[1].done() and not entry[1].cancelled():
                self._hold(-size)
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(entry)
            self._wake()
            raise

    def give(self, size: int) -> None:
        if size:
            self._hold(-size)
            self._wake()

    def _hold(self, size: int) -> None:
        self.held += size
        if self._gauge is not None:
            self._gauge.inc(size)

    def _wake(self) -> None:
        while self._waiting and self.held + self._waiting[0][0] <= self.total:
            size, future = self._waiting.popleft()
            if not future.done():
                self._hold(size)
                future.set_result(None)


def _too_large(cap: int) -> BodyFailure:
    return BodyFailure("too-large", 413, f"body larger than {cap} bytes")


def _split_address(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port
