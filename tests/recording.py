"""Real loopback listeners for event tests: a funker function that records what it receives, and
a bare TCP listener that records whether anyone connected at all.

Both run on threads in the test process; the dispatcher (in process or a
real server process) reaches them over real sockets.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from tests.helpers import wait_until


class RecordingFunction:
    """A funker function on 127.0.0.1: reads one JSON value to EOF, records it, answers.

    `fail(payload)` deciding True makes it hang up without answering (the
    dispatcher sees a protocol failure), as a crashing function would.
    """

    def __init__(self, fail: Callable[[Any], bool] | None = None) -> None:
        self.fail = fail or (lambda payload: False)
        self.received: list[Any] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            if not chunks:
                return  # a probe, not a request
            payload = json.loads(b"".join(chunks))
            with self._lock:
                self.received.append(payload)
            if self.fail(payload):
                return  # hang up without an answer
            conn.sendall(json.dumps({"ok": True}).encode())

    def payloads(self) -> list[Any]:
        with self._lock:
            return list(self.received)

    def ids(self) -> list[str]:
        return [payload["id"] for payload in self.payloads()]

    def wait_for(self, count: int, within: float = 5.0) -> list[Any]:
        wait_until(lambda: len(self.payloads()) >= count, within, f"{count} function calls")
        return self.payloads()

    def close(self) -> None:
        close_listener(self._listener)


class ConnectionRecorder:
    """A TCP listener that only counts connections: proof that nothing ever connected."""

    def __init__(self) -> None:
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        close_listener(self._listener)


def close_listener(listener: socket.socket) -> None:
    """Close a listening socket for real, even with a thread blocked in accept() on it.

    close() alone leaves that thread holding the socket open (and accepting);
    shutdown() wakes it first.
    """
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()
