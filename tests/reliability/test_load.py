"""The dispatcher under load: bursts, a one-at-a-time function, SIGTERM while busy.

Every reply is correlated with its request by an id the function echoes, so a
mixed-up reply fails the test even when every status is 200.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor

from dispatch.responses import apology
from tests.reliability.conftest import (
    Seen,
    answered,
    marker_of,
    request_log,
    route,
    server_table,
    wait_until,
    with_id,
)

BURST = 500
CLIENTS = 64
APOLOGY = apology("en-GB").speech["text"]


def burst(signed, server, name: str, size: int = BURST, clients: int = CLIENTS):
    """Send `size` distinct signed requests from `clients` threads; (body, answer) pairs."""
    bodies = [with_id(name, f"{name}-{n}") for n in range(size)]
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda body: signed(server.url, body), bodies))
    return list(zip(bodies, answers, strict=True))


def test_burst_of_distinct_requests_each_gets_its_own_reply(function_thread, start_server, signed):
    def echo(payload):
        return {
            "speech": f"id {marker_of(payload)}",
            "session_attributes": {"requestId": payload["request"]["requestId"]},
        }

    server = start_server(route("EchoIntent", function_thread(echo)), workers=2)
    results = burst(signed, server, "EchoIntent")
    for body, answer in results:
        assert answer.status == 200, answer.body
        marker = marker_of(body)
        assert answered(answer, marker), (marker, answer.speech)
        assert answer.json["sessionAttributes"] == {"requestId": body["request"]["requestId"]}
    ids = {body["request"]["requestId"] for body, _ in results}
    wait_until(lambda: ids <= set(request_log(server)), 10, "a log line per request")
    assert {request_log(server)[i]["outcome"] for i in ids} == {"ok"}


def test_burst_against_one_at_a_time_function_is_queued_not_reset(
    one_at_a_time_function, start_server, signed
):
    port, seen = one_at_a_time_function
    server = start_server(route("SerialIntent", port, timeout=3.0, concurrency=1), workers=2)
    results = burst(signed, server, "SerialIntent")
    assert [answer.status for _, answer in results] == [200] * BURST
    mine = [answer for body, answer in results if answered(answer, marker_of(body))]
    sorry = [body for body, answer in results if answer.speech == APOLOGY]
    assert len(mine) > 0
    assert len(mine) + len(sorry) == BURST  # nothing else: no reply for another request
    # An apology may only mean "waited too long for the slot", never a reset connection.
    ids = {body["request"]["requestId"] for body in sorry}
    wait_until(lambda: ids <= set(request_log(server)), 10, "a log line per apology")
    assert {request_log(server)[i]["reason"] for i in ids} <= {"deadline"}
    assert set(seen.ids) >= {marker_of(body) for body, answer in results if answer in mine}


def test_sigterm_under_load_drains_every_accepted_request(function_thread, start_server, signed):
    seen = Seen()
    release = threading.Event()

    def slow(payload):
        seen.add(marker_of(payload))
        release.wait(5)  # the function's own work; the test lets it finish after SIGTERM
        return {"speech": f"id {marker_of(payload)}"}

    workers, threads = 2, 8
    server = start_server(
        server_table(threads=threads) + route("SlowIntent", function_thread(slow)),
        workers=workers,
    )
    size = threads  # even if one worker accepts them all, every one is already in a thread
    bodies = [with_id("SlowIntent", f"drain-{n}") for n in range(size)]
    try:
        with ThreadPoolExecutor(size) as pool:
            futures = [pool.submit(signed, server.url, body) for body in bodies]
            seen.wait_for(size, within=15)  # every request is inside a worker, at the function
            server.process.send_signal(signal.SIGTERM)
            server.wait_for_log("Shutting down granian")
            release.set()
            answers = [future.result() for future in futures]
    finally:
        release.set()
    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status == 200, answer.body
        assert answered(answer, marker_of(body)), answer.speech
    assert server.process.wait(timeout=30) == 0, server.log()
