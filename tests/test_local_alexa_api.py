"""The development tools' stand-in for Alexa's directive API (devtools/alexa_api.py), on HTTP."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from funker_dispatch.devtools.alexa_api import LocalAlexaApi, local_alexa_api, simulator_port
from skill.settings import DispatchSettings, Settings
from tests.helpers import free_port

SPEAK = {"type": "VoicePlayer.Speak", "speech": "<speak>One moment.</speak>"}


def post(url: str, body: object, token: str | None, path: str = "/v1/directives") -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_a_directive_for_a_request_is_kept_and_handed_over_once():
    with LocalAlexaApi() as api:
        status = post(api.url, {"header": {"requestId": "req-1"}, "directive": SPEAK}, api.token)
        assert status == 204
        assert api.directives("req-1") == [SPEAK]
        assert api.directives("req-1") == []


@pytest.mark.parametrize(
    ("body", "token", "path", "status"),
    [
        ({"header": {"requestId": "req-1"}, "directive": SPEAK}, "not-the-token", None, 401),
        ({"header": {"requestId": "req-1"}, "directive": SPEAK}, None, None, 401),
        ({"header": {"requestId": "req-1"}, "directive": SPEAK}, "", "/v2/directives", 404),
        (
            {"header": {"requestId": "req-1"}, "directive": {"type": "Dialog.Delegate"}},
            "",
            None,
            400,
        ),
        ({"directive": SPEAK}, "", None, 400),
        (["not", "an", "object"], "", None, 400),
    ],
)
def test_anything_but_a_speak_with_this_sessions_token_is_refused(body, token, path, status):
    with LocalAlexaApi() as api:
        given = api.token if token == "" else token
        assert post(api.url, body, given, path or "/v1/directives") == status
        assert api.directives("req-1") == []


def test_it_listens_where_the_configuration_lets_progressive_responses_go():
    port = free_port()
    settings = Settings(
        dispatch=DispatchSettings(
            progressive_hosts=("https://api.example.com:443", f"http://127.0.0.1:{port}")
        )
    )
    assert simulator_port(settings) == port
    with local_alexa_api(settings) as api:
        assert api.url == f"http://127.0.0.1:{port}"


def test_a_taken_port_falls_back_to_any_and_says_progressive_responses_will_not_show():
    notes: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = Settings(
            dispatch=DispatchSettings(progressive_hosts=(f"http://127.0.0.1:{port}",))
        )
        with local_alexa_api(settings, note=notes.append) as api:
            assert api.port != port
    assert len(notes) == 1 and str(port) in notes[0]


def test_without_an_allowed_loopback_origin_it_listens_on_any_port():
    assert simulator_port(Settings()) == 0
