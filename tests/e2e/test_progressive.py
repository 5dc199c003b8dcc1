"""Progressive responses end to end (docs/alexa.md): a real server, real slow functions, a real API.

Alexa's directive API is a real HTTP server on loopback (tests/alexa_api.py),
listed in the server's `[dispatch] progressive_hosts`; requests name it as
their `apiEndpoint`. Functions answer after 2 s; progressive responses are due
after 0.5 s. Nothing here can reach Amazon: the only requests naming Alexa's
real API carry no token, and the development tools replace it with their own.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.alexa_api import AlexaApiStandIn
from tests.e2e.conftest import Answer, Server, envelope, free_port, intent, wait_until
from verification.devca import DevCA

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "functions"
TOKEN = "e2e-token-6b1f"
WAITING = "Sorry to keep you waiting."


@pytest.fixture(scope="module")
def dev_ca_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("progressive-devca")


@pytest.fixture(scope="module")
def dev_ca(dev_ca_home: Path) -> DevCA:
    # Overrides conftest's: simulate and dialog run as child processes and find this CA
    # through $FUNKER_DISPATCH_HOME, so its home must be known.
    return DevCA.load_or_create(dev_ca_home)


@pytest.fixture(scope="module")
def apis() -> Iterator[dict[str, AlexaApiStandIn]]:
    """One stand-in for Alexa's API per behaviour, shared by the module's server."""
    stand_ins = {mode: AlexaApiStandIn(mode) for mode in ("ok", "error", "hang")}
    yield stand_ins
    for stand_in in stand_ins.values():
        stand_in.close()


@pytest.fixture
def api(apis: dict[str, AlexaApiStandIn]) -> Iterator[Callable[[str], AlexaApiStandIn]]:
    """A stand-in with nothing received yet, noting whether the answer came before each POST."""

    def get(mode: str = "ok") -> AlexaApiStandIn:
        stand_in = apis[mode]
        stand_in.posts.clear()
        stand_in.answered = threading.Event()
        stand_in.release.clear()
        return stand_in

    yield get
    for stand_in in apis.values():
        stand_in.release.set()  # a hung POST of this test ends here


@pytest.fixture(scope="module")
def server(start_server, function_process, apis) -> Server:
    slow, fast = function_process("slow"), function_process("short")
    routes = (
        f'[intents.SlowIntent]\nhost = "127.0.0.1"\nport = {slow}\n\n'
        f'[intents.FastIntent]\nhost = "127.0.0.1"\nport = {fast}\n\n'
        f'[intents.LookupIntent]\nhost = "127.0.0.1"\nport = {slow}\n'
        'progressive = "Let me look that up."\n\n'
        f'[intents.QuietIntent]\nhost = "127.0.0.1"\nport = {slow}\nprogressive_after = 0\n\n'
        # The POST to a hanging API ends with the call's deadline, 2 s after the answer.
        f'[intents.HangIntent]\nhost = "127.0.0.1"\nport = {slow}\ntimeout = 4.0\n\n'
        f'[intents.LaunchRequest]\nhost = "127.0.0.1"\nport = {slow}\n\n'
        f'[intents.CanFulfillIntentRequest]\nhost = "127.0.0.1"\nport = {slow}\n'
    )
    origins = ",".join(stand_in.url for stand_in in apis.values())
    return start_server(
        routes,
        env={
            "FUNKER_DISPATCH_PROGRESSIVE_AFTER": "0.5",
            "FUNKER_DISPATCH_PROGRESSIVE_HOSTS": origins,
        },
    )


def calling(api_url: str | None, body: dict[str, Any], token: str | None = TOKEN) -> dict:
    system = body["context"]["System"]
    system.pop("apiEndpoint", None)
    if api_url is not None:
        system["apiEndpoint"] = api_url
    if token is not None:
        system["apiAccessToken"] = token
    return body


def spoken(answer: Answer) -> str:
    speech = answer.json["response"]["outputSpeech"]
    return speech.get("ssml") or speech.get("text") or ""


def progressive_counts(server: Server) -> dict[str, float]:
    with urllib.request.urlopen(server.admin_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r'funker_dispatch_progressive_total\{outcome="(\w+)"\} (\S+)', text)
    return {outcome: float(value) for outcome, value in found}


def counted(server: Server, before: dict[str, float]) -> dict[str, float]:
    after = progressive_counts(server)
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


@pytest.mark.parametrize(
    ("body", "speech"),
    [
        (lambda: intent("SlowIntent", locale="en-GB"), "<speak>One moment.</speak>"),
        (lambda: intent("SlowIntent", locale="de-DE"), "<speak>Einen Moment.</speak>"),
        (lambda: intent("LookupIntent", locale="en-US"), "<speak>Let me look that up.</speak>"),
        (lambda: envelope({"type": "LaunchRequest"}), "<speak>One moment.</speak>"),
    ],
    ids=["en-GB", "de-DE", "route-text", "launch"],
)
def test_a_slow_function_earns_exactly_one_progressive_response_then_its_answer(
    server, api, signed, body, speech
):
    stand_in = api()
    request = calling(stand_in.url, body())
    before = progressive_counts(server)

    answer = signed(server.url, request)
    stand_in.answered.set()

    assert answer.status == 200, answer.body
    assert WAITING in spoken(answer)
    (post,) = stand_in.posts  # sent 0.5 s in, long before the 2 s answer: already here
    assert post.answer_had_arrived is False
    assert post.path == "/v1/directives"
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"
    assert post.json == {
        "header": {"requestId": request["request"]["requestId"]},
        "directive": {"type": "VoicePlayer.Speak", "speech": speech},
    }
    wait_until(lambda: counted(server, before) == {"sent": 1}, 30, "sent to be counted")


def test_a_fast_function_earns_none(server, api, signed):
    stand_in = api()
    before = progressive_counts(server)
    fast = signed(server.url, calling(stand_in.url, intent("FastIntent")))
    assert fast.status == 200
    # A slow request after it: when its POST has arrived, the fast one's was long due.
    slow = calling(stand_in.url, intent("SlowIntent"))
    assert signed(server.url, slow).status == 200
    (post,) = stand_in.posts
    assert post.json["header"]["requestId"] == slow["request"]["requestId"]
    wait_until(lambda: counted(server, before) == {"sent": 1}, 30, "one sent, nothing else")


def test_a_route_with_progressive_after_zero_earns_none(server, api, signed):
    stand_in = api()
    before = progressive_counts(server)
    answer = signed(server.url, calling(stand_in.url, intent("QuietIntent")))
    assert WAITING in spoken(answer)
    assert stand_in.posts == []
    assert counted(server, before) == {}


@pytest.mark.parametrize(
    ("body", "api_url", "token", "why"),
    [
        (lambda: intent("SlowIntent"), None, TOKEN, "no apiEndpoint"),
        (lambda: intent("SlowIntent"), "ok", None, "no usable apiAccessToken"),
        (
            lambda: envelope(
                {"type": "CanFulfillIntentRequest", "intent": {"name": "SlowIntent", "slots": {}}}
            ),
            "ok",
            TOKEN,
            "a CanFulfillIntentRequest takes no progressive response",
        ),
    ],
    ids=["no-api-endpoint", "no-token", "can-fulfill"],
)
def test_a_request_that_cannot_have_one_gets_none_and_is_counted_skipped(
    server, api, signed, body, api_url, token, why
):
    stand_in = api()
    before = progressive_counts(server)
    request = calling(stand_in.url if api_url else None, body(), token)

    answer = signed(server.url, request)

    assert answer.status == 200, answer.body
    assert stand_in.posts == []
    assert counted(server, before) == {"skipped": 1}
    log = server.wait_for_log(f"request_id={request['request']['requestId']} route=")
    line = next(x for x in log.splitlines() if request["request"]["requestId"] in x and "skip" in x)
    assert "reason=progressive-skipped" in line and why in line


@pytest.mark.parametrize(
    ("mode", "detail"),
    [("hang", "no answer within"), ("error", "HTTP 500")],
)
def test_an_api_that_hangs_or_fails_never_holds_up_the_answer(server, api, signed, mode, detail):
    stand_in = api(mode)
    request = calling(stand_in.url, intent("HangIntent"), token="secret-e2e-token")
    request_id = request["request"]["requestId"]
    before = progressive_counts(server)

    answer = signed(server.url, request)
    stand_in.answered.set()

    assert answer.status == 200
    assert WAITING in spoken(answer)  # the function's answer, not an apology
    (post,) = stand_in.posts
    assert post.answer_had_arrived is False
    if mode == "hang":
        assert not stand_in.release.is_set()  # the POST was still unanswered: not waited for
    log = server.wait_for_log(f"progressive response failed: request_id={request_id}", 10)
    (line,) = [x for x in log.splitlines() if f"failed: request_id={request_id}" in x]
    assert "reason=progressive-failed" in line
    assert detail in line
    assert "secret-e2e-token" not in log
    wait_until(lambda: counted(server, before) == {"failed": 1}, 30, "failed to be counted")


@pytest.mark.parametrize("where", ["loopback", "evil"])
def test_an_api_endpoint_not_allowed_is_never_posted_to(server, api, signed, where):
    stand_in = api()
    before = progressive_counts(server)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        api_url = {
            "loopback": f"http://127.0.0.1:{listener.getsockname()[1]}",
            "evil": "https://evil.example",
        }[where]
        request = calling(api_url, intent("SlowIntent"))

        answer = signed(server.url, request)

        assert WAITING in spoken(answer)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # due 1.5 s before the answer, and nothing ever connected
    assert stand_in.posts == []
    assert counted(server, before) == {"skipped": 1}
    log = server.wait_for_log("is not an allowed origin")
    assert api_url in log


# --- the development loop: simulate and dialog show it -----------------------------------


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    environment.update({"COLUMNS": "200", **env})
    return subprocess.run(
        [sys.executable, "-m", "funker_dispatch", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
    )


@pytest.fixture(scope="module")
def slow_spacecount() -> Iterator[int]:
    """The example spacecount function, slow on purpose (SPACECOUNT_DELAY)."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "spacecount" / "function.py"), "--port", str(port)],
        env={**os.environ, "SPACECOUNT_DELAY": "1.5", "SPACECOUNT_URL": ""},
    )

    def listening() -> bool:
        assert child.poll() is None, "spacecount exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_until(listening, 15, "spacecount to listen")
    yield port
    child.terminate()
    child.wait(timeout=10)


