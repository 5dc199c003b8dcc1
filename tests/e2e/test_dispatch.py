"""Alexa request → real server → real funker function process → spoken reply."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from dispatch.responses import ssml_to_text
from tests.e2e.conftest import envelope, free_port, intent, post
from tests.e2e.test_observability import samples, value

ROUTES = """
[intents.EnvelopeIntent]
host = "127.0.0.1"
port = {envelope}

[intents.ShortIntent]
host = "127.0.0.1"
port = {short}

[intents.FaithfulIntent]
host = "127.0.0.1"
port = {faithful}

[intents.TextIntent]
host = "127.0.0.1"
port = {text}

[intents.CaptainsIntent]
host = "127.0.0.1"
port = {data}

[intents.CaptainsIntent.speech]
default = "There are {{total_captains}} Docker captains."
"en-GB" = "There are {{total_captains}} Docker captains, mate."

[intents.DownIntent]
host = "127.0.0.1"
port = {down}
timeout = 0.5

[intents.StallIntent]
host = "127.0.0.1"
port = {stall}
timeout = 0.5

[intents.CloseIntent]
host = "127.0.0.1"
port = {close}

[intents.BadJsonIntent]
host = "127.0.0.1"
port = {badjson}

[intents.HugeIntent]
host = "127.0.0.1"
port = {huge}

[intents.SessionIntent]
host = "127.0.0.1"
port = {session}

[intents.EchoIntent]
host = "127.0.0.1"
port = {echo}

[intents.NarrowIntent]
host = "127.0.0.1"
port = {echo}
arguments = ["session", "request", "version"]

[intents.DataWithoutTemplateIntent]
host = "127.0.0.1"
port = {data}

[intents."AudioPlayer.PlaybackFailed"]
host = "127.0.0.1"
port = {short}

[intents."AudioPlayer.PlaybackStopped"]
host = "127.0.0.1"
port = {down}
timeout = 0.5

[intents.GermanIntent]
host = "127.0.0.1"
port = {ssmlattr}

[intents.CanFulfillIntentRequest]
host = "127.0.0.1"
port = {canfulfill}

[intents.ControlCharacterIntent]
host = "127.0.0.1"
port = {control}

[intents.SurrogateSsmlIntent]
host = "127.0.0.1"
port = {surrogatessml}

[intents.InfinityIntent]
host = "127.0.0.1"
port = {infinity}

[intents.BigNumberIntent]
host = "127.0.0.1"
port = {bignumber}

[intents.DeepAttributesIntent]
host = "127.0.0.1"
port = {deepattributes}

