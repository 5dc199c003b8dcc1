"""Fuzz fixtures: the app in-process (Flask test client) and as a real server, one config.

`FUZZ_EXAMPLES` sets examples per property: small and derandomized in `make test`,
large and random for `make fuzz`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import math
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, settings

from dispatch.funker import make_server
from skill.app import create_app
from skill.settings import load_settings
from tests.e2e import conftest as e2e
from tests.e2e.conftest import Server, trusted_config
from tests.fuzz.strategies import NOT_XML, Shot
from verification.devca import DevCA

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
LONG_RUN = "FUZZ_EXAMPLES" in os.environ

FUZZ = settings(
    deadline=None,
    max_examples=EXAMPLES,
    derandomize=not LONG_RUN,  # make test: the same examples every run, on every machine
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
# Over real sockets each example costs a round trip: a fifth as many.
FUZZ_SERVER = settings(FUZZ, max_examples=max(10, EXAMPLES // 5))

ALLOWED = {200, 400, 405, 413, 415}

# The e2e suite's fixtures, shared rather than copied.
dev_ca = e2e.dev_ca
start_server = e2e.start_server


def echo(payload: Any) -> Any:
    """The fuzz function: speaks back the Id slot when there is a string one."""
    try:
        value = payload["request"]["intent"]["slots"]["Id"]["value"]
    except (KeyError, TypeError):
        value = None
    return {"speech": value if isinstance(value, str) and value else "echo"}


class AnswerFunction:
    """A funker function on raw sockets that answers whatever bytes the test set last.

    Raw, because json.dumps cannot write what a broken function sends (1e400).
    Examples run one at a time, so one `answer` attribute is enough.
    """

    def __init__(self) -> None:
        self.answer = b'"unset"'
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed at the end of the session
            with conn, contextlib.suppress(OSError):
                conn.settimeout(10)
                while conn.recv(65536):
                    pass
                conn.sendall(self.answer)


@pytest.fixture(scope="session")
def answer_function() -> Iterator[AnswerFunction]:
    function = AnswerFunction()
    yield function
    function.listener.close()


@pytest.fixture(scope="session")
def echo_port() -> Iterator[int]:
    server = make_server(echo, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def routes(port: int, answer_port: int) -> str:
    # naming = "none": a fuzzed intent name must never become a DNS lookup.
    return (
        '[dispatch]\nnaming = "none"\ndeadline = 2.0\n\n'
        f'[intents.EchoIntent]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[intents.LaunchRequest]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[intents."AudioPlayer.PlaybackStarted"]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[intents.{ANSWER_INTENT}]\nhost = "127.0.0.1"\nport = {answer_port}\n'
        'speech = "The answer is {value}."\n\n'
    )


#: The intent whose function answers what the test set (AnswerFunction).
ANSWER_INTENT = "AnswerIntent"


@pytest.fixture(scope="session")
def client(
    dev_ca: DevCA,
    echo_port: int,
    answer_function: AnswerFunction,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    home = tmp_path_factory.mktemp("fuzz-config")
    config = Path(home) / "dispatch.toml"
    config.write_text(trusted_config(dev_ca, home) + routes(echo_port, answer_function.port))
    return create_app(load_settings(config, environ={})).test_client()


class ErrorRecords(logging.Handler):
    """Records of the app's logger from `level` up (ERROR: a handler that crashed...)."""

    def __init__(self, level: int = logging.ERROR) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _app_records(level: int) -> Iterator[ErrorRecords]:
    handler = ErrorRecords(level)
    logger = logging.getLogger("funker_dispatch")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def app_errors() -> Iterator[ErrorRecords]:
    with _app_records(logging.ERROR) as handler:
        yield handler


@pytest.fixture
def app_warnings() -> Iterator[ErrorRecords]:
    """WARNING records too: "function failed: ... reason=..." is one."""
    with _app_records(logging.WARNING) as handler:
        yield handler


