"""What funker-dispatch costs next to a bare ASK SDK skill: prints figures, asserts nothing.

Three servers with the same --workers and --threads, all on loopback, driven
with the same realistic signed SpaceCountIntent request at each concurrency,
in alternating order:

  a   bare flask-ask-sdk skill, fixed speech, verification off (gunicorn gthread)
  a'  the same skill calling the spacecount function by hand, verification off
      (gunicorn gthread, preload_app: how a bare-SDK skill is usually deployed)
  b   funker-dispatch serve (granian): verification ON (dev CA), forwarding to
      the same function

Then micro figures: warm verification cost, funker hop cost, start-up time to
the first 200, memory per worker. Uses wrk when installed, else a Python load
generator (http.client keep-alive connections in threads across processes).

Run: .venv/bin/python bench/run.py [--quick] [--json results.json]
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fixtures import (
    BARE,
    ROOT,
    cpu_seconds,
    dispatch_config,
    echo_function,
    free_port,
    funker_dispatch_command,
    memory_mib,
    request_envelope,
    running,
    signed_request,
    spacecount_function,
    wait_accepts,
    worker_pids,
)

from verification.devca import DevCA

SERVERS = ("a", "a'", "b")
DESCRIPTIONS = {
    "a": "bare ASK SDK, fixed speech, verification off",
    "a'": "bare ASK SDK + hand-written funker call, verification off",
    "b": "funker-dispatch, verification ON, funker call",
}


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]


@dataclass
class Run:
    server: str
    concurrency: int
    round: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: int  # non-2xx answers plus socket errors and timeouts
    tool: str
    cpu_us: float = 0.0  # server CPU (master + workers) per request
    busiest_worker: float = 0.0  # share of the workers' CPU used by the busiest one

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    settings: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    micro: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- servers


@contextlib.contextmanager
def servers(
    ca: DevCA, tmp: Path, function_port: int, workers: int, threads: int
) -> Iterator[dict[str, Server]]:
    """a, a' and b running side by side (idle ones cost nothing while another is driven)."""
    ports = {name: free_port() for name in SERVERS}
    bare = [sys.executable, str(BARE), "--workers", str(workers), "--threads", str(threads)]
    commands = {
        "a": [*bare, "--mode", "fixed", "--port", str(ports["a"])],
        "a'": [
            *bare,
            *("--mode", "funker", "--port", str(ports["a'"])),
            *("--function-port", str(function_port)),
        ],
        "b": serve_command(dispatch_config(ca, tmp, function_port), ports["b"], workers, threads),
    }
    with contextlib.ExitStack() as stack:
        started = {}
        for name in SERVERS:
            log = tmp / f"server-{name.replace(chr(39), '2')}.log"
            process = stack.enter_context(running(commands[name], env=server_env(tmp), log=log))
            started[name] = Server(name, ports[name], process)
        for server in started.values():
            wait_accepts(server.port, 30, server.process)
        yield started


def serve_command(config: Path, port: int, workers: int, threads: int) -> list[str]:
    return [
        *funker_dispatch_command(),
        *("serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", str(workers), "--threads", str(threads)),
    ]


