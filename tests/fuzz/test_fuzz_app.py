"""Fuzzing the app in-process: no body or header makes it answer 5xx, HTML or a traceback.

Valid-shaped bodies are signed by the dev CA so they get past verification and
reach the SDK's deserializer, the handlers and a real funker function.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from skill.envelope import MAX_BODY_BYTES
from tests.fuzz import strategies as s
from tests.fuzz.conftest import FUZZ, assert_contract


def fire(send, app_errors, shot: s.Shot) -> tuple[int, bytes]:
    status, content_type, body = send(shot)
    assert_contract(status, content_type, body)
    crashed = [r.getMessage() for r in app_errors.records]
    app_errors.records.clear()
    assert not crashed, crashed  # a handler that raised is a bug even when Alexa hears sorry
    return status, body


def signed_post(body: st.SearchStrategy[bytes]) -> st.SearchStrategy[s.Shot]:
    return st.builds(s.Shot, body=body, sign=st.booleans() | st.just(True))


@FUZZ
@given(shot=signed_post(s.random_bytes))
def test_random_bytes(send_in_process, app_errors, shot):
    fire(send_in_process, app_errors, shot)


@FUZZ
@given(shot=signed_post(s.truncated()))
def test_truncated_envelopes(send_in_process, app_errors, shot):
    status, _ = fire(send_in_process, app_errors, shot)
    assert status == 400


@FUZZ
@given(shot=signed_post(s.deeply_nested()))
def test_deep_nesting(send_in_process, app_errors, shot):
    fire(send_in_process, app_errors, shot)


@FUZZ
@given(shot=signed_post(s.huge_string()))
def test_huge_strings(send_in_process, app_errors, shot):
    status, _ = fire(send_in_process, app_errors, shot)
    if len(shot.body) > MAX_BODY_BYTES:
        assert status == 413


@FUZZ
@given(shot=signed_post(s.wrong_type_anywhere()))
def test_wrong_type_in_any_field(send_in_process, app_errors, shot):
    fire(send_in_process, app_errors, shot)


@FUZZ
@given(shot=signed_post(s.field_dropped()))
def test_any_field_missing(send_in_process, app_errors, shot):
    fire(send_in_process, app_errors, shot)


@FUZZ
@given(shot=signed_post(s.unicode_anywhere()))
def test_unicode_edge_cases(send_in_process, app_errors, shot):
    fire(send_in_process, app_errors, shot)


@FUZZ
@given(
    shot=st.builds(
        s.Shot,
        body=s.envelopes().map(s.encode),
        method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH"]),
        content_type=s.content_types,
    )
)
def test_odd_methods_and_content_types(send_in_process, app_errors, shot):
    status, _ = fire(send_in_process, app_errors, shot)
    if shot.method != "POST":
        assert status == 405


@FUZZ
@given(
    shot=st.builds(
        s.Shot,
        body=s.envelopes().map(s.encode),
        sign=st.booleans(),
        headers=s.garbled_signatures(),
    )
)
def test_duplicated_and_garbled_signature_headers(send_in_process, app_errors, shot):
    status, _ = fire(send_in_process, app_errors, shot)
    if not shot.sign:
        assert status == 400  # no valid signature was ever sent: nothing may get through


@FUZZ
@given(shot=s.shots())
def test_any_mix_of_body_and_headers(send_in_process, app_errors, shot):
    fire(send_in_process, app_errors, shot)


def test_valid_signed_envelopes_are_answered(send_in_process, app_errors):
    """The fuzzers' starting point is sound: every base envelope gets a 200."""
    for name, make in s.BASES.items():
        status, _ = fire(send_in_process, app_errors, s.Shot(body=s.encode(make())))
        assert status == 200, name


# --- found by this suite ------------------------------------------------------


def test_lone_surrogate_in_a_routed_request_reaches_the_function(send_in_process, app_errors):
    body = s.BASES["launch"]()
    body["version"] = "\ud800"
    status, answer = fire(send_in_process, app_errors, s.Shot(body=s.encode(body)))
    assert status == 200
    assert json.loads(answer)["response"]["outputSpeech"] == {"type": "PlainText", "text": "echo"}


@FUZZ
@given(shot=signed_post(s.unicode_anywhere(surrogates=True)))
def test_unicode_edge_cases_with_lone_surrogates(send_in_process, app_errors, shot):
    fire(send_in_process, app_errors, shot)
