"""The funker protocol, function side, in one file of the standard library only.

A function answers one JSON request per TCP connection: read to the end (the
dispatcher half-closes its side), answer one JSON value, close. This file is copied
into each function's folder by `funker-dispatch new function`, so the folder builds
and runs on its own (`docker build .`), with nothing of the dispatcher installed.

What it promises, as the dispatcher expects: a request must arrive whole within
READ_TIMEOUT seconds and be at most MAX_REQUEST_BYTES; at most MAX_HANDLERS run at
once (more wait in the listen backlog). A handler that raises, and a request that is
too slow, too large or not JSON, get no answer at all: the dispatcher then apologises
to Alexa, or answers an event's sender 503 so it retries. An empty connection is a
port probe and gets nothing.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

READ_TIMEOUT = 30.0
MAX_REQUEST_BYTES = 1024 * 1024
MAX_HANDLERS = 64
SHUTDOWN_GRACE = 10.0

Handler = Callable[[Any], Any]


def slot_values(request: Any) -> dict[str, str | None]:
    """The intent's slots as name -> spoken value (None when the user gave none)."""
    intent = (request.get("request") or {}).get("intent") or {}
    return {name: (slot or {}).get("value") for name, slot in (intent.get("slots") or {}).items()}


def _read(connection: socket.socket) -> bytes | None:
    deadline = time.monotonic() + READ_TIMEOUT
    chunks, size = [], 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request took over {READ_TIMEOUT:g} s")
        connection.settimeout(left)
        chunk = connection.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise ValueError(f"the request is over {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)


def _answer(connection: socket.socket, handler: Handler, slots: threading.Semaphore) -> None:
    try:
        with connection:
            body = _read(connection)
            if not body:
                return  # a port probe
            answer = json.dumps(handler(json.loads(body)), ensure_ascii=False).encode()
            connection.settimeout(READ_TIMEOUT)
            connection.sendall(answer)
    except Exception:  # no answer is the answer: the dispatcher sees the failure
        print("funker: no answer:", file=sys.stderr)
        traceback.print_exc()
    finally:
        slots.release()


def serve(handler: Handler, host: str = "0.0.0.0", port: int = 9999) -> None:
    """Serve `handler(request) -> answer` until SIGTERM or SIGINT."""
    slots = threading.Semaphore(MAX_HANDLERS)
    listener = socket.create_server((host, port), backlog=128)

    def stop(*_: object) -> None:
        # Connections waiting in the listen backlog have sent their request: closing
        # now would reset them. From here accept() takes what waits, then says "empty".
        print("funker: stopping", file=sys.stderr, flush=True)
        listener.setblocking(False)

    signal.signal(signal.SIGTERM, stop)
    with listener:
        while True:
            slots.acquire()
            try:
                connection, _ = listener.accept()
            except (OSError, KeyboardInterrupt):  # stopping and nothing waits, or Ctrl-C
                break
            connection.setblocking(True)
            thread = threading.Thread(target=_answer, args=(connection, handler, slots))
            thread.daemon = True
            thread.start()
    # Answers already being written finish (a swarm update must not cut them off).
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for _ in range(MAX_HANDLERS - 1):
        if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            break


def run(handler: Handler) -> None:
    """Serve on $FUNKER_HOST (default 0.0.0.0) and $FUNKER_PORT (default 9999)."""
    host = os.environ.get("FUNKER_HOST", "0.0.0.0")
    serve(handler, host, int(os.environ.get("FUNKER_PORT", "9999")))
