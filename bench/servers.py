"""Which HTTP server: funker-dispatch (b) under gunicorn's gthread worker and under granian.

Prints, for the same app, config, function and signed request, in one run:

1. slow clients: the fewest connections that keep `/healthz` from answering
   within 2 s — connections that send one byte and go silent, that trickle a
   header line every 2 s, or that send a whole head and then trickle the
   body (tried with 1, 2, 4, ... 256 connections; "none" means 256 did not);
2. throughput at c=1, 8, 64 in alternating rounds: requests/s, p50/p99, the
   servers' CPU per request, and granian / gunicorn;
3. start-up to the first 200, and memory per worker.

gunicorn runs as `funker-dispatch serve` did before the change (gthread,
preload_app, keepalive 5, timeout 30); granian is `funker-dispatch serve`.
Nothing is asserted. Run: .venv/bin/python bench/servers.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from fixtures import (
    dispatch_config,
    free_port,
    memory_mib,
    running,
    spacecount_function,
    wait_accepts,
    worker_pids,
)
from run import (
    DESCRIPTIONS,
    Run,
    Server,
    check_answer,
    drive,
    serve_command,
    server_env,
    startup_seconds,
)

from verification.devca import DevCA

GUNICORN_B = Path(__file__).resolve().with_name("gunicorn_b.py")
SERVERS = ("gunicorn", "granian")
ATTACKS = {
    "one byte, then silence": (b"P", b""),
    "a header line every 2 s": (b"POST / HTTP/1.1\r\nHost: x\r\n", b"X-Slow: y\r\n"),
    "whole head, body byte every 2 s": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4000\r\n\r\n{",
        b" ",
    ),
}
COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DESCRIPTIONS.update(
    gunicorn="funker-dispatch under gunicorn gthread (before)",
    granian="funker-dispatch under granian (funker-dispatch serve)",
)


def commands(config: Path, ports: dict[str, int], workers: int, threads: int) -> dict:
    return {
        "gunicorn": [
            sys.executable,
            str(GUNICORN_B),
            *("--config", str(config), "--port", str(ports["gunicorn"])),
            *("--workers", str(workers), "--threads", str(threads)),
        ],
        "granian": serve_command(config, ports["granian"], workers, threads),
    }


@contextlib.contextmanager
def both(ca: DevCA, tmp: Path, function_port: int, workers: int, threads: int) -> Iterator[dict]:
    ports = {name: free_port() for name in SERVERS}
    config = dispatch_config(ca, tmp, function_port)
    with contextlib.ExitStack() as stack:
        started = {}
        for name, command in commands(config, ports, workers, threads).items():
            log = tmp / f"servers-{name}.log"
            process = stack.enter_context(running(command, env=server_env(tmp), log=log))
            started[name] = Server(name, ports[name], process)
        for server in started.values():
            wait_accepts(server.port, 30, server.process)
        yield started


def answers_healthz(port: int, within: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=within) as r:
            return r.status == 200
    except OSError:
        return False


def connections_to_stall(port: int, first: bytes, every: bytes) -> int | None:
    """The fewest held connections that keep /healthz from answering within 2 s."""
    for count in COUNTS:
        sockets = []
        stop = threading.Event()
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(first)
                sockets.append(sock)

            if every:
                threading.Thread(target=_trickle, args=(sockets, every, stop), daemon=True).start()
            stalled = not answers_healthz(port)
        finally:
            stop.set()
            for sock in sockets:
                sock.close()
        # Let the server see the closes before the next, larger attempt.
        deadline = time.monotonic() + 30
        while not answers_healthz(port) and time.monotonic() < deadline:
            pass
        if stalled:
            return count
    return None


def _trickle(sockets: list[socket.socket], every: bytes, stop: threading.Event) -> None:
    while not stop.wait(2.0):  # the attack's own pace
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.sendall(every)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 5.0)
    tool = "wrk" if shutil.which("wrk") else "python"
    began = time.monotonic()
    runs: list[Run] = []
    stalls: dict[tuple[str, str], int | None] = {}
    memory: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="funker-bench-servers-") as directory:
        tmp = Path(directory)
        ca = DevCA.load_or_create(tmp / "home")
        with spacecount_function() as function_port:
            print(
                f"b under gunicorn (gthread) and granian: workers={args.workers} "
                f"threads={args.threads}; load: {tool}; {rounds} round(s) × {duration:g} s",
                flush=True,
            )
            with both(ca, tmp, function_port, args.workers, args.threads) as servers:
                for server in servers.values():
                    check_answer(server, ca)
                    drive(server, ca, 8, 1.0, tool, -1, tmp)  # warm
                for attack, (first, every) in ATTACKS.items():
                    for name, server in servers.items():
                        stalls[(attack, name)] = connections_to_stall(server.port, first, every)
                        print(f"  {name:8} {attack}: {stalls[(attack, name)]}", flush=True)
                for round_ in range(rounds):
                    for concurrency in (1, 8, 64):
                        order = SERVERS if (round_ + concurrency) % 2 else SERVERS[::-1]
                        for name in order:
                            run = drive(servers[name], ca, concurrency, duration, tool, round_, tmp)
                            runs.append(run)
                            print(
                                f"  round {round_ + 1} c={concurrency:<3} {name:8} "
                                f"{run.rps:7.0f} req/s  cpu {run.cpu_us:5.0f} µs/req",
                                flush=True,
                            )
                for name, server in servers.items():
                    memory[name] = [memory_mib(pid) for pid in worker_pids(server.process.pid)]
            config = dispatch_config(ca, tmp, function_port)
            startup: dict[str, list[float]] = {name: [] for name in SERVERS}
            for _ in range(1 if args.quick else 3):
                for name in SERVERS:
                    port = free_port()
                    command = commands(config, {n: port for n in SERVERS}, 2, 8)[name]
                    startup[name].append(startup_seconds(command, port, ca, tmp))
    report(runs, stalls, memory, startup)
    print(f"\n(total {time.monotonic() - began:.0f} s)")


def report(runs, stalls, memory, startup) -> None:
    print("\nslow clients: connections that keep /healthz from answering within 2 s")
    print(f"  {'attack':34} {'gunicorn':>9} {'granian':>9}")
    for attack in ATTACKS:
        cells = [stalls[(attack, name)] for name in SERVERS]
        print(f"  {attack:34} " + " ".join(f"{c if c else 'none':>9}" for c in cells))
    print(
        f"\n{'conc':>4} {'server':9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'fail':>5} "
        f"{'CPU µs/req':>10}   {'granian/gunicorn req/s':>22}"
    )
    for concurrency in (1, 8, 64):
        mine = {
            name: [r for r in runs if r.server == name and r.concurrency == concurrency]
            for name in SERVERS
        }
        for name in SERVERS:
            rows = mine[name]
            ratio = ""
            if name == "granian":
                pairs = {r.round: r.rps for r in mine["gunicorn"]}
                values = [r.rps / pairs[r.round] for r in rows if pairs.get(r.round)]
                ratio = f"{statistics.median(values):>22.2f}" if values else ""
            rps, p50 = _median([r.rps for r in rows]), _median([r.p50_ms for r in rows])
            p99, cpu = _median([r.p99_ms for r in rows]), _median([r.cpu_us for r in rows])
            failures = sum(r.failures for r in rows)
            print(
                f"{concurrency:>4} {name:9} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {failures:>5} "
                f"{cpu:>10.0f}   {ratio}"
            )
    print()
    for name in SERVERS:
        workers = ", ".join(
            f"RSS {w.get('rss', 0):.0f} / PSS {w.get('pss', 0):.0f}" for w in memory.get(name, [])
        )
        times = ", ".join(f"{t:.2f}" for t in startup[name])
        print(
            f"{name:9} start-up to first 200: {_median(startup[name]):.2f} s ({times}); "
            f"workers (MiB): {workers}"
        )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


if __name__ == "__main__":
    main()
