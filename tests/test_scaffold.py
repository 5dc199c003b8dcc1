"""`funker-dispatch new`: a project, and functions in it, in Python and Node.

The files are checked as their readers would: the TOML by `load_settings`, the model by
`models check`'s own checker, the stack by a YAML parser, the Dockerfiles by hadolint,
and each function's protocol helper by running it as a real process and calling it
with the dispatcher's own client.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatch.funker import FunctionError, call
from dispatch.registry import Route, Router
from funker_dispatch.devtools.modelcheck import check_models
from funker_dispatch.devtools.scaffold import ScaffoldError, new_function, new_project
from skill.settings import load_settings
from tests.helpers import accepts, free_port, wait_until
from tests.test_deploy import hadolint

NODE = shutil.which("node")


def run_new(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "funker_dispatch", "new", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "myskill"
    new_project(folder)
    return folder


def model(project: Path) -> dict:
    path = project / "interaction_models/interactionModels/custom/en-US.json"
    return json.loads(path.read_text())["interactionModel"]["languageModel"]


def test_a_new_project_loads_checks_and_routes_hello_to_its_function(project, monkeypatch):
    monkeypatch.chdir(project)
    settings = load_settings(environ={})  # ./dispatch.toml
    assert settings.skill.development and settings.console.enabled
    (hello,) = settings.functions
    assert hello.name == "hello" and hello.command == ("python", "function.py")
    assert settings.routes["HelloIntent"].port == hello.port
    report = check_models(settings.skill.models_dir, Router(settings.routes))
    assert report.errors == [] and report.warnings == [], report
    intents = {intent["name"]: intent for intent in model(project)["intents"]}
    (name,) = intents["HelloIntent"]["slots"]
    assert (name["name"], name["type"]) == ("name", "AMAZON.FirstName")
    assert "{name}" in name["samples"]  # what a user answers when it is elicited
    assert "AMAZON.FallbackIntent" in intents and "AMAZON.NavigateHomeIntent" in intents
    for path in ("tests/hello.yml", "README.md", "deploy.toml", ".gitignore"):
        assert (project / path).is_file(), path


def test_new_refuses_a_folder_that_is_not_empty_and_a_name_docker_refuses(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ScaffoldError, match="not empty"):
        new_project(tmp_path / "full")
    with pytest.raises(ScaffoldError, match="lower-case"):
        new_project(tmp_path / "My_Skill")
    assert not (tmp_path / "My_Skill").exists()


def test_a_node_function_with_an_intent_is_added_everywhere_it_belongs(project):
    created = new_function(
        project,
        "weather",
        "node",
        intent="WeatherIntent",
        utterances=["what is the weather in {city}", "what is the weather"],
        slots={"city": "AMAZON.US_CITY"},
    )
    folder = project / "functions" / "weather"
    assert {p.name for p in created.files} == {
        "index.js",
        "protocol.js",
        "package.json",
        "Dockerfile",
        ".dockerignore",
    }
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in created.files)
    weather = next(i for i in model(project)["intents"] if i["name"] == "WeatherIntent")
    assert weather["samples"] == ["what is the weather in {city}", "what is the weather"]
    assert weather["slots"] == [{"name": "city", "type": "AMAZON.US_CITY"}]

    settings = load_settings(project / "dispatch.toml", environ={})
    functions = {f.name: f for f in settings.functions}
    assert functions["weather"].command == ("node", "index.js")
    assert settings.routes["WeatherIntent"].port == functions["weather"].port
    assert check_models(settings.skill.models_dir, Router(settings.routes)).errors == []

    production = load_settings(project / "deploy.toml", environ={})
    assert production.routes["WeatherIntent"].host == "weather"  # the swarm service
    assert not production.functions and not production.skill.development

    stack = yaml.safe_load((project / "docker-stack.yml").read_text())
    assert stack["services"]["weather"]["build"] == "functions/weather"
    assert stack["services"]["weather"]["image"] == "${REGISTRY:-}myskill/weather:${TAG:-latest}"
    assert stack["services"]["weather"]["networks"] == ["funker"]  # from the shared anchor
    assert set(stack["services"]) == {"dispatcher", "hello", "weather"}


def test_a_function_without_an_intent_is_only_created_and_registered(project):
    new_function(project, "pushes", "python")
    settings = load_settings(project / "dispatch.toml", environ={})
    assert "pushes" in {f.name for f in settings.functions}
    assert "pushes" in yaml.safe_load((project / "docker-stack.yml").read_text())["services"]
    assert [i["name"] for i in model(project)["intents"] if not i["name"].startswith("AMAZON")] == [
        "HelloIntent"
    ]


@pytest.mark.parametrize(
    "name, kwargs, says",
    [
        ("hello", {}, "functions/hello exists already"),
        ("greet", {"intent": "HelloIntent"}, "HelloIntent is in en-US.json already"),
        ("Bad_Name", {}, "lower-case letters"),
        ("w", {"intent": "W", "utterances": ["in {city}"]}, "declare it with --slot city:TYPE"),
        ("w", {"intent": "W", "slots": {"city": "CityType"}}, "AMAZON.* or a type of the model"),
        ("w", {"utterances": ["hi"]}, "go with --intent"),
        ("w", {"intent": "Not-An-Intent"}, "letters and underscores"),
    ],
)
def test_what_cannot_be_added_is_refused_naming_it_and_nothing_changes(project, name, kwargs, says):
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    with pytest.raises(ScaffoldError, match=says.replace("*", r"\*").replace(".", r"\.")):
        new_function(project, name, "python", **kwargs)
    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert after == before


def test_new_function_outside_a_project_says_where_to_run_it(tmp_path):
    done = run_new(tmp_path, "function", "weather")
    assert done.returncode == 2
    assert "run this in a project (funker-dispatch new DIR)" in done.stderr


def test_the_command_line_makes_a_project_and_a_function_and_says_what_next(tmp_path):
    done = run_new(tmp_path, "myskill")
    assert done.returncode == 0, done.stderr
    assert "created  myskill/functions/hello/function.py" in done.stdout
    assert "funker-dispatch serve" in done.stdout
    done = run_new(
        tmp_path / "myskill",
        "function",
        "weather",
        "--lang",
        "node",
        "--intent",
        "WeatherIntent",
        "--utterance",
        "what is the weather",
    )
    assert done.returncode == 0, done.stderr
    assert "changed  dispatch.toml: [functions.weather], [intents.WeatherIntent]" in done.stdout
    assert run_new(tmp_path, "myskill").returncode == 2  # not empty any more
    bad_slot = run_new(tmp_path / "myskill", "function", "x", "--intent", "X", "--slot", "city")
    assert bad_slot.returncode == 2 and "is NAME:TYPE" in bad_slot.stderr


def test_every_generated_dockerfile_passes_hadolint(project):
    new_function(project, "weather", "node")
    for dockerfile in (project / "functions").glob("*/Dockerfile"):
        result = subprocess.run(
            [hadolint(), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, (dockerfile, result.stdout + result.stderr)


# --- the protocol helpers, as real processes -------------------------------------------


@pytest.fixture
def started() -> Iterator[callable]:
    children: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], folder: Path) -> int:
        port = free_port()
        env = {**os.environ, "FUNKER_PORT": str(port), "FUNKER_HOST": "127.0.0.1"}
        # A clean PYTHONPATH: the folder must not lean on this repository.
        env.pop("PYTHONPATH", None)
        children.append(subprocess.Popen(argv, cwd=folder, env=env))
        wait_until(lambda: children[-1].poll() is None and accepts(port), 30, "the function")
        return port

    yield start
    for child in children:
        child.kill()
        child.wait()


LANGUAGE_RUNS = [
    pytest.param("python", [sys.executable, "function.py"], id="python"),
    pytest.param(
        "node",
        ["node", "index.js"],
        id="node",
        marks=pytest.mark.skipif(NODE is None, reason="node is not installed"),
    ),
]


def hello_ada() -> dict:
    return {
        "request": {
            "type": "IntentRequest",
            "intent": {"name": "W", "slots": {"city": {"name": "city", "value": "Paris"}}},
        }
    }


@pytest.mark.parametrize("language, argv", LANGUAGE_RUNS)
def test_a_generated_function_answers_through_the_real_protocol(project, started, language, argv):
    new_function(project, "w", language, intent="W", slots={"city": "AMAZON.US_CITY"})
    port = started(argv, project / "functions" / "w")
    route = Route(name="W", host="127.0.0.1", port=port)
    assert call(route, hello_ada(), timeout=10) == {"speech": "This is w, with city Paris."}


@pytest.mark.parametrize("language, argv", LANGUAGE_RUNS)
def test_a_handler_that_fails_gets_no_answer_and_the_next_call_is_served(
    project, started, language, argv
):
    new_function(project, "w", language)
    folder = project / "functions" / "w"
    handler = folder / ("function.py" if language == "python" else "index.js")
    text = handler.read_text()
    if language == "python":
        line = "    slots = slot_values(request)\n"
        text = text.replace(
            line, line + "    if request.get('boom'):\n        raise RuntimeError\n"
        )
    else:
        line = "  const slots = slotValues(request);\n"
        text = text.replace(line, line + "  if (request.boom) throw new Error('boom');\n")
    handler.write_text(text)
    port = started(argv, folder)
    route = Route(name="W", host="127.0.0.1", port=port)
    with pytest.raises(FunctionError) as failed:
        call(route, {"boom": True}, timeout=10)
    assert failed.value.kind == "protocol"  # closed without an answer
    assert call(route, {"request": {}}, timeout=10) == {"speech": "This is w."}
    assert accepts(port)  # a port probe is no request, and the function lives on
    assert call(route, {"request": {}}, timeout=10) == {"speech": "This is w."}


def test_the_stacks_node_example_carries_the_protocol_new_function_writes():
    # A self-contained folder holds its own copy; the copy must not drift from the template.
    root = Path(__file__).resolve().parent.parent
    example = root / "examples" / "functions" / "hostname" / "node" / "protocol.js"
    template = root / "funker_dispatch" / "devtools" / "templates" / "node" / "protocol.js"
    assert example.read_bytes() == template.read_bytes()


def test_a_python_function_stopped_answers_the_request_waiting_in_its_backlog(project):
    # A swarm update stops the old task with SIGTERM while a request, already sent, waits
    # in its listen backlog: it must be answered, not reset after it went out.
    new_function(project, "w", "python")
    folder = project / "functions" / "w"
    protocol = folder / "protocol.py"
    protocol.write_text(protocol.read_text().replace("MAX_HANDLERS = 64", "MAX_HANDLERS = 1"))
    handler = folder / "function.py"
    line = "    slots = slot_values(request)\n"
    held = "    if request.get('hold'):\n        print('held', flush=True)\n        input()\n"
    handler.write_text(handler.read_text().replace(line, line + held))
    port = free_port()
    env = {**os.environ, "FUNKER_PORT": str(port), "FUNKER_HOST": "127.0.0.1"}
    child = subprocess.Popen(
        [sys.executable, "function.py"],
        cwd=folder,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: accepts(port), 30, "the function")
        route = Route(name="W", host="127.0.0.1", port=port)
        answers: list[Any] = []
        first = threading.Thread(
            target=lambda: answers.append(call(route, {"hold": True}, timeout=60))
        )
        first.start()
        assert child.stdout.readline().strip() == "held"
        waiting = socket.create_connection(("127.0.0.1", port), timeout=60)
        waiting.sendall(json.dumps({"request": {}}).encode())
        waiting.shutdown(socket.SHUT_WR)
        stderr: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [stderr.put(line) for line in child.stderr], daemon=True
        ).start()
        child.send_signal(signal.SIGTERM)
        assert stderr.get(timeout=30).strip() == "funker: stopping"
        child.stdin.write("\n")
        child.stdin.flush()
        with waiting:
            reply = b""
            while chunk := waiting.recv(65536):
                reply += chunk
        first.join(60)
        assert json.loads(reply) == {"speech": "This is w."}
        assert answers == [{"speech": "This is w."}]
        assert child.wait(timeout=30) == 0
    finally:
        child.kill()
        child.wait()
