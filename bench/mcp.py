"""What a tool call costs over an Alexa request to the same function (printed, never asserted).

One real server (`funker-dispatch serve`, one worker, [mcp] on with a static
token) and one echo function on loopback. Measured in the same run, each over
one keep-alive connection, one request at a time:

  alexa      POST / — a signed SpaceCountIntent request (signature verified)
  mcp call   POST /mcp — tools/call of SpaceCountIntent (same route, same function)
  mcp list   POST /mcp — tools/list (no function call: the protocol's own cost)

Each figure is the median over --rounds of the mean of --requests requests.
"added per tool call" is mcp call − alexa in µs, and the ratio mcp call / alexa.
The Alexa request pays an RSA signature check that a tool call does not; a tool
call pays the SDK's JSON-RPC handling and two thread hand-offs (docs/mcp.md).

Run: .venv/bin/python bench/mcp.py [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fixtures import (  # noqa: E402
    dispatch_config,
    echo_function,
    free_port,
    funker_dispatch_command,
    running,
    signed_request,
    wait_accepts,
)
from verification.devca import DevCA  # noqa: E402

TOKEN = "bench-mcp-token"


def timed(send: Callable[[], None], count: int, rounds: int) -> float:
    """Median over rounds of the mean µs per request."""
    send()  # warm: the first request starts the MCP loop thread, fills caches
    means = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(count):
            send()
        means.append((time.perf_counter() - began) / count * 1e6)
    return statistics.median(means)


def poster(
    port: int, path: str, body: Callable[[], tuple[bytes, dict[str, str]]]
) -> Callable[[], None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def send() -> None:
        data, headers = body()
        connection.request("POST", path, data, headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200 or b'"isError":true' in answer:
            raise SystemExit(f"{path}: {response.status} {answer[:300]!r}")

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, echo_function() as function_port:
        directory = Path(tmp)
        ca = DevCA.load_or_create(directory / "home")
        config = dispatch_config(ca, directory, function_port)
        token = directory / "mcp-token"
        token.write_text(TOKEN)
        token.chmod(0o600)
        config.write_text(
            config.read_text()
            + f'\n[mcp]\nenabled = true\nlocale = "en-US"\ntoken_file = "{token}"\n'
        )
        port = free_port()
        command = [*funker_dispatch_command(), "serve", "--config", str(config)]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        env = {"FUNKER_DISPATCH_HOME": str(directory / "home")}
        with running(command, env=env, log=directory / "server.log") as server:
            wait_accepts(port, 30, server)
            mcp_headers = {
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "Authorization": f"Bearer {TOKEN}",
                "MCP-Protocol-Version": "2025-11-25",
            }

            def rpc(method: str, params: dict | None = None) -> tuple[bytes, dict[str, str]]:
                message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
                return json.dumps(message).encode(), mcp_headers

            call = {"name": "SpaceCountIntent", "arguments": {}}
            alexa = timed(poster(port, "/", lambda: signed_request(ca)), args.requests, args.rounds)
            tool = timed(
                poster(port, "/mcp", lambda: rpc("tools/call", call)), args.requests, args.rounds
            )
            listed = timed(
                poster(port, "/mcp", lambda: rpc("tools/list")), args.requests, args.rounds
            )
    print(f"requests per figure: {args.requests} x {args.rounds} rounds (median of means)")
    print(f"  alexa      POST /    signed IntentRequest   {alexa:8.0f} µs")
    print(f"  mcp call   POST /mcp tools/call (same fn)   {tool:8.0f} µs")
    print(f"  mcp list   POST /mcp tools/list             {listed:8.0f} µs")
    print(f"added per tool call: {tool - alexa:+.0f} µs (mcp call / alexa = {tool / alexa:.2f})")


if __name__ == "__main__":
    main()