def server_env(tmp: Path) -> dict[str, str]:
    metrics = tmp / "metrics"
    metrics.mkdir(exist_ok=True)
    # Our own dev CA home and metrics directory: nothing left behind outside tmp.
    return {"FUNKER_DISPATCH_HOME": str(tmp / "home"), "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


def post(port: int, body: bytes, headers: dict[str, str], timeout: float = 10) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_answer(server: Server, ca: DevCA) -> None:
    """One request must get a 200 with speech, or the figures would measure an error page."""
    body, headers = signed_request(ca)
    status, answer = post(server.port, body, headers)
    speech = ""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        speech = json.loads(answer)["response"]["outputSpeech"]
        speech = speech.get("text") or speech.get("ssml")
    if status != 200 or not speech:
        raise SystemExit(f"server {server.name} answered {status}: {answer[:300]!r}")
    print(f"  {server.name:3} {DESCRIPTIONS[server.name]}: {speech!r}", flush=True)


# ----------------------------------------------------------------------------- load


WRK_SCRIPT = """\
local file = assert(io.open(%(body)s, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
%(headers)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"errors":%%d,'
    .. '"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII is a valid Lua string literal


def drive_wrk(
    port: int, body: bytes, headers: dict[str, str], concurrency: int, seconds: float, tmp: Path
) -> dict[str, Any]:
    body_path = tmp / "body.json"
    body_path.write_bytes(body)
    script = tmp / "request.lua"
    lines = "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    script.write_text(WRK_SCRIPT % {"body": lua_string(str(body_path)), "headers": lines})
    threads = min(concurrency, os.cpu_count() or 1)
    completed = subprocess.run(
        [
            "wrk",
            *("-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s"),
            *("--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/"),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH "):
            raw = json.loads(line[len("BENCH ") :])
            return {
                "requests": raw["requests"],
                "seconds": raw["duration_us"] / 1e6,
                "p50_ms": raw["p50_us"] / 1000,
                "p99_ms": raw["p99_us"] / 1000,
                "failures": raw["non2xx"] + raw["errors"],
            }
    raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")


def _load_process(
    port: int,
    body: bytes,
    headers: dict[str, str],
    threads: int,
    start_at: float,
    seconds: float,
    limit: int,
    out: Any,
) -> None:
    """Keep-alive clients in threads, from `start_at` for `seconds` (or `limit` requests each)."""
    import threading

    latencies: list[float] = []
    counts = {"failures": 0}
    lock = threading.Lock()

    def client() -> None:
        mine: list[float] = []
        failures = 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        time.sleep(max(0.0, start_at - time.time()))
        end = start_at + seconds
        while time.time() < end and len(mine) + failures < limit:
            began = time.perf_counter()
            try:
                connection.request("POST", "/", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            if ok:
                mine.append(time.perf_counter() - began)
            else:
                failures += 1
        connection.close()
        with lock:
            latencies.extend(mine)
            counts["failures"] += failures

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.send((latencies, counts["failures"]))
    out.close()


def drive_python(
    port: int, body: bytes, headers: dict[str, str], concurrency: int, seconds: float
) -> dict[str, Any]:
    processes = min(concurrency, os.cpu_count() or 1)
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    context = multiprocessing.get_context("fork")
    start_at = time.time() + 0.3  # every client starts together, connections already made
    pipes, children = [], []
    for threads in shares:
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=_load_process,
            args=(port, body, headers, threads, start_at, seconds, 200_000, send),
        )
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    latencies: list[float] = []
    failures = 0
    for receive in pipes:
        if receive.poll(seconds + 30):
            mine, lost = receive.recv()
            latencies.extend(mine)
            failures += lost
    for child in children:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "failures": failures,
    }


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# ----------------------------------------------------------------------------- micro figures


def verification_cost(ca: DevCA, config: Path, loops: int) -> dict[str, float]:
    """µs per warm request for each configured verifier, as `create_app` builds them."""
    from ask_sdk_core.serialize import DefaultSerializer
    from ask_sdk_model import RequestEnvelope
    from werkzeug.datastructures import Headers

    from skill.settings import load_settings
    from skill.verifiers import build_verifiers

    verifiers = build_verifiers(load_settings(config, environ={}))
    body, raw_headers = signed_request(ca)
    text = body.decode("utf-8")
    envelope = DefaultSerializer().deserialize(text, RequestEnvelope)
    headers = Headers(raw_headers)
    for verifier in verifiers:
        verifier.verify(headers, text, envelope)  # warm: chain fetched and validated once

    def all_of_them() -> None:
        for verifier in verifiers:
            verifier.verify(headers, text, envelope)

    figures = {"all": best_us(all_of_them, loops)}
    for verifier in verifiers:
        figures[type(verifier).__name__] = best_us(
            lambda v=verifier: v.verify(headers, text, envelope), loops
        )
    return figures


def best_us(function: Callable[[], Any], loops: int, repeat: int = 5) -> float:
    """Best of `repeat` timeit runs, µs per call (the least disturbed by the noisy machine)."""
    return min(timeit.repeat(function, number=loops, repeat=repeat)) / loops * 1e6


def funker_hop(port: int, calls: int) -> dict[str, float]:
    """µs per round trip: dispatch.funker.call, and the hand-written exchange a' does."""
    from dispatch import funker
    from dispatch.registry import parse_route

    route = parse_route("bench", {"host": "127.0.0.1", "port": port}, default_port=port)
    payload = request_envelope()
    body = json.dumps(payload).encode()

    def by_hand() -> Any:
        with socket.create_connection(("127.0.0.1", port), timeout=6.5) as sock:
            sock.sendall(body)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return json.loads(b"".join(chunks))

    ways = {
        # bytes, as the dispatcher forwards Alexa's body: no encode on either side
        "funker.call": lambda: funker.call(route, body, timeout=3.0),
        "by hand": by_hand,
    }
    samples: dict[str, list[float]] = {name: [] for name in ways}
    for function in ways.values():
        function()
    for _ in range(calls):  # alternating, so a drift of the machine hits both alike
        for name, function in ways.items():
            began = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - began)
    return {name: statistics.median(times) * 1e6 for name, times in samples.items()}


PACKAGES = ("skill", "dispatch", "verification", "triggers")  # pyproject's packages.find