[intents.DeepIntent]
host = "127.0.0.1"
port = {deep}
"""

MODES = [
    "envelope",
    "faithful",
    "short",
    "text",
    "data",
    "stall",
    "close",
    "badjson",
    "huge",
    "session",
    "echo",
    "ssmlattr",
    "canfulfill",
    "control",
    "surrogatessml",
    "infinity",
    "bignumber",
    "deepattributes",
    "deep",
]


@pytest.fixture(scope="module")
def server(function_process, start_server):
    ports = {mode: function_process(mode) for mode in MODES}
    ports["down"] = free_port()  # nothing listens there
    return start_server(ROUTES.format(**ports))


def ask(signed, server, body):
    answer = signed(server.url, body)
    assert answer.status == 200, answer.body
    return answer.json


def test_seed_style_envelope_is_carried_over(signed, server):
    reply = ask(signed, server, intent("EnvelopeIntent"))
    response = reply["response"]
    assert response["outputSpeech"] == {"type": "PlainText", "text": "There are 7 people in space."}
    assert response["card"] == {"type": "Simple", "title": "People in space", "content": "7 aboard"}
    assert response["shouldEndSession"] is True
    assert reply["sessionAttributes"] == {"seen": True}


def test_full_envelope_reaches_alexa_as_the_function_wrote_it(signed, server):
    from tests.e2e.function import FAITHFUL_TEXT, FUTURE_DIRECTIVE

    answer = signed(server.url, intent("FaithfulIntent"))
    assert answer.status == 200, answer.body
    response = answer.json["response"]
    assert response["outputSpeech"] == {
        "type": "PlainText",
        "text": FAITHFUL_TEXT,
        "playBehavior": "REPLACE_ENQUEUED",
    }
    assert json.dumps(FAITHFUL_TEXT).encode() in answer.body  # not one character escaped
    assert response["card"] == {
        "type": "AskForPermissionsConsent",
        "permissions": ["read::alexa:device:all:address"],
    }
    assert response["reprompt"]["outputSpeech"]["ssml"] == (
        '<speak>Anything <break time="1s"/> else?</speak>'
    )
    assert response["shouldEndSession"] is False
    assert response["directives"] == [
        FUTURE_DIRECTIVE,
        {"type": "Dialog.ElicitSlot", "slotToElicit": "name"},
    ]
    assert "futureField" not in response


def test_a_field_the_sdk_model_does_not_know_is_dropped_with_one_warning_per_route(signed, server):
    for _ in range(2):
        assert signed(server.url, intent("FaithfulIntent")).status == 200
    warning = "dropped: route=FaithfulIntent fields=response.futureField"
    server.wait_for_log(warning)
    assert server.log().count(warning) == 1


def test_short_form_with_ssml_and_standard_card(signed, server):
    response = ask(signed, server, intent("ShortIntent"))["response"]
    assert response["outputSpeech"]["ssml"] == "<speak>Hello <emphasis>there</emphasis></speak>"
    assert response["card"]["type"] == "Standard"
    assert response["card"]["text"] == "Standard card"
    assert response["card"]["image"] == {
        "smallImageUrl": "https://example.com/s.png",
        "largeImageUrl": "https://example.com/l.png",
    }


def test_plain_text_answer_is_spoken_as_plain_text_unchanged(signed, server):
    response = ask(signed, server, intent("TextIntent"))["response"]
    assert response["outputSpeech"] == {"type": "PlainText", "text": "Fish & chips < 5 pounds"}
    assert response["shouldEndSession"] is True


def test_data_answer_is_spoken_through_the_locale_template(signed, server):
    gb = ask(signed, server, intent("CaptainsIntent", locale="en-GB"))["response"]
    us = ask(signed, server, intent("CaptainsIntent", locale="en-US"))["response"]
    assert gb["outputSpeech"]["text"] == "There are 12 Docker captains, mate."
    assert us["outputSpeech"]["text"] == "There are 12 Docker captains."


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("DownIntent", "unreachable"),
        ("StallIntent", "deadline"),
        ("CloseIntent", "protocol"),
        ("BadJsonIntent", "protocol"),
        ("HugeIntent", "too-large"),
        ("DataWithoutTemplateIntent", "template"),
        # Alexa would refuse what these answers would make: never sent, always named.
        ("ControlCharacterIntent", "bad-reply"),
        ("SurrogateSsmlIntent", "bad-reply"),
        ("InfinityIntent", "bad-reply"),
        ("BigNumberIntent", "bad-reply"),
        ("DeepAttributesIntent", "bad-reply"),
        ("DeepIntent", "protocol"),
    ],
)
def test_failing_function_gets_spoken_apology_and_precise_log_line(signed, server, name, reason):
    failures = ("funker_dispatch_function_failures_total", {"route": name, "kind": reason})
    before = value(samples(server.admin_url), failures[0], **failures[1])
    body = intent(name)
    answer = signed(server.url, body)
    assert answer.status == 200, answer.body
    response = strict_json(answer.body)["response"]
    speech = response["outputSpeech"]["text"]
    assert "Sorry" in speech
    assert "127.0.0.1" not in speech and reason not in speech  # no internals spoken
    request_id = body["request"]["requestId"]
    log = server.wait_for_log(f'"request_id":"{request_id}"')
    lines = [line for line in log.splitlines() if request_id in line]
    # One warning line naming what happened, then the request line; no traceback.
    assert len(lines) == 2, lines
    assert f"reason={reason}" in lines[0]
    assert f"route={name}" in lines[0]
    assert f"handler failed: request_id={request_id}" not in log
    assert value(samples(server.admin_url), failures[0], **failures[1]) == before + 1


def strict_json(body: bytes) -> Any:
    """Parse as Alexa's strict JSON would: no NaN or Infinity."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def test_ssml_with_attributes_on_speak_is_sent_as_one_document(signed, server):
    response = ask(signed, server, intent("GermanIntent"))["response"]
    assert response["outputSpeech"]["ssml"] == '<speak xml:lang="de-DE">Hallo</speak>'


