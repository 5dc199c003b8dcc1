"""MCP Streamable HTTP through the official `mcp` SDK, driven from the Flask view's thread.

The SDK's server is ASGI (anyio), the public app is WSGI behind the server's
own bridge (funker_dispatch/server/bridge.py). Rather than a second app on
the listener, the Flask view hands each request, body already read and
capped by the bridge, to the SDK's `StreamableHTTPSessionManager` (stateless,
JSON responses: no session, no stream, one answer a POST) running on one
event loop thread per worker process, and waits for the answer. Why so:

- the Flask app keeps owning routing, auth, JSON errors, the log line and
  the metrics, and the bridge's body cap and event admission apply to MCP
  as to the event endpoints — MCP requests run on the event lane's threads,
  never on Alexa's (docs/robustness.md);
- the JSON-RPC framing, validation and protocol negotiation are the SDK's
  (`initialize`, `tools/list`, `tools/call`, `ping`), not hand-written;
- the one blocking step, the function call, is handed back from the loop to
  the waiting view thread (`Exchange.run_here`): it runs where the request
  was admitted, with that request's record, and the loop never blocks.

The Alexa path does not pass through here and pays nothing for it
(bench/mcp.py measures what a tool call adds).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("funker_dispatch")

#: The scope key under which a request's Exchange reaches the tool handlers.
EXCHANGE = "funker_dispatch.mcp_exchange"


class Exchange:
    """One HTTP request between the view's thread and the loop: what the handlers may ask of it.

    `run_here(work)` queues `work` for the view's thread and awaits its
    result; the view's thread runs each piece of work it is given until the
    ASGI response is complete.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, caller: Any) -> None:
        self.caller = caller
        self._loop = loop
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()

    async def run_here(self, work: Callable[[], Any]) -> Any:
        future = self._loop.create_future()
        self._work.put((work, future))
        return await future

    def done(self) -> None:
        self._work.put(None)

    def serve(self, within: float) -> bool:
        """Run what the loop hands over until done; False when `within` seconds ran out."""
        deadline = self._loop.time() + within
        while True:
            try:
                item = self._work.get(timeout=max(0.0, deadline - self._loop.time()))
            except queue.Empty:
                return False
            if item is None:
                return True
            work, future = item
            try:
                outcome: tuple[Any, BaseException | None] = (work(), None)
            except Exception as exc:  # handed to the awaiting handler, not lost here
                outcome = (None, exc)
            self._loop.call_soon_threadsafe(_settle, future, *outcome)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class McpProtocol:
    """The SDK's Streamable HTTP session manager on an event loop thread of this process."""

    def __init__(self, build_server: Callable[[], Any]) -> None:
        """`build_server()` returns the SDK's lowlevel `Server` with its handlers."""
        self._build_server = build_server
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._manager: Any = None

    def _running(self) -> tuple[asyncio.AbstractEventLoop, Any]:
        # Started in the process that serves, on first use: threads do not survive the fork
        # granian makes after the app is built.
        if self._pid == os.getpid() and self._loop is not None:
            return self._loop, self._manager
        with self._lock:
            if self._pid != os.getpid() or self._loop is None:
                self._start()
        assert self._loop is not None
        return self._loop, self._manager

    def _start(self) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        # The SDK logs every stateless request at INFO ("Terminating session: None"); the
        # dispatcher's own request line says what happened, once.
        logging.getLogger("mcp").setLevel(logging.WARNING)

        manager = StreamableHTTPSessionManager(
            self._build_server(), json_response=True, stateless=True
        )
        loop = asyncio.new_event_loop()
        started = threading.Event()

        async def run() -> None:
            async with manager.run():
                started.set()
                await asyncio.Event().wait()  # for the life of the process

        thread = threading.Thread(
            target=loop.run_until_complete, args=(run(),), name="mcp-loop", daemon=True
        )
        thread.start()
        if not started.wait(30):
            raise RuntimeError("the MCP session manager did not start")
        self._loop, self._manager, self._pid = loop, manager, os.getpid()

    def handle(
        self,
        method: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        caller: Any,
        within: float,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Answer one HTTP request to the MCP endpoint: status, headers, body."""
        loop, manager = self._running()
        exchange = Exchange(loop, caller)
        answer: dict[str, Any] = {}
        task = asyncio.run_coroutine_threadsafe(
            _asgi(manager, method, headers, body, exchange, answer), loop
        )
        if not exchange.serve(within):
            task.cancel()
            return 503, [("content-type", "application/json")], _BUSY
        task.result()  # re-raises what the coroutine raised, for the view's error handler
        return answer["status"], answer["headers"], answer["body"]


_BUSY = b'{"error": "busy", "message": "the MCP request took too long; retry"}'


async def _asgi(
    manager: Any,
    method: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    exchange: Exchange,
    answer: dict[str, Any],
) -> None:
    sent = False
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:  # nothing more will come: wait as a disconnect-watcher would, for ever
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = int(message["status"])
            answer["headers"] = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": None,
        "client": None,
        EXCHANGE: exchange,
    }
    try:
        await manager.handle_request(scope, receive, send)
        answer["body"] = b"".join(chunks)
    finally:
        exchange.done()
