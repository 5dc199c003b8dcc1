"""Fuzzing the real server process: gunicorn's HTTP parsing and the app together.

Fewer examples than in-process (each is a real round trip), raw http.client so
duplicated headers and odd methods reach the server as sent.
"""

from __future__ import annotations

from hypothesis import given

from tests.fuzz import strategies as s
from tests.fuzz.conftest import FUZZ_SERVER, assert_contract


@FUZZ_SERVER
@given(shot=s.shots())
def test_real_server_answers_any_request_within_the_contract(send_to_server, shot):
    assert_contract(*send_to_server(shot))


@FUZZ_SERVER
@given(shot=s.shots(body=s.random_bytes | s.deeply_nested() | s.huge_string()))
def test_real_server_survives_garbage_nesting_and_oversize(send_to_server, shot):
    assert_contract(*send_to_server(shot))


def test_real_server_logs_no_internal_error_after_fuzzing(fuzz_server, send_to_server):
    """Run last in this module: the server stayed healthy and never logged a crash."""
    assert_contract(*send_to_server(s.Shot(body=s.encode(s.BASES["routed intent"]()))))
    log = fuzz_server.log()
    assert "internal error" not in log and "handler failed" not in log
