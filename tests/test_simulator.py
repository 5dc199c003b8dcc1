"""The simulator: utterances resolve against the shipped models, envelopes are what Alexa sends."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from funker_dispatch.devtools.simulator import (
    FALLBACK,
    InteractionModel,
    NoMatch,
    SessionState,
    alexa_slots,
    encode,
    envelope,
    intent_request,
    launch_request,
    load_interaction_model,
    match_utterance,
    parse_slot_flags,
    session_ended_request,
    strip_invocation,
    undeclared_slots,
)
from skill.envelope import EnvelopeSerializer
from skill.settings import DEVELOPMENT_SKILL_ID

SKILL = DEVELOPMENT_SKILL_ID
AUTHORITY = f"amzn1.er-authority.echo-sdk.{SKILL}.FriendName"


@pytest.fixture(scope="module", params=["en-US", "en-GB"])
def model(request: pytest.FixtureRequest):
    return load_interaction_model(request.param)


@pytest.mark.parametrize(
    ("utterance", "intent", "slots"),
    [
        # samples without slots, any case and punctuation
        ("how many people are in space", "SpaceCountIntent", {}),
        ("How many people are in SPACE?!", "SpaceCountIntent", {}),
        ("  who is   in orbit. ", "SpaceCountIntent", {}),
        ("What's your hostname?", "HostnameIntent", {}),
        ("whats your hostname", "HostnameIntent", {}),
        ("Docker captains", "CaptainsIntent", {}),
        ("say hello", "HelloIntent", {}),
        # samples with a slot: the value keeps the words as spoken
        ("say hello to Ada", "HelloIntent", {"name": "Ada"}),
        ("greet Grace Hopper", "HelloIntent", {"name": "Grace Hopper"}),
        # the more specific sample wins over a wider slot capture
        ("say hello to my friend Linus", "HelloIntent", {"name": "Linus"}),
        ("tell Bob hello", "HelloIntent", {"name": "Bob"}),
        # built-in intents by their common phrasings
        ("help", "AMAZON.HelpIntent", {}),
        ("What can I say?", "AMAZON.HelpIntent", {}),
        ("stop", "AMAZON.StopIntent", {}),
        ("cancel", "AMAZON.CancelIntent", {}),
        ("never mind", "AMAZON.CancelIntent", {}),
        ("go home", "AMAZON.NavigateHomeIntent", {}),
    ],
)
def test_utterance_resolves_to_intent_and_slots(model, utterance, intent, slots):
    match = match_utterance(model, utterance)
    assert (match.intent, match.slots) == (intent, slots)


def test_a_locale_only_sample_matches_in_that_locale_only():
    assert match_utterance(load_interaction_model("en-GB"), "say hiya to Ada").intent == (
        "HelloIntent"
    )
    assert match_utterance(load_interaction_model("en-US"), "say hiya to Ada").intent == (FALLBACK)


def without_fallback(model: InteractionModel) -> InteractionModel:
    intents = {name: i for name, i in model.intents.items() if name != FALLBACK}
    return replace(model, intents=intents)


def test_what_matches_nothing_is_the_fallback_intent_as_on_a_device(model):
    # Alexa sends AMAZON.FallbackIntent for what no sample covers, when the model has it.
    match = match_utterance(model, "how many persons are in spaace")
    assert (match.intent, match.slots, match.sample) == (FALLBACK, {}, "")
    assert match.nearest[0] == ("SpaceCountIntent", "how many people are in space")
    assert match_utterance(model, "?!").intent == FALLBACK


def test_without_a_fallback_intent_an_unmatched_utterance_lists_the_nearest_samples(model):
    with pytest.raises(NoMatch) as caught:
        match_utterance(without_fallback(model), "how many persons are in spaace")
    nearest = caught.value.nearest
    assert 1 <= len(nearest) <= 3
    assert nearest[0] == ("SpaceCountIntent", "how many people are in space")
    with pytest.raises(NoMatch):
        match_utterance(without_fallback(model), "?!")


def _resolution(slot: dict[str, Any]) -> dict[str, Any]:
    return slot["resolutions"]["resolutionsPerAuthority"][0]


@pytest.mark.parametrize(
    ("spoken", "name", "value_id"),
    [
        ("Ada", "Ada", "ADA"),
        ("ada", "Ada", "ADA"),
        ("Amazing Grace", "Grace", "GRACE"),
        ("tim berners-lee", "Tim", "TIM"),
        ("Maggie", "Margaret", "MARGARET"),
    ],
)
def test_custom_values_and_synonyms_resolve_as_alexa_sends_them(model, spoken, name, value_id):
    match = match_utterance(model, f"say hello to {spoken}")
    slot = alexa_slots(model, match.intent, match.slots, SKILL)["name"]
    assert slot["value"] == match.slots["name"]
    assert slot["confirmationStatus"] == "NONE"
    assert _resolution(slot) == {
        "authority": AUTHORITY,
        "status": {"code": "ER_SUCCESS_MATCH"},
        "values": [{"value": {"name": name, "id": value_id}}],
    }
    assert slot["slotValue"] == {
        "type": "Simple",
        "value": slot["value"],
        "resolutions": slot["resolutions"],
    }


def test_unknown_value_of_a_custom_type_is_er_success_no_match(model):
    match = match_utterance(model, "say hello to Bob")
    slot = alexa_slots(model, match.intent, match.slots, SKILL)["name"]
    assert slot["value"] == "Bob"
    assert _resolution(slot) == {"authority": AUTHORITY, "status": {"code": "ER_SUCCESS_NO_MATCH"}}


def test_unfilled_slots_are_sent_without_a_value(model):
    match = match_utterance(model, "say hello")
    assert alexa_slots(model, match.intent, match.slots, SKILL) == {
        "name": {"name": "name", "confirmationStatus": "NONE"}
    }


@pytest.mark.parametrize(
    ("phrase", "launch", "utterance"),
    [
        ("Alexa, open funker dispatch", True, ""),
        ("launch funker dispatch", True, ""),
        ("ask funker dispatch to say hello to Ada", False, "say hello to Ada"),
        ("ask funker dispatch how many people are in space", False, "how many people are in space"),
        ("say hello to Ada", False, "say hello to Ada"),
    ],
)
def test_invocation_phrases_open_the_skill_or_carry_the_request(model, phrase, launch, utterance):
    invocation = strip_invocation(model, phrase)
    assert (invocation.launch, invocation.utterance) == (launch, utterance)


def test_slot_flags_parse_and_refuse_a_flag_without_value():
    assert parse_slot_flags(["name=Ada Lovelace", " x = y "]) == {"name": "Ada Lovelace", "x": "y"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_slot_flags(["name"])


# --- envelopes -------------------------------------------------------------


def _session() -> SessionState:
    return SessionState(SKILL, attributes={"asked_name": True, "count": 2})


def _envelopes(model) -> list[dict[str, Any]]:
    match = match_utterance(model, "say hello to Amazing Grace")
    slots = alexa_slots(model, match.intent, match.slots, SKILL)
    return [
        envelope(launch_request(model.locale), _session()),
        envelope(intent_request(match.intent, slots, model.locale), _session()),
        envelope(
            intent_request(
                "HelloIntent", alexa_slots(model, "HelloIntent", {}, SKILL), model.locale
            ),
            _session(),
        ),
        envelope(intent_request("AMAZON.HelpIntent", {}, model.locale), _session()),
        envelope(session_ended_request(model.locale), _session()),
    ]


def test_envelopes_deserialize_with_the_ask_sdk_and_nothing_is_lost(model):
    from ask_sdk_model import RequestEnvelope

    serializer = EnvelopeSerializer()
    for sent in _envelopes(model):
        parsed = serializer.deserialize(encode(sent).decode(), RequestEnvelope)
        assert parsed.request.object_type == sent["request"]["type"]
        back = serializer.serialize(parsed)
        # The SDK writes datetimes back as +00:00; the instant is the same.
        assert datetime.fromisoformat(back["request"].pop("timestamp")) == datetime.fromisoformat(
            sent["request"]["timestamp"]
        )
        expected = json.loads(json.dumps(sent))
        del expected["request"]["timestamp"]
        assert back == expected


def test_an_envelope_is_complete_and_stamped_now_in_utc():
    model = load_interaction_model("en-GB")
    session = _session()
    before = datetime.now(UTC).replace(microsecond=0)
    sent = envelope(launch_request("en-GB"), session)
    stamp = sent["request"]["timestamp"]
    assert stamp.endswith("Z")
    assert datetime.fromisoformat(stamp) >= before
    assert sent["version"] == "1.0"
    assert sent["session"] == {
        "new": True,
        "sessionId": session.session_id,
        "application": {"applicationId": SKILL},
        "attributes": {"asked_name": True, "count": 2},
        "user": {"userId": session.user_id},
    }
    system = sent["context"]["System"]
    assert system["application"] == {"applicationId": SKILL}
    assert system["user"] == {"userId": session.user_id}
    assert system["device"] == {"deviceId": session.device_id, "supportedInterfaces": {}}
    assert system["apiEndpoint"] == "https://api.eu.amazonalexa.com"
    assert sent["request"]["requestId"].startswith("amzn1.echo-api.request.")
    assert sent["request"]["locale"] == model.locale
    assert session.session_id.startswith("amzn1.echo-api.session.")
    assert session.user_id.startswith("amzn1.ask.account.")


def test_a_stamp_can_be_set_in_the_past():
    old = datetime.now(UTC) - timedelta(seconds=151)
    stamp = launch_request("en-US", now=old)["timestamp"]
    assert datetime.fromisoformat(stamp) == old.replace(microsecond=0)


def test_every_request_gets_a_fresh_request_id():
    ids = {launch_request("en-US")["requestId"] for _ in range(5)}
    assert len(ids) == 5


def test_slots_an_intent_does_not_declare_are_named(model):
    assert undeclared_slots(model, "HelloIntent", {"name": "Ada", "nmae": "x"}) == ["nmae"]
    assert undeclared_slots(model, "UnmodelledIntent", {"x": "y"}) == []


def test_simulate_refuses_a_slot_the_intent_does_not_declare(capsys):
    from funker_dispatch.cli import main

    assert main(["simulate", "--intent", "HelloIntent", "--slot", "nmae=x"]) == 2
    assert "HelloIntent has no slot nmae (declared: name)" in capsys.readouterr().err
