"""Where (b)'s per-request time goes: one process, the real app, a real function on loopback.

Builds the apps exactly as the servers do - funker-dispatch from a config
file through `load_settings` + `create_app`, with the request log and the
multiprocess metrics set up as `funker-dispatch serve` sets them up - and
calls their WSGI entry point directly (no HTTP server, no test-client
overhead) with the signed SpaceCountIntent request, the function answering
from its own process as in production.

It prints:
  0. CPU per request (this thread's time, steadier than wall time on a shared
     machine) of a' and b in alternating rounds, and b - a';
     With --ablate: b's CPU per request with one part turned off at a time
     (the signature check, the request log line, the whole request record:
     log line and metrics, progressive responses) against b itself and an
     identical second b (the noise floor), each as b minus it;
  1. wall time per request in-process for a, a' and b (no profiler), so
     b - a' is what the dispatcher adds on top of a hand-written call; and b
     with progressive responses off, so b - b(off) is what arming one costs
     when the function is fast (the request names an allowed API origin, so
     one is armed and disarmed on every request, as for Alexa's requests);
  2. the same cost alone: ProgressiveSender.arm + done, µs per call;
  3. cProfile's top entries by cumulative time for b;
  4. pyinstrument's call tree and flat self-time list for b (if installed).

Run: .venv/bin/python bench/profile.py [--requests 2000] [--top 30] [--ablate]
"""

from __future__ import annotations

import sys

# This file's folder comes first on sys.path, and this file is named like the
# stdlib's `profile`, which cProfile imports: load the stdlib's before ours can
# stand in for it.
_bench = sys.path.pop(0)
import cProfile  # noqa: E402
import pstats  # noqa: E402

sys.path.insert(0, _bench)

import argparse  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from fixtures import (  # noqa: E402
    BENCH_API_ORIGIN,
    ROOT,
    dispatch_config,
    production_like_process,
    request_caller,
    request_envelope,
    signed_request,
    spacecount_function,
)

from verification.devca import DevCA  # noqa: E402

WSGIApp = Callable[[dict[str, Any], Any], Any]


def per_request_ms(call: Callable[[], Any], requests: int) -> tuple[float, float]:
    """(median, p90) wall ms per request."""
    for _ in range(50):
        call()
    samples = []
    for _ in range(requests):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.9)] * 1000


