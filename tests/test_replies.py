"""A Reply through the ASK SDK's own model: typed where the SDK knows, untouched elsewhere."""

from __future__ import annotations

import logging

import pytest
from ask_sdk_core.serialize import DefaultSerializer
from ask_sdk_model.canfulfill import CanFulfillIntent
from ask_sdk_model.dialog import ElicitSlotDirective
from ask_sdk_model.ui import AskForPermissionsConsentCard, PlainTextOutputSpeech, PlayBehavior

from dispatch.responses import BadReply, Reply, to_reply
from skill.replies import to_model

SERIALIZER = DefaultSerializer()
FUTURE = {"type": "Alexa.Presentation.APL.FutureThing", "token": "t", "data": {"x": [1, 2]}}


def sent(reply: Reply, route: str = "R") -> dict:
    """The response JSON as the SDK serializes it for Alexa."""
    return SERIALIZER.serialize(to_model(reply, route))


def test_seed_envelope_goes_out_exactly_as_the_function_wrote_it():
    response = {
        "outputSpeech": {
            "type": "PlainText",
            "text": "There's currently 6 people in space & 1 < 2",
            "playBehavior": "REPLACE_ALL",
        },
        "card": {"type": "Simple", "title": "People in space", "content": "ISS: A & B"},
        "reprompt": {"outputSpeech": {"type": "SSML", "ssml": "<speak>More?</speak>"}},
        "shouldEndSession": False,
    }
    reply = to_reply({"version": "1.0", "response": response}, None, "en-US")
    model = to_model(reply, "SeedIntent")
    assert isinstance(model.output_speech, PlainTextOutputSpeech)
    assert model.output_speech.play_behavior is PlayBehavior.REPLACE_ALL
    assert sent(reply) == response


def test_every_card_the_model_knows_is_typed():
    card = {"type": "AskForPermissionsConsent", "permissions": ["alexa::profile:name:read"]}
    model = to_model(Reply({"card": card}))
    assert isinstance(model.card, AskForPermissionsConsentCard)
    assert SERIALIZER.serialize(model)["card"] == card


def test_known_directives_are_typed_and_unknown_ones_pass_untouched():
    elicit = {"type": "Dialog.ElicitSlot", "slotToElicit": "name"}
    reply = Reply({"directives": [FUTURE, elicit]})
    model = to_model(reply)
    assert model.directives[0] is FUTURE  # the same object: nothing of it changed
    assert isinstance(model.directives[1], ElicitSlotDirective)
    assert sent(reply)["directives"] == [FUTURE, elicit]


def test_can_fulfill_intent_is_typed():
    answer = {"canFulfill": "YES", "slots": {"city": {"canUnderstand": "YES", "canFulfill": "NO"}}}
    model = to_model(Reply({"canFulfillIntent": answer}))
    assert isinstance(model.can_fulfill_intent, CanFulfillIntent)
    assert SERIALIZER.serialize(model)["canFulfillIntent"] == answer


def test_fields_the_model_does_not_know_are_dropped_and_named_once_per_route(caplog):
    reply = Reply(
        {
            "outputSpeech": {"type": "PlainText", "text": "Hi", "voice": "Brian"},
            "futureField": {"a": 1},
            "directives": [{"type": "Dialog.ElicitSlot", "slotToElicit": "n", "extra": 1}],
        }
    )
    with caplog.at_level(logging.WARNING, logger="funker_dispatch"):
        first = sent(reply, "DropIntent")
        sent(reply, "DropIntent")
        sent(reply, "OtherIntent")
    assert "futureField" not in first and "voice" not in first["outputSpeech"]
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 2  # once for each route, not once per request
    assert "route=DropIntent" in warnings[0] and "route=OtherIntent" in warnings[1]
    assert (
        "fields=response.directives[0].extra,response.futureField,response.outputSpeech.voice"
        in warnings[0]
    )


@pytest.mark.parametrize(
    "response",
    [
        {"outputSpeech": {"type": "PlainText", "text": "Hi", "playBehavior": "LOUDLY"}},
        {"reprompt": {"outputSpeech": {"type": "Whisper", "text": "psst"}}},
        {"directives": [{"type": "Dialog.ElicitSlot", "updatedIntent": "not an intent"}]},
    ],
    ids=["unknown-play-behavior", "unknown-speech-type", "known-directive-of-the-wrong-shape"],
)
def test_a_value_the_model_refuses_is_a_bad_reply(response):
    with pytest.raises(BadReply):
        to_model(Reply(response))
