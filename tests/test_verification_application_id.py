"""ApplicationIdVerifier: the allowlist against context.System and session application ids."""

from __future__ import annotations

import json

import pytest
from ask_sdk_core.serialize import DefaultSerializer
from ask_sdk_model import RequestEnvelope

from verification import ApplicationIdVerifier, VerificationFailed

OURS = "amzn1.ask.skill.11111111-1111-1111-1111-111111111111"
OTHER = "amzn1.ask.skill.22222222-2222-2222-2222-222222222222"


def envelope(*, context_id: str | None = None, session_id: str | None = None) -> tuple[str, object]:
    data: dict[str, object] = {
        "version": "1.0",
        "request": {
            "type": "LaunchRequest",
            "requestId": "amzn1.echo-api.request.1",
            "timestamp": "2030-06-01T12:00:00Z",
        },
    }
    if context_id is not None:
        data["context"] = {"System": {"application": {"applicationId": context_id}}}
    if session_id is not None:
        data["session"] = {
            "new": True,
            "sessionId": "amzn1.echo-api.session.1",
            "application": {"applicationId": session_id},
        }
    serialized = json.dumps(data)
    return serialized, DefaultSerializer().deserialize(serialized, RequestEnvelope)


def check(allowed: list[str], **ids: str | None) -> None:
    serialized, model = envelope(**ids)
    ApplicationIdVerifier(allowed).verify({}, serialized, model)


def refusal(allowed: list[str], **ids: str | None) -> str:
    with pytest.raises(VerificationFailed) as failure:
        check(allowed, **ids)
    return failure.value.reason


def test_id_in_context_only_is_accepted():
    check([OURS], context_id=OURS)


def test_id_in_session_only_is_accepted():
    check([OURS], session_id=OURS)


def test_id_in_both_is_accepted():
    check([OURS, OTHER], context_id=OURS, session_id=OURS)


def test_request_without_any_id_is_refused():
    assert refusal([OURS]) == "application-id"


def test_id_not_in_the_allowlist_is_refused():
    assert refusal([OURS], context_id=OTHER) == "application-id"


@pytest.mark.parametrize(
    ("context_id", "session_id"), [(OURS, OTHER), (OTHER, OURS)], ids=["session", "context"]
)
def test_mismatch_in_either_place_is_refused(context_id, session_id):
    assert refusal([OURS], context_id=context_id, session_id=session_id) == "application-id"


def test_empty_allowlist_accepts_any_id_or_none():
    check([], context_id=OTHER)
    check([])
