"""The example functions answer real funker requests, and the sample requests are ones Alexa sends.

Each function runs as a real process (`python examples/functions/<name>/function.py
--host 127.0.0.1 --port N`, as the embedded default starts them) and is asked
over a real TCP connection with the funker protocol: send one JSON value,
half-close, read to EOF.
"""

from __future__ import annotations

import http.server
import importlib.util
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from xml.sax.saxutils import escape

import pytest

from tests.helpers import accepts, free_port, wait_until
from verification import sdkcompat

sdkcompat.install()  # before any ASK SDK import: the SDK's imports need the fix

from ask_sdk_core.serialize import DefaultSerializer  # noqa: E402
from ask_sdk_model import RequestEnvelope  # noqa: E402

from dispatch.funker import call  # noqa: E402
from dispatch.registry import Route  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "examples" / "functions"
REQUESTS = ROOT / "examples" / "requests"
DEVELOPMENT_SKILL_ID = "amzn1.ask.skill.00000000-0000-4000-8000-000000000000"
NAMES = ("spacecount", "hello", "hostname", "captains", "alarms", "uploads", "deploys")
# Generous: a cold interpreter on a loaded CI machine; a healthy start takes ~0.1 s.
READY_WITHIN = 15.0


def request_file(name: str) -> dict[str, Any]:
    return json.loads((REQUESTS / name).read_text(encoding="utf-8"))


def narrowed(payload: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """What a route with `arguments = [...]` sends: only the chosen top-level keys."""
    return {key: payload[key] for key in keys if key in payload}


def load_function(name: str) -> ModuleType:
    # The folders are not packages (each is copied alone into its image), and
    # every file is called function.py: load each under a name of its own.
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", FUNCTIONS / name / "function.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first, as an import would: dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- a function as a real process -----------------------------------------------


@dataclass
class RunningFunction:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def call(self, payload: Any, within: float = READY_WITHIN) -> Any:
        """One funker request; connection refused is retried until `within` (start-up)."""
        deadline = time.monotonic() + within

        def listening() -> bool:
            # A connection that sends nothing is a port probe: serve() ignores it.
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.stderr()}"
                )
            return accepts(self.port)

        wait_until(listening, within, f"{self.name} to listen")
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=1.0)
        with conn:
            conn.settimeout(max(0.5, deadline - time.monotonic()))
            conn.sendall(json.dumps(payload).encode("utf-8"))
            conn.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        assert chunks, f"{self.name} closed without answering:\n{self.stderr()}"
        return json.loads(b"".join(chunks))

    def stderr(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def start_function(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RunningFunction]]:
    """Start an example function; every process is stopped (SIGTERM, then kill) at teardown."""
    started: list[RunningFunction] = []

    def start(
        name: str,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] | None = None,
        port: int | None = None,
    ) -> RunningFunction:
        port = free_port() if port is None else port
        environ = {
            k: v
            for k, v in os.environ.items()
            if k not in {"SPACECOUNT_URL", "SPACECOUNT_DELAY", "FUNKER_PORT"}
        }
        environ.update(env or {})
        argv = ("--host", "127.0.0.1", "--port", str(port)) if args is None else args
        log = tmp_path_factory.mktemp(name) / "stderr.log"
        with log.open("wb") as stderr:  # a file, not a pipe: no one has to drain it
            process = subprocess.Popen(
                [sys.executable, str(FUNCTIONS / name / "function.py"), *argv],
                env=environ,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=ROOT,
            )
        running = RunningFunction(name, port, process, log)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.terminate()
    for running in started:
        try:
            running.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()


@pytest.fixture(scope="module")
def function(start_function: Callable[..., RunningFunction]) -> Callable[[str], RunningFunction]:
    """The example function `name` with default settings, one process per module."""
    running: dict[str, RunningFunction] = {}

    def get(name: str) -> RunningFunction:
        if name not in running:
            running[name] = start_function(name)
        return running[name]

    return get


