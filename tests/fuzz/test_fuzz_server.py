"""Fuzzing the real server process: gunicorn's HTTP parsing and the app together.

Fewer examples than in-process (each is a real round trip), raw http.client so
duplicated headers and odd methods reach the server as sent. After each property
the server's log must show no crashed handler.
"""

from __future__ import annotations

from hypothesis import given

from tests.e2e.conftest import intent
from tests.fuzz import strategies as s
from tests.fuzz.conftest import (
    ANSWER_INTENT,
    FUZZ_SERVER,
    assert_contract,
    assert_no_crash_logged,
    assert_valid_reply,
)


def test_real_server_answers_any_request_within_the_contract(fuzz_server, send_to_server):
    @FUZZ_SERVER
    @given(shot=s.shots())
    def any_request(shot):
        assert_contract(*send_to_server(shot))

    any_request()
    assert_no_crash_logged(fuzz_server)


def test_real_server_survives_garbage_nesting_and_oversize(fuzz_server, send_to_server):
    @FUZZ_SERVER
    @given(shot=s.shots(body=s.random_bytes | s.deeply_nested() | s.huge_string()))
    def hostile_body(shot):
        assert_contract(*send_to_server(shot))

    hostile_body()
    assert_no_crash_logged(fuzz_server)
    # Still serving normally afterwards.
    status, _, body = send_to_server(s.Shot(body=s.encode(s.BASES["routed intent"]())))
    assert status == 200, body


def test_real_server_turns_any_function_answer_into_a_reply_alexa_accepts(
    fuzz_server, send_to_server, answer_function
):
    @FUZZ_SERVER
    @given(answer=s.function_answers() | s.broken_answers())
    def any_answer(answer):
        answer_function.answer = answer.body
        status, content_type, body = send_to_server(s.Shot(body=s.encode(intent(ANSWER_INTENT))))
        assert status == 200, body[:500]
        assert content_type.startswith("application/json")
        assert_valid_reply(body)

    any_answer()
    assert_no_crash_logged(fuzz_server)
