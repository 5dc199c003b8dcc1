"""Function output → Reply (docs/functions.md): answers, templates, limits, apologies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dispatch.registry import Route
from dispatch.responses import (
    BadReply,
    Reply,
    ReplyError,
    ReplyTooLarge,
    TemplateError,
    apology,
    escape_speech,
    ssml_to_text,
    to_reply,
)

PLAIN = Route(name="PlainIntent", host="plain")
CAPTAINS = Route(
    name="CaptainsIntent",
    host="captains",
    speech={
        "default": "There are {total_captains} Docker captains.",
        "en-GB": "There are {total_captains} Docker captains, mate.",
        "de": "Es gibt {total_captains} Docker Captains.",
    },
)


def with_template(template: str) -> Route:
    return Route(name="DataIntent", host="data", speech=template)


# -- form 1: the seed functions' full Alexa envelope ------------------------------------------

SEED_ENVELOPE = {
    "version": "1.0",
    "response": {
        "outputSpeech": {"type": "PlainText", "text": "There are 6 people in space."},
        "card": {"type": "Simple", "title": "People in space", "content": "ISS: A, B"},
        "shouldEndSession": True,
    },
}


def envelope(response: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"version": "1.0", "response": response, **top}


def test_seed_envelope_is_carried_over_as_written():
    reply = to_reply(SEED_ENVELOPE, PLAIN, "en-US")
    assert reply == Reply(SEED_ENVELOPE["response"])


@pytest.mark.parametrize(
    ("output_speech", "sent"),
    [
        (
            {"type": "PlainText", "text": "There's currently 6 people & 1 < 2"},
            {"type": "PlainText", "text": "There's currently 6 people & 1 < 2"},
        ),
        (
            {"type": "PlainText", "text": "Hi", "playBehavior": "ENQUEUE"},
            {"type": "PlainText", "text": "Hi", "playBehavior": "ENQUEUE"},
        ),
        (
            {"type": "SSML", "ssml": "<speak>Hi <break/> &amp; bye</speak>"},
            {"type": "SSML", "ssml": "<speak>Hi <break/> &amp; bye</speak>"},
        ),
        (
            {"type": "SSML", "ssml": "Hi <emphasis>there</emphasis>"},
            {"type": "SSML", "ssml": "<speak>Hi <emphasis>there</emphasis></speak>"},
        ),
    ],
    ids=["plain-text-unchanged", "play-behavior-kept", "ssml-as-is", "ssml-without-speak-wrapped"],
)
def test_envelope_output_speech(output_speech, sent):
    assert to_reply(envelope({"outputSpeech": output_speech}), None, "en-US").speech == sent


def test_envelope_without_should_end_session_leaves_it_unset():
    reply = to_reply(envelope({"outputSpeech": {"type": "PlainText", "text": "Hi"}}), None, "en-US")
    assert "shouldEndSession" not in reply.response


def test_envelope_carries_reprompt_session_attributes_and_directives_untouched():
    directive = {"type": "Dialog.ElicitSlot", "slotToElicit": "name", "future": {"x": [1]}}
    raw = envelope(
        {
            "outputSpeech": {"type": "PlainText", "text": "Who?"},
            "reprompt": {"outputSpeech": {"type": "SSML", "ssml": "<speak>Who, again?</speak>"}},
            "shouldEndSession": False,
            "directives": [directive],
        },
        sessionAttributes={"asked": True},
    )
    reply = to_reply(raw, None, "en-US")
    assert reply.response == raw["response"]
    assert reply.session_attributes == {"asked": True}
    assert reply.response["directives"][0] is directive


@pytest.mark.parametrize(
    "card",
    [
        {"type": "Simple", "title": "T", "content": "C"},
        {
            "type": "Standard",
            "title": "T",
            "text": "X",
            "image": {"smallImageUrl": "https://s", "largeImageUrl": "https://l"},
        },
        {"type": "LinkAccount"},
        {"type": "AskForPermissionsConsent", "permissions": ["read::alexa:device:all:address"]},
    ],
    ids=["simple", "standard", "link-account", "ask-for-permissions"],
)
def test_envelope_cards_are_carried_as_written(card):
    assert to_reply(envelope({"card": card}), None, "en-US").response["card"] == card


@pytest.mark.parametrize(
    "response",
    [
        {"card": {"type": "AskForPermissionsConsent", "permissions": []}},
        {"card": {"type": "Poster", "title": "T"}},
        {"card": "People in space"},
        {"outputSpeech": {"type": "Whisper", "text": "hi"}},
        {"outputSpeech": {"type": "PlainText", "text": 6}},
        {"outputSpeech": {"type": "SSML", "ssml": "<speak>unclosed <emphasis></speak>"}},
        {"shouldEndSession": "yes"},
        {"directives": {"type": "Dialog.Delegate"}},
    ],
    ids=[
        "permissions-empty",
        "card-of-unknown-type",
        "card-not-object",
        "speech-type-unknown",
        "speech-not-string",
        "malformed-ssml",
        "end-session-not-bool",
        "directives-not-list",
    ],
)
def test_envelope_parts_of_the_wrong_shape_are_bad_replies(response):
    with pytest.raises(BadReply):
        to_reply(envelope(response), None, "en-US")


def test_envelope_session_attributes_must_be_an_object():
    with pytest.raises(BadReply):
        to_reply(envelope({}, sessionAttributes=["a"]), None, "en-US")


def test_envelope_response_must_be_an_object():
    with pytest.raises(BadReply):
        to_reply({"version": "1.0", "response": "ok"}, None, "en-US")


# -- form 2: the short object -----------------------------------------------------------------


def plain(text: str) -> dict[str, str]:
    return {"type": "PlainText", "text": text}


def ssml(document: str) -> dict[str, str]:
    return {"type": "SSML", "ssml": document}


@pytest.mark.parametrize(
    ("speech", "sent"),
    [
        ("Fish & chips < 5 pounds", plain("Fish & chips < 5 pounds")),
        ('She said "it\'s 5 > 4"', plain('She said "it\'s 5 > 4"')),
        (
            "<speak>Hello <emphasis>there</emphasis></speak>",
            ssml("<speak>Hello <emphasis>there</emphasis></speak>"),
        ),
        ("  <speak>padded &amp; fine</speak>\n", ssml("<speak>padded &amp; fine</speak>")),
        (
            "<emphasis>not SSML without speak</emphasis>",
            plain("<emphasis>not SSML without speak</emphasis>"),
        ),
    ],
    ids=[
        "ampersand-and-lt-unchanged",
        "quotes-unchanged",
        "ssml-as-is",
        "ssml-after-strip",
        "tags-without-speak-are-text",
    ],
)
def test_short_form_speech_is_plain_text_unchanged_or_ssml(speech, sent):
    assert to_reply({"speech": speech}, None, "en-US").speech == sent


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (
            {"title": "Hello", "content": "Hello, Ada!"},
            {"type": "Simple", "title": "Hello", "content": "Hello, Ada!"},
        ),
        (
            {"title": "Host", "text": "From abc."},
            {"type": "Standard", "title": "Host", "text": "From abc."},
        ),
        (
            {"title": "Pic", "image": {"small": "https://s.png", "large": "https://l.png"}},
            {
                "type": "Standard",
                "title": "Pic",
                "image": {"smallImageUrl": "https://s.png", "largeImageUrl": "https://l.png"},
            },
        ),
        ({"type": "LinkAccount"}, {"type": "LinkAccount"}),
        (
            {"type": "AskForPermissionsConsent", "permissions": ["alexa::profile:name:read"]},
            {"type": "AskForPermissionsConsent", "permissions": ["alexa::profile:name:read"]},
        ),
    ],
    ids=[
        "title-content-is-simple",
        "text-is-standard",
        "image-is-standard",
        "link-account",
        "ask-for-permissions",
    ],
)
def test_short_form_cards(card, expected):
    assert to_reply({"speech": "Hi", "card": card}, None, "en-US").response["card"] == expected


@pytest.mark.parametrize(
    "card",
    [
        {"type": "AskForPermissionsConsent"},
        {"type": "AskForPermissionsConsent", "permissions": "alexa::profile:name:read"},
        {"title": "T", "permissions": ["alexa::profile:name:read"]},
        {"type": "Poster", "title": "T"},
        {"title": "T", "content": "C", "text": "X"},
        {"type": "Simple", "title": "T", "text": "X"},
        {"type": "LinkAccount", "title": "Link"},
        {"title": "T", "image": {"tiny": "https://t.png"}},
        {"title": "T", "content": 5},
        {"heading": "T"},
        {},
        "Hello",
    ],
    ids=[
        "permissions-missing",
        "permissions-not-a-list",
        "permissions-on-a-simple-card",
        "unknown-type",
        "content-and-text",
        "simple-with-text",
        "link-account-with-title",
        "image-without-small-or-large",
        "content-not-string",
        "unknown-key",
        "empty",
        "not-object",
    ],
)
def test_short_form_bad_cards_are_bad_replies(card):
    with pytest.raises(BadReply):
        to_reply({"speech": "Hi", "card": card}, None, "en-US")


@pytest.mark.parametrize(
    ("raw", "end_session"),
    [
        ({"speech": "Bye"}, True),
        ({"speech": "Who?", "reprompt": "Who should I greet?"}, False),
        ({"speech": "Who?", "reprompt": "Who?", "end_session": True}, True),
        ({"speech": "Still here", "end_session": False}, False),
        ({"directives": [{"type": "Dialog.Delegate"}], "end_session": None}, None),
    ],
    ids=[
        "default-ends",
        "reprompt-keeps-open",
        "explicit-true-wins-over-reprompt",
        "explicit-false",
        "explicit-null-leaves-unset",
    ],
)
def test_short_form_end_session(raw, end_session):
    assert to_reply(raw, None, "en-US").response.get("shouldEndSession") is end_session


def test_short_form_reprompt_is_plain_text_like_speech():
    reply = to_reply({"speech": "Hi", "reprompt": "Tom & Jerry?"}, None, "en-US")
    assert reply.response["reprompt"] == {"outputSpeech": plain("Tom & Jerry?")}


def test_short_form_carries_session_attributes_and_directives_untouched():
    directive = {"type": "Alexa.Presentation.APL.RenderDocument", "document": {"any": "thing"}}
    raw = {
        "speech": "Hi",
        "session_attributes": {"turn": 2},
        "directives": [directive],
    }
    reply = to_reply(raw, None, "en-US")
    assert reply.session_attributes == {"turn": 2}
    assert reply.response["directives"] == [directive]
    assert reply.response["directives"][0] is directive


@pytest.mark.parametrize(
    "raw",
    [
        {"speech": 42},
        {"speech": "Hi", "reprompt": ["again"]},
        {"speech": "Hi", "end_session": "no"},
        {"speech": "Hi", "session_attributes": ["turn", 2]},
        {"speech": "Hi", "directives": [{"slotToElicit": "name"}]},
        {"speech": "<speak>Hi <break></speak>"},
    ],
    ids=[
        "speech-not-string",
        "reprompt-not-string",
        "end-session-not-bool",
        "session-attributes-not-object",
        "directive-without-type",
        "malformed-ssml",
    ],
)
def test_short_form_parts_of_the_wrong_shape_are_bad_replies(raw):
    with pytest.raises(BadReply):
        to_reply(raw, None, "en-US")


# -- form 3: a JSON string --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("Fish & chips < 5 pounds", plain("Fish & chips < 5 pounds")),
        ("<speak>Fish &amp; chips</speak>", ssml("<speak>Fish &amp; chips</speak>")),
    ],
)
def test_string_answer_is_the_speech_and_ends_the_session(raw, sent):
    assert to_reply(raw, PLAIN, "en-US") == Reply({"outputSpeech": sent, "shouldEndSession": True})


# -- form 4: data through the route's template ------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "speech"),
    [
        ("en-GB", "There are 12 Docker captains, mate."),
        ("de-DE", "Es gibt 12 Docker Captains."),
        ("en-US", "There are 12 Docker captains."),
        ("ja-JP", "There are 12 Docker captains."),
    ],
    ids=["exact-locale", "language", "default", "default-for-unlisted"],
)
def test_data_is_spoken_through_the_locale_table(locale, speech):
    reply = to_reply({"total_captains": 12}, CAPTAINS, locale)
    assert reply == Reply({"outputSpeech": plain(speech), "shouldEndSession": True})


@pytest.mark.parametrize(
    ("raw", "template", "speech"),
    [
        ({"total_captains": 12}, "There are {total_captains} captains.", "There are 12 captains."),
        (7, "The answer is {value}.", "The answer is 7."),
        ([1, 2], "{value}", "[1, 2]"),
        ({"n": 1234567}, "{n:,} steps", "1,234,567 steps"),
        ({"shop": "M&S"}, "Go to {shop}.", "Go to M&S."),
        ({}, "Nothing to report.", "Nothing to report."),
    ],
    ids=[
        "dict-keys",
        "number-as-value",
        "list-as-value",
        "format-spec",
        "rendered-text-is-plain-text",
        "empty-object-is-data",
    ],
)
def test_data_template_rendering(raw, template, speech):
    assert to_reply(raw, with_template(template), "en-US").speech == plain(speech)


def test_object_mixing_short_form_keys_with_data_is_data():
    raw = {"speech": "ignored", "total_captains": 3}
    reply = to_reply(raw, with_template("{total_captains} captains"), "en-US")
    assert reply.speech == plain("3 captains")


@pytest.mark.parametrize(
    ("route", "raw"),
    [
        (PLAIN, {"total_captains": 12}),
        (None, 42),
        (Route(name="X", host="x", speech={"en-GB": "only British"}), {"n": 1}),
        (with_template("There are {total_captains} captains."), {"captains": 12}),
        (with_template("{value.__class__}"), 1),
        (with_template("{n.real}"), {"n": 1}),
        (with_template("{names[0]}"), {"names": ["Ada"]}),
        (with_template("{n:>{width.real}}"), {"n": 1, "width": 3}),
        (with_template("{} and {0}"), {"n": 1}),
        (with_template("{n:d}"), {"n": "twelve"}),
        (with_template("unclosed {n"), {"n": 1}),
    ],
    ids=[
        "no-template",
        "no-route",
        "no-template-for-locale-and-no-default",
        "missing-key",
        "attribute-access-on-value",
        "attribute-access",
        "index-access",
        "attribute-access-in-nested-spec",
        "positional-fields",
        "format-spec-does-not-fit",
        "bad-format-string",
    ],
)
def test_data_without_a_fitting_template_is_a_template_error(route, raw):
    with pytest.raises(TemplateError) as caught:
        to_reply(raw, route, "en-US")
    assert caught.value.kind == "template"


def test_template_error_names_no_answer_values():
    with pytest.raises(TemplateError) as caught:
        to_reply({"n": "secret-value"}, with_template("{n:d}"), "en-US")
    assert "secret-value" not in str(caught.value)


# -- Alexa's limits: enforced, never truncated ------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "x" * 8001,
        {"speech": "x" * 8001},
        {"speech": "Hi", "reprompt": "x" * 8001},
        envelope({"outputSpeech": {"type": "PlainText", "text": "x" * 8001}}),
        "<speak>" + "&amp;" * 1600 + "</speak>",  # 1600 spoken, 8015 sent: Alexa counts the SSML
    ],
    ids=["string", "short-form", "reprompt", "envelope", "ssml-counted-as-sent"],
)
def test_speech_over_8000_characters_is_too_large(raw):
    with pytest.raises(ReplyTooLarge) as caught:
        to_reply(raw, None, "en-US")
    assert caught.value.kind == "reply-too-large"


def test_speech_at_the_limit_is_kept_whole():
    text = "x" * 8000
    assert to_reply(text, None, "en-US").speech == plain(text)


@pytest.mark.parametrize(
    "card",
    [
        {"title": "T" * 4000, "content": "C" * 4001},
        {"title": "T" * 4000, "text": "X" * 4001},
    ],
    ids=["simple", "standard"],
)
def test_card_title_and_content_over_8000_characters_is_too_large(card):
    with pytest.raises(ReplyTooLarge):
        to_reply({"speech": "Hi", "card": card}, None, "en-US")


def test_card_at_the_limit_is_kept_whole():
    card = {"title": "T" * 4000, "content": "C" * 4000}
    sent = to_reply({"speech": "Hi", "card": card}, None, "en-US").response["card"]
    assert sent["content"] == "C" * 4000


@pytest.mark.parametrize(
    "raw",
    [
        {"speech": "Hi", "session_attributes": {"blob": "x" * 24 * 1024}},
        {
            "speech": "x" * 7000,
            "card": {"title": "T", "content": "C" * 7000},
            "reprompt": "y" * 7000,
            "directives": [{"type": "X", "data": "z" * 4000}],
        },
        {"speech": "日本語" * 900, "card": {"title": "T", "content": "日本語" * 900}},
    ],
    ids=["session-attributes", "parts-each-within-limits", "non-ascii-as-sent-escaped"],
)
def test_whole_reply_over_24_kib_is_too_large(raw):
    with pytest.raises(ReplyTooLarge) as caught:
        to_reply(raw, None, "ja-JP")
    assert "24576" in str(caught.value)


def test_reply_errors_are_one_family_with_reason_codes():
    assert {TemplateError.kind, ReplyTooLarge.kind, BadReply.kind} == {
        "template",
        "reply-too-large",
        "bad-reply",
    }
    assert all(issubclass(e, ReplyError) for e in (TemplateError, ReplyTooLarge, BadReply))


# -- apologies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "starts"),
    [
        ("en-US", "Sorry"),
        ("en-GB", "Sorry"),
        ("en-AU", "Sorry"),
        ("en-IN", "Sorry"),
        ("en-CA", "Sorry"),
        ("de-DE", "Entschuldigung"),
        ("fr-FR", "Désolé"),
        ("fr-CA", "Désolé"),
        ("es-ES", "Lo siento"),
        ("es-MX", "Lo siento"),
        ("it-IT", "Mi dispiace"),
        ("ja-JP", "すみません"),
        ("pt-BR", "Desculpe"),
        ("xx-YY", "Sorry"),
        ("", "Sorry"),
    ],
)
def test_apology_is_spoken_in_the_request_locale_with_english_fallback(locale, starts):
    reply = apology(locale)
    assert reply.speech["type"] == "PlainText"
    assert reply.speech["text"].startswith(starts)
    assert reply.response.keys() == {"outputSpeech", "shouldEndSession"}
    assert reply.response["shouldEndSession"] is True
    assert reply.session_attributes is None


def test_english_apology_is_short_and_names_no_internals():
    text = apology("en-US").speech["text"]
    assert text == "Sorry, I couldn't get an answer for that just now. Please try again later."


# -- speech helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ssml", "text"),
    [
        ("<speak>Fish &amp; chips &lt; 5</speak>", "Fish & chips < 5"),
        ("<speak>It&apos;s &quot;here&quot;</speak>", 'It\'s "here"'),
        ("<speak>Hello <emphasis level='strong'>there</emphasis>.</speak>", "Hello there."),
        ('<speak>One<break time="1s"/>two</speak>', "One two"),
        ("<speak><p>First.</p><p>Second.</p></speak>", "First. Second."),
        ('<speak>Id <say-as interpret-as="characters">a1</say-as></speak>', "Id a1"),
        ("<speak>  spaced\n  out  </speak>", "spaced out"),
    ],
    ids=["entities", "quotes", "inline-tag", "break", "paragraphs", "say-as", "whitespace"],
)
def test_ssml_to_text(ssml, text):
    assert ssml_to_text(ssml) == text


def test_escape_speech_round_trips_through_ssml_to_text():
    text = 'Tom & Jerry\'s <"best"> bits'
    assert escape_speech(text) == "Tom &amp; Jerry&apos;s &lt;&quot;best&quot;&gt; bits"
    assert ssml_to_text(f"<speak>{escape_speech(text)}</speak>") == text


@pytest.mark.parametrize(
    "ssml",
    [
        '<speak><amazon:effect name="whispered">psst</amazon:effect> hi</speak>',
        '<speak><say-as interpret-as="characters">abc</say-as><break time="1s"/></speak>',
        "<speak>Fish &amp; chips &apos;n&apos; peas</speak>",
    ],
    ids=["amazon-namespace-tags", "attributes-and-empty-tags", "predefined-entities"],
)
def test_well_formed_ssml_with_alexa_tags_passes_through(ssml):
    assert to_reply({"speech": ssml}, None, "en-US").speech == {"type": "SSML", "ssml": ssml}


@pytest.mark.parametrize(
    "ssml",
    ["<speak>a &nbsp; b</speak>", "<speak>a</speak><p>b</p>", "<speak>a <b></speak>"],
    ids=["html-entity", "content-after-speak", "unclosed-tag"],
)
def test_malformed_ssml_is_refused_rather_than_sent_to_alexa(ssml):
    with pytest.raises(BadReply):
        to_reply(ssml, None, "en-US")


# -- never an invalid reply: text XML cannot hold, numbers JSON cannot carry ------------------

# Characters XML 1.0 forbids: Alexa's SSML parser refuses them, and PlainText is SSML-checked too.
XML_ILLEGAL = ["\x00", "\x07", "\x1b", "\ud800", "\udfff", "\ufffe", "\uffff"]
XML_ILLEGAL_IDS = [
    "nul",
    "bell",
    "escape",
    "lone-high-surrogate",
    "lone-low-surrogate",
    "fffe",
    "ffff",
]


def answers_carrying(text: str) -> list[tuple[str, Any, Route | None]]:
    """Every place a function's string reaches the reply, carrying `text`."""
    card = {"title": "T", "content": "C"}
    return [
        ("string-answer", f"a{text}b", None),
        ("short-speech", {"speech": f"a{text}b"}, None),
        ("short-ssml", {"speech": f"<speak>a{text}b</speak>"}, None),
        ("short-reprompt", {"speech": "Hi", "reprompt": f"a{text}b"}, None),
        ("short-card-title", {"speech": "Hi", "card": {**card, "title": text}}, None),
        ("short-card-content", {"speech": "Hi", "card": {**card, "content": text}}, None),
        ("short-card-text", {"speech": "Hi", "card": {"title": "T", "text": text}}, None),
        ("short-card-image", {"speech": "Hi", "card": {"image": {"small": text}}}, None),
        ("template-value", {"name": f"a{text}b"}, with_template("Hello {name}.")),
        (
            "envelope-plain-text",
            envelope({"outputSpeech": {"type": "PlainText", "text": text}}),
            None,
        ),
        ("envelope-ssml", envelope({"outputSpeech": {"type": "SSML", "ssml": text}}), None),
        (
            "envelope-reprompt",
            envelope({"reprompt": {"outputSpeech": {"type": "PlainText", "text": text}}}),
            None,
        ),
        ("envelope-card", envelope({"card": {"type": "Simple", "content": text}}), None),
        (
            "envelope-standard-card",
            envelope({"card": {"type": "Standard", "text": text}}),
            None,
        ),
    ]


