"""The planned dict-to-model walk gives what the ASK SDK's own walk gives, refusals included."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from ask_sdk_core.exceptions import SerializationException
from ask_sdk_core.serialize import DefaultSerializer
from ask_sdk_model import Directive, Request, RequestEnvelope, Response

from skill.envelope import EnvelopeSerializer, enum_member, is_enum_text
from skill.sdkmodel import ModelSerializer

ROOT = Path(__file__).resolve().parent.parent


class SdkEnvelope(DefaultSerializer):
    """The SDK's own walk with EnvelopeSerializer's one stated difference: unknown enum strings."""

    def _DefaultSerializer__deserialize_model(self, payload: Any, obj_type: Any) -> Any:
        if is_enum_text(payload, obj_type):
            return enum_member(payload, obj_type)
        return super()._DefaultSerializer__deserialize_model(payload, obj_type)  # type: ignore[misc]


def walk(serializer: DefaultSerializer, payload: Any, obj_type: Any) -> tuple[str, Any]:
    try:
        return "model", serializer._DefaultSerializer__deserialize(payload, obj_type)  # type: ignore[attr-defined]
    except SerializationException as exc:
        return "refused", str(exc)
    except Exception as exc:  # the SDK lets some errors out of its top level as they are
        return type(exc).__name__, str(exc)


def same(planned: DefaultSerializer, sdk: DefaultSerializer, payload: Any, obj_type: Any) -> None:
    ours, theirs = walk(planned, copy.deepcopy(payload), obj_type), walk(sdk, payload, obj_type)
    assert ours == theirs
    if ours[0] == "model":  # equal models of the same classes, all the way down
        assert shape(ours[1]) == shape(theirs[1])


def shape(value: Any) -> Any:
    if isinstance(value, list):
        return [shape(item) for item in value]
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return (type(value), {key: shape(item) for key, item in vars(value).items()})
    return (type(value), value)


def requests() -> dict[str, dict[str, Any]]:
    found = {
        path.name: json.loads(path.read_text()) for path in ROOT.glob("examples/requests/*.json")
    }
    found["amazon-signed"] = json.loads(
        (ROOT / "tests/fixtures/amazon-signed/body.json").read_text()
    )
    base = found["space-count.json"]
    for request_type in Request.discriminator_value_class_map:  # every type the SDK models
        minimal = copy.deepcopy(base)
        minimal["request"] = {
            "type": request_type,
            "requestId": "amzn1.echo-api.request.1",
            "timestamp": "2026-12-01T12:00:00Z",
            "locale": "en-US",
        }
        found[request_type] = minimal
    return found


REQUESTS = requests()


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_request_becomes_the_model_the_sdk_makes(name: str) -> None:
    same(EnvelopeSerializer(), SdkEnvelope(), REQUESTS[name], RequestEnvelope)


def mutations() -> dict[str, dict[str, Any]]:
    base = REQUESTS["space-count.json"]

    def changed(path: str, value: Any) -> dict[str, Any]:
        data = copy.deepcopy(base)
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
        return data

    return {
        "unknown top-level field": changed("brandNew", {"x": 1}),
        "unknown nested field": changed("request.intent.future", [1, 2]),
        "a field named like the attribute": changed("request.request_id", "shadow"),
        "context is text": changed("context", "text"),
        "session is a list": changed("session", [1, 2]),
        "slots are a list": changed("request.intent.slots", [{"name": "a"}]),
        "slots are text": changed("request.intent.slots", "abc"),
        "a slot is a number": changed("request.intent.slots", {"a": 5}),
        "new is text": changed("session.new", "yes"),
        "new is an object": changed("session.new", {"a": 1}),
        "locale is a number": changed("request.locale", 5),
        "timestamp is not a time": changed("request.timestamp", "not a time"),
        "timestamp is a number": changed("request.timestamp", 12),
        "an unknown enum string": changed("request.dialogState", "HALF_DONE"),
        "an enum as a number": changed("request.dialogState", 3),
        "nulls everywhere": changed("context", {"System": None, "AudioPlayer": None}),
        "an empty request": changed("request", {"type": "IntentRequest"}),
        "an intent that is a list": changed("request.intent", ["x"]),
        "attributes of every kind": changed(
            "session.attributes", {"a": [1, {"b": None}], "c": 1.5}
        ),
        "a request with no type": changed("request", {"requestId": "x"}),
        "a request type the SDK does not know": changed("request", {"type": "Made.Up"}),
    }


MUTATIONS = mutations()


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_odd_requests_get_the_sdks_model_or_its_refusal(name: str) -> None:
    same(EnvelopeSerializer(), SdkEnvelope(), MUTATIONS[name], RequestEnvelope)


RESPONSES = {
    "speech and card": {
        "outputSpeech": {"type": "SSML", "ssml": "<speak>Hi</speak>", "playBehavior": "ENQUEUE"},
        "card": {
            "type": "Standard",
            "title": "T",
            "text": "x",
            "image": {"smallImageUrl": "https://e/x.png"},
        },
        "reprompt": {"outputSpeech": {"type": "PlainText", "text": "Again?"}},
        "shouldEndSession": False,
    },
    "a bad enum": {"outputSpeech": {"type": "PlainText", "text": "x", "playBehavior": "LOUD"}},
    "an unknown speech type": {"outputSpeech": {"type": "Whisper", "text": "x"}},
    "speech as text": {"outputSpeech": "hello"},
    "an unknown field": {"outputSpeech": {"type": "PlainText", "text": "x"}, "sparkle": True},
    "canFulfill": {
        "canFulfillIntent": {
            "canFulfill": "YES",
            "slots": {"a": {"canUnderstand": "YES", "canFulfill": "NO"}},
        }
    },
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_replies_get_the_sdks_response_model_or_its_refusal(name: str) -> None:
    # Strict, as the SDK is: a reply's bad enum is refused, never made None.
    same(ModelSerializer(), DefaultSerializer(), RESPONSES[name], Response)


@pytest.mark.parametrize(
    "directive",
    [
        {"type": "Dialog.ElicitSlot", "slotToElicit": "name"},
        {
            "type": "AudioPlayer.Play",
            "playBehavior": "REPLACE_ALL",
            "audioItem": {
                "stream": {"url": "https://e/a.mp3", "token": "t", "offsetInMilliseconds": 0}
            },
        },
        {
            "type": "Alexa.Presentation.APL.RenderDocument",
            "token": "t",
            "document": {"type": "APL"},
            "datasources": {"d": {"x": [1]}},
        },
        {
            "type": "Dialog.UpdateDynamicEntities",
            "updateBehavior": "REPLACE",
            "types": [
                {"name": "T", "values": [{"id": "1", "name": {"value": "v", "synonyms": ["w"]}}]}
            ],
        },
    ],
)
def test_directives_get_the_sdks_model(directive: dict[str, Any]) -> None:
    same(ModelSerializer(), DefaultSerializer(), directive, Directive)


def test_type_strings_the_sdk_leaves_empty_or_generic_are_met_the_sdks_way() -> None:
    for obj_type, payload in [
        ("list[", [1]),
        ("dict(str)", {"a": 1}),
        ("list[int, str]", [1, 2]),
        ("list[int]", "12"),
        ("dict(str, int)", [1]),
        ("no.such.Model", {}),
        ("float", 3),
        ("int", "x"),
        ("object", {"a": 1}),
        ("date", "2026-12-01"),
    ]:
        same(ModelSerializer(), DefaultSerializer(), payload, obj_type)


def models_to_write() -> dict[str, Any]:
    from ask_sdk_model import ResponseEnvelope

    sdk, found = SdkEnvelope(), {}
    for name, payload in {**REQUESTS, **MUTATIONS}.items():
        kind, model = walk(sdk, payload, RequestEnvelope)
        if kind == "model":
            found[name] = model  # datetimes, enums and unknown fields kept as attributes
    for name, payload in RESPONSES.items():
        kind, model = walk(DefaultSerializer(), payload, Response)
        if kind == "model":
            found[f"reply: {name}"] = ResponseEnvelope(
                version="1.0",
                session_attributes={"a": [1, None, {"b": (1, 2)}], "c": None},
                user_agent="ask-python",
                response=model,
            )
    return found


WRITTEN = models_to_write()


@pytest.mark.parametrize("name", sorted(WRITTEN))
def test_models_are_written_as_the_sdk_writes_them_in_its_order(name: str) -> None:
    ours, theirs = (
        ModelSerializer().serialize(WRITTEN[name]),
        DefaultSerializer().serialize(WRITTEN[name]),
    )
    assert ours == theirs
    assert json.dumps(ours) == json.dumps(theirs)  # same keys in the same order
