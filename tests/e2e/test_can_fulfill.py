"""CanFulfillIntentRequest (name-free interaction) answered from the model, or by a function.

Without a route keyed `CanFulfillIntentRequest`, the dispatcher answers from the
interaction model and the routing table: YES for a routed intent of the model
whose slots it knows (each slot's value one of its custom type's values or
synonyms, or of a built-in type), MAYBE when a slot value is not among a custom
type's values, NO for an intent it does not serve or a slot the intent does not
declare. Nothing is called: Alexa only asks whether the skill could. With the
route, the function answers (and a failure is a NO, never a silent yes).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import envelope
from tests.helpers import free_port


def can_fulfill(intent: str, /, **slots: str) -> dict[str, Any]:
    request = envelope(
        {
            "type": "CanFulfillIntentRequest",
            "intent": {
                "name": intent,
                "slots": {slot: {"name": slot, "value": value} for slot, value in slots.items()},
            },
        }
    )
    del request["session"]  # Alexa sends these outside any session
    return request


@pytest.fixture(scope="module")
def server(start_server):
    # The shipped model's intents, routed by the naming convention; none is ever called.
    return start_server()


def answer(signed, server, body) -> dict[str, Any]:
    reply = signed(server.url, body)
    assert reply.status == 200, reply.body
    assert "outputSpeech" not in reply.json["response"]  # it must not speak
    return reply.json["response"]["canFulfillIntent"]


def test_a_routed_intent_with_a_known_slot_value_is_yes(signed, server):
    assert answer(signed, server, can_fulfill("HelloIntent", name="grace hopper")) == {
        "canFulfill": "YES",
        "slots": {"name": {"canUnderstand": "YES", "canFulfill": "YES"}},
    }


def test_a_routed_intent_without_slots_is_yes(signed, server):
    assert answer(signed, server, can_fulfill("SpaceCountIntent")) == {
        "canFulfill": "YES",
        "slots": {},
    }


def test_a_value_not_among_the_custom_types_values_is_maybe(signed, server):
    assert answer(signed, server, can_fulfill("HelloIntent", name="zebulon")) == {
        "canFulfill": "MAYBE",
        "slots": {"name": {"canUnderstand": "MAYBE", "canFulfill": "YES"}},
    }


def test_a_slot_the_intent_does_not_declare_is_no(signed, server):
    assert answer(signed, server, can_fulfill("SpaceCountIntent", planet="mars")) == {
        "canFulfill": "NO",
        "slots": {"planet": {"canUnderstand": "NO", "canFulfill": "NO"}},
    }


def test_an_intent_the_model_does_not_have_is_no(signed, server):
    assert answer(signed, server, can_fulfill("PlaySoundIntent", sound="crickets")) == {
        "canFulfill": "NO",
        "slots": {"sound": {"canUnderstand": "NO", "canFulfill": "NO"}},
    }


def test_an_intent_nothing_routes_is_no(signed, start_server):
    # naming = "none": a model intent without a configured route is served by nobody.
    unrouted = start_server('[dispatch]\nnaming = "none"\n')
    assert answer(signed, unrouted, can_fulfill("HelloIntent", name="ada"))["canFulfill"] == "NO"


def test_a_routed_can_fulfill_whose_function_fails_is_no(signed, start_server):
    down = start_server(
        f'[intents.CanFulfillIntentRequest]\nhost = "127.0.0.1"\nport = {free_port()}\n'
        "timeout = 0.5\n"
    )
    assert answer(signed, down, can_fulfill("HelloIntent", name="ada")) == {
        "canFulfill": "NO",
        "slots": {"name": {"canUnderstand": "NO", "canFulfill": "NO"}},
    }