PLACES = [place for place, _, _ in answers_carrying("")]


@pytest.mark.parametrize("character", XML_ILLEGAL, ids=XML_ILLEGAL_IDS)
@pytest.mark.parametrize("place", PLACES)
def test_text_with_a_character_xml_forbids_is_a_bad_reply_wherever_it_appears(place, character):
    _, raw, route = next(a for a in answers_carrying(character) if a[0] == place)
    with pytest.raises(BadReply) as caught:
        to_reply(raw, route, "en-US")
    assert caught.value.kind == "bad-reply"


@pytest.mark.parametrize("place", PLACES)
def test_text_with_characters_xml_allows_is_kept(place):
    # Tab, newline, carriage return, bidi marks, a BOM and characters beyond the BMP are XML.
    _, raw, route = next(
        a for a in answers_carrying("\t\n\r\u202e\ufeff\U0001f680") if a[0] == place
    )
    to_reply(raw, route, "en-US")


def test_lone_surrogate_in_ssml_is_a_bad_reply_not_an_encoding_error():
    # expat encodes its input to UTF-8 first: a lone surrogate raised UnicodeEncodeError.
    with pytest.raises(BadReply, match="speech"):
        to_reply({"speech": "<speak>Hello \ud800</speak>"}, None, "en-US")


