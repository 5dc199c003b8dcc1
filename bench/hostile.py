"""What hostile or merely unlucky clients do to a running server (printed, never asserted).

The figures behind docs/robustness.md's rules, each from a real server (2 workers ×
8 threads, production-shaped) and real function processes on loopback:

  github-memory    40 unsigned 25 MiB POSTs to /events/github at once: the workers'
                   RSS before, at the peak, and one second after
  idle             a signed Alexa request's answer time with 1,500 and 5,000 idle
                   connections open (and as many holding one byte of a request line)
  heads            900 connections each trickling an unfinished 400 KiB request head:
                   the workers' RSS while they are held
  raising          a GitHub push to a function whose handler raises, then its
                   redelivery: the statuses and outcomes the sender sees
  slow-deliveries  16 and 32 GitHub pushes to a 7 s function in flight: a signed Alexa
                   request's answer time, and when the deliveries were answered
  long-ids         150 EventBridge deliveries whose ids are 1 MB each: RSS after
  many-events      one POST of 6,000 DynamoDB records: its status and the calls made
  trailers         a chunked Alexa request with a trailer field: the status
  secret-perms     a GitHub secret file writable by everyone: does the server start?

`--tree DIR` serves the dispatcher (and the functions' `dispatch.funker`) from
another checkout, so one command measures before and after on the same
machine: `git worktree add /tmp/before <commit>`, then
`.venv/bin/python bench/hostile.py --tree /tmp/before`.

Run: .venv/bin/python bench/hostile.py [--only idle,raising] [--tree DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures import (
    ROOT,
    application_id,
    free_port,
    memory_mib,
    running,
    signed_request,
    wait_accepts,
    worker_pids,
)

from verification.devca import DevCA
from verification.github import signature

SECRET = b"bench-github-secret"
API_KEY = "bench-api-key"
SCENARIOS = (
    "github-memory",
    "idle",
    "heads",
    "raising",
    "slow-deliveries",
    "long-ids",
    "many-events",
    "trailers",
    "secret-perms",
)

# A function that answers, sleeps first, or raises, served by the tree's own `dispatch.funker`.
FUNCTION = """
import sys, time
sys.path.insert(0, sys.argv[1])
from dispatch.funker import serve
mode, port = sys.argv[2], int(sys.argv[3])
def handler(payload):
    if mode == "raise":
        raise RuntimeError("the handler failed")
    if mode == "slow":
        time.sleep(7)
    return {"speech": "ok"}