def test_can_fulfill_answer_is_passed_through(signed, server):
    body = envelope(
        {"type": "CanFulfillIntentRequest", "intent": {"name": "HelloIntent", "slots": {}}}
    )
    response = ask(signed, server, body)["response"]
    assert response["canFulfillIntent"]["canFulfill"] == "YES"
    assert "outputSpeech" not in response


def test_routed_event_without_session_fails_silently_not_with_speech(signed, server):
    body = envelope({"type": "AudioPlayer.PlaybackStopped", "token": "t"})
    del body["session"]
    answer = signed(server.url, body)
    assert answer.status == 200
    assert answer.json["response"] == {}
    server.wait_for_log(f"request_id={body['request']['requestId']}")


def test_carried_session_attributes_count_towards_the_24_kib_limit(signed, server):
    body = intent("TextIntent", session_attributes={"big": "x" * 30_000})
    response = ask(signed, server, body)
    assert "Sorry" in response["response"]["outputSpeech"]["text"]
    log = server.wait_for_log(f"request_id={body['request']['requestId']}")
    assert "reason=reply-too-large" in log


def test_session_attributes_round_trip(signed, server):
    first = ask(signed, server, intent("SessionIntent"))
    assert first["sessionAttributes"] == {"turn": 1}
    assert first["response"]["shouldEndSession"] is False
    second = ask(
        signed,
        server,
        intent("SessionIntent", new=False, session_attributes=first["sessionAttributes"]),
    )
    assert second["sessionAttributes"] == {"turn": 2}
    assert second["response"]["outputSpeech"] == {"type": "PlainText", "text": "turn 2"}


def test_function_receives_the_request_exactly_as_sent(signed, server):
    body = intent("EchoIntent")
    body["context"]["Viewport"] = {"experiences": [{"futureField": True}]}
    body["request"]["somethingNew"] = {"nested": [1, 2, 3]}
    received = ask(signed, server, body)["sessionAttributes"]["received"]
    assert received == body


def test_route_arguments_narrow_the_payload(signed, server):
    body = intent("NarrowIntent")
    received = ask(signed, server, body)["sessionAttributes"]["received"]
    assert set(received) == {"session", "request", "version"}
    assert received["request"] == body["request"]


def test_routed_request_type_is_forwarded(signed, server):
    body = envelope({"type": "AudioPlayer.PlaybackFailed", "token": "t"})
    del body["session"]
    answer = signed(server.url, body)
    assert answer.status == 200
    assert "Hello" in answer.speech


def test_launch_without_route_welcomes_and_keeps_the_session_open(signed, server):
    response = ask(signed, server, envelope({"type": "LaunchRequest"}))["response"]
    assert "Welcome" in response["outputSpeech"]["ssml"]
    assert response["shouldEndSession"] is False


@pytest.mark.parametrize(
    ("name", "expect", "ends"),
    [
        ("AMAZON.HelpIntent", "You can ask", False),
        ("AMAZON.FallbackIntent", "can't help", False),
        ("AMAZON.NavigateHomeIntent", "Welcome", False),
        ("AMAZON.StopIntent", "Goodbye", True),
        ("AMAZON.CancelIntent", "Goodbye", True),
    ],
)
def test_built_in_intents_have_default_replies(signed, server, name, expect, ends):
    response = ask(signed, server, intent(name))["response"]
    assert expect in ssml_to_text(response["outputSpeech"]["ssml"])
    assert response["shouldEndSession"] is ends


def test_session_ended_gets_an_empty_response(signed, server):
    body = envelope({"type": "SessionEndedRequest", "reason": "USER_INITIATED"})
    assert ask(signed, server, body)["response"] == {}


def test_enum_values_alexa_adds_later_are_acknowledged_not_refused(signed, server):
    body = envelope(
        {
            "type": "SessionEndedRequest",
            "reason": "SOME_NEW_REASON",
            "error": {"type": "SOME_NEW_ERROR", "message": "x"},
        }
    )
    assert ask(signed, server, body)["response"] == {}


