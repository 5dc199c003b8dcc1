"""Hypothesis strategies for what a hostile or broken client can POST to the skill.

A `Shot` is one HTTP request: method, body bytes, headers (a list, so a header can
be sent twice) and whether to sign the body with the dev CA, so fuzzed bodies get
past verification and reach the SDK's deserializer and the handlers.

A `FunctionAnswer` is the other side: the bytes a broken or hostile funker
function sends back, in each of the four answer forms (docs/functions.md).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from hypothesis import strategies as st

from tests.e2e.conftest import envelope, intent

Path = tuple[str | int, ...]


@dataclass
class Shot:
    body: bytes
    method: str = "POST"
    content_type: str | None = "application/json"
    sign: bool = True
    headers: list[tuple[str, str]] = field(default_factory=list)  # beyond the signature

    def __repr__(self) -> str:  # a 300 KB body must not flood a failure report
        body = self.body if len(self.body) <= 2000 else self.body[:1000] + b"..." + self.body[-200:]
        return (
            f"Shot(body={body!r} ({len(self.body)} bytes), method={self.method!r}, "
            f"content_type={self.content_type!r}, sign={self.sign}, headers={self.headers!r})"
        )


# --- valid envelopes: the starting point every mutation works from -------------


def _slots(value: Any) -> dict[str, Any]:
    return {"Id": {"name": "Id", "value": value, "confirmationStatus": "NONE"}}


def _no_session(body: dict[str, Any]) -> dict[str, Any]:
    del body["session"]
    return body


BASES = {
    "routed intent": lambda: intent("EchoIntent", _slots("fuzz")),
    "unrouted intent": lambda: intent("NoSuchIntent", _slots("fuzz")),
    "built-in intent": lambda: intent("AMAZON.HelpIntent"),
    "launch": lambda: envelope({"type": "LaunchRequest"}),
    "session ended": lambda: envelope(
        {
            "type": "SessionEndedRequest",
            "reason": "ERROR",
            "error": {"type": "INTERNAL_SERVICE_ERROR", "message": "m"},
        }
    ),
    "can fulfill": lambda: envelope(
        {"type": "CanFulfillIntentRequest", "intent": {"name": "EchoIntent", "slots": _slots("x")}}
    ),
    "routed request type": lambda: _no_session(
        envelope({"type": "AudioPlayer.PlaybackStarted", "token": "t", "offsetInMilliseconds": 0})
    ),
    "unknown request type": lambda: _no_session(envelope({"type": "Alexa.Future.Thing"})),
}


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A fresh (timestamped now) valid envelope of one of several request types."""
    return BASES[draw(st.sampled_from(sorted(BASES)))]()


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path to a node of a JSON value (the root excluded)."""
    found: list[Path] = []
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def get(value: Any, path: Path) -> Any:
    for key in path:
        value = value[key]
    return value


def put(value: Any, path: Path, new: Any) -> None:
    get(value, path[:-1])[path[-1]] = new


def drop(value: Any, path: Path) -> None:
    del get(value, path[:-1])[path[-1]]


# --- JSON values by type, for "a value of another JSON type" ----------------------

SCALARS = {
    "null": st.none(),
    "boolean": st.booleans(),
    "number": st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(max_size=20),
}
CONTAINERS = {
    "array": st.lists(st.one_of(*SCALARS.values()), max_size=3),
    "object": st.dictionaries(st.text(max_size=8), st.one_of(*SCALARS.values()), max_size=3),
}
BY_TYPE = {**SCALARS, **CONTAINERS}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def other_type_than(value: Any) -> st.SearchStrategy[Any]:
    others = sorted(set(BY_TYPE) - {json_type(value)})
    return st.sampled_from(others).flatmap(lambda name: BY_TYPE[name])


# --- unicode that breaks naive code -------------------------------------------

EDGE_CHARACTERS = [
    "\x00",  # NUL
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u200f",  # RIGHT-TO-LEFT MARK
    "\u200b",  # ZERO WIDTH SPACE
    "\ufeff",  # BYTE ORDER MARK
    "\uffff",  # a noncharacter
    "\U0001f680",  # rocket: outside the BMP
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a ZWJ family
    "e\u0301",  # combining accent
    "<speak>",
    "&amp;",
    "]]>",
    "{0}",
    "{total_captains}",
    "\\",
    '"',
    "\n\r\t",
]
# Lone surrogates are only expressible escaped (\ud800): valid JSON, yet no UTF-8.
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\udfff\ud800"]


def edge_strings(surrogates: bool = False) -> st.SearchStrategy[str]:
    alphabet = EDGE_CHARACTERS + (LONE_SURROGATES if surrogates else [])
    return st.lists(st.sampled_from(alphabet) | st.text(max_size=3), min_size=1, max_size=8).map(
        "".join
    )


def encode(value: Any) -> bytes:
    """JSON as a client might send it: ASCII-escaped (lone surrogates become \\udXXX)."""
    return json.dumps(value).encode("ascii")


# --- body mutations ------------------------------------------------------------


@st.composite
def wrong_type_anywhere(draw: st.DrawFn) -> bytes:
    """A valid envelope with one field, at any depth, replaced by another JSON type."""
    body = draw(envelopes())
    path = draw(st.sampled_from(paths(body)))
    put(body, path, draw(other_type_than(get(body, path))))
    return encode(body)


@st.composite
def field_dropped(draw: st.DrawFn) -> bytes:
    body = draw(envelopes())
    drop(body, draw(st.sampled_from(paths(body))))
    return encode(body)


@st.composite
def unicode_anywhere(draw: st.DrawFn, surrogates: bool = False) -> bytes:
    """A valid envelope with strings (values or keys) replaced by unicode edge cases."""
    edge = edge_strings(surrogates)
    body = draw(envelopes())
    strings = [p for p in paths(body) if isinstance(get(body, p), str)]
    for path in draw(st.lists(st.sampled_from(strings), min_size=1, max_size=4)):
        put(body, path, draw(edge))
    if draw(st.booleans()):
        parent = get(body, draw(st.sampled_from([(), ("request",), ("context", "System")])))
        parent[draw(edge)] = draw(edge)
    raw = encode(body)
    if draw(st.booleans()):
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return raw


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    raw = encode(draw(envelopes()))
    return raw[: draw(st.integers(0, len(raw) - 1))]


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    """A valid envelope with a field replaced by arrays/objects nested up to 5000 deep."""
    body = draw(envelopes())
    path = draw(st.sampled_from(paths(body)))
    put(body, path, "@@NEST@@")
    depth = draw(st.integers(1, 5000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('[{"b":', "}]")]))
    inner = draw(st.sampled_from(["1", "null", '"x"', "[]", "{}"]))
    nest = opener * depth + inner + closer * depth
    return encode(body).replace(b'"@@NEST@@"', nest.encode())


@st.composite
def huge_string(draw: st.DrawFn) -> bytes:
    """A valid envelope with a string field grown to up to ~300 KB (the cap is 128 KiB)."""
    body = draw(envelopes())
    strings = [p for p in paths(body) if isinstance(get(body, p), str)]
    path = draw(st.sampled_from(strings))
    size = draw(
        st.sampled_from([1000, 8001, 24 * 1024, 100_000, 128 * 1024 - 2000, 200_000, 300_000])
    )
    put(body, path, draw(st.sampled_from(["x", "\U0001f680", "&", "\u202e"])) * size)
    return encode(body)


random_bytes = st.binary(max_size=4096)

bodies = st.one_of(
    random_bytes,
    truncated(),
    deeply_nested(),
    huge_string(),
    wrong_type_anywhere(),
    field_dropped(),
    unicode_anywhere(),
    envelopes().map(encode),
)

# --- headers -------------------------------------------------------------------

CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/json;;;",
    "APPLICATION/JSON",
    "text/json",
    "application/vnd.amazon+json",
    "text/plain",
    "text/html",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "*/*",
    "",
    "json",
    "application/",
]
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120)
content_types = st.sampled_from(CONTENT_TYPES) | header_text

CERT_URLS = [
    "https://s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "http://s3.amazonaws.com/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com:8443/echo.api/echo-api-cert.pem",
    "https://s3.amazonaws.com/EcHo.aPi/echo-api-cert.pem",
    "https://s3.amazonaws.com/echo.api/../invalid/echo-api-cert.pem",
    "https://evil.example/echo.api/echo-api-cert.pem",
    "https://127.0.0.1/echo.api/x.pem",
    "file:///etc/passwd",
    "",
    "%00",
    "https://s3.amazonaws.com/echo.api/%2e%2e/x.pem",
]


@st.composite
def garbled_signatures(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Signature headers that are missing, duplicated, garbled or point somewhere odd."""
    names = ["Signature-256", "Signature", "SignatureCertChainUrl", "signature-256"]
    values = (
        header_text
        | st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode())
        | st.sampled_from(CERT_URLS)
    )
    return draw(st.lists(st.tuples(st.sampled_from(names), values), max_size=5))