def compile_packages() -> None:
    """Bytecode for every module, as the image has it (pip compiles what it installs).

    Under PYTHONDONTWRITEBYTECODE (set in the image, often in a shell too) a
    module edited since its .pyc was written is compiled again by every process
    that imports it, and start-up would measure the compiler.
    """
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)
    compileall.compile_dir(ROOT / "bench", quiet=1, maxlevels=0)


def startup_seconds(
    command: list[str], port: int, ca: DevCA, tmp: Path, within: float = 30
) -> float:
    """Spawn → first 200 on a signed request (imports, app build, first chain validation)."""
    body, headers = signed_request(ca)
    began = time.perf_counter()
    with running(command, env=server_env(tmp), log=tmp / "startup.log") as process:
        deadline = began + within
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{command[:3]} exited; see {tmp / 'startup.log'}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if post(port, body, headers, timeout=5)[0] == 200:
                    return time.perf_counter() - began
            time.sleep(0.005)
    raise RuntimeError(f"no 200 within {within} s from {command[:3]}")


# ----------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(results: Results) -> None:
    by = {}
    for run in results.runs:
        by.setdefault((run.concurrency, run.server), []).append(run)
    concurrencies = sorted({run.concurrency for run in results.runs})
    print()
    print(
        f"{'conc':>4} {'server':6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'fail':>5}"
        f" {'CPU µs/req':>10} {'top worker':>10}   {'b/a′ req/s':>10} {'b/a req/s':>9}"
    )
    for concurrency in concurrencies:
        for name in SERVERS:
            runs = by.get((concurrency, name), [])
            ratios = ""
            if name == "b":
                ratios = f"   {ratio(by, concurrency, 'a′'):>10} {ratio(by, concurrency, 'a'):>9}"
            print(
                f"{concurrency:>4} {name.replace(chr(39), '′'):6} "
                f"{median([r.rps for r in runs]):>8.0f} "
                f"{median([r.p50_ms for r in runs]):>8.2f} "
                f"{median([r.p99_ms for r in runs]):>8.2f} "
                f"{sum(r.failures for r in runs):>5} "
                f"{median([r.cpu_us for r in runs]):>10.0f} "
                f"{median([r.busiest_worker for r in runs]):>10.0%}{ratios}"
            )
    rounds = max((run.round for run in results.runs), default=0) + 1
    tool = results.runs[0].tool if results.runs else "-"
    print(
        f"(median of {rounds} round(s); {tool}; ratios are the median of per-round ratios; "
        "fail = non-2xx + socket errors;\n CPU µs/req = server CPU (master + workers, not the "
        "function) per request; top worker = the busiest worker's share of the workers' CPU)"
    )


def ratio(by: dict[tuple[int, str], list[Run]], concurrency: int, baseline: str) -> str:
    baseline = baseline.replace("′", "'")
    pairs = {r.round: r.rps for r in by.get((concurrency, baseline), [])}
    values = [r.rps / pairs[r.round] for r in by.get((concurrency, "b"), []) if pairs.get(r.round)]
    return f"{median(values):.2f}" if values else "-"


