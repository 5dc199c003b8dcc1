"""Function output → Reply: the four answer forms of docs/functions.md, Alexa's limits, apologies.

A `Reply` is plain data in Alexa's own response format. The skill turns it
into the ASK SDK's model and response; nothing here knows the SDK, so the
mapping can be tested (and used by the simulator) without a request in flight.
"""

from __future__ import annotations

import html
import json
import math
import re
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import escape

from dispatch.registry import Route

#: Alexa's limits (characters of outputSpeech; of card title + content; bytes of the response).
MAX_SPEECH_CHARS = 8000
MAX_CARD_CHARS = 8000
MAX_REPLY_BYTES = 24 * 1024
USER_AGENT_ALLOWANCE = 96  # '"userAgent":"ask-python/1.19.0 Python/3.11.7 ..."'

#: Form 1: a dict with "response" whose keys are all envelope keys.
ENVELOPE_KEYS = frozenset({"version", "response", "sessionAttributes", "userAgent"})
#: Form 2: a non-empty dict whose keys are all short-form keys.
SHORT_KEYS = frozenset(
    {"speech", "card", "reprompt", "end_session", "session_attributes", "directives"}
)
# The parts a bad-reply log line may name: the forms' own keys, never the function's.
_PART_NAMES = SHORT_KEYS | ENVELOPE_KEYS
_SHORT_CARD_KEYS = frozenset({"type", "title", "content", "text", "image", "permissions"})
#: The card types Alexa (and the ASK SDK's model) know.
CARD_TYPES = ("Simple", "Standard", "LinkAccount", "AskForPermissionsConsent")

# Quotes too: Alexa's SSML rules ask for all five XML specials to be escaped.
_QUOTES = {'"': "&quot;", "'": "&apos;"}
# A tag, allowing '>' inside quoted attribute values (`<say-as interpret-as=">">`).
_TAG = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")
_SEPARATING_TAG = re.compile(r"</?(?:speak|p|s|break|audio)\b")
_SPEAK_OPEN = re.compile(r"<speak(?:\s[^>]*)?>")
# Any character outside XML 1.0's Char production: C0 controls but tab, newline and
# carriage return; lone surrogates (no pair survives json.loads as two); U+FFFE, U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Deeper than any Alexa directive or attribute needs; the SDK serializer recurses per level.
MAX_REPLY_DEPTH = 100


class ReplyError(Exception):
    """A function's answer cannot become an Alexa reply; `kind` is the log's reason code."""

    kind = "reply"


class TemplateError(ReplyError):
    """A data answer has no usable speech template, or the template does not fit the data."""

    kind = "template"


class ReplyTooLarge(ReplyError):
    """The reply is over one of Alexa's size limits (never truncated)."""

    kind = "reply-too-large"


class BadReply(ReplyError):
    """The answer has a reply's shape but a part of it is not what Alexa accepts."""

    kind = "bad-reply"


@dataclass(frozen=True)
class Reply:
    """What the skill answers: Alexa's `response` object as plain JSON data, and attributes.

    `response` is in Alexa's own wire format (outputSpeech, card, reprompt,
    shouldEndSession, directives, canFulfillIntent...): for a full envelope it
    is the function's own object, checked but not rewritten; for the other
    forms it is built here. The skill turns it into the ASK SDK's model.
    """

    response: Mapping[str, Any]
    session_attributes: dict[str, Any] | None = None

    @property
    def speech(self) -> Mapping[str, Any] | None:
        """The outputSpeech object, if any."""
        speech = self.response.get("outputSpeech")
        return speech if isinstance(speech, Mapping) else None


def to_reply(
    raw: Any,
    route: Route | None,
    locale: str,
    *,
    carried_attributes: Mapping[str, Any] | None = None,
) -> Reply:
    """Map one function answer (any JSON value) to a Reply, as docs/functions.md says.

    Which form an answer is depends on its keys alone; a part of the right
    form but the wrong shape is a BadReply, not data. `carried_attributes` are
    the request's session attributes, which the ASK SDK sends back when the
    reply sets none: they count towards Alexa's size limit.
    """
    _check_json(raw)
    if isinstance(raw, str):
        reply = Reply({"outputSpeech": _speech(raw, "speech"), "shouldEndSession": True})
    elif isinstance(raw, dict) and "response" in raw and raw.keys() <= ENVELOPE_KEYS:
        reply = _from_envelope(raw)
    elif isinstance(raw, dict) and raw and raw.keys() <= SHORT_KEYS:
        reply = _from_short_form(raw)
    else:
        text = _render(_template(route, locale), raw)
        reply = Reply({"outputSpeech": _speech(text, "speech"), "shouldEndSession": True})
    _check_limits(reply, carried_attributes)
    return reply


