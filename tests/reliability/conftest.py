"""Reliability fixtures: the e2e server and dev CA, plus functions the tests can steer.

Functions that must misbehave as a whole process (restart, get killed) are scripts
in functions/; functions the test must observe or release (stall, slow, serve one
at a time) run as threads in the test process on loopback sockets.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dispatch.funker import FunctionServer, make_server
from tests.e2e.conftest import (  # noqa: F401  (fixtures re-exported for this suite)
    Answer,
    Server,
    dev_ca,
    intent,
    signed,
    start_server,
    wait_until,
)

FUNCTIONS = Path(__file__).resolve().parent / "functions"


@pytest.fixture
def function_script() -> Iterator[Callable[..., tuple[int, subprocess.Popen[str]]]]:
    """Start tests/reliability/functions/<name>.py on a free port; returns (port, process)."""
    children: list[subprocess.Popen[str]] = []

    def start(name: str, *args: str) -> tuple[int, subprocess.Popen[str]]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, str(FUNCTIONS / f"{name}.py"), "--port", str(port), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        return port, child

    yield start
    for child in children:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


@dataclass
class Seen:
    """What an in-process function has been asked, for tests to wait on."""

    ids: list[str] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)

    def add(self, marker: str) -> None:
        with self.lock:
            self.ids.append(marker)
            self.lock.notify_all()

    def wait_for(self, count: int, within: float) -> None:
        with self.lock:
            if not self.lock.wait_for(lambda: len(self.ids) >= count, timeout=within):
                raise AssertionError(f"function saw {len(self.ids)} requests, not {count}")


def marker_of(payload: Any) -> str:
    """The id a test put in the Id slot of its request."""
    return payload["request"]["intent"]["slots"]["Id"]["value"]


@pytest.fixture
def function_thread() -> Iterator[Callable[[Callable[[Any], Any]], int]]:
    """Serve `handler(payload)` with dispatch.funker.make_server in a thread; returns the port."""
    servers: list[FunctionServer] = []

    def start(handler: Callable[[Any], Any]) -> int:
        server = make_server(handler, "127.0.0.1", 0)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def one_at_a_time(port_holder: list[int], stop: threading.Event, seen: Seen) -> None:
    """A published funker function's shape: one connection handled at a time, tiny backlog."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=1)
    listener.settimeout(0.1)  # so `stop` is noticed; accept() itself is the work loop
    port_holder.append(listener.getsockname()[1])
    with listener:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
                marker = marker_of(json.loads(b"".join(chunks)))
                seen.add(marker)
                conn.sendall(json.dumps({"speech": f"id {marker}"}).encode())


@pytest.fixture
def one_at_a_time_function() -> Iterator[tuple[int, Seen]]:
    stop = threading.Event()
    seen = Seen()
    port: list[int] = []
    thread = threading.Thread(target=one_at_a_time, args=(port, stop, seen), daemon=True)
    thread.start()
    wait_until(lambda: bool(port), 30, "the one-at-a-time function to listen")
    yield port[0], seen
    stop.set()
    thread.join(5)


def with_id(name: str, marker: str) -> dict[str, Any]:
    """An IntentRequest carrying `marker` in its Id slot."""
    return intent(name, {"Id": {"name": "Id", "value": marker, "confirmationStatus": "NONE"}})


def request_log(server: Server) -> dict[str, dict[str, Any]]:
    """The server's per-request JSON log lines, by request id."""
    records = {}
    for line in server.log().splitlines():
        start = line.find('{"request_id"')
        if start >= 0:
            record = json.loads(line[start:])
            records[record["request_id"]] = record
    return records


def route(name: str, port: int, **keys: Any) -> str:
    """A [intents.<name>] table on loopback."""
    lines = [f"[intents.{name}]", 'host = "127.0.0.1"', f"port = {port}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
    return "\n".join(lines) + "\n\n"


def server_table(**keys: Any) -> str:
    return "[server]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()) + "\n"


def answered(answer: Answer, marker: str) -> bool:
    """True when the reply is the function's answer to the request carrying `marker`."""
    return answer.speech.endswith(f"id {marker}")