@pytest.mark.parametrize(
    "request_type",
    [
        "AudioPlayer.PlaybackStarted",
        "AlexaSkillEvent.SkillEnabled",
        "Messaging.MessageReceived",
        "System.ExceptionEncountered",
        "Alexa.Presentation.APL.SomethingNewer",
    ],
)
def test_requests_without_a_session_are_acknowledged(signed, server, request_type):
    body = envelope({"type": request_type})
    del body["session"]
    if request_type == "System.ExceptionEncountered":
        body["request"]["error"] = {"type": "INVALID_RESPONSE", "message": "x"}
        body["request"]["cause"] = {"requestId": "amzn1.echo-api.request.earlier"}
    answer = signed(server.url, body)
    assert answer.status == 200, answer.body
    assert "outputSpeech" not in answer.json["response"]


def test_intents_route_lists_the_routing_table(server):
    answer = post(server.admin_url + "/intents", b"", method="GET")
    assert answer.status == 200
    rows = {row["name"]: row for row in answer.json["intents"]}
    assert rows["EnvelopeIntent"]["host"] == "127.0.0.1"
    assert rows["EnvelopeIntent"]["source"] == "config"


# --- bad input: 400/405/413/415 with a JSON body, never 500, never HTML ---------


def deeply_nested(depth: int) -> bytes:
    return b'{"request": {"type": "IntentRequest"}, "x": ' + b"[" * depth + b"]" * depth + b"}"


BAD_BODIES = [
    ("invalid JSON", b"{not json", "malformed"),
    ("JSON array", b"[1, 2, 3]", "malformed"),
    ("JSON string", b'"hello"', "malformed"),
    ("non-UTF-8 bytes", b'{"request": {"type": "\xff\xfe"}}', "malformed"),
    ("no request.type", b'{"version": "1.0", "request": {}}', "malformed"),
    ("request not an object", b'{"version": "1.0", "request": "IntentRequest"}', "malformed"),
    ("deep nesting", deeply_nested(60_000), "malformed"),  # 120 KB: under the cap
    ("moderately deep nesting", deeply_nested(500), "malformed"),
    (
        "intent not an object",
        b'{"version":"1.0","request":{"type":"IntentRequest","intent":"x"}}',
        "malformed",
    ),
    (
        "timestamp garbage",
        b'{"version":"1.0","request":{"type":"IntentRequest","timestamp":"garbage"}}',
        "malformed",
    ),
    (
        "slots a list",
        b'{"version":"1.0","request":{"type":"IntentRequest","intent":{"name":"A","slots":[1]}}}',
        "malformed",
    ),
    ("empty body", b"", "malformed"),
    ("NaN is not JSON", b'{"request": {"type": "IntentRequest"}, "x": NaN}', "malformed"),
]


def assert_json_error(answer, status, error):
    assert answer.status == status, answer.body
    assert answer.content_type.startswith("application/json")
    body = answer.json
    assert body["error"] == error
    assert isinstance(body["message"], str)
    text = answer.body.decode()
    assert "Traceback" not in text and "<html" not in text.lower()


@pytest.mark.parametrize(("case", "body", "error"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_malformed_body_gets_400_even_when_signed(signed, server, case, body, error):
    assert_json_error(signed(server.url, body), 400, error)


def test_body_over_256_kib_gets_413(signed, server):
    body = intent("EchoIntent")
    body["padding"] = "x" * (256 * 1024)
    assert_json_error(signed(server.url, json.dumps(body).encode()), 413, "too-large")


def test_chunked_body_over_256_kib_gets_413_not_a_truncated_answer(dev_ca, server):
    import http.client
    from urllib.parse import urlsplit

    valid = json.dumps(intent("EchoIntent")).encode()
    # A valid envelope followed by whitespace: cut at 256 KiB it would still parse.
    body = valid + b" " * (300 * 1024)
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=15)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        headers = {"Content-Type": "application/json", **dev_ca.sign(body)}
        # The server may answer and close before the whole body is sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request("POST", "/", body=chunks, headers=headers, encode_chunked=True)
        response = connection.getresponse()
        status, payload = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 413
    assert payload["error"] == "too-large"


def _raw_exchange(url: str, data: bytes) -> tuple[bytes, bytes, bytes]:
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(data)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    return status_line, headers, body


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\nContent-Length: 0\r\n\r\n",
        b"\x00\x01garbage\r\n\r\n",
    ],
    ids=["content-length", "header name", "request line"],
)
def test_a_malformed_request_head_gets_a_bare_400_that_names_no_internals(server, head):
    # The HTTP parser (hyper, in granian) refuses a broken head before any of
    # our code runs: a 400 with an empty body, never a page quoting the parser.
    status_line, headers, body = _raw_exchange(server.url, head)
    assert status_line.split()[1] == b"400"
    assert b"connection: close" in headers.lower()
    assert body == b""