# -- form 1: a full Alexa response envelope ---------------------------------------------------


def _from_envelope(raw: Mapping[str, Any]) -> Reply:
    """The function's own response object, checked where Alexa would refuse it, kept as written.

    Which fields exist is the ASK SDK model's business (the skill builds the
    reply with it and reports what it drops); here only what Alexa speaks and
    shows is checked: XML-legal text, well-formed SSML, known card and
    speech types, strict JSON (already checked for the whole answer).
    """
    response = raw["response"]
    if not isinstance(response, dict):
        raise BadReply("envelope 'response' is not an object")
    response = dict(response)
    if "outputSpeech" in response:
        response["outputSpeech"] = _output_speech(response["outputSpeech"], "outputSpeech")
    reprompt = response.get("reprompt")
    if reprompt is not None:
        if not isinstance(reprompt, dict):
            raise BadReply("reprompt is not an object")
        if "outputSpeech" in reprompt:
            speech = _output_speech(reprompt["outputSpeech"], "reprompt")
            response["reprompt"] = {**reprompt, "outputSpeech": speech}
    if response.get("card") is not None:
        _check_card(response["card"])
    end_session = response.get("shouldEndSession")
    if end_session is not None and not isinstance(end_session, bool):
        raise BadReply("shouldEndSession is not true or false")
    if response.get("directives") is not None:
        _directives(response["directives"])
    can_fulfill = response.get("canFulfillIntent")
    if can_fulfill is not None and not isinstance(can_fulfill, dict):
        raise BadReply("canFulfillIntent is not an object")
    return Reply(response, _attributes(raw.get("sessionAttributes"), "sessionAttributes"))


def _output_speech(speech: Any, where: str) -> dict[str, Any]:
    if not isinstance(speech, dict):
        raise BadReply(f"{where} is not an object")
    kind = speech.get("type")
    if kind == "PlainText":
        _string(speech.get("text"), f"{where} text")  # sent as written: PlainText is not SSML
        return speech
    if kind == "SSML":
        ssml = _string(speech.get("ssml"), f"{where} ssml").strip()
        # Some hand-written envelopes leave out <speak>; Alexa would refuse them.
        ssml = ssml if _SPEAK_OPEN.match(ssml) else _wrap(ssml)
        return {**speech, "ssml": _checked_ssml(ssml, where)}
    raise BadReply(f"{where} type is not PlainText or SSML")


def _check_card(card: Any) -> None:
    if not isinstance(card, dict):
        raise BadReply("card is not an object")
    kind = card.get("type")
    if kind not in CARD_TYPES:
        raise BadReply(f"card type is not one of {', '.join(CARD_TYPES)}")
    for key in ("title", "content", "text"):
        _optional_string(card.get(key), f"card {key}")
    image = card.get("image")
    if image is not None:
        if not isinstance(image, dict):
            raise BadReply("card image is not an object")
        for key in ("smallImageUrl", "largeImageUrl"):
            _optional_string(image.get(key), "card image")
    if kind == "AskForPermissionsConsent":
        _permissions(card.get("permissions"))


