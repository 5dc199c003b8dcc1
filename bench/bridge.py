"""What the RSGI bridge costs per request in process, and its thread hand-off against an executor's.

The bridge (`funker_dispatch/server/bridge.py`) runs on granian's event loop: it builds the WSGI
environ, hands the request to a pool thread and takes the answer back. Here it
serves a trivial WSGI app from a fake RSGI protocol (no sockets, no HTTP), so
what is printed is the bridge alone; then the same hand-off through
`loop.run_in_executor` (concurrent.futures) for comparison, in the same run;
all of it on asyncio's event loop and, when installed, on uvloop's (what
`serve` runs where the package installs it). Prints µs per request (wall and
CPU of this process), never asserts.

Run: .venv/bin/python bench/bridge.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import sys
import time
import timeit
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from funker_dispatch.server.bridge import RequestBridge

HEADERS = {
    "host": "alexa.example.com",
    "content-type": "application/json; charset=utf-8",
    "content-length": "2",
    "signature-256": "a" * 344,
    "signaturecertchainurl": "https://s3.amazonaws.com/echo.api/echo-api-cert-12.pem",
    "user-agent": "Apache-HttpClient/UNAVAILABLE (Java/1.8.0_382)",
    "accept": "application/json",
    "accept-charset": "utf-8",
}


class Scope:
    """An RSGI HTTP scope as granian passes one for an Alexa request."""

    proto, http_version, scheme, method, path, query_string = "http", "1.1", "http", "POST", "/", ""
    server, client = "127.0.0.1:3000", "10.0.0.5:51234"
    headers = HEADERS


class Protocol:
    """granian's body stream for a two-byte body: its one chunk, then the empty end."""

    def __aiter__(self) -> Protocol:
        self._chunks = [b"{}", b""]
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            raise StopAsyncIteration
        return self._chunks.pop(0)

    def response_bytes(self, status: int, headers: Any, body: bytes) -> None:
        pass


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("content-type", "application/json"), ("content-length", "2")])
    return [b"{}"]


async def drive(handle: Any, requests: int, concurrency: int) -> tuple[float, float]:
    async def client() -> None:
        for _ in range(requests // concurrency):
            await handle()

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return (
        (time.perf_counter() - wall) / requests * 1e6,
        (time.process_time() - cpu) / requests * 1e6,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    print(f"in process, {args.requests} requests, {args.threads} threads; µs per request")
    for loop_name, new_loop in loops.items():
        columns = f"{'c=1 wall':>9} {'c=1 cpu':>8} {'c=8 wall':>9} {'c=8 cpu':>8}"
        print(f"  {loop_name + ' loop':34} {columns}")
        measure(new_loop(), args.requests, args.threads)
    bridge = RequestBridge(app, threads=1, read_timeout=10, body_cap=lambda _: 131072)
    scope = Scope()
    environ = min(timeit.repeat(lambda: bridge.environ(scope, b"{}", None), number=20000, repeat=5))
    print(f"  environ alone: {environ / 20000 * 1e6:.1f} µs")


def measure(loop: asyncio.AbstractEventLoop, requests: int, threads: int) -> None:
    bridge = RequestBridge(app, threads=threads, read_timeout=10, body_cap=lambda _: 131072)
    bridge.__rsgi_init__(loop)
    executor = ThreadPoolExecutor(threads)
    scope, protocol = Scope(), Protocol()

    async def through_bridge() -> None:
        await bridge.__rsgi__(scope, protocol)

    async def through_executor() -> None:  # the hand-off alone, as run_in_executor does it
        await loop.run_in_executor(executor, contextvars.Context().run, len, "x")

    async def through_pool() -> None:  # the bridge's own hand-off alone
        await bridge._pool.run(len, "x")  # type: ignore[union-attr]

    for name, handle in (
        ("bridge: environ + hand-off + app", through_bridge),
        ("hand-off: the bridge's pool", through_pool),
        ("hand-off: run_in_executor", through_executor),
    ):
        cells = []
        for concurrency in (1, 8):
            runs = [loop.run_until_complete(drive(handle, requests, concurrency)) for _ in range(3)]
            cells += [min(r[0] for r in runs), min(r[1] for r in runs)]
        print(f"    {name:32} " + " ".join(f"{c:>8.1f} " for c in cells))
    bridge.__rsgi_del__(loop)
    executor.shutdown()
    loop.close()


if __name__ == "__main__":
    main()