def test_broken_chunked_framing_is_refused_by_what_arrived_with_a_json_400(dev_ca, server):
    # granian cannot tell a broken chunk from a trailer section (both end the stream
    # early), so what arrived is the body: cut short, it fails the signature.
    body = json.dumps(intent("EchoIntent")).encode()
    signed = "".join(f"{k}: {v}\r\n" for k, v in dev_ca.sign(body).items()).encode()
    half = body[: len(body) // 2]
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + signed + b"\r\n"
    status_line, headers, answer = _raw_exchange(
        server.url, head + b"%x\r\n%s\r\nzz\r\n{}\r\n0\r\n\r\n" % (len(half), half)
    )
    assert status_line.split()[1] == b"400"
    assert b"application/json" in headers
    assert json.loads(answer)["error"] == "signature"


def test_a_chunked_body_with_trailer_fields_is_read(dev_ca, server):
    # Trailers are valid HTTP/1.1 (RFC 9112 §7.1.2); a proxy may add them.
    body = json.dumps(intent("EchoIntent")).encode()
    signed = "".join(f"{k}: {v}\r\n" for k, v in dev_ca.sign(body).items()).encode()
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n"
    chunks = b"%x\r\n%s\r\n0\r\nX-Sum: 1\r\n\r\n" % (len(body), body)
    status_line, _headers, answer = _raw_exchange(
        server.url, head + b"Connection: close\r\n" + signed + b"\r\n" + chunks
    )
    assert status_line.split()[1] == b"200", answer
    assert "response" in json.loads(answer)


def test_options_on_the_alexa_path_gets_405_and_a_log_line(server):
    answer = post(server.url + "/", b"", method="OPTIONS")
    assert_json_error(answer, 405, "method-not-allowed")
    server.wait_for_log('"reason":"method-not-allowed"')


def test_get_on_the_alexa_path_gets_405(server):
    assert_json_error(post(server.url + "/", b"", method="GET"), 405, "method-not-allowed")


def test_form_encoded_body_gets_415(signed, server):
    body = json.dumps(intent("EchoIntent")).encode()
    answer = signed(server.url, body, {"Content-Type": "application/x-www-form-urlencoded"})
    assert_json_error(answer, 415, "malformed")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json;charset=UTF-8",  # as Amazon's request reference writes it
        "application/json; charset=utf-8",
        "application/json",
        "APPLICATION/JSON; charset=utf-8",
        "application/vnd.alexa+json",
        "text/json",
    ],
)
def test_every_json_content_type_is_answered(signed, server, content_type):
    answer = signed(server.url, intent("TextIntent"), {"Content-Type": content_type})
    assert answer.status == 200, answer.body


@pytest.mark.parametrize("content_type", ["application/jsonx", "text/plain; charset=utf-8"])
def test_a_near_json_content_type_gets_415(signed, server, content_type):
    body = json.dumps(intent("EchoIntent")).encode()
    assert_json_error(signed(server.url, body, {"Content-Type": content_type}), 415, "malformed")


def test_wrong_skill_id_gets_400_and_reaches_no_function(signed, server):
    body = intent("EchoIntent", application_id="amzn1.ask.skill.someone-else")
    assert_json_error(signed(server.url, body), 400, "application-id")


def test_unsigned_request_gets_400(server):
    answer = post(server.url + "/", json.dumps(intent("EchoIntent")).encode())
    assert_json_error(answer, 400, "headers")


def test_every_request_leaves_one_json_log_line(signed, server):
    body = intent("TextIntent")
    ask(signed, server, body)
    request_id = body["request"]["requestId"]
    log = server.wait_for_log(f'"request_id":"{request_id}"')
    line = next(line for line in log.splitlines() if f'"request_id":"{request_id}"' in line)
    record = json.loads(line[line.index("{") :])
    assert record["intent"] == "TextIntent"
    assert record["outcome"] == "ok"
    assert record["route"] == "TextIntent"