def _permissions(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadReply("an AskForPermissionsConsent card lists its permissions")
    for scope in value:
        _string(scope, "card permissions")
    return value


# -- form 2: the short object ------------------------------------------------------------------


def _from_short_form(raw: Mapping[str, Any]) -> Reply:
    response: dict[str, Any] = {}
    if raw.get("speech") is not None:
        response["outputSpeech"] = _speech(raw["speech"], "speech")
    reprompt = raw.get("reprompt")
    if reprompt is not None:
        response["reprompt"] = {"outputSpeech": _speech(reprompt, "reprompt")}
    card = _short_card(raw.get("card"))
    if card is not None:
        response["card"] = card
    if "end_session" in raw:
        # An explicit null leaves shouldEndSession unset, as directive-only replies need.
        end_session = raw["end_session"]
        if end_session is not None and not isinstance(end_session, bool):
            raise BadReply("end_session is not true or false")
    else:
        end_session = reprompt is None
    if end_session is not None:
        response["shouldEndSession"] = end_session
    directives = _directives(raw.get("directives"))
    if directives:
        response["directives"] = list(directives)
    return Reply(response, _attributes(raw.get("session_attributes"), "session_attributes"))


def _short_card(card: Any) -> dict[str, Any] | None:
    if card is None:
        return None
    if not isinstance(card, dict):
        raise BadReply("card is not an object")
    if not card.keys() <= _SHORT_CARD_KEYS:
        raise BadReply(f"card keys must be among {', '.join(sorted(_SHORT_CARD_KEYS))}")
    kind = card.get("type")
    if kind is not None and kind not in CARD_TYPES:
        raise BadReply(f"card type is not one of {', '.join(CARD_TYPES)}")
    if kind == "LinkAccount":
        if card.keys() != {"type"}:
            raise BadReply("a LinkAccount card has no title, content, text or image")
        return {"type": "LinkAccount"}
    if kind == "AskForPermissionsConsent":
        if card.keys() != {"type", "permissions"}:
            raise BadReply("an AskForPermissionsConsent card has only its permissions")
        return {"type": kind, "permissions": _permissions(card["permissions"])}
    if "permissions" in card:
        raise BadReply("only an AskForPermissionsConsent card has permissions")
    title = _optional_string(card.get("title"), "card title")
    standard = "text" in card or "image" in card
    if kind == "Standard" or (kind is None and standard):
        if "content" in card:
            raise BadReply("a Standard card has text, not content")
        small, large = _short_image(card.get("image"))
        image = {"smallImageUrl": small, "largeImageUrl": large}
        return _present(
            type="Standard",
            title=title,
            text=_optional_string(card.get("text"), "card text"),
            image=_present(**image) or None,
        )
    if standard:
        raise BadReply("a Simple card has content, not text or image")
    if "title" not in card and "content" not in card:
        raise BadReply("card has nothing to show")
    content = _optional_string(card.get("content"), "card")
    return _present(type="Simple", title=title, content=content)


def _present(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _short_image(image: Any) -> tuple[str | None, str | None]:
    if image is None:
        return None, None
    if not isinstance(image, dict) or not image or not image.keys() <= {"small", "large"}:
        raise BadReply("card image must be an object with small and/or large")
    return (
        _optional_string(image.get("small"), "card image"),
        _optional_string(image.get("large"), "card image"),
    )


# -- form 4: data through the route's template -------------------------------------------------


def _template(route: Route | None, locale: str) -> str:
    speech = route.speech if route is not None else None
    if speech is None:
        raise TemplateError("data answer and no speech template for this route")
    if isinstance(speech, str):
        return speech
    language = locale.split("-")[0].lower()
    for key in (locale, language, "default"):
        if key in speech:
            return speech[key]
    raise TemplateError("no speech template for this locale and no default")


def _render(template: str, value: Any) -> str:
    """Format `template` with a data answer: a dict's keys, otherwise the value as {value}.

    Only plain names are allowed: `{a.b}` or `{a[0]}` would let a template
    reach into attributes of the answer's objects.
    """
    _check_fields(template)
    values = value if isinstance(value, dict) else {"value": value}
    try:
        return template.format_map(values)
    except KeyError as exc:
        raise TemplateError(f"template field {exc.args[0]!r} is not in the answer") from None
    except (ValueError, TypeError, IndexError) as exc:
        # e.g. "{n:d}" against a string; only the type is named, its message may quote data.
        raise TemplateError(f"template does not fit the answer: {type(exc).__name__}") from None


def _check_fields(template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"template is not a format string: {exc}") from None
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise TemplateError("template fields must be names, not positions")
        if "." in field or "[" in field:
            raise TemplateError(f"template field {field!r} uses attribute or index access")
        if spec:
            _check_fields(spec)  # nested fields such as {n:>{width}}


# -- limits ------------------------------------------------------------------------------------


def _check_limits(reply: Reply, carried: Mapping[str, Any] | None = None) -> None:
    """Raise ReplyTooLarge when a reply is over one of Alexa's limits; nothing is cut."""
    response = reply.response
    reprompt = response.get("reprompt")
    speeches = (
        ("speech", response.get("outputSpeech")),
        ("reprompt", reprompt.get("outputSpeech") if isinstance(reprompt, Mapping) else None),
    )
    for where, speech in speeches:
        # Counted as sent: Alexa counts SSML with its tags and entities.
        said = _said(speech)
        if len(said) > MAX_SPEECH_CHARS:
            raise ReplyTooLarge(f"{where} is {len(said)} characters (limit {MAX_SPEECH_CHARS})")
    card = response.get("card")
    if isinstance(card, Mapping):
        shown = sum(len(card.get(key) or "") for key in ("title", "content", "text"))
        if shown > MAX_CARD_CHARS:
            raise ReplyTooLarge(f"card is {shown} characters (limit {MAX_CARD_CHARS})")
    size = _estimated_bytes(reply, carried)
    if size > MAX_REPLY_BYTES:
        raise ReplyTooLarge(f"reply is about {size} bytes (limit {MAX_REPLY_BYTES})")


def _said(speech: Any) -> str:
    if not isinstance(speech, Mapping):
        return ""
    text = speech.get("ssml") if speech.get("type") == "SSML" else speech.get("text")
    return text if isinstance(text, str) else ""


def _estimated_bytes(reply: Reply, carried: Mapping[str, Any] | None = None) -> int:
    """The reply as the skill will send it, JSON-encoded the way Flask's jsonify does."""
    body: dict[str, Any] = {"version": "1.0", "response": reply.response}
    attributes = reply.session_attributes if reply.session_attributes is not None else carried
    if attributes:
        body["sessionAttributes"] = attributes
    # ensure_ascii like jsonify: non-ASCII speech costs its \uXXXX escapes on the wire;
    # USER_AGENT_ALLOWANCE covers the SDK's "userAgent" field.
    return len(compact_json(body).encode()) + USER_AGENT_ALLOWANCE


#: Compact, ASCII-escaped JSON text. One encoder kept for every caller: json.dumps with
#: any argument builds a new one per call.
compact_json = json.JSONEncoder(separators=(",", ":")).encode


# -- speech ------------------------------------------------------------------------------------


def escape_speech(text: str) -> str:
    """Plain text made safe inside SSML (& < > and both quotes)."""
    return escape(text, _QUOTES)


def ssml_to_text(ssml: str) -> str:
    """What an SSML document says, as plain text: tags dropped, entities read, spaces collapsed."""
    # Tags that separate words become a space; inline ones (<emphasis>) vanish so
    # "Hello <emphasis>there</emphasis>." does not read "Hello there .".
    text = _TAG.sub(lambda tag: " " if _SEPARATING_TAG.match(tag.group()) else "", ssml)
    return " ".join(html.unescape(text).split())


def _is_ssml(text: str) -> bool:
    """Whether a function's speech string is SSML (it starts with <speak>) rather than text."""
    return _SPEAK_OPEN.match(text.strip()) is not None


def _speech(text: Any, where: str) -> dict[str, Any]:
    """A function's speech string as Alexa's outputSpeech: SSML when it is SSML, else PlainText.

    PlainText carries the text exactly as the function wrote it: it is not
    SSML, so nothing in it is escaped.
    """
    text = _string(text, where)
    if _is_ssml(text):
        return {"type": "SSML", "ssml": _checked_ssml(text.strip(), where)}
    return {"type": "PlainText", "text": text}


def _wrap(ssml_body: str) -> str:
    return f"<speak>{ssml_body}</speak>"


def _checked_ssml(ssml: str, where: str) -> str:
    # Alexa refuses malformed SSML with an error the user hears as "a problem with
    # the skill"; refusing it here turns it into our apology and a precise log line.
    # Namespace processing stays off: Alexa's <amazon:effect> tags declare no prefix.
    parser = expat.ParserCreate()
    elements: list[str] = []
    parser.StartElementHandler = lambda name, attributes: elements.append(name)
    # Every caller passes text starting with <speak>, so no DOCTYPE (and no entity
    # declaration) can come before it: only the five predefined entities parse.
    # The text passed _string: no lone surrogate can make expat's UTF-8 encode fail.
    try:
        parser.Parse(ssml, True)
    except expat.ExpatError:
        raise BadReply(f"{where} SSML is not well-formed") from None
    if elements[:1] != ["speak"]:
        raise BadReply(f"{where} SSML is not one <speak> element")
    return ssml


# -- small shape checks --------------------------------------------------------------------------


def _string(value: Any, where: str) -> str:
    """A text Alexa speaks or shows: a string of characters XML allows (PlainText too)."""
    if not isinstance(value, str):
        raise BadReply(f"{where} is not a string")
    illegal = _NOT_XML.search(value)
    if illegal is not None:
        code = f"U+{ord(illegal.group()):04X}"
        raise BadReply(f"{where} has a character XML does not allow ({code})")
    return value


def _optional_string(value: Any, where: str) -> str | None:
    return None if value is None else _string(value, where)


def _attributes(value: Any, where: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise BadReply(f"{where} is not an object")
    return value


def _directives(value: Any) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(d, dict) and isinstance(d.get("type"), str) for d in value
    ):
        raise BadReply("directives must be a list of objects with a type")
    return tuple(value)


def _check_json(raw: Any) -> None:
    """Refuse an answer strict JSON cannot carry to Alexa, wherever in it the value sits.

    json.loads reads 1e400 as infinity (sent on as `Infinity`, not JSON) and
    10**400 as an int no double holds; "\\ud800" is valid JSON syntax but not
    text. Iterative, so no nesting can exhaust the stack here.
    """
    stack: list[tuple[Any, int, str]] = [(raw, 1, "answer")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_REPLY_DEPTH:
                raise BadReply(f"{where} is nested deeper than {MAX_REPLY_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(key, str):
                    _check_unicode(key, where)
                part = key if depth == 1 and key in _PART_NAMES else where
                stack.append((child, depth + 1, part))
        elif isinstance(value, str):
            _check_unicode(value, where)
        elif isinstance(value, float) and not math.isfinite(value):
            raise BadReply(f"{where} has a number beyond a double (it would be sent as Infinity)")
        elif isinstance(value, int) and abs(value) > sys.float_info.max:  # exact int compare
            raise BadReply(f"{where} has a number beyond a double")


def _check_unicode(text: str, where: str) -> None:
    if _SURROGATE.search(text) is not None:
        raise BadReply(f"{where} has a lone surrogate, which is not Unicode text")


# -- apologies ---------------------------------------------------------------------------------

#: Spoken when a function cannot give an answer; keyed by language, exact locale may override.
APOLOGIES: dict[str, str] = {
    "en": "Sorry, I couldn't get an answer for that just now. Please try again later.",
    "de": (
        "Entschuldigung, darauf konnte ich gerade keine Antwort bekommen. "
        "Bitte versuche es später noch einmal."
    ),
    "fr": (
        "Désolé, je n'ai pas pu obtenir de réponse pour le moment. Veuillez réessayer plus tard."
    ),
    "es": "Lo siento, ahora mismo no he podido obtener una respuesta. Inténtalo más tarde.",
    "it": "Mi dispiace, in questo momento non riesco a ottenere una risposta. Riprova più tardi.",
    "ja": "すみません、今は答えを取得できませんでした。しばらくしてからもう一度お試しください。",
    "pt": "Desculpe, não consegui obter uma resposta agora. Tente novamente mais tarde.",
}


def apology(locale: str) -> Reply:
    """A short spoken apology in the request's locale (English fallback) that names no internals."""
    return Reply(
        {
            "outputSpeech": {"type": "PlainText", "text": apology_text(locale)},
            "shouldEndSession": True,
        }
    )


def apology_text(locale: str) -> str:
    return APOLOGIES.get(locale) or APOLOGIES.get(locale.split("-")[0].lower()) or APOLOGIES["en"]