@st.composite
def shots(draw: st.DrawFn, body: st.SearchStrategy[bytes] = bodies) -> Shot:
    return Shot(
        body=draw(body),
        method=draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH"])),
        content_type=draw(st.sampled_from(["application/json"] * 3) | content_types),
        sign=draw(st.booleans() | st.just(True)),
        headers=draw(st.just([]) | garbled_signatures()),
    )


# --- function answers: what a broken or hostile function sends back ------------

# Characters XML 1.0 forbids (so Alexa's SSML does): C0 controls but tab, newline and
# carriage return; U+FFFE and U+FFFF; lone surrogates.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
XML_ILLEGAL = ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\ufffe", "\uffff"]
# JSON numbers a double cannot hold: json.loads makes infinity or a 400-digit int of them.
HUGE_NUMBERS = ["1e400", "-1e400", "1E+400", "-1e999", "1" + "0" * 400, "-" + "9" * 400]


@dataclass(frozen=True)
class Literal:
    """A JSON number written exactly as given (json.dumps cannot write 1e400)."""

    text: str


def encode_answer(value: Any) -> bytes:
    """JSON bytes as a function might write them: Literals as is, lone surrogates escaped."""
    if isinstance(value, Literal):
        return value.text.encode("ascii")
    if isinstance(value, dict):
        members = (encode_answer(k) + b":" + encode_answer(v) for k, v in value.items())
        return b"{" + b",".join(members) + b"}"
    if isinstance(value, list):
        return b"[" + b",".join(encode_answer(item) for item in value) + b"]"
    return json.dumps(value).encode("ascii")