def print_micro(micro: dict[str, Any]) -> None:
    print()
    verification = micro.get("verification_us", {})
    if verification:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in verification.items() if k != "all")
        print(f"verification, warm, per request: {verification['all']:.1f} µs  ({parts})")
    for label, key in (
        ("funker hop, no-op function", "hop_echo_us"),
        ("funker hop, spacecount", "hop_spacecount_us"),
    ):
        hop = micro.get(key, {})
        if hop:
            print(f"{label}: " + ", ".join(f"{k} {v:.0f} µs" for k, v in hop.items()))
    for name in ("b", "a"):
        values = micro.get("startup_s", {}).get(name)
        if values:
            print(
                f"start-up to first 200, {name}: {median(values):.2f} s "
                f"(median of {len(values)}: {', '.join(f'{v:.2f}' for v in values)})"
            )
    for name, memory in micro.get("memory_mib", {}).items():
        workers = memory["workers"]
        text = ", ".join(f"RSS {w.get('rss', 0):.1f} / PSS {w.get('pss', 0):.1f}" for w in workers)
        print(
            f"memory {name:3}: master RSS {memory['master'].get('rss', 0):.1f} MiB; "
            f"workers (MiB): {text}"
        )


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")
    parser.add_argument("--rounds", type=int, help="rounds of every server × concurrency")
    parser.add_argument("--duration", type=float, help="seconds per run")
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated (1,8,64)")
    parser.add_argument("--quick", action="store_true", help="one short round: under a minute")
    parser.add_argument(
        "--load", choices=["auto", "wrk", "python"], default="auto", help="load generator"
    )
    parser.add_argument("--json", nargs="?", const="-", metavar="FILE", help="dump raw results")
    args = parser.parse_args(argv)
    compile_packages()
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (2.0 if args.quick else 5.0)
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    tool = "python" if args.load == "python" else "wrk"
    if args.load == "auto" and not shutil.which("wrk"):
        tool = "python"
    if tool == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), or use --load python")
    results = Results(
        {
            "workers": args.workers,
            "threads": args.threads,
            "rounds": rounds,
            "duration_s": duration,
            "concurrency": concurrencies,
            "load": tool,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        }
    )
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="funker-bench-") as directory:
        tmp = Path(directory)
        ca = DevCA.load_or_create(tmp / "home")
        with spacecount_function() as function_port:
            print(
                f"servers: workers={args.workers} threads={args.threads}; "
                f"load: {tool}; {rounds} round(s) × {duration:g} s × {concurrencies}",
                flush=True,
            )
            with servers(ca, tmp, function_port, args.workers, args.threads) as running_servers:
                for server in running_servers.values():
                    check_answer(server, ca)
                    warm(server, ca, tool, tmp)
                for round_ in range(rounds):
                    for concurrency in concurrencies:
                        # Rotate the order so no server always runs first (or last).
                        shift = (round_ + concurrencies.index(concurrency)) % len(SERVERS)
                        for name in SERVERS[shift:] + SERVERS[:shift]:
                            run = drive(
                                running_servers[name], ca, concurrency, duration, tool, round_, tmp
                            )
                            results.runs.append(run)
                            print(
                                f"  round {round_ + 1} c={concurrency:<3} {name:3} "
                                f"{run.rps:8.0f} req/s  p50 {run.p50_ms:7.2f} ms  "
                                f"p99 {run.p99_ms:7.2f} ms  fail {run.failures}  "
                                f"cpu {run.cpu_us:5.0f} µs/req  top {run.busiest_worker:.0%}",
                                flush=True,
                            )
                results.micro["memory_mib"] = {
                    name: {
                        "master": memory_mib(server.process.pid),
                        "workers": [memory_mib(pid) for pid in worker_pids(server.process.pid)],
                    }
                    for name, server in running_servers.items()
                }
            print("micro figures...", flush=True)
            loops = 500 if args.quick else 2000
            config = dispatch_config(ca, tmp, function_port)
            results.micro["verification_us"] = verification_cost(ca, config, loops)
            results.micro["hop_spacecount_us"] = funker_hop(function_port, loops // 4)
            with echo_function() as echo_port:
                results.micro["hop_echo_us"] = funker_hop(echo_port, loops // 4)
            startups: dict[str, list[float]] = {"b": [], "a": []}
            for _ in range(1 if args.quick else 3):
                port = free_port()
                command = serve_command(config, port, args.workers, args.threads)
                startups["b"].append(startup_seconds(command, port, ca, tmp))
                port = free_port()
                bare = [sys.executable, str(BARE), "--mode", "fixed", "--port", str(port)]
                bare += ["--workers", str(args.workers), "--threads", str(args.threads)]
                startups["a"].append(startup_seconds(bare, port, ca, tmp))
            results.micro["startup_s"] = startups
    print_table(results)
    print_micro(results.micro)
    print(f"\n(total {time.monotonic() - began:.0f} s)")
    if args.json:
        raw = {
            "settings": results.settings,
            "runs": [{**asdict(run), "rps": run.rps} for run in results.runs],
            "micro": results.micro,
        }
        text = json.dumps(raw, indent=2, ensure_ascii=False)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
            print(f"raw results: {args.json}")


def warm(server: Server, ca: DevCA, tool: str, tmp: Path) -> None:
    """Every worker past its first requests (imports, caches) before anything is timed."""
    drive(server, ca, 8, 1.0, tool, -1, tmp)


def drive(
    server: Server, ca: DevCA, concurrency: int, seconds: float, tool: str, round_: int, tmp: Path
) -> Run:
    body, headers = signed_request(ca)  # stamped now: well inside 150 s for the run
    workers = worker_pids(server.process.pid)
    before = [cpu_seconds(pid) for pid in workers]
    master_before = cpu_seconds(server.process.pid)
    if tool == "wrk":
        figures = drive_wrk(server.port, body, headers, concurrency, seconds, tmp)
    else:
        figures = drive_python(server.port, body, headers, concurrency, seconds)
    used = [cpu_seconds(pid) - was for pid, was in zip(workers, before, strict=True)]
    total = sum(used) + cpu_seconds(server.process.pid) - master_before
    run = Run(server.name, concurrency, round_, tool=tool, **figures)
    run.cpu_us = total / run.requests * 1e6 if run.requests else float("nan")
    # gunicorn does not balance keep-alive connections: one worker may get them all
    # (granian's workers each accept on the port with SO_REUSEPORT: the kernel spreads them).
    run.busiest_worker = max(used) / sum(used) if sum(used) > 0 else float("nan")
    return run


if __name__ == "__main__":
    main()