def parsed(text: str) -> Any:
    """An answer as dispatch.funker.call returns it: 1e400 parses as infinity."""
    return json.loads(text)


HUGE_NUMBERS = ["1e400", "-1e400", "1" + "0" * 400, "-1" + "0" * 400]
HUGE_IDS = ["1e400", "minus-1e400", "int-10-400", "int-minus-10-400"]


@pytest.mark.parametrize("number", HUGE_NUMBERS, ids=HUGE_IDS)
@pytest.mark.parametrize(
    "answer",
    [
        '{"speech": "Hi", "session_attributes": {"x": N}}',
        '{"speech": "Hi", "session_attributes": {"deep": [{"x": [N]}]}}',
        '{"speech": "Hi", "directives": [{"type": "Dialog.Delegate", "n": N}]}',
        '{"version": "1.0", "response": {}, "sessionAttributes": {"x": N}}',
        '{"version": "1.0", "response": {"directives": [{"type": "X", "n": N}]}}',
        '{"version": "1.0", "response": {"canFulfillIntent": {"canFulfill": "YES", "n": N}}}',
        '{"total": N}',
        "N",
    ],
    ids=[
        "short-session-attributes",
        "nested-session-attributes",
        "short-directives",
        "envelope-session-attributes",
        "envelope-directives",
        "envelope-can-fulfill",
        "template-value",
        "bare-number",
    ],
)
def test_number_that_overflows_a_double_is_a_bad_reply(answer, number):
    raw = parsed(answer.replace("N", number))
    with pytest.raises(BadReply, match="number") as caught:
        to_reply(raw, with_template("{total} in total, {value}"), "en-US")
    assert caught.value.kind == "bad-reply"


