"""A developer tool's HTTP POST to an endpoint: one overall deadline, a read cap, clear errors.

`simulate`, `dialog` and `certify` (and `events send`) talk to endpoints the
developer does not control yet: a half-written skill, the wrong port, a proxy
answering HTML. `post` is the one way they do it, and it assumes the worst of
the other side:

- One deadline bounds the whole exchange — name lookup, connect, TLS, sending,
  status line, headers and body together. `urllib`'s timeout (and a socket
  timeout set once) bounds each socket operation instead, so a server sending
  one byte a second holds it for ever; here every receive gets only what is
  left of the deadline.
- The body is read incrementally and refused past `max_bytes`, never buffered
  whole; `http.client` already bounds the status line and the headers.
- Every failure to get a complete HTTP answer is an `EndpointError` whose
  message is one line fit for a terminal. An answer with any status (4xx,
  5xx, a redirect, which is not followed) is an `Answer`, not an error.

No proxy is used: these tools talk to a skill endpoint directly.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from skill.text import one_line
from verification.deadline import DeadlineSocket, left, tls_handshake

#: Seconds one request may take, all told (the tools' --timeout default).
DEFAULT_TIMEOUT = 10.0

#: The most a tool reads of an answer's body: Alexa's own limit is 24 KiB.
MAX_RESPONSE_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_SHOWN = 60  # characters of a bad status line quoted in the error


@dataclass(frozen=True)
class Answer:
    """One complete HTTP answer: status, body bytes, how long it took, headers (names in
    lower case; of a repeated header, the last)."""

    status: int
    body: bytes
    seconds: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)


class EndpointError(Exception):
    """No complete HTTP answer came back; str() is "<url>: <reason>", one line."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason

    def __str__(self) -> str:
        return f"{one_line(self.url)}: {self.reason}"


class EndpointUnreachable(EndpointError):
    """No connection: a bad URL, a name that does not resolve, refused, no route, TLS failed."""


class EndpointDeadlineExceeded(EndpointError):
    """The whole answer did not arrive within the deadline."""


class EndpointProtocolError(EndpointError):
    """What came back is not a complete HTTP answer (or not the JSON a tool needs)."""


class EndpointResponseTooLarge(EndpointError):
    """The answer's body is larger than the tools read."""


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_RESPONSE_BYTES,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """POST `body` as JSON to `url` and return the answer, or raise an `EndpointError`."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EndpointUnreachable(url, "not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointUnreachable(url, "not an http:// or https:// URL")
    host = parts.hostname
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    tls: ssl.SSLContext | None = None
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        tls = context or ssl.create_default_context()
        connection = http.client.HTTPSConnection(host, port, context=tls)
    else:
        connection = http.client.HTTPConnection(host, port)
    phase = "connect"
    response: http.client.HTTPResponse | None = None
    try:
        sock = _connect(url, host, port, deadline)
        if tls is not None:
            phase = "tls"
            sock = tls_handshake(sock, tls, host, deadline)
        # A socket already in place is used as it is: http.client never connects itself.
        connection.sock = DeadlineSocket(sock, deadline)
        phase = "answer"
        connection.request(
            "POST", target, body=body, headers={"Content-Type": "application/json", **headers}
        )
        response = connection.getresponse()
        phase = "body"
        data = _read_body(url, response, max_bytes)
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, data, time.monotonic() - started, headers)
    except TimeoutError:
        what = "no answer" if phase in ("connect", "tls", "answer") else "the answer did not finish"
        raise EndpointDeadlineExceeded(url, f"{what} within {timeout:g} s") from None
    except ssl.SSLError as exc:
        why = one_line(getattr(exc, "verify_message", None) or exc.reason or str(exc)).lower()
        if phase == "tls":
            raise EndpointUnreachable(url, f"TLS handshake failed ({why})") from None
        raise EndpointProtocolError(url, f"the TLS connection broke ({why})") from None
    except http.client.RemoteDisconnected:
        raise EndpointProtocolError(url, "closed the connection without answering") from None
    except http.client.BadStatusLine as exc:
        line = one_line(str(exc.args[0] if exc.args else ""))
        shown = line[:_SHOWN] + ("…" if len(line) > _SHOWN else "")
        raise EndpointProtocolError(url, f"not an HTTP answer (status line {shown!r})") from None
    except http.client.LineTooLong as exc:
        raise EndpointProtocolError(url, f"not an HTTP answer ({exc})") from None
    except http.client.IncompleteRead:
        raise EndpointProtocolError(url, "the answer's body ended early") from None
    except http.client.HTTPException as exc:
        reason = one_line(str(exc)) or type(exc).__name__
        raise EndpointProtocolError(url, f"not an HTTP answer ({reason})") from None
    except ConnectionError as exc:  # reset or broken pipe: the connection was made
        raise EndpointProtocolError(url, f"the connection broke ({_errno_text(exc)})") from None
    except OSError as exc:
        raise EndpointUnreachable(url, _errno_text(exc)) from None
    finally:
        # The response owns the socket once the connection hands it over.
        if response is not None:
            response.close()
        connection.close()


def _read_body(url: str, response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    if response.length is not None and response.length > max_bytes:  # refused unread
        raise EndpointResponseTooLarge(url, f"the answer's body is over {_size(max_bytes)}")
    body = bytearray()
    while True:
        chunk = response.read1(min(_CHUNK, max_bytes + 1 - len(body)))
        if not chunk:
            break
        body += chunk
        if len(body) > max_bytes:
            raise EndpointResponseTooLarge(url, f"the answer's body is over {_size(max_bytes)}")
    if response.length:  # http.client returns b"" at a premature end, and counts down
        raise http.client.IncompleteRead(bytes(body), response.length)
    return bytes(body)


def _connect(url: str, host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection to the first address of `host` that accepts one, within the deadline."""
    addresses = _resolve(url, host, port, deadline)
    failure: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left(deadline))
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            failure = exc
    if isinstance(failure, ConnectionRefusedError):
        raise EndpointUnreachable(url, "connection refused")
    raise EndpointUnreachable(url, _errno_text(failure) if failure else "no address")


def _resolve(url: str, host: str, port: int, deadline: float) -> list[Any]:
    # getaddrinfo takes no timeout and a dead resolver blocks it for many
    # seconds; a daemon thread lets the deadline win (the lookup is abandoned).
    found: list[Any] = []
    failed: list[BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:  # an IDNA-invalid name is a UnicodeError
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="resolve", daemon=True).start()
    if not done.wait(max(deadline - time.monotonic(), 0)):
        raise TimeoutError
    if failed or not found:
        raise EndpointUnreachable(url, f"cannot resolve {one_line(host)!r}")
    return found


def _errno_text(exc: OSError) -> str:
    return one_line(exc.strerror or str(exc) or type(exc).__name__).lower()


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count % (1024 * 1024) == 0 else f"{count} bytes"
