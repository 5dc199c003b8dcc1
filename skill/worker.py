"""gunicorn's gthread worker, answering malformed HTTP with JSON instead of its HTML page.

gunicorn refuses broken framing (a bad Content-Length, an invalid header, a
bad chunk) before the app sees the request, with an HTML page that quotes the
parser's error. Every refusal of ours is JSON without internals, so this
worker lets gunicorn decide status and logging as usual and only replaces
what goes on the wire.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class _Captured:
    """Stands in for the client socket while gunicorn writes its error page."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data


class JsonErrorThreadWorker(ThreadWorker):
    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        status_line = captured.data.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 400
        reason = parts[2] if len(parts) > 2 else "Bad Request"
        error = "internal" if status >= 500 else "malformed"
        message = "internal error" if status >= 500 else "malformed HTTP request"
        body = json.dumps({"error": error, "message": message}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        try:
            client.sendall(head + body)
        except OSError:
            self.log.debug("Failed to send error message.")