def cpu_per_request_us(
    calls: dict[str, Callable[[], Any]], requests: int, rounds: int = 7
) -> dict[str, list[float]]:
    """µs of this thread's CPU per request for each call, in alternating rounds.

    The function's own CPU is another process's and is not in it: this is the
    dispatcher's (or the bare skill's) work alone.
    """
    for call in calls.values():
        for _ in range(50):
            call()
    figures: dict[str, list[float]] = {name: [] for name in calls}
    per_round = max(1, requests // rounds)
    for _ in range(rounds):
        for name, call in calls.items():
            began = time.thread_time()
            for _ in range(per_round):
                call()
            figures[name].append((time.thread_time() - began) / per_round * 1e6)
    return figures


def ablations(
    build: Callable[..., Any],
    body: bytes,
    headers: dict[str, str],
    resign: Callable[[], tuple[bytes, dict[str, str]]],
) -> dict[str, Any]:
    """b, an identical b, and b with one part off at a time: name -> WSGI caller."""
    import skill.app as app_module

    def without_signature() -> Any:
        app = build()
        app.extensions["funker_dispatch"]["signature"] = None
        return app.wsgi_app

    def without(name: str, stand_in: Any) -> Any:
        app = build()
        real = getattr(app_module, name)

        def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
            setattr(app_module, name, stand_in)  # this app's requests only: one thread
            try:
                return app.wsgi_app(environ, start_response)
            finally:
                setattr(app_module, name, real)

        return wsgi

    apps = {
        "b": build().wsgi_app,
        "b again": build().wsgi_app,
        "no signature": without_signature(),
        "no log line": without("log_request", lambda fields: None),
        "no record": without("_observe", lambda record, response: None),
        "no progressive": build(FUNKER_DISPATCH_PROGRESSIVE_AFTER="0").wsgi_app,
    }
    return {name: request_caller(app, body, headers, resign) for name, app in apps.items()}


def print_ablations(calls: dict[str, Callable[[], Any]], requests: int) -> None:
    cpu = cpu_per_request_us(calls, requests, rounds=9)
    print("b with one part off: CPU µs per request in process, median of 9 alternating rounds")
    print("('b again' is the same app built twice: its difference is the noise floor)")
    for name, values in cpu.items():
        saved = statistics.median(b - x for b, x in zip(cpu["b"], values, strict=True))
        print(f"  {name:16} {statistics.median(values):6.0f}   b minus it {saved:6.0f}")
    print()


# Our packages, for the second cProfile listing.
OURS = r"/(skill|dispatch|verification)/[a-z_]+\.py"


def cprofile_top(call: Callable[[], Any], requests: int, top: int) -> str:
    """Top entries by cumulative time: everything, then funker-dispatch's own functions.

    cProfile's overhead per call inflates call-heavy code (the SDK's model
    deserializer most); read the order, and take sizes from the timings above.
    """
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(requests):
        call()
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
    out.write("\n--- funker-dispatch's own functions, by cumulative time ---\n")
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(OURS, top)
    return out.getvalue().replace(str(ROOT) + "/", "")


def pyinstrument_report(call: Callable[[], Any], requests: int) -> str | None:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(requests):
        call()
    profiler.stop()
    # show_all: the SDK's and Flask's frames are where much of the time goes.
    tree = profiler.output_text(unicode=True, time="percent_of_total", show_all=True)
    # Only subtrees worth 1% or more: the full tree runs to thousands of lines.
    tree = "\n".join(line for line in tree.splitlines() if _worth_showing(line))
    flat = profiler.output_text(unicode=True, flat=True, time="percent_of_total")
    return tree + "\n--- flat, by self time ---\n" + "\n".join(flat.splitlines()[:45])


def _worth_showing(line: str) -> bool:
    """A pyinstrument tree line of 1% or more (or one with no percentage: the header)."""
    match = re.search(r"(\d+\.\d)% ", line)
    return match is None or float(match.group(1)) >= 1


def progressive_arming_us(calls: int) -> tuple[float, float]:
    """(median, p90) µs of arming and disarming one progressive response that is never due,
    over batches of 1000 calls.

    The request is the benchmark's (an IntentRequest naming an allowed origin, with a
    token), remembered as the pre-check remembers it, so every call takes the path of a
    real Alexa request: checked, scheduled on the timer, cancelled.
    """
    import json

    from dispatch.registry import Route
    from skill.envelope import raw_envelope, remember
    from skill.progressive import ProgressiveSender, Timer

    data = request_envelope()
    remember(json.dumps(data), data)
    route = Route(name="SpaceCountIntent", host="127.0.0.1", port=9, timeout=3.0)
    sender = ProgressiveSender(1.5, (BENCH_API_ORIGIN,), count=lambda outcome: None, timer=Timer())
    sender.arm(route, "en-US", 3.0, envelope=raw_envelope()).done()  # type: ignore[union-attr]  (starts the timer thread)
    samples = []
    for _ in range(max(1, calls // 1000)):
        began = time.perf_counter()
        for _ in range(1000):
            sender.arm(route, "en-US", 3.0, envelope=raw_envelope()).done()  # type: ignore[union-attr]
        samples.append((time.perf_counter() - began) / 1000 * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--top", type=int, default=30, help="cProfile entries to print")
    parser.add_argument("--skip-pyinstrument", action="store_true")
    parser.add_argument("--ablate", action="store_true", help="b with one part off at a time")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="funker-profile-") as directory:
        tmp = Path(directory)
        os.environ["FUNKER_DISPATCH_HOME"] = str(tmp / "home")
        for name in [k for k in os.environ if k.startswith("FUNKER_DISPATCH_") and "HOME" not in k]:
            del os.environ[name]
        log_path = production_like_process(tmp)
        ca = DevCA.load_or_create(tmp / "home")

        import bare

        from skill.app import create_app
        from skill.settings import load_settings

        with spacecount_function() as function_port:
            config = dispatch_config(ca, tmp, function_port)
            settings = load_settings(config, environ={})
            quiet = load_settings(config, environ={"FUNKER_DISPATCH_PROGRESSIVE_AFTER": "0"})
            resign = lambda: signed_request(ca)  # noqa: E731  (a long profile outlasts one)
            body, headers = resign()
            apps = {
                "a": bare.create_app("fixed"),
                "a'": bare.create_app("funker", function_port),
                "b": create_app(settings),
                "b(off)": create_app(quiet),
            }
            calls = {
                name: request_caller(app.wsgi_app, body, headers, resign)
                for name, app in apps.items()
            }
            cpu = cpu_per_request_us({"a'": calls["a'"], "b": calls["b"]}, args.requests * 3)
            print("CPU µs per request in process (thread time), median of 7 alternating rounds:")
            for name, values in cpu.items():
                print(f"  {name:6} {statistics.median(values):6.0f}")
            extra = statistics.median(b - a for a, b in zip(cpu["a'"], cpu["b"], strict=True))
            print(f"  b - a' (the dispatcher's own CPU per request): {extra:.0f} µs\n")
            if args.ablate:
                build = lambda **env: create_app(load_settings(config, environ=env))  # noqa: E731
                print_ablations(ablations(build, body, headers, resign), args.requests * 3)
            print(f"wall ms per request in-process, {args.requests} sequential requests:")
            figures = {}
            for name, call in calls.items():
                figures[name] = per_request_ms(call, args.requests)
                print(f"  {name:6} median {figures[name][0]:.3f}  p90 {figures[name][1]:.3f}")
            added = (figures["b"][0] - figures["a'"][0]) * 1000
            hop = (figures["a'"][0] - figures["a"][0]) * 1000
            armed = (figures["b"][0] - figures["b(off)"][0]) * 1000
            print(f"  b - a' (what the dispatcher adds per request): {added:.0f} µs")
            print(f"  a' - a (the funker hop done by hand): {hop:.0f} µs")
            print(f"  b - b(off) (progressive response armed, never due): {armed:.0f} µs")
            median, p90 = progressive_arming_us(args.requests * 10)
            print(f"  ProgressiveSender.arm + done alone: median {median:.2f} µs, p90 {p90:.2f} µs")

            print(f"\n=== cProfile, b, {args.requests} requests, by cumulative time ===")
            print(cprofile_top(calls["b"], args.requests, args.top))
            if not args.skip_pyinstrument:
                report = pyinstrument_report(calls["b"], args.requests)
                if report is None:
                    print("(pyinstrument not installed: pip install pyinstrument)")
                else:
                    print(f"=== pyinstrument, b, {args.requests} requests ===")
                    print(report)
        lines = sum(1 for _ in log_path.open(encoding="utf-8"))
        print(f"(request log lines written: {lines})", file=sys.stderr)


if __name__ == "__main__":
    main()