def headers_for(shot: Shot, dev_ca: DevCA) -> list[tuple[str, str]]:
    headers = [] if shot.content_type is None else [("Content-Type", shot.content_type)]
    if shot.sign:
        headers += list(dev_ca.sign(shot.body).items())
    return headers + shot.headers


@pytest.fixture
def send_in_process(client: Any, dev_ca: DevCA) -> Callable[[Shot], tuple[int, str, bytes]]:
    def send(shot: Shot) -> tuple[int, str, bytes]:
        response = client.open(
            "/", method=shot.method, data=shot.body, headers=headers_for(shot, dev_ca)
        )
        return response.status_code, response.content_type or "", response.get_data()

    return send


@pytest.fixture(scope="module")
def fuzz_server(
    start_server: Callable[..., Server], echo_port: int, answer_function: AnswerFunction
) -> Server:
    return start_server(routes(echo_port, answer_function.port), workers=1)


@pytest.fixture(scope="module")
def send_to_server(fuzz_server: Server, dev_ca: DevCA) -> Callable[[Shot], tuple[int, str, bytes]]:
    host, port = fuzz_server.url.removeprefix("http://").split(":")

    def send(shot: Shot) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(host, int(port), timeout=15)
        try:
            # putheader keeps duplicates and odd values that a dict of headers would merge.
            connection.putrequest(shot.method, "/", skip_accept_encoding=True)
            for name, value in headers_for(shot, dev_ca):
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(shot.body)))
            # The server may answer (415, 413) before reading a big body and close:
            # legitimate HTTP, and the answer is still there to read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                connection.endheaders(shot.body)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()

    return send


def assert_contract(status: int, content_type: str, body: bytes) -> None:
    """Only 200/400/405/413/415, always a JSON body, never a traceback or an HTML page."""
    text = body.decode("utf-8", "replace")
    assert status in ALLOWED, f"HTTP {status}: {text[:500]}"
    assert content_type.startswith("application/json"), (status, content_type, text[:500])
    json.loads(body)
    lowered = text.lower()
    assert "traceback" not in lowered, text[:2000]
    assert "<html" not in lowered and "<!doctype" not in lowered, text[:500]


def strict_json(body: bytes) -> Any:
    """Parse as a strict JSON parser would: no NaN, no Infinity, no number beyond a double."""

    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    def finite(text: str) -> float:
        number = float(text)
        assert math.isfinite(number), f"{text} overflows a double"
        return number

    def bounded(text: str) -> int:
        number = int(text)
        assert abs(number) <= sys.float_info.max, f"{text[:20]}... overflows a double"
        return number

    return json.loads(body, parse_constant=refuse, parse_float=finite, parse_int=bounded)


def assert_valid_reply(body: bytes) -> dict[str, Any]:
    """An ASK response Alexa accepts: strict JSON, Unicode text, well-formed SSML, XML text."""
    reply = strict_json(body)
    strings = [reply]
    while strings:
        item = strings.pop()
        if isinstance(item, str):
            assert not re.search("[\ud800-\udfff]", item), f"lone surrogate in {item!r}"
        elif isinstance(item, dict):
            strings.extend([*item.keys(), *item.values()])
        elif isinstance(item, list):
            strings.extend(item)
    response = reply["response"]
    reprompt = response.get("reprompt") or {}
    for speech in (response.get("outputSpeech"), reprompt.get("outputSpeech")):
        if speech is None:
            continue
        if speech["type"] == "SSML":
            assert not NOT_XML.search(speech["ssml"]), speech
            assert ElementTree.fromstring(speech["ssml"]).tag == "speak", speech
        else:
            assert speech["type"] == "PlainText" and not NOT_XML.search(speech["text"]), speech
    for value in (response.get("card") or {}).values():
        assert not isinstance(value, str) or not NOT_XML.search(value), response["card"]
    return reply


def assert_no_crash_logged(server: Server) -> None:
    """The server's log shows no handler that raised and no internal error."""
    log = server.log()
    assert "internal error" not in log and "handler failed" not in log, log[-3000:]
