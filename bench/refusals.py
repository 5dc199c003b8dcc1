"""What a refused request costs the server, next to a genuine one: prints, asserts nothing.

Against a real server (this checkout's `funker-dispatch serve` with the bench
config, or any running one given with --url, such as an older checkout's),
over HTTP on loopback, sequentially:

  genuine        the signed SpaceCountIntent request (the function answers)
  launch         a signed LaunchRequest (no function)
  nested-120k    unsigned, 120 KB: an envelope padded with arrays nested 60 deep
  nested-242k    the same at 242 KB (over the 128 KiB cap since the robustness work)
  forged-120k    the nested body with a real signature of another body
  slots-1100     unsigned IntentRequest with 1100 slots

then the genuine request's latency while one client floods the server with
nested-120k refusals. Each figure is the median of --requests tries, with the
ratio to the genuine request's.

Run: .venv/bin/python bench/refusals.py [--url http://127.0.0.1:3000/] [--requests 200]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fixtures import (
    dispatch_config,
    free_port,
    request_envelope,
    running,
    signed_request,
    spacecount_function,
    wait_accepts,
)
from run import serve_command, server_env

from verification.devca import DevCA


def nested(size: int) -> bytes:
    envelope = request_envelope()
    one = "[" * 60 + "]" * 60
    head = json.dumps(envelope)[:-1] + ', "padding": ['
    count = max(0, (size - len(head) - 2) // (len(one) + 1))
    return (head + ",".join([one] * count) + "]}").encode()


def slots(count: int) -> bytes:
    envelope = request_envelope()
    envelope["request"]["intent"]["slots"] = {
        f"s{i}": {"name": f"s{i}", "value": "x"} for i in range(count)
    }
    return json.dumps(envelope).encode()


def kinds(ca: DevCA) -> dict[str, tuple[bytes, dict[str, str]]]:
    json_type = {"Content-Type": "application/json"}
    genuine = signed_request(ca)
    launch = request_envelope()
    launch["request"] = {**launch["request"], "type": "LaunchRequest"}
    launch.pop("session", None)
    launch_body = json.dumps(launch).encode()
    forged = {**json_type, **ca.sign(genuine[0])}  # genuine headers, another body
    return {
        "genuine": genuine,
        "launch": (launch_body, {**json_type, **ca.sign(launch_body)}),
        "nested-120k": (nested(120_000), json_type),
        "nested-242k": (nested(242_000), json_type),
        "forged-120k": (nested(120_000), forged),
        "slots-1100": (slots(1100), json_type),
    }


class Client:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/"
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
        began = time.perf_counter()
        try:
            self.connection.request("POST", self.path, body=body, headers=headers)
            response = self.connection.getresponse()
            response.read()
            status = response.status
            if response.getheader("Connection", "").lower() == "close":
                self.reconnect()
        except (OSError, http.client.HTTPException):
            self.reconnect()
            status = 0
        return status, (time.perf_counter() - began) * 1000

    def reconnect(self) -> None:
        self.connection.close()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)


def median_ms(client: Client, body: bytes, headers: dict[str, str], n: int) -> tuple[int, float]:
    results = [client.post(body, headers) for _ in range(n)]
    return results[-1][0], statistics.median(ms for _, ms in results)


def under_flood(url: str, genuine: tuple[bytes, dict[str, str]], flood: Callable[[], Any], n: int):
    stop = threading.Event()

    def attacker() -> None:
        while not stop.is_set():
            flood()

    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    try:
        return median_ms(Client(url), *genuine, n)[1]
    finally:
        stop.set()
        thread.join(10)


@contextlib.contextmanager
def own_server(ca: DevCA, tmp: Path) -> Iterator[str]:
    with spacecount_function() as function_port:
        port = free_port()
        command = serve_command(dispatch_config(ca, tmp, function_port), port, 2, 8)
        with running(command, env=server_env(tmp), log=tmp / "server.log") as process:
            wait_accepts(port, 30, process)
            yield f"http://127.0.0.1:{port}/"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server that trusts --home's dev CA")
    parser.add_argument("--home", help="the dev CA's home (with --url)")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="funker-bench-refusals-") as directory:
        tmp = Path(directory)
        ca = DevCA.load_or_create(Path(args.home) if args.home else tmp / "home")
        with contextlib.ExitStack() as stack:
            url = args.url or stack.enter_context(own_server(ca, tmp))
            shots = kinds(ca)
            client = Client(url)
            median_ms(client, *shots["genuine"], 20)  # warm
            figures = {
                name: median_ms(client, *shot, args.requests) for name, shot in shots.items()
            }
            calm = figures["genuine"][1]
            flooder = Client(url)
            flooded = under_flood(
                url, shots["genuine"], lambda: flooder.post(*shots["nested-120k"]), args.requests
            )
    print(f"\nrefusal cost against {url} (median of {args.requests}, sequential, keep-alive)")
    print(f"  {'request':14} {'status':>6} {'ms':>8} {'× genuine':>10}")
    for name, (status, ms) in figures.items():
        print(f"  {name:14} {status:>6} {ms:>8.2f} {ms / calm:>10.2f}")
    print(
        f"\ngenuine request while one client floods nested-120k refusals: {flooded:.2f} ms "
        f"({flooded / calm:.2f} × calm)"
    )


if __name__ == "__main__":
    main()
