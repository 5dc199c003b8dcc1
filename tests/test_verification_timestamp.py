"""TimestampVerifier: ±150 s for requests, an hour for skill events, and defensive parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from ask_sdk_core.serialize import DefaultSerializer
from ask_sdk_model import RequestEnvelope

from verification import TimestampVerifier, VerificationFailed

SENT = datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


def body(request_type: str = "LaunchRequest", timestamp: object = "2030-06-01T12:00:00Z") -> str:
    request = {"type": request_type, "requestId": "amzn1.echo-api.request.1", "locale": "en-US"}
    if timestamp is not None:
        request["timestamp"] = timestamp
    return json.dumps({"version": "1.0", "request": request})


def check(serialized: str, now: datetime, envelope: object = "parse") -> None:
    if envelope == "parse":
        envelope = DefaultSerializer().deserialize(serialized, RequestEnvelope)
    TimestampVerifier(now=lambda: now).verify({}, serialized, envelope)


def refusal(serialized: str, now: datetime, envelope: object = "parse") -> str:
    with pytest.raises(VerificationFailed) as failure:
        check(serialized, now, envelope)
    return failure.value.reason


@pytest.mark.parametrize("offset", [-150, -1, 0, 1, 150])
def test_request_within_150_seconds_either_way_is_accepted(offset):
    check(body(), SENT + timedelta(seconds=offset))


@pytest.mark.parametrize("offset", [-151, 151, 3600])
def test_request_more_than_150_seconds_away_is_refused(offset):
    assert refusal(body(), SENT + timedelta(seconds=offset)) == "timestamp"


def test_half_a_second_past_the_tolerance_is_refused():
    assert refusal(body(), SENT + timedelta(seconds=150, milliseconds=500)) == "timestamp"


@pytest.mark.parametrize("offset", [-3600, 151, 3600])
def test_skill_event_within_an_hour_is_accepted(offset):
    check(body("AlexaSkillEvent.SkillEnabled"), SENT + timedelta(seconds=offset))


@pytest.mark.parametrize("offset", [-3601, 3601])
def test_skill_event_more_than_an_hour_away_is_refused(offset):
    event = body("AlexaSkillEvent.SkillPermissionAccepted")
    assert refusal(event, SENT + timedelta(seconds=offset)) == "timestamp"


def test_naive_timestamp_is_read_as_utc():
    check(body(timestamp="2030-06-01T12:00:00"), SENT + timedelta(seconds=150))
    late = SENT + timedelta(seconds=151)
    assert refusal(body(timestamp="2030-06-01T12:00:00"), late) == "timestamp"


def test_offset_timestamp_is_compared_as_an_instant():
    check(body(timestamp="2030-06-01T14:00:00+02:00"), SENT)


def test_missing_timestamp_is_refused():
    assert refusal(body(timestamp=None), SENT) == "timestamp"


def test_unparsable_timestamp_is_refused_cleanly():
    assert refusal(body(timestamp="yesterday-ish"), SENT, envelope=None) == "timestamp"
    assert refusal(body(timestamp=12345), SENT, envelope=None) == "timestamp"


def test_unknown_request_type_falls_back_to_the_raw_json():
    # The skill's serializer turns unknown types into a bare Request; the timestamp
    # may be missing there, but the raw body still carries it.
    unknown = body("Alexa.Something.New")
    bare = SimpleNamespace(request=SimpleNamespace(object_type="Alexa.Something.New"))
    check(unknown, SENT + timedelta(seconds=10), envelope=bare)
    assert refusal(unknown, SENT + timedelta(seconds=200), envelope=bare) == "timestamp"


def test_without_a_model_the_raw_json_gives_type_and_timestamp():
    check(body("AlexaSkillEvent.SkillDisabled"), SENT + timedelta(seconds=3000), envelope=None)
    assert refusal(body(), SENT + timedelta(seconds=3000), envelope=None) == "timestamp"


def test_body_that_is_not_json_is_refused_as_timestamp():
    assert refusal("not json", SENT, envelope=None) == "timestamp"
    assert refusal("[1, 2]", SENT, envelope=None) == "timestamp"


def test_naive_injected_clock_is_read_as_utc():
    check(body(), SENT.replace(tzinfo=None) + timedelta(seconds=100))