@pytest.mark.parametrize(
    "number", ["1e308", "-1.7976931348623157e308", str(2**64), "1" + "0" * 300]
)
def test_large_numbers_a_double_holds_are_kept(number):
    raw = parsed(f'{{"speech": "Hi", "session_attributes": {{"x": {number}}}}}')
    assert to_reply(raw, None, "en-US").session_attributes == {"x": raw["session_attributes"]["x"]}


@pytest.mark.parametrize(
    "raw",
    [
        {"speech": "Hi", "session_attributes": {"name": "\ud800"}},
        {"speech": "Hi", "session_attributes": {"\udc00": 1}},
        {"speech": "Hi", "directives": [{"type": "X", "text": "a\udfff\ud800b"}]},
        envelope({}, sessionAttributes={"x": ["\ud800"]}),
    ],
    ids=["attribute-value", "attribute-key", "directive", "envelope-attributes"],
)
def test_lone_surrogate_anywhere_in_the_reply_is_a_bad_reply(raw):
    # Not Unicode text: "\ud800" is JSON syntax but no parser has to accept it (RFC 8259 §8.2).
    with pytest.raises(BadReply, match="surrogate"):
        to_reply(raw, None, "en-US")


def test_control_characters_in_session_attributes_are_data_and_kept():
    # JSON escapes them (\u0000); only text Alexa speaks or shows must be XML.
    raw = {"speech": "Hi", "session_attributes": {"blob": "\x00\x07\x1b"}}
    assert to_reply(raw, None, "en-US").session_attributes == {"blob": "\x00\x07\x1b"}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_reply_nested_deeper_than_alexa_data_needs_is_a_bad_reply():
    # The SDK's serializer recurses per level: a few hundred levels became an HTTP 500.
    with pytest.raises(BadReply, match="nested"):
        to_reply({"speech": "Hi", "session_attributes": {"x": nested(500)}}, None, "en-US")


def test_reply_nested_as_deep_as_an_apl_document_is_kept():
    reply = to_reply({"speech": "Hi", "directives": [{"type": "X", "d": nested(60)}]}, None, "en")
    assert reply.response["directives"][0]["d"] == nested(60)