@pytest.fixture(scope="module")
def dev_loop(start_server, slow_spacecount, dev_ca_home) -> tuple[Server, dict[str, str]]:
    """A server whose progressive hosts list the tools' stand-in, and the tools' environment."""
    tools_api = f"http://127.0.0.1:{free_port()}"
    server = start_server(
        f'[intents.SpaceCountIntent]\nhost = "127.0.0.1"\nport = {slow_spacecount}\n',
        env={
            "FUNKER_DISPATCH_PROGRESSIVE_AFTER": "0.5",
            "FUNKER_DISPATCH_PROGRESSIVE_HOSTS": tools_api,
        },
    )
    # The tools load the embedded default plus this environment: they listen on tools_api.
    tools = {
        "FUNKER_DISPATCH_HOME": str(dev_ca_home),
        "FUNKER_DISPATCH_PROGRESSIVE_HOSTS": tools_api,
    }
    return server, tools


def test_dialog_prints_the_progressive_response_before_the_answer(dev_loop, tmp_path):
    server, env = dev_loop
    script = tmp_path / "space.txt"
    script.write_text("open funker dispatch\nhow many people are in space\n")

    done = cli("dialog", "--script", str(script), "--url", server.url, env=env)

    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "alexa (progressive) One moment." in out
    assert out.index("alexa (progressive) One moment.") < out.index("alexa There are")
    assert out.index("you   how many people are in space") < out.index("(progressive)")
    assert out.count("(progressive)") == 1  # the welcome was quick


