"""simulate and dialog end to end: utterance → signed request → real server → example function."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from funker_dispatch.devtools.conversation import HttpEndpoint, Transcript, dialog
from funker_dispatch.devtools.simulator import load_interaction_model
from skill.settings import DEVELOPMENT_SKILL_ID
from tests.e2e.conftest import free_port, trusted_config, wait_until
from verification.devca import DevCA

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "functions"
FUNCTIONS = {
    "SpaceCountIntent": "spacecount",
    "HelloIntent": "hello",
    "HostnameIntent": "hostname",
    "CaptainsIntent": "captains",
}
CAPTAINS_ROUTE_EXTRA = (
    'arguments = ["session", "request", "version"]\n'
    'speech = "There are {total_captains} Docker captains."\n'
)


@pytest.fixture(scope="module")
def dev_ca_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("simulate-devca")


@pytest.fixture(scope="module")
def dev_ca(dev_ca_home: Path) -> DevCA:
    # Overrides conftest's: the CLI runs as a child process and finds this CA
    # through $FUNKER_DISPATCH_HOME, so its home must be known.
    return DevCA.load_or_create(dev_ca_home)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def example_ports() -> Iterator[dict[str, int]]:
    """The four example functions as real processes on free loopback ports."""
    ports: dict[str, int] = {}
    children = []
    for intent, folder in FUNCTIONS.items():
        port = free_port()
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(EXAMPLES / folder / "function.py"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ]
            )
        )
        ports[intent] = port
    try:
        for intent, port in ports.items():
            wait_until(lambda port=port: _accepts(port), 15, f"{intent}'s function to listen")
        yield ports
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(timeout=10)


def example_routes(ports: dict[str, int]) -> str:
    routes = ""
    for intent, port in ports.items():
        routes += f'\n[intents.{intent}]\nhost = "127.0.0.1"\nport = {port}\n'
        if intent == "CaptainsIntent":
            routes += CAPTAINS_ROUTE_EXTRA
    return routes


@pytest.fixture
def server(start_server, example_ports):
    return start_server(example_routes(example_ports))


def cli(*args: str, home: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FUNKER_DISPATCH_HOME": str(home), "COLUMNS": "200"}
    environment.pop("FUNKER_DISPATCH_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "funker_dispatch", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=60,
    )


def test_simulate_speaks_the_functions_answer_and_shows_its_card(server, dev_ca_home):
    done = cli(
        "simulate", "Say hello to Amazing Grace!", "--url", server.url + "/", home=dev_ca_home
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "alexa Hello, Grace!" in done.stdout
    assert "HelloIntent name='Amazing Grace' → Grace" in done.stdout
    assert "Hello" in done.stdout.split("alexa", 1)[1]  # the card's title
    request_log = server.wait_for_log('"intent":"HelloIntent"')
    assert '"outcome":"ok"' in request_log


def test_simulate_the_seed_request(server, dev_ca_home):
    done = cli("simulate", "how many people are in space", "--url", server.url, home=dev_ca_home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "people in space" in done.stdout.lower()


def test_simulate_sends_a_recorded_request_file_stamped_now_and_signed(server, dev_ca_home):
    done = cli(
        "simulate",
        "--request",
        "examples/requests/space-count.json",
        "--url",
        server.url,
        home=dev_ca_home,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "people in space" in done.stdout.lower()
    server.wait_for_log('"intent":"SpaceCountIntent"')


@pytest.mark.parametrize(
    ("envelope", "missing"),
    [
        ({"foo": 1}, '"request"'),
        ({"request": "LaunchRequest"}, '"request"'),
        ({"request": {"intent": {"name": "HelloIntent"}}}, '"type"'),
        ({"request": {"type": 7}}, '"type"'),
    ],
)
def test_simulate_refuses_a_request_file_without_a_request_type(
    dev_ca_home, tmp_path, envelope, missing
):
    recorded = tmp_path / "broken.json"
    recorded.write_text(json.dumps(envelope))
    # Nothing listens there: a refusal must come before anything is sent.
    url = f"http://127.0.0.1:{free_port()}/"
    done = cli("simulate", "--request", str(recorded), "--url", url, home=dev_ca_home)
    assert done.returncode == 2, done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert "broken.json" in done.stderr and missing in done.stderr


def test_simulate_a_request_file_whose_intent_request_has_no_intent(server, dev_ca_home, tmp_path):
    envelope = json.loads((ROOT / "examples/requests/space-count.json").read_text())
    del envelope["request"]["intent"]
    recorded = tmp_path / "no-intent.json"
    recorded.write_text(json.dumps(envelope))
    done = cli("simulate", "--request", str(recorded), "--url", server.url, home=dev_ca_home)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1)
    assert "IntentRequest" in done.stdout


def test_simulate_json_prints_the_request_and_the_response(server, dev_ca_home):
    done = cli(
        "simulate",
        "say hello to Maggie",
        "--json",
        "--locale",
        "en-GB",
        "--url",
        server.url,
        home=dev_ca_home,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    sent = document["request"]
    assert sent["request"]["locale"] == "en-GB"
    assert sent["session"]["new"] is True
    slot = sent["request"]["intent"]["slots"]["name"]
    resolution = slot["resolutions"]["resolutionsPerAuthority"][0]
    assert resolution["authority"] == (
        f"amzn1.er-authority.echo-sdk.{DEVELOPMENT_SKILL_ID}.FriendName"
    )
    assert resolution["values"] == [{"value": {"name": "Margaret", "id": "MARGARET"}}]
    assert document["status"] == 200
    speech = document["response"]["response"]["outputSpeech"]
    assert speech == {"type": "PlainText", "text": "Hello, Margaret!"}


def test_simulate_an_intent_with_slots_skips_matching(server, dev_ca_home):
    done = cli(
        "simulate",
        "--intent",
        "HelloIntent",
        "--slot",
        "name=Linus Torvalds",
        "--url",
        server.url,
        home=dev_ca_home,
    )
    assert done.returncode == 0, done.stderr
    assert "alexa Hello, Linus!" in done.stdout


def test_simulate_the_data_route_through_its_template(server, dev_ca_home):
    done = cli("simulate", "docker captains", "--url", server.url, home=dev_ca_home)
    assert done.returncode == 0, done.stderr
    assert "Docker captains." in done.stdout


def test_simulate_launch_welcomes(server, dev_ca_home):
    done = cli("simulate", "--launch", "--url", server.url, home=dev_ca_home)
    assert done.returncode == 0, done.stderr
    assert "alexa Welcome" in done.stdout
    assert "reprompt:" in done.stdout


def test_simulate_end_sends_a_session_ended_request(server, dev_ca_home):
    done = cli("simulate", "--end", "--url", server.url, home=dev_ca_home)
    assert done.returncode == 0, done.stderr
    assert "SessionEndedRequest" in done.stdout


def test_a_request_signed_by_another_ca_is_refused_and_the_error_printed(server, tmp_path_factory):
    stranger = tmp_path_factory.mktemp("stranger-ca")
    done = cli("simulate", "say hello", "--url", server.url, home=stranger)
    assert done.returncode == 1
    assert "HTTP 400" in done.stdout
    assert '"error"' in done.stdout


def test_an_unmatched_utterance_is_the_fallback_intent_and_names_the_nearest_samples(
    server, dev_ca_home
):
    done = cli(
        "simulate", "how many persons are up in space", "--url", server.url, home=dev_ca_home
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "AMAZON.FallbackIntent" in done.stdout
    assert "no sample matched; nearest: 'how many people are in space'" in done.stdout


def test_without_a_fallback_intent_an_unmatched_utterance_exits_non_zero(dev_ca_home, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(ROOT / "interaction_models", models)
    for path in (models / "interactionModels" / "custom").glob("*.json"):
        document = json.loads(path.read_text())
        language = document["interactionModel"]["languageModel"]
        language["intents"] = [
            i for i in language["intents"] if i["name"] != "AMAZON.FallbackIntent"
        ]
        path.write_text(json.dumps(document))
    config = tmp_path / "dispatch.toml"
    config.write_text(f'[skill]\ninteraction_models = "{models}"\n')
    done = cli(
        "simulate", "how many persons are up in space", "--config", str(config), home=dev_ca_home
    )
    assert done.returncode == 1
    assert "no match" in done.stdout
    assert "how many people are in space" in done.stdout


def test_nothing_listening_says_to_start_the_server(dev_ca_home):
    url = f"http://127.0.0.1:{free_port()}/"
    done = cli("simulate", "say hello", "--url", url, home=dev_ca_home)
    assert done.returncode == 2
    assert done.stderr == (
        f"funker-dispatch simulate: {url}: connection refused"
        " — is `make run` (funker-dispatch serve) running?\n"
    )


def test_in_process_runs_the_app_without_a_server(example_ports, dev_ca, dev_ca_home, tmp_path):
    config = tmp_path / "dispatch.toml"
    config.write_text(trusted_config(dev_ca, tmp_path) + example_routes(example_ports))
    done = cli(
        "simulate",
        "say hello to ada lovelace",
        "--in-process",
        "--config",
        str(config),
        home=dev_ca_home,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "alexa Hello, Ada!" in done.stdout


# --- dialog --------------------------------------------------------------------


def test_a_name_asked_for_is_the_next_answer_as_on_a_device(server, dev_ca):
    # The example asks with Dialog.ElicitSlot: "grace" alone fills the slot it asked for,
    # where a device's answer would otherwise be the fallback intent.
    code, _, turns = dialog(
        HttpEndpoint(server.url + "/"),
        load_interaction_model("en-US"),
        dev_ca.sign,
        DEVELOPMENT_SKILL_ID,
        ["say hello", "grace"],
        transcript=Transcript(open(os.devnull, "w")),  # noqa: SIM115
    )
    assert code == 0
    asked, answered = turns
    assert asked.speech == "Hello! Who should I say hello to?" and not asked.ends_session
    assert answered.request["request"]["intent"]["name"] == "HelloIntent"
    assert answered.request["request"]["dialogState"] == "IN_PROGRESS"
    assert answered.speech == "Hello, Grace!"


def test_dialog_keeps_one_session_and_carries_session_attributes(server, dev_ca):
    lines = ["open funker dispatch", "say hello", "it's Ada"]
    code, conversation, turns = dialog(
        HttpEndpoint(server.url + "/"),
        load_interaction_model("en-US"),
        dev_ca.sign,
        DEVELOPMENT_SKILL_ID,
        lines,
        transcript=Transcript(open(os.devnull, "w")),  # noqa: SIM115
    )
    assert code == 0
    assert [t.request["request"]["type"] for t in turns] == [
        "LaunchRequest",
        "IntentRequest",
        "IntentRequest",
    ]
    sessions = [t.request["session"] for t in turns]
    assert len({s["sessionId"] for s in sessions}) == 1
    assert [s["new"] for s in sessions] == [True, False, False]
    # The hello function asked for a name and stored that it did; Alexa sends it back.
    assert turns[1].speech == "Hello! Who should I say hello to?"
    assert turns[1].response["sessionAttributes"] == {"asked_name": True}
    assert sessions[2]["attributes"] == {"asked_name": True}
    assert turns[2].speech == "Hello, Ada!"
    assert turns[2].ends_session
    assert conversation.ended


def test_dialog_script_prints_the_transcript(server, dev_ca_home, tmp_path):
    script = tmp_path / "hello.txt"
    script.write_text(
        "# a conversation with the hello function\n"
        "open funker dispatch\n"
        "\n"
        "say hello\n"
        "it's Grace Hopper\n"
        "how many people are in space\n"
    )
    done = cli("dialog", "--script", str(script), "--url", server.url, home=dev_ca_home)
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert out.index("you   open funker dispatch") < out.index("alexa Welcome")
    assert "alexa Hello! Who should I say hello to?" in out
    assert "alexa Hello, Grace!" in out
    assert "(session ended)" in out
    # The session ended with the greeting: the last line was not played.
    assert "1 utterance(s) not played" in out
    assert "you   how many people are in space" not in out


def test_dialog_ending_on_eof_sends_session_ended(server, dev_ca_home, tmp_path):
    script = tmp_path / "open.txt"
    script.write_text("open funker dispatch\nhelp\n")
    done = cli("dialog", "--script", str(script), "--url", server.url, home=dev_ca_home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "AMAZON.HelpIntent" in done.stdout
    assert "SessionEndedRequest" in done.stdout


def test_dialog_reads_utterances_typed_at_the_prompt(server, dev_ca_home):
    environment = {**os.environ, "FUNKER_DISPATCH_HOME": str(dev_ca_home), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "funker_dispatch", "dialog", "--url", server.url],
        input="say hello\nit's Ada\n",
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "alexa Hello, Ada!" in done.stdout
