"""Fuzzing what functions answer: whatever comes back, Alexa gets a reply it accepts.

A raw-socket function answers each example's bytes (1e400, "\\u0007", "\\ud800",
deep nesting included) to a signed IntentRequest sent through the in-process
app. The property (docs/functions.md): the reply is strict JSON with well-formed SSML
and XML-legal text, or it is the spoken apology with reason bad-reply.
"""

from __future__ import annotations

import re

from hypothesis import given

from dispatch.responses import apology
from tests.e2e.conftest import intent
from tests.fuzz import strategies as s
from tests.fuzz.conftest import ANSWER_INTENT, FUZZ, assert_valid_reply

APOLOGY = dict(apology("en-GB").speech)  # intent() is en-GB


def ask(send, answer_function, app_warnings, answer: s.FunctionAnswer) -> tuple[dict, list[str]]:
    """The reply Alexa would get, and the reasons of the failures the app logged."""
    answer_function.answer = answer.body
    app_warnings.records.clear()
    status, content_type, body = send(s.Shot(body=s.encode(intent(ANSWER_INTENT))))
    assert status == 200, body[:500]
    assert content_type.startswith("application/json")
    reply = assert_valid_reply(body)
    crashed = [r.getMessage() for r in app_warnings.records if r.levelname == "ERROR"]
    assert not crashed, crashed  # handler-error or internal: a failure nobody named
    reasons = [
        match.group(1)
        for r in app_warnings.records
        if (match := re.search(r"function failed: .* reason=(\S+)", r.getMessage()))
    ]
    return reply, reasons


@FUZZ
@given(answer=s.function_answers())
def test_any_answer_is_a_valid_reply_or_the_bad_reply_apology(
    send_in_process, answer_function, app_warnings, answer
):
    reply, reasons = ask(send_in_process, answer_function, app_warnings, answer)

    assert reasons in ([], ["bad-reply"])
    if reasons:
        assert reply["response"]["outputSpeech"] == APOLOGY
    if not answer.may_be_refused:
        assert reasons == []  # nothing hostile in it: the function's answer is what Alexa gets


@FUZZ
@given(answer=s.broken_answers())
def test_broken_answer_bytes_are_a_valid_reply_and_one_named_failure(
    send_in_process, answer_function, app_warnings, answer
):
    reply, reasons = ask(send_in_process, answer_function, app_warnings, answer)

    assert len(reasons) <= 1
    if reasons:
        assert reply["response"]["outputSpeech"] == APOLOGY


def test_answers_the_issue_named_are_bad_replies(send_in_process, answer_function, app_warnings):
    for body in [
        b'{"speech": "a\\u0000b"}',
        b'{"speech": "a\\u0007b"}',
        b'{"speech": "a\\u001bb"}',
        b'{"speech": "a\\ud800b"}',
        b'{"speech": "Hi", "session_attributes": {"n": 1e400}}',
        b'{"speech": "Hi", "session_attributes": {"n": -1e400}}',
        b'{"speech": "Hi", "directives": [{"type": "X", "n": 1' + b"0" * 400 + b"}]}",
    ]:
        answer = s.FunctionAnswer(None, body)
        reply, reasons = ask(send_in_process, answer_function, app_warnings, answer)
        assert reasons == ["bad-reply"], body
        assert reply["response"]["outputSpeech"] == APOLOGY