@pytest.fixture
def astros_service() -> Iterator[Callable[[Any], str]]:
    """A local stand-in for open-notify's astros.json (tests never use the internet)."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(answer: Any) -> str:
        body = json.dumps(answer).encode("utf-8")

        class Astros(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output to failures

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Astros)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}/astros.json"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


# --- spacecount: a full Alexa response envelope ----------------------------------

SNAPSHOT = json.loads((FUNCTIONS / "spacecount" / "people-in-space.json").read_text("utf-8"))


def test_snapshot_has_the_shape_of_open_notify_astros_json():
    assert SNAPSHOT["message"] == "success"
    assert SNAPSHOT["number"] == len(SNAPSHOT["people"]) > 0
    assert all(set(person) == {"name", "craft"} for person in SNAPSHOT["people"])


def test_spacecount_answers_a_full_envelope_with_the_snapshot_count(function):
    answer = function("spacecount").call(request_file("space-count.json"))

    assert answer["version"] == "1.0"
    response = answer["response"]
    assert response["outputSpeech"] == {
        "type": "PlainText",
        "text": f"There are {SNAPSHOT['number']} people in space right now.",
    }
    assert response["shouldEndSession"] is True
    card = response["card"]
    assert (card["type"], card["title"]) == ("Simple", "People in space")
    lines = dict(line.split(": ", 1) for line in card["content"].splitlines())
    for person in SNAPSHOT["people"]:
        assert person["name"] in lines[person["craft"]].split(", ")


def test_spacecount_answers_the_2016_request_without_context(function):
    answer = function("spacecount").call(request_file("space-count-no-context.json"))
    assert str(SNAPSHOT["number"]) in answer["response"]["outputSpeech"]["text"]


def test_spacecount_speaks_the_live_count_when_a_url_is_set(start_function, astros_service):
    url = astros_service(
        {
            "message": "success",
            "number": 1,
            "people": [{"name": "Yuri Gagarin", "craft": "Vostok 1"}],
        }
    )
    spacecount = start_function("spacecount", env={"SPACECOUNT_URL": url})

    response = spacecount.call({})["response"]

    assert response["outputSpeech"]["text"] == "There is 1 person in space right now."
    assert response["card"]["content"] == "Vostok 1: Yuri Gagarin"


def test_spacecount_falls_back_to_the_snapshot_and_says_why_on_stderr(
    start_function, astros_service
):
    unreachable = f"http://127.0.0.1:{free_port()}/astros.json"
    spacecount = start_function("spacecount", env={"SPACECOUNT_URL": unreachable})

    response = spacecount.call({})["response"]

    assert str(SNAPSHOT["number"]) in response["outputSpeech"]["text"]
    assert unreachable in spacecount.stderr()
    assert "snapshot" in spacecount.stderr()


def test_spacecount_refuses_a_live_answer_of_the_wrong_shape(astros_service, monkeypatch):
    spacecount = load_function("spacecount")
    monkeypatch.setenv("SPACECOUNT_URL", astros_service({"message": "failure"}))

    assert spacecount.people_in_space() == SNAPSHOT


@pytest.mark.parametrize(
    ("value", "seconds"), [(None, 0.0), ("", 0.0), ("0", 0.0), ("2", 2.0), (" 0.5 ", 0.5)]
)
def test_spacecount_delay_is_read_from_its_environment(value, seconds):
    spacecount = load_function("spacecount")
    environ = {} if value is None else {"SPACECOUNT_DELAY": value}
    assert spacecount.delay_seconds(environ) == seconds


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf", "31"])
def test_spacecount_refuses_a_delay_that_is_not_a_few_seconds(value):
    spacecount = load_function("spacecount")
    with pytest.raises(ValueError, match="SPACECOUNT_DELAY"):
        spacecount.delay_seconds({"SPACECOUNT_DELAY": value})


def test_spacecount_with_a_delay_waits_that_long_before_answering(monkeypatch):
    spacecount = load_function("spacecount")
    waited: list[float] = []
    monkeypatch.setattr(spacecount, "pause", waited.append)
    monkeypatch.setenv("SPACECOUNT_DELAY", "1.5")
    monkeypatch.delenv("SPACECOUNT_URL", raising=False)

    answer = spacecount.handle({})

    assert waited == [1.5]
    assert "people in space" in answer["response"]["outputSpeech"]["text"]


def test_spacecount_without_a_delay_does_not_wait(monkeypatch):
    spacecount = load_function("spacecount")
    waited: list[float] = []
    monkeypatch.setattr(spacecount, "pause", waited.append)
    monkeypatch.delenv("SPACECOUNT_DELAY", raising=False)
    monkeypatch.delenv("SPACECOUNT_URL", raising=False)
    spacecount.handle({})
    assert waited == []


def test_spacecount_with_a_bad_delay_exits_at_start_saying_why(start_function):
    spacecount = start_function("spacecount", env={"SPACECOUNT_DELAY": "soon"})
    assert spacecount.process.wait(timeout=READY_WITHIN) != 0
    assert "SPACECOUNT_DELAY='soon'" in spacecount.stderr()


# --- hello: the short form, with a reprompt when it lacks a name -------------------


def test_hello_greets_the_resolved_name(function):
    answer = function("hello").call(request_file("hello-name.json"))

    assert answer == {"speech": "Hello, Ada!", "card": {"title": "Hello", "content": "Hello, Ada!"}}


def test_hello_without_a_name_asks_for_one_and_keeps_the_session_open(function):
    payload = request_file("hello-name.json")
    # An unfilled slot arrives named but without a value.
    payload["request"]["intent"]["slots"] = {"name": {"name": "name", "confirmationStatus": "NONE"}}

    answer = function("hello").call(payload)

    assert answer["reprompt"] == "Who should I say hello to?"
    assert answer["speech"].endswith("Who should I say hello to?")
    assert answer["session_attributes"] == {"asked_name": True}
    assert answer.get("end_session", False) is False


def _hello_slot(value: str, resolution: dict[str, Any] | None) -> dict[str, Any]:
    slot: dict[str, Any] = {"name": "name", "value": value, "confirmationStatus": "NONE"}
    if resolution is not None:
        slot["resolutions"] = {"resolutionsPerAuthority": [resolution]}
    return {
        "request": {
            "type": "IntentRequest",
            "intent": {"name": "HelloIntent", "slots": {"name": slot}},
        }
    }


def test_hello_prefers_the_canonical_value_of_a_matched_synonym():
    hello = load_function("hello")
    payload = _hello_slot(
        "amazing grace",
        {
            "authority": "amzn1.er-authority.echo-sdk.x.FriendName",
            "status": {"code": "ER_SUCCESS_MATCH"},
            "values": [{"value": {"name": "Grace", "id": "GRACE"}}],
        },
    )
    assert hello.handle(payload)["speech"] == "Hello, Grace!"


def test_hello_speaks_the_heard_value_when_resolution_found_no_match():
    hello = load_function("hello")
    payload = _hello_slot(
        "Zelda",
        {
            "authority": "amzn1.er-authority.echo-sdk.x.FriendName",
            "status": {"code": "ER_SUCCESS_NO_MATCH"},
        },
    )
    assert hello.handle(payload)["speech"] == "Hello, Zelda!"


def test_hello_asks_for_a_name_when_the_payload_has_no_intent():
    hello = load_function("hello")
    assert hello.handle({})["session_attributes"] == {"asked_name": True}
    assert hello.handle(narrowed(request_file("launch.json"), ("request",)))["reprompt"]


# --- hostname: SSML and a Standard card -------------------------------------------


def test_hostname_speaks_the_host_in_ssml_with_a_standard_card(function):
    host = socket.gethostname()  # the function runs on this machine

    answer = function("hostname").call(request_file("hostname.json"))

    assert answer["speech"] == (
        '<speak>This answer came from <say-as interpret-as="characters">'
        f"{escape(host)}</say-as>.</speak>"
    )
    assert answer["card"] == {"title": "Hostname", "text": f"This answer came from {host}."}


# --- captains: data for the route's template, a fixed-signature handler ------------

ROUTE_ARGUMENTS = ("session", "request", "version")  # the route's `arguments`


def roster_size() -> int:
    lines = (FUNCTIONS / "captains" / "captains.txt").read_text("utf-8").splitlines()
    return len([line for line in lines if line.strip() and not line.startswith("#")])


def test_captains_answers_data_for_the_speech_template(function):
    payload = narrowed(request_file("captains.json"), ROUTE_ARGUMENTS)

    answer = function("captains").call(payload)

    assert answer == {"total_captains": roster_size()}
    # The dispatcher's template for this route renders it as a sentence.
    sentence = "There are {total_captains} Docker captains.".format_map(answer)
    assert sentence == f"There are {roster_size()} Docker captains."


def test_captains_answers_the_dispatchers_own_client(function):
    # The same exchange as the skill makes it: dispatch.funker.call with the route.
    captains = function("captains")
    route = Route("CaptainsIntent", "127.0.0.1", captains.port, arguments=ROUTE_ARGUMENTS)
    payload = narrowed(request_file("captains.json"), ROUTE_ARGUMENTS)

    assert call(route, payload, timeout=READY_WITHIN) == {"total_captains": roster_size()}


def test_captains_handler_has_the_fixed_signature_of_funker_0_0_1_handlers():
    captains = load_function("captains")

    assert list(inspect.signature(captains.handle.__wrapped__).parameters) == list(ROUTE_ARGUMENTS)
    full = request_file("captains.json")
    assert captains.handle.__wrapped__(**narrowed(full, ROUTE_ARGUMENTS)) == {
        "total_captains": roster_size()
    }


def test_captains_handler_takes_the_narrowed_payload_and_rejects_the_whole_envelope():
    captains = load_function("captains")
    full = request_file("captains.json")

    assert captains.handle(narrowed(full, ROUTE_ARGUMENTS)) == {"total_captains": roster_size()}
    # Why the route narrows: the un-narrowed payload carries `context`.
    with pytest.raises(TypeError, match="context"):
        captains.handle(full)
    with pytest.raises(TypeError):
        captains.handle(["not", "an", "object"])


# --- the command line every function shares ----------------------------------------


def test_port_defaults_to_funker_port_from_the_environment(start_function):
    port = free_port()
    hostname = start_function(
        "hostname", env={"FUNKER_PORT": str(port)}, args=("--host", "127.0.0.1"), port=port
    )

    assert hostname.call({})["speech"].startswith("<speak>")


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_funker_port_is_a_usage_error(name):
    result = subprocess.run(
        [sys.executable, str(FUNCTIONS / name / "function.py")],
        env={**os.environ, "FUNKER_PORT": "ninety"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--port" in result.stderr


def test_a_function_stops_on_sigterm(start_function):
    hostname = start_function("hostname")
    hostname.call({})  # it is serving

    hostname.process.send_signal(signal.SIGTERM)

    hostname.process.wait(timeout=10)  # TimeoutExpired if it kept serving


@pytest.mark.parametrize("name", NAMES)
def test_every_function_has_handle_and_main(name):
    module = load_function(name)
    assert callable(module.handle) and callable(module.main)
    assert list(inspect.signature(module.main).parameters) == ["argv"]


@pytest.mark.parametrize("name", NAMES)
def test_every_function_image_is_small_non_root_and_built_from_the_repo_root(name):
    dockerfile = (FUNCTIONS / name / "Dockerfile").read_text("utf-8")
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith("#")]

    # A base given as a build argument (PYTHON_IMAGE, for ARM) counts by its default;
    # `--platform=$BUILDPLATFORM` only says where a stage runs.
    defaults = dict(
        line.removeprefix("ARG ").split("=", 1)
        for line in instructions
        if line.startswith("ARG ") and "=" in line
    )
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], words[0])
        for line in instructions
        if line.startswith("FROM ")
        for words in [[w for w in line.split()[1:] if not w.startswith("--platform=")]]
    ]
    assert bases and all(base.startswith("python:3.12-slim") for base in bases), bases
    user = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in {"0", "root"}
    assert "EXPOSE 9999" in instructions
    cmd = next(line for line in instructions if line.startswith("CMD "))
    assert json.loads(cmd.removeprefix("CMD ")) == ["python", "/app/function.py"]  # exec form
    assert f"docker build -f examples/functions/{name}/Dockerfile" in dockerfile
    assert re.search(r"pip install --no-cache-dir --no-deps", dockerfile)
    ignore = (FUNCTIONS / name / "Dockerfile.dockerignore").read_text("utf-8").splitlines()
    assert f"!examples/functions/{name}/" in ignore and "!dispatch/" in ignore


# --- the sample requests ---------------------------------------------------------

# file -> (request type, intent name or None)
SAMPLE_REQUESTS = {
    "space-count.json": ("IntentRequest", "SpaceCountIntent"),
    "space-count-no-context.json": ("IntentRequest", "SpaceCountIntent"),
    "launch.json": ("LaunchRequest", None),
    "hello-name.json": ("IntentRequest", "HelloIntent"),
    "hostname.json": ("IntentRequest", "HostnameIntent"),
    "captains.json": ("IntentRequest", "CaptainsIntent"),
    "help.json": ("IntentRequest", "AMAZON.HelpIntent"),
    "session-ended.json": ("SessionEndedRequest", None),
    "audioplayer-started.json": ("AudioPlayer.PlaybackStarted", None),
}


def test_every_sample_request_is_listed_here():
    assert {path.name for path in REQUESTS.glob("*.json")} == set(SAMPLE_REQUESTS)


@pytest.mark.parametrize("name", sorted(SAMPLE_REQUESTS))
def test_sample_request_deserializes_with_the_ask_sdk(name):
    request_type, intent = SAMPLE_REQUESTS[name]
    text = (REQUESTS / name).read_text(encoding="utf-8")
    raw = json.loads(text)

    envelope = DefaultSerializer().deserialize(text, RequestEnvelope)

    assert envelope.version == "1.0"
    assert envelope.request.object_type == request_type
    assert getattr(getattr(envelope.request, "intent", None), "name", None) == intent
    assert re.fullmatch(r"amzn1\.echo-api\.request\.[0-9a-f-]{36}", envelope.request.request_id)
    assert envelope.request.locale in {"en-US", "en-GB"}
    assert datetime.fromisoformat(raw["request"]["timestamp"]).tzinfo is not None
    # Every sample carries the embedded default's skill id wherever Alexa puts one.
    ids = []
    if envelope.session is not None:
        ids.append(envelope.session.application.application_id)
    if envelope.context is not None:
        ids.append(envelope.context.system.application.application_id)
    assert ids and set(ids) == {DEVELOPMENT_SKILL_ID}


def test_the_seed_request_is_en_gb_with_full_context():
    envelope = DefaultSerializer().deserialize(
        (REQUESTS / "space-count.json").read_text("utf-8"), RequestEnvelope
    )
    assert envelope.request.locale == "en-GB"
    assert envelope.session.new is True
    assert envelope.context.system.api_endpoint == "https://api.eu.amazonalexa.com"
    assert envelope.context.system.device.supported_interfaces is not None
    assert envelope.request.intent.slots == {}


def test_the_2016_style_request_is_the_seed_request_without_context():
    with_context = request_file("space-count.json")
    without = request_file("space-count-no-context.json")
    assert "context" not in without
    assert without["session"] == with_context["session"]
    assert without["request"]["intent"] == with_context["request"]["intent"]


def test_hello_sample_carries_a_matched_entity_resolution():
    envelope = DefaultSerializer().deserialize(
        (REQUESTS / "hello-name.json").read_text("utf-8"), RequestEnvelope
    )
    slot = envelope.request.intent.slots["name"]
    authority = slot.resolutions.resolutions_per_authority[0]
    assert slot.value == "Ada"
    assert authority.status.code.value == "ER_SUCCESS_MATCH"
    assert authority.values[0].value.name == "Ada"


def test_session_ended_and_audio_player_samples_are_what_alexa_sends():
    ended = request_file("session-ended.json")["request"]
    assert ended["reason"] == "USER_INITIATED"
    started = request_file("audioplayer-started.json")
    assert "session" not in started  # AudioPlayer events come outside any session
    assert started["request"]["token"] == started["context"]["AudioPlayer"]["token"]


# --- the Node hostname the stack runs ----------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_hostname_answers_as_the_python_one_does():
    folder = FUNCTIONS / "hostname" / "node"
    port = free_port()
    env = {**os.environ, "FUNKER_PORT": str(port), "FUNKER_HOST": "127.0.0.1"}
    child = subprocess.Popen(["node", "index.js"], cwd=folder, env=env)
    try:
        wait_until(lambda: child.poll() is None and accepts(port), 30, "the Node hostname")
        answer = call(Route(name="HostnameIntent", host="127.0.0.1", port=port), {}, timeout=10)
    finally:
        child.kill()
        child.wait()
    assert answer == load_function("hostname").handle({})  # same machine, same name