serve(handler, "127.0.0.1", port)
"""


class Server:
    """`funker-dispatch serve` from a tree, with the functions and triggers the scenarios use."""

    def __init__(self, tree: Path, tmp: Path, ca: DevCA, *, secret_mode: int = 0o600) -> None:
        self.tree, self.tmp, self.ca = tree, tmp, ca
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret_mode = secret_mode
        self.log = tmp / f"server-{self.port}.log"
        self.functions: dict[str, int] = {}

    def config(self) -> Path:
        from cryptography.hazmat.primitives.serialization import Encoding

        root = self.tmp / "devca-root.pem"
        root.write_bytes(self.ca.root.public_bytes(Encoding.PEM))
        secret, key = self.tmp / "github-secret", self.tmp / "api-key"
        secret.write_bytes(SECRET)
        key.write_text(API_KEY)
        for path in (secret, key):
            path.chmod(0o600)
        secret.chmod(self.secret_mode)
        ports = self.functions
        text = (
            "[server]\nadmin_port = 0\nworkers = 2\nthreads = 8\n\n"
            f'[skill]\napplication_ids = ["{application_id()}"]\n\n'
            "[dispatch]\nprogressive_after = 0\n\n"
            f'[verification]\ntrusted_roots = ["{root}"]\n\n'
            f'[verification.local_chains]\n"{self.ca.chain_url}" = "{self.ca.chain_path}"\n\n'
            f'[intents.SpaceCountIntent]\nhost = "127.0.0.1"\nport = {ports["ok"]}\n\n'
            f'[triggers.github]\nsecret_file = "{secret}"\n\n'
            f'[triggers.eventbridge]\napi_key_file = "{key}"\n\n'
            '[events.slow]\nsource = "github"\nevent = "push"\nrepository = "acme/slow"\n'
            f'host = "127.0.0.1"\nport = {ports["slow"]}\n\n'
            '[events.raising]\nsource = "github"\nevent = "push"\nrepository = "acme/raising"\n'
            f'host = "127.0.0.1"\nport = {ports["raise"]}\n\n'
            '[events.records]\nsource = "dynamodb"\n'
            f'host = "127.0.0.1"\nport = {ports["ok"]}\n\n'
            '[events.any]\nsource = "eventbridge"\n'
            f'host = "127.0.0.1"\nport = {ports["ok"]}\n'
        )
        config = self.tmp / f"dispatch-{self.port}.toml"
        config.write_text(text)
        return config

    @contextlib.contextmanager
    def run(self) -> Iterator[Server]:
        with contextlib.ExitStack() as stack:
            for mode in ("ok", "slow", "raise"):
                port = free_port()
                args = [sys.executable, "-c", FUNCTION, str(self.tree), mode, str(port)]
                process = stack.enter_context(running(args))
                wait_accepts(port, 10, process)
                self.functions[mode] = port
            # The command line's module in that tree (skill.cli before the layout of 2026-12).
            module = "funker_dispatch" if (self.tree / "funker_dispatch").is_dir() else "skill.cli"
            args = [sys.executable, "-m", module, "serve", "--config", str(self.config())]
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
            env = {"PYTHONPATH": str(self.tree)}
            self.process = stack.enter_context(running(args, env=env, log=self.log, cwd=self.tree))
            wait_accepts(self.port, 30, self.process)
            yield self

    def workers_rss(self) -> float:
        return sum(memory_mib(pid).get("rss", 0.0) for pid in worker_pids(self.process.pid))

    def alexa(self, timeout: float = 30.0) -> tuple[float, str]:
        """Seconds a signed SpaceCountIntent took, and what came back."""
        body, headers = signed_request(self.ca)
        began = time.monotonic()
        status = post(self.url + "/", body, headers, timeout)[0]
        return time.monotonic() - began, str(status)


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float = 30.0
) -> tuple[int | str, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as error:
        with contextlib.suppress(ValueError):
            return error.code, json.loads(error.read() or b"null")
        return error.code, None
    except OSError as error:
        return type(error).__name__, None


def github_push(repository: str, delivery: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": repository}}).encode()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(SECRET, body),
    }


def eventbridge_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "x-api-key": API_KEY}


@contextlib.contextmanager
def connections(port: int, count: int, first: bytes = b"") -> Iterator[list[socket.socket]]:
    """`count` connections opened at once, each sending `first` (if any), then silent."""
    held = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", port))
            held.append(sock)
        if first:
            time.sleep(0.2)  # the connects complete in the kernel's time, not ours
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.send(first)
        time.sleep(0.5)  # let the server take them in before the request under test
        yield held
    finally:
        for sock in held:
            sock.close()


# --- the scenarios ---------------------------------------------------------------------------


def github_memory(server: Server) -> None:
    before = server.workers_rss()
    body = b"{" + b" " * (25 * 1024 * 1024 - 2) + b"}"
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], server.workers_rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(40) as pool:
        statuses = list(
            pool.map(lambda _: post(server.url + "/events/github", body, headers)[0], range(40))
        )
    done.set()
    sampler.join()
    time.sleep(1.0)  # "a second later": what the workers still hold
    after = server.workers_rss()
    # URLError: refused before its body was read, the connection closes under the client's
    # send (urllib cannot read an answer then; curl reads the 401).
    print(
        f"  40 unsigned 25 MiB POSTs: statuses {summary(statuses)}; workers' RSS "
        f"{before:.0f} MiB before, {peak[0]:.0f} at the peak, {after:.0f} one second after"
    )


def idle(server: Server) -> None:
    for count, first, what in (
        (1500, b"", "idle"),
        (5000, b"", "idle"),
        (5000, b"P", "holding one byte"),
    ):
        before = server.workers_rss()
        with connections(server.port, count, first):
            seconds, status = server.alexa()
            held = server.workers_rss() - before
        print(
            f"  {count} connections {what}: signed Alexa request {seconds:.2f} s ({status}); "
            f"workers' RSS +{held:.0f} MiB ({held * 1024 / count:.1f} KiB each)"
        )


def heads(server: Server) -> None:
    before = server.workers_rss()
    head = b"POST / HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Filler-%d: %s\r\n" % (n, b"a" * 4000) for n in range(100)
    )  # ~400 KiB, never finished
    with connections(server.port, 900) as held:
        for sock in held:
            sock.setblocking(True)
            sock.settimeout(0.5)
            with contextlib.suppress(OSError):
                sock.sendall(head)
        time.sleep(1.0)
        during = server.workers_rss()
        seconds, status = server.alexa()
    print(
        f"  900 unfinished 400 KiB heads: workers' RSS {before:.0f} → {during:.0f} MiB while "
        f"held; signed Alexa request {seconds:.2f} s ({status})"
    )


def raising(server: Server) -> None:
    delivery = str(uuid.uuid4())
    for attempt in ("delivery", "redelivery"):
        body, headers = github_push("acme/raising", delivery)
        status, answer = post(server.url + "/events/github", body, headers)
        rules = (answer or {}).get("rules") or [{}]
        print(f"  {attempt}: {status} {rules[0].get('outcome')} {rules[0].get('reason')}")


def slow_deliveries(server: Server) -> None:
    def deliver(began: float) -> tuple[Any, float]:
        body, headers = github_push("acme/slow")
        status = post(server.url + "/events/github", body, headers, 60)[0]
        return status, time.monotonic() - began

    for count in (16, 32):
        began = time.monotonic()
        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(deliver, began) for _ in range(count)]
            time.sleep(1.0)  # all of them in flight
            seconds, status = server.alexa()
            results = [future.result() for future in futures]
        statuses = [result[0] for result in results]
        times = sorted(result[1] for result in results)
        print(
            f"  {count} slow deliveries in flight: signed Alexa request {seconds:.2f} s "
            f"({status}); deliveries {summary(statuses)} answered at "
            f"{times[0]:.1f}–{times[-1]:.1f} s (median {statistics.median(times):.1f})"
        )


def long_ids(server: Server) -> None:
    before = server.workers_rss()
    statuses = []
    for _ in range(150):
        envelope = {
            "version": "0",
            "id": uuid.uuid4().hex * (1_000_000 // 32),
            "detail-type": "Bench",
            "source": "bench.hostile",
            "account": "123456789012",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "eu-west-1",
            "resources": [],
            "detail": {},
        }
        body = json.dumps(envelope).encode()
        statuses.append(post(server.url + "/events/eventbridge", body, eventbridge_headers())[0])
    time.sleep(1.0)
    after = server.workers_rss()
    print(
        f"  150 deliveries with 1 MB ids: statuses {summary(statuses)}; workers' RSS "
        f"{before:.0f} → {after:.0f} MiB"
    )


def many_events(server: Server) -> None:
    arn = "arn:aws:dynamodb:eu-west-1:1:table/b/stream/1"
    records = [  # as small as a stream record gets: ~150 bytes, 6,000 in under a MiB
        {
            "eventID": str(n),
            "eventName": "INSERT",
            "eventSource": "aws:dynamodb",
            "eventSourceARN": arn,
            "dynamodb": {"Keys": {"id": {"N": str(n)}}},
        }
        for n in range(6000)
    ]
    body = json.dumps(records, separators=(",", ":")).encode()
    status, answer = post(server.url + "/events/eventbridge", body, eventbridge_headers(), 120)
    calls = len((answer or {}).get("rules") or [])
    print(f"  one POST of 6,000 records ({len(body) / 2**20:.1f} MiB): {status}, {calls} calls")


def trailers(server: Server) -> None:
    body, headers = signed_request(server.ca)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    head += b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
    chunked = b"%x\r\n%s\r\n0\r\nX-Checksum: 1\r\n\r\n" % (len(body), body)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + chunked)
        answer = sock.recv(65536)
    status_line, _, rest = answer.partition(b"\r\n")
    body_sent = rest.partition(b"\r\n\r\n")[2][:80]
    print(f"  chunked with a trailer: {status_line.decode()} {body_sent!r}")


def secret_perms(tree: Path, tmp: Path, ca: DevCA) -> None:
    server = Server(tree, tmp, ca, secret_mode=0o666)
    try:
        with server.run():
            started = "started"
    except RuntimeError:
        started = "refused to start"
    lines = [line for line in server.log.read_text().splitlines() if "secret" in line.lower()]
    print(f"  GitHub secret file mode 0666: {started}; {lines[-1][:150] if lines else ''}")


def summary(values: list[Any]) -> str:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return ", ".join(f"{n}× {value}" for value, n in sorted(counts.items()))


RUNNERS: dict[str, Callable[[Server], None]] = {
    "github-memory": github_memory,
    "idle": idle,
    "heads": heads,
    "raising": raising,
    "slow-deliveries": slow_deliveries,
    "long-ids": long_ids,
    "many-events": many_events,
    "trailers": trailers,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to serve from")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    # Thousands of sockets: this process needs the descriptors the server is offered.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12_000:
        print(f"open-file limit {hard}: the idle scenario needs about 11,000", file=sys.stderr)
    tree = args.tree.resolve()
    print(f"tree {tree} ({git_head(tree)}), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        ca = DevCA.load_or_create(tmp / "devca")
        for name in chosen:
            print(name)
            if name == "secret-perms":
                secret_perms(tree, tmp, ca)
                continue
            # A fresh server each: one scenario's held memory is not the next one's baseline.
            with Server(tree, tmp, ca).run() as server:
                RUNNERS[name](server)


def git_head(tree: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return "unknown"


if __name__ == "__main__":
    main()
