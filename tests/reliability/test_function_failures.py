"""A dispatcher in front of fragile functions: restarts, crashes mid-reply, stalls.

Real server process, real sockets; deadlines are asserted through the reply and
the logged reason, never by timing the test.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from dispatch.responses import apology
from tests.reliability.conftest import request_log, route, server_table, wait_until, with_id

APOLOGY = apology("en-GB").speech["text"]  # what Alexa speaks when the function gives no answer


def test_function_restarted_between_every_request_answers_every_request(
    function_script, start_server, signed
):
    port, _ = function_script("restarting", "--gap", "0.15")
    server = start_server(route("RestartIntent", port, timeout=3.0))
    for n in range(20):
        marker = f"restart-{n}"
        answer = signed(server.url, with_id("RestartIntent", marker))
        assert answer.status == 200, answer.body
        # A new incarnation per request: each call met a closed port and retried.
        assert answer.speech == f"incarnation {n} id {marker}"


def test_function_killed_mid_reply_gets_spoken_apology_and_protocol_reason(
    function_script, start_server, signed
):
    port, child = function_script("half_reply")
    server = start_server(route("HalfIntent", port))
    body = with_id("HalfIntent", "half")
    answer = signed(server.url, body)
    assert answer.status == 200, answer.body
    assert answer.speech == APOLOGY
    assert child.wait(timeout=5) < 0  # it really died by a signal, not a clean exit
    request_id = body["request"]["requestId"]
    server.wait_for_log(f'"request_id":"{request_id}"')
    record = request_log(server)[request_id]
    assert (record["outcome"], record["reason"], record["route"]) == (
        "apology",
        "protocol",
        "HalfIntent",
    )


def test_stalled_function_gets_deadline_apology_and_leaves_no_worker_stuck(
    function_thread, start_server, signed
):
    never = threading.Event()  # set only at teardown, so stalled handler threads end
    stalled_port = function_thread(lambda payload: never.wait(60) or "too late")
    echo_port = function_thread(lambda payload: {"speech": "still here"})
    workers, threads = 2, 2
    server = start_server(
        server_table(threads=threads)
        + route("StallIntent", stalled_port, timeout=0.5)
        + route("EchoIntent", echo_port, timeout=2.0),
        workers=workers,
    )
    stalled = [with_id("StallIntent", f"stall-{n}") for n in range(3 * workers * threads)]
    try:
        with ThreadPoolExecutor(len(stalled)) as pool:
            answers = list(pool.map(lambda body: signed(server.url, body), stalled))
        assert [a.status for a in answers] == [200] * len(stalled)
        assert {a.speech for a in answers} == {APOLOGY}
        ids = [body["request"]["requestId"] for body in stalled]
        wait_until(lambda: set(ids) <= set(request_log(server)), 5, "stalled requests' log lines")
        records = request_log(server)
        assert {(records[i]["outcome"], records[i]["reason"]) for i in ids} == {
            ("apology", "deadline")
        }

        # Every thread of every worker is free again: a parallel round of normal
        # requests, one per thread, is answered by the function, not apologised for.
        normal = [with_id("EchoIntent", f"after-{n}") for n in range(workers * threads)]
        with ThreadPoolExecutor(len(normal)) as pool:
            after = list(pool.map(lambda body: signed(server.url, body), normal))
        assert [(a.status, a.speech) for a in after] == [(200, "still here")] * len(normal)
        assert "WORKER TIMEOUT" not in server.log()
    finally:
        never.set()
