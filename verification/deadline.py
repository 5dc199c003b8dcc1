"""A connected socket as http.client sees it, where every send and receive gets what is left.

`http.client` (and urllib on top of it) applies a socket timeout to each
operation, so a peer sending one byte at a time holds the exchange for as
long as it likes. Wrapped in `DeadlineSocket`, the socket's timeout is set
to what remains of one deadline before each send and each receive, and
`TimeoutError` is raised once none remains. Used by the certificate fetcher
and by the developer tools' client (`skill/client.py`).
"""

from __future__ import annotations

import io
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any


def left(deadline: float) -> float:
    """Seconds left until `deadline` (monotonic), or TimeoutError when none are."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    return remaining


class DeadlineSocket:
    """Stands in for `connection.sock`: each send and receive is bounded by one deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def _arm(self) -> None:
        self._sock.settimeout(left(self._deadline))

    def sendall(self, data: Any) -> None:
        self._arm()  # sendall's timeout covers the whole call, not each write
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        # Unbuffered SocketIO keeps socket.close()'s reference counting; the
        # buffering goes on top, so one readline is many deadline-bound receives.
        return io.BufferedReader(_DeadlineReader(self._sock.makefile("rb", buffering=0), self._arm))

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineReader(io.RawIOBase):
    """A socket's raw reader that arms the deadline before each receive."""

    def __init__(self, raw: io.RawIOBase, arm: Callable[[], None]) -> None:
        self._raw = raw
        self._arm = arm

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._arm()
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


def tls_handshake(
    sock: socket.socket, context: ssl.SSLContext, host: str, deadline: float
) -> ssl.SSLSocket:
    """Wrap `sock` in TLS for `host`, the whole handshake within `deadline`.

    A blocking handshake bounds each of its receives, not the whole: driven
    non-blocking here, a peer dripping its handshake hits the deadline too.
    """
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    tls.setblocking(False)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            ready = select.select([tls], [], [], left(deadline))[0]
        except ssl.SSLWantWriteError:
            ready = select.select([], [tls], [], left(deadline))[1]
        if not ready:
            raise TimeoutError
    tls.setblocking(True)
    return tls