def may_be_refused(value: Any) -> bool:
    """Whether an answer holds what can make it a bad reply.

    A character XML forbids, a number a double cannot hold, or "<speak" (text
    starting with it is taken as SSML, and such fragments are not well-formed).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Literal):
            return True
        if isinstance(item, str) and (NOT_XML.search(item) or "<speak" in item):
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


@dataclass
class FunctionAnswer:
    value: Any
    body: bytes

    @property
    def may_be_refused(self) -> bool:
        return may_be_refused(self.value)

    def __repr__(self) -> str:
        return f"FunctionAnswer(body={self.body[:2000]!r} ({len(self.body)} bytes))"


def answer_texts() -> st.SearchStrategy[str]:
    alphabet = EDGE_CHARACTERS + XML_ILLEGAL + LONE_SURROGATES
    return st.lists(st.sampled_from(alphabet) | st.text(max_size=3), min_size=1, max_size=6).map(
        "".join
    )


def ssml_document(text: str) -> str:
    return f"<speak>{escape(text)} <break time='1s'/></speak>"


speeches = answer_texts() | answer_texts().map(ssml_document)
answer_numbers = (
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(HUGE_NUMBERS).map(Literal)
)
answer_data = st.recursive(
    st.none() | st.booleans() | answer_numbers | answer_texts(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(answer_texts(), children, max_size=3)
    ),
    max_leaves=8,
)
attributes = st.dictionaries(answer_texts(), answer_data, max_size=3)
directives = st.lists(
    st.builds(lambda data: {"type": "Test.Directive", "data": data}, answer_data), max_size=2
)


@st.composite
def short_form_answers(draw: st.DrawFn) -> dict[str, Any]:
    answer: dict[str, Any] = {"speech": draw(speeches)}
    if draw(st.booleans()):
        answer["reprompt"] = draw(speeches)
    card = draw(
        st.none()
        | st.fixed_dictionaries({"title": answer_texts(), "content": answer_texts()})
        | st.fixed_dictionaries(
            {"title": answer_texts(), "text": answer_texts()},
            optional={"image": st.fixed_dictionaries({"small": answer_texts()})},
        )
    )
    if card is not None:
        answer["card"] = card
    if draw(st.booleans()):
        answer["session_attributes"] = draw(attributes)
    if draw(st.booleans()):
        answer["directives"] = draw(directives)
    return answer


@st.composite
def envelope_answers(draw: st.DrawFn) -> dict[str, Any]:
    plain = st.builds(lambda text: {"type": "PlainText", "text": text}, answer_texts())
    ssml = st.builds(lambda text: {"type": "SSML", "ssml": ssml_document(text)}, answer_texts())
    response: dict[str, Any] = {"outputSpeech": draw(plain | ssml)}
    if draw(st.booleans()):
        response["reprompt"] = {"outputSpeech": draw(plain | ssml)}
    if draw(st.booleans()):
        response["card"] = {"type": "Simple", "title": draw(answer_texts()), "content": "c"}
    if draw(st.booleans()):
        response["directives"] = draw(directives)
    if draw(st.booleans()):
        response["canFulfillIntent"] = {"canFulfill": "YES", "slots": draw(attributes)}
    answer: dict[str, Any] = {"version": "1.0", "response": response}
    if draw(st.booleans()):
        answer["sessionAttributes"] = draw(attributes)
    return answer


#: Spoken through the answer route's template, "The answer is {value}."
data_answers = st.builds(lambda value: {"value": value}, answer_data)


@st.composite
def function_answers(draw: st.DrawFn) -> FunctionAnswer:
    """A well-shaped answer in one of the four forms, with hostile text and numbers inside."""
    value = draw(answer_texts() | short_form_answers() | envelope_answers() | data_answers)
    return FunctionAnswer(value, encode_answer(value))


@st.composite
def broken_answers(draw: st.DrawFn) -> FunctionAnswer:
    """Bytes that are no usable answer: garbage, cut off, nested 100000 deep, over the cap."""
    answer = draw(function_answers())
    depth = draw(st.sampled_from([1, 99, 100, 101, 500, 5000, 100_000]))
    body = draw(
        st.binary(max_size=512)
        | st.integers(0, max(0, len(answer.body) - 1)).map(lambda n: answer.body[:n])
        | st.just(b"[" * depth + b"]" * depth)
        | st.just(
            b'{"speech": "Hi", "session_attributes": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
        )
        | st.just(b'"' + b"x" * (300 * 1024) + b'"')
    )
    return FunctionAnswer(None, body)