def test_simulate_json_carries_the_progressive_response_in_the_turn(dev_loop):
    server, env = dev_loop
    done = cli("simulate", "how many people are in space", "--json", "--url", server.url, env=env)
    assert done.returncode == 0, done.stderr
    turn = json.loads(done.stdout)
    assert turn["progressive"] == [
        {"type": "VoicePlayer.Speak", "speech": "<speak>One moment.</speak>"}
    ]
    system = turn["request"]["context"]["System"]
    assert system["apiEndpoint"] == env["FUNKER_DISPATCH_PROGRESSIVE_HOSTS"]
    assert system["apiAccessToken"].startswith("dev-")


def test_a_replayed_sample_request_reaches_the_local_api_not_amazons(dev_loop):
    server, env = dev_loop
    sample = ROOT / "examples" / "requests" / "space-count.json"
    assert "amazonalexa.com" in json.loads(sample.read_text())["context"]["System"]["apiEndpoint"]

    done = cli("simulate", "--request", str(sample), "--json", "--url", server.url, env=env)

    assert done.returncode == 0, done.stderr
    turn = json.loads(done.stdout)
    assert (
        turn["request"]["context"]["System"]["apiEndpoint"]
        == env["FUNKER_DISPATCH_PROGRESSIVE_HOSTS"]
    )
    assert [d["speech"] for d in turn["progressive"]] == ["<speak>One moment.</speak>"]


def test_simulate_of_a_quick_answer_prints_no_progressive_line(dev_loop):
    server, env = dev_loop
    done = cli("simulate", "--launch", "--url", server.url, env=env)
    assert done.returncode == 0, done.stderr
    assert "alexa Welcome" in done.stdout
    assert "(progressive)" not in done.stdout


def test_the_embedded_default_shows_one_with_its_slow_spacecount(tmp_path):
    """`make run` + `dialog`: spacecount takes 2 s and "One moment." comes first."""
    tools_api = f"http://127.0.0.1:{free_port()}"  # instead of the fixed SIMULATOR_API_ORIGIN
    env = {"FUNKER_DISPATCH_HOME": str(tmp_path), "FUNKER_DISPATCH_PROGRESSIVE_HOSTS": tools_api}
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    environment.pop("SPACECOUNT_DELAY", None)
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "funker_dispatch", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        # No admin listener: port + 1 of a free port need not be free.
        env={**environment, **env, "FUNKER_DISPATCH_SERVER_ADMIN_PORT": "0"},
    )
    try:

        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(healthy, 30, "the embedded default to start")
        script = tmp_path / "space.txt"
        script.write_text("how many people are in space\n")
        done = cli("dialog", "--script", str(script), "--url", f"http://127.0.0.1:{port}/", env=env)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert out.index("alexa (progressive) One moment.") < out.index("alexa There are")
