"""Log lines cannot be forged, and every refusal is logged under its own request id (§14)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import intent, post

FORGED = "CRITICAL funker_dispatch: operator, run this"


def records(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def unverified(start_server):
    from skill.settings import DEVELOPMENT_SKILL_ID

    base = (
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n'
        "verify_signature = false\nverify_timestamp = false\n\n"
    )
    return start_server(base=base)


def test_a_request_id_with_line_breaks_cannot_forge_a_log_line(unverified):
    # Verification off: whatever the body says reaches the refusal's log line.
    envelope = intent("TextIntent", application_id="amzn1.ask.skill.someone-else")
    envelope["request"]["requestId"] = f"abc\n2026-12-01 00:00:00,000 {FORGED}\r\x1b[2J"
    answer = post(unverified.url + "/", json.dumps(envelope).encode())
    assert answer.json["error"] == "application-id"
    log = unverified.wait_for_log("verification failed")
    assert not any(line.startswith("2026-12-01 00:00:00,000") for line in log.splitlines())
    assert "\x1b" not in log
    (line,) = [line for line in log.splitlines() if "verification failed" in line]
    assert "request_id=abc\\n2026-12-01" in line and FORGED in line  # kept, escaped, one line


def test_a_refusal_before_the_parse_is_never_logged_under_the_previous_request(start_server):
    server = start_server(env={"FUNKER_DISPATCH_SERVER_THREADS": "1"})  # one thread serves all
    first = intent("TextIntent")
    post(server.url + "/", json.dumps(first).encode())  # unsigned: refused, id logged
    first_id = first["request"]["requestId"]
    server.wait_for_log(first_id)
    assert post(server.url + "/", b"{}", {"Content-Type": "text/plain"}).status == 415
    assert post(server.url + "/", b"", method="GET").status == 405
    too_big = b"{" + b" " * (128 * 1024) + b"}"
    assert post(server.url + "/", too_big).status == 413
    server.wait_for_log('"reason":"too-large"')
    later = [r for r in records(server.log()) if r["reason"] in ("malformed", "method-not-allowed")]
    later += [r for r in records(server.log()) if r["reason"] == "too-large"]
    assert len(later) == 3
    assert all(record["request_id"] != first_id for record in later)


def test_a_client_that_hangs_up_before_its_answer_leaves_one_clean_log_line(start_server, dev_ca):
    import socket
    import threading

    from dispatch.funker import make_server

    # The function tells the test when the request has reached it, so the client hangs
    # up after the server took the request and before its answer, not while hyper may
    # still be reading it (a request whose client closes at once may never be served).
    called, release = threading.Event(), threading.Event()

    def stall(payload):
        called.set()
        release.wait(10)
        return {"speech": "too late"}

    function = make_server(stall, "127.0.0.1", 0)
    threading.Thread(target=function.serve_forever, daemon=True).start()
    try:
        server = start_server(
            f'[intents.StallIntent]\nhost = "127.0.0.1"\n'
            f"port = {function.server_address[1]}\ntimeout = 0.5\n"
        )
        body = json.dumps(intent("StallIntent")).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in dev_ca.sign(body).items())
        request = (
            f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        host, _, number = server.url.removeprefix("http://").partition(":")
        with socket.create_connection((host, int(number))) as sock:
            sock.sendall(request)
            assert called.wait(10), "the request never reached the function"
        # ...and gone, before the function's 0.5 s deadline gives the apology.
        request_id = json.loads(body)["request"]["requestId"]
        server.wait_for_log(f'"request_id":"{request_id}"')
    finally:
        release.set()
        function.shutdown()
        function.server_close()
    # Whatever the server logs about the lost answer comes before the next request's line.
    later = intent("AMAZON.HelpIntent")
    post(server.url + "/", json.dumps(later).encode())
    log = server.wait_for_log(f'"request_id":"{later["request"]["requestId"]}"')
    assert "Traceback" not in log and "raised an exception" not in log, log
