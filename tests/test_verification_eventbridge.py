"""EventBridgeAuth: an API destination's connection credential, API key or Basic, right or not."""

from __future__ import annotations

import base64

import pytest

from verification import EventBridgeAuth
from verification.errors import EventBridgeAuthFailed

KEY = "k3y-from-the-connection"
API_KEY = EventBridgeAuth.api_key("x-api-key", KEY)
BASIC = EventBridgeAuth.basic("eventbridge", "pa:ss wörd")


def basic(username: str, password: str, scheme: str = "Basic") -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"{scheme} {token}"}


def refused(auth: EventBridgeAuth, headers: dict[str, str]) -> EventBridgeAuthFailed:
    with pytest.raises(EventBridgeAuthFailed) as error:
        auth.verify(headers)
    assert (error.value.reason, error.value.status) == ("eventbridge-auth", 401)
    return error.value


def test_the_right_api_key_in_its_header_is_accepted_whatever_the_header_case():
    assert API_KEY.verify({"x-api-key": KEY}) is None
    assert API_KEY.verify({"X-Api-Key": KEY}) is None


def test_a_wrong_or_missing_api_key_is_refused():
    refused(API_KEY, {"x-api-key": KEY + "x"})
    refused(API_KEY, {"x-api-key": KEY[:-1]})
    assert refused(API_KEY, {}).message == "credential missing"
    assert refused(API_KEY, {"x-other": KEY}).message == "credential missing"
    assert refused(API_KEY, {"x-api-key": ""}).message == "credential missing"


def test_the_refusal_never_carries_the_key_given_or_expected():
    error = refused(API_KEY, {"x-api-key": "guess-123"})
    assert "guess-123" not in f"{error.message} {error.detail}"
    assert KEY not in f"{error.message} {error.detail} {API_KEY!r}"


def test_right_basic_credentials_are_accepted_with_a_colon_in_the_password():
    assert BASIC.verify(basic("eventbridge", "pa:ss wörd")) is None
    assert BASIC.verify(basic("eventbridge", "pa:ss wörd", scheme="basic")) is None


@pytest.mark.parametrize(
    "headers",
    [
        basic("eventbridge", "wrong"),
        basic("someone", "pa:ss wörd"),
        basic("eventbridge", "pa:ss wörd", scheme="Bearer"),
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"x-api-key": KEY},
        {},
    ],
)
def test_wrong_or_missing_basic_credentials_are_refused(headers):
    refused(BASIC, headers)


def test_a_connection_needs_its_parts():
    with pytest.raises(ValueError):
        EventBridgeAuth.api_key("x-api-key", "")
    with pytest.raises(ValueError):
        EventBridgeAuth.basic("user:name", "p")
    assert (API_KEY.kind, BASIC.kind) == ("api-key", "basic")
