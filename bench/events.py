"""What one EventBridge or GitHub event costs the dispatcher, per event and per rule (printed,
never asserted).

In process, no HTTP server: `EventBridgeEndpoint.receive(headers, body)` and
`GitHubEndpoint.receive(headers, body)` as the Flask view calls them —
credential or HMAC check, parse, match, fan-out, the per-id memory — with
every matching rule's function call replaced by one that returns at once,
so the figure is the dispatcher's own work, not the function's or the
network's (one real loopback call is measured beside it, for scale).

  github push        GitHub's documented push sample (~3.5 KB), HMAC-SHA256 verified
  eventbridge        one EC2 state-change envelope, API key checked
  dynamodb batch     a Pipes batch of 10 DynamoDB records, images converted (per record)

each with 1, 4 and 16 matching rules per event (one call for one event runs
inline; more, a batch's included, run on the fan-out's threads). "per rule"
is (16 rules − 1 rule) / 15. Each figure is the median over --rounds of the
mean of --events events, every event a new id (a repeated id would be a
cheap duplicate).

Run: .venv/bin/python bench/events.py [--events 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dispatch import funker  # noqa: E402
from funker_dispatch.devtools import eventsamples  # noqa: E402
from triggers.endpoint import EventBridgeEndpoint, GitHubEndpoint  # noqa: E402
from triggers.fanout import Fanout, Memory  # noqa: E402
from triggers.rules import Rule, parse_rule  # noqa: E402
from verification import EventBridgeAuth, GitHubSignature  # noqa: E402

SECRET = b"bench-secret"
KEY = "bench-api-key"
RULE_COUNTS = (1, 4, 16)
BATCH = 10


def instant(*args: Any, **kwargs: Any) -> Any:
    return {"ok": True}


def rules(source: str, count: int, port: int = 9999, **match: str) -> list[Rule]:
    return [
        parse_rule(
            f"r{n}",
            {"source": source, "host": "127.0.0.1", "port": port, **match},
            default_port=port,
        )
        for n in range(count)
    ]


def per_event_us(deliver: Callable[[int], object], count: int, rounds: int, per: int = 1) -> float:
    """Median over rounds of the mean µs per event (`per` events in each delivery)."""
    means, offset = [], 0
    for _ in range(rounds):
        began = time.perf_counter()
        for index in range(offset, offset + count):
            deliver(index)
        means.append((time.perf_counter() - began) / (count * per) * 1e6)
        offset += count
    return statistics.median(means)


def github_case(count: int, rounds: int, rule_count: int, call: Any = instant, port: int = 9999):
    endpoint = GitHubEndpoint(
        GitHubSignature(SECRET),
        rules("github", rule_count, port, event="push", repository="acme/*"),
        Fanout(8.0, Memory(86400), call=call),
    )
    built = eventsamples.github("push", "acme/site", "refs/heads/main", SECRET)
    headers = [
        {**built.headers, "X-GitHub-Delivery": str(uuid.uuid4())} for _ in range(count * rounds)
    ]

    def deliver(index: int) -> None:
        delivery = endpoint.receive(headers[index], built.body)
        assert delivery.status == 200, delivery.body

    return per_event_us(deliver, count, rounds), len(built.body)


def eventbridge_case(count: int, rounds: int, rule_count: int):
    endpoint = EventBridgeEndpoint(
        EventBridgeAuth.api_key("x-api-key", KEY),
        rules("eventbridge", rule_count, event_source="aws.ec2"),
        Fanout(4.0, Memory(86400), call=instant),
    )
    now = datetime.now(UTC)
    envelope = eventsamples.eventbridge_envelope(
        eventsamples.EC2_SOURCE, eventsamples.EC2_STATE_CHANGE, None, now
    )
    bodies = [
        json.dumps({**envelope, "id": str(uuid.uuid4())}).encode() for _ in range(count * rounds)
    ]
    headers = {"x-api-key": KEY, "Content-Type": "application/json; charset=utf-8"}

    def deliver(index: int) -> None:
        delivery = endpoint.receive(headers, bodies[index])
        assert delivery.status == 200, delivery.body

    return per_event_us(deliver, count, rounds), len(bodies[0])


def dynamodb_case(count: int, rounds: int, rule_count: int):
    endpoint = EventBridgeEndpoint(
        EventBridgeAuth.api_key("x-api-key", KEY),
        rules("dynamodb", rule_count, table="Orders"),
        Fanout(4.0, Memory(86400), call=instant),
    )
    now = datetime.now(UTC)
    item = {"id": 101, "customer": "Ada", "total": 19.99, "lines": [{"sku": "TSHIRT-L", "n": 2}]}
    batches = []
    deliveries = max(1, count // BATCH)
    for _ in range(deliveries * rounds):
        batch = [
            eventsamples.dynamodb_record("Orders", "INSERT", item, None, None, now)
            for _ in range(BATCH)
        ]
        batches.append(json.dumps(batch).encode())
    headers = {"x-api-key": KEY}

    def deliver(index: int) -> None:
        delivery = endpoint.receive(headers, batches[index])
        assert delivery.status == 200, delivery.body

    return per_event_us(deliver, deliveries, rounds, per=BATCH), len(batches[0])


def loopback_function() -> tuple[int, Callable[[], None]]:
    """A real funker function on a loopback port, answering at once (dispatch.funker.serve)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ready = threading.Event()
    servers: list[Any] = []

    def run() -> None:
        server = funker.make_server(lambda payload: {"ok": True}, "127.0.0.1", port)
        servers.append(server)
        ready.set()
        server.serve_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return port, lambda: servers[0].shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(
        f"per-event overhead in process (function calls answer at once), "
        f"median of {args.rounds} rounds of {args.events} events"
    )
    print(
        f"  {'':<42}"
        + "".join(f"{n:>3} rule{'s' if n > 1 else ' '} " for n in RULE_COUNTS)
        + "  per rule"
    )
    cases = (
        ("github push", github_case),
        ("eventbridge envelope", eventbridge_case),
        (f"dynamodb, {BATCH}-record batch", dynamodb_case),
    )
    for name, case in cases:
        figures = {}
        size = 0
        for count in RULE_COUNTS:
            figures[count], size = case(args.events, args.rounds, count)
        per_rule = (figures[16] - figures[1]) / 15
        label = f"{name} ({size:,} B)" + (" /record" if case is dynamodb_case else "")
        print(
            f"  {label:<42}"
            + "".join(f"{figures[n]:>7.1f} µs " for n in RULE_COUNTS)
            + f" {per_rule:>6.1f} µs"
        )
    port, stop = loopback_function()
    try:
        hop, _ = github_case(max(1, args.events // 4), args.rounds, 1, funker.call, port)
    finally:
        stop()
    print(f"  for scale: github push, 1 rule, a real loopback funker call: {hop:.1f} µs")


if __name__ == "__main__":
    main()
