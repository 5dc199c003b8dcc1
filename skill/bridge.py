"""The RSGI application granian serves: each request read whole under a deadline, then WSGI.

granian parses HTTP in Rust and bounds the request head (its header read
timeout) and TLS handshakes without holding a Python thread. Its WSGI
interface, though, streams the body into the application's thread, so a
client trickling a body holds that thread for as long as it likes (measured:
40 such connections stop `/healthz` of 2 workers × 8 threads). This bridge
receives the body on the worker's event loop, capped and within
`read_timeout`, and only then hands the request to a thread of a bounded
pool that runs the Flask app. No published adapter buffers first under a
deadline (asgiref's WsgiToAsgi buffers without one, a2wsgi streams), which
is why these few lines exist.

A body that is too large, too slow or broken is not answered here: the app
gets the request with an empty body and `BODY_ERROR` in its environ, and
refuses it through its own JSON errors, log line and metrics, like any other
refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

log = logging.getLogger("funker_dispatch")

#: Environ key carrying why the body could not be read: (error code, HTTP status, message).
BODY_ERROR = "funker_dispatch.body_error"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_SERVER_ERROR = (
    500,
    [("content-type", "application/json")],
    b'{"error": "internal", "message": "internal error"}',
)


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class BodyFailure:
    error: str
    status: int
    message: str


TIMEOUT = BodyFailure("timeout", 408, "request body not received in time")
BROKEN = BodyFailure("malformed", 400, "request body could not be read")


class RequestBridge:
    """Serve a WSGI app over RSGI: body first (capped, under a deadline), then a pool thread."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        threads: int,
        read_timeout: float,
        body_cap: Callable[[str], int],
        forwarded_allow_ips: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.threads = threads
        self.read_timeout = read_timeout
        self.body_cap = body_cap
        self.trusted: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in forwarded_allow_ips
        )
        self._pool: _Pool | None = None

    # RSGI calls these in each worker process, after the fork: threads start there.
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # uvloop where the package installs it, else asyncio's (granian's "auto").
        log.info("event loop: %s", type(loop).__module__.partition(".")[0])
        self._pool = _Pool(self.threads, loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pool is not None:
            self._pool.shutdown()  # requests in flight finish before the worker exits

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            return  # websockets are off; nothing else reaches an RSGI app
        body, failure = await self._receive(scope, protocol)
        if failure is None and body is None:
            return  # the client went away mid-body: nobody to answer
        environ = self.environ(scope, body or b"", failure)
        pool = self._pool
        if pool is None:  # not initialised by the server (direct use): lazily, once
            pool = self._pool = _Pool(self.threads, asyncio.get_running_loop())
        try:
            status, headers, out = await pool.run(self.call, environ)
        except Exception:
            log.exception("the WSGI application failed outside its own error handling")
            status, headers, out = _SERVER_ERROR
        if failure is not None:
            headers = [*headers, ("connection", "close")]  # the rest of the body is not read
        protocol.response_bytes(status, headers, out)

    async def _receive(self, scope: Any, protocol: Any) -> tuple[bytes | None, BodyFailure | None]:
        cap = self.body_cap(scope.path)
        length = scope.headers.get("content-length")
        if length is None and "transfer-encoding" not in scope.headers:
            return b"", None  # no body announced (a GET): nothing to wait for
        if length is not None and length.isdigit() and int(length) > cap:
            # Refused on what it claims, before a byte of it is read.
            return b"", _too_large(cap)
        try:
            async with asyncio.timeout(self.read_timeout):
                if length is not None:
                    # hyper enforces the length: one call, the common case.
                    return await protocol(), None
                return await _capped(protocol, cap), None
        except TimeoutError:
            return b"", TIMEOUT
        except _TooLarge:
            return b"", _too_large(cap)
        except _Broken:
            return b"", BROKEN
        except Exception as exc:
            if type(exc).__name__ == "RSGIProtocolClosed":
                return None, None
            return b"", BROKEN  # broken chunked framing, or a reset mid-body

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

    def __init__(self, threads: int, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"request-{n}", daemon=True)
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


async def _capped(protocol: Any, cap: int) -> bytes:
    """A body of unannounced length (chunked), read no further than `cap`.

    granian's body stream does not raise on broken framing: the failed frame
    arrives as an empty chunk and the stream then ends (with another empty
    chunk, as every stream does). So an empty chunk that is not the last one
    means the body broke off; the tests pin this against the real server.
    """
    body = bytearray()
    empty_before = False
    async for chunk in protocol:
        if empty_before:
            raise _Broken
        empty_before = not chunk
        body += chunk
        if len(body) > cap:
            raise _TooLarge
    return bytes(body)


def _too_large(cap: int) -> BodyFailure:
    return BodyFailure("too-large", 413, f"body larger than {cap} bytes")


def _split_address(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port
