"""A project of your own, served from its folder: `[functions]` run, kept and reloaded.

A real `funker-dispatch serve` started in a project folder (its ./dispatch.toml, no
--config), real function processes in Python and Node, requests signed by the
development CA that `[skill] development = true` trusts, and files edited on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skill.settings import DEVELOPMENT_SKILL_ID
from tests.e2e.conftest import Answer, intent, post
from tests.helpers import free_port, stop, wait_until
from verification.devca import DevCA

PYTHON_FUNCTION = """\
from dispatch.funker import run

GREETING = "Hello"


def handle(request):
    name = request["request"]["intent"]["slots"].get("name", {}).get("value", "you")
    print(f"asked for {name}")
    return {"speech": f"{GREETING}, {name}!"}


if __name__ == "__main__":
    run(handle)
"""

NODE_FUNCTION = """\
const net = require("net");
net.createServer({ allowHalfOpen: true }, (socket) => {
  const chunks = [];
  socket.on("data", (chunk) => chunks.push(chunk));
  socket.on("end", () => {
    if (chunks.length === 0) return socket.end();
    const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    console.log("node asked", request.request.intent.name);
    socket.end(JSON.stringify({ speech: "Sunny, from Node." }));
  });
}).listen(Number(process.env.FUNKER_PORT), process.env.FUNKER_HOST);
"""

# Serves one request, then exits with status 0, as a published funker function does.
ONE_SHOT_FUNCTION = """\
import json, os, socket

with socket.create_server((os.environ["FUNKER_HOST"], int(os.environ["FUNKER_PORT"]))) as s:
    while True:
        connection, _ = s.accept()
        with connection:
            data = b"".join(iter(lambda: connection.recv(65536), b""))
            if not data:
                continue  # a port probe
            connection.sendall(json.dumps({"speech": "Once."}).encode())
            break
"""


def model(*intents: dict[str, Any]) -> dict[str, Any]:
    return {
        "interactionModel": {
            "languageModel": {
                "invocationName": "my project",
                "intents": [
                    *intents,
                    {"name": "AMAZON.StopIntent", "samples": []},
                    {"name": "AMAZON.CancelIntent", "samples": []},
                    {"name": "AMAZON.HelpIntent", "samples": []},
                ],
                "types": [],
            }
        }
    }


HELLO = {
    "name": "HelloIntent",
    "slots": [{"name": "name", "type": "AMAZON.FirstName"}],
    "samples": ["say hello to {name}"],
}
WEATHER = {"name": "WeatherIntent", "slots": [], "samples": ["what is the weather"]}
ONCE = {"name": "OnceIntent", "slots": [], "samples": ["just once"]}


@dataclass
class Project:
    folder: Path
    env: dict[str, str]
    port: int
    admin_port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def write(self, relative: str, text: str) -> Path:
        path = self.folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "funker_dispatch", *args]

    def serve(self) -> subprocess.Popen[bytes]:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command("serve"), cwd=self.folder, env=self.env, stdout=log, stderr=log
        )
        return self.process

    def wait_ready(self) -> None:
        process = self.process
        assert process is not None

        def ready() -> bool:
            assert process.poll() is None, f"serve exited:\n{self.log()}"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1
                ):
                    return True
            except OSError:
                return False

        wait_until(ready, 60, "the project's server to be ready")

    def ask(self, body: dict[str, Any]) -> Answer:
        raw = json.dumps(body).encode()
        return post(self.url + "/", raw, DevCA.load_or_create(self.home).sign(raw))

    @property
    def home(self) -> Path:
        return Path(self.env["FUNKER_DISPATCH_HOME"])


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    made: list[Project] = []

    def make(config: str, *intents: dict[str, Any]) -> Project:
        folder = tmp_path / f"project-{len(made)}"
        port, admin_port = free_port(), free_port()
        env = {
            **os.environ,
            "FUNKER_DISPATCH_HOME": str(tmp_path / "home"),
            "FUNKER_DISPATCH_SERVER_PORT": str(port),
            "FUNKER_DISPATCH_SERVER_ADMIN_PORT": str(admin_port),
            "FUNKER_DISPATCH_PROGRESSIVE_AFTER": "0",
        }
        env.pop("FUNKER_DISPATCH_CONFIG", None)
        project = Project(folder, env, port, admin_port, tmp_path / f"serve-{len(made)}.log")
        project.write("dispatch.toml", config)
        for locale in ("en-US", "en-GB"):
            project.write(
                f"interaction_models/interactionModels/custom/{locale}.json",
                json.dumps(model(*intents)),
            )
        made.append(project)
        return project

    yield make
    for project in made:
        if project.process is not None:
            stop(project.process)


DEVELOPMENT = '[skill]\ndevelopment = true\ninteraction_models = "interaction_models"\n\n'


def test_a_project_folder_serves_its_own_function_and_simulate_finds_it(make_project):
    project = make_project(
        DEVELOPMENT + '[functions.hello]\n\n[intents.HelloIntent]\nhost = "hello"\n', HELLO
    )
    project.write("functions/hello/function.py", PYTHON_FUNCTION)
    project.serve()
    project.wait_ready()

    # From the folder, with no --config and no --url: ./dispatch.toml says where.
    done = subprocess.run(
        project.command("simulate", "say hello to ada"),
        cwd=project.folder,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Hello, ada!" in done.stdout or "Hello, Ada!" in done.stdout
    wait_until(lambda: "hello | asked for" in project.log(), 30, "the function's own line")


def test_an_edited_function_answers_anew_without_a_restart(make_project):
    project = make_project(
        DEVELOPMENT + '[functions.hello]\n\n[intents.HelloIntent]\nhost = "hello"\n', HELLO
    )
    source = project.write("functions/hello/function.py", PYTHON_FUNCTION)
    project.serve()
    project.wait_ready()
    slots = {"name": {"name": "name", "value": "Ada"}}
    assert project.ask(intent("HelloIntent", slots)).speech == "Hello, Ada!"

    edited = time.monotonic()
    source.write_text(PYTHON_FUNCTION.replace('GREETING = "Hello"', 'GREETING = "Welcome"'))
    wait_until(
        lambda: project.ask(intent("HelloIntent", slots)).speech == "Welcome, Ada!",
        30,
        "the edited answer",
    )
    print(f"reload: the edited answer came {time.monotonic() - edited:.2f} s after the edit")
    assert "function hello restarted: function.py changed" in project.log()
    assert project.process is not None and project.process.poll() is None


def test_a_function_that_exits_after_each_request_is_started_again(make_project):
    project = make_project(
        DEVELOPMENT + '[functions.once]\n\n[intents.OnceIntent]\nhost = "once"\n', ONCE
    )
    project.write("functions/once/function.py", ONE_SHOT_FUNCTION)
    project.serve()
    project.wait_ready()
    for _ in range(3):
        assert project.ask(intent("OnceIntent")).speech == "Once."
    assert "function once exited with status 0; starting it again" in project.log()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_node_function_is_run_by_node(make_project):
    project = make_project(
        DEVELOPMENT + '[functions.weather]\n\n[intents.WeatherIntent]\nhost = "weather"\n',
        WEATHER,
    )
    project.write("functions/weather/index.js", NODE_FUNCTION)
    project.serve()
    project.wait_ready()
    assert project.ask(intent("WeatherIntent")).speech == "Sunny, from Node."
    wait_until(lambda: "weather | node asked WeatherIntent" in project.log(), 30, "node's line")


def test_in_development_an_intent_no_function_can_answer_stops_the_start(make_project):
    project = make_project(
        DEVELOPMENT + '[functions.hello]\n\n[intents.HelloIntent]\nhost = "hello"\n',
        HELLO,
        WEATHER,
    )
    project.write("functions/hello/function.py", PYTHON_FUNCTION)
    code = project.serve().wait(timeout=60)
    assert code != 0
    log = project.log()
    assert "WeatherIntent: its host 'WeatherIntent' (the naming convention) does not resolve" in log
    assert "funker-dispatch new function NAME --intent WeatherIntent" in log
    assert "Traceback" not in log

    checked = subprocess.run(
        project.command("check"), cwd=project.folder, env=project.env, capture_output=True
    )
    assert checked.returncode == 1
    assert b"no function can answer WeatherIntent" in checked.stderr


def test_a_function_that_never_listens_stops_the_start_naming_it(make_project):
    project = make_project(
        DEVELOPMENT + '[functions.hello]\n\n[intents.HelloIntent]\nhost = "hello"\n', HELLO
    )
    project.write("functions/hello/function.py", "print('no port for me')\nraise SystemExit(3)\n")
    code = project.serve().wait(timeout=60)
    assert code != 0
    log = project.log()
    assert "function hello (python function.py in" in log
    assert "exited with status 3: no port for me" in log
    assert "Traceback" not in log


def test_the_development_skill_id_and_ca_are_accepted_besides_the_real_one(make_project):
    project = make_project(
        '[skill]\ndevelopment = true\ninteraction_models = "interaction_models"\n'
        'application_ids = ["amzn1.ask.skill.real"]\n\n'
        '[functions.hello]\n\n[intents.HelloIntent]\nhost = "hello"\n',
        HELLO,
    )
    project.write("functions/hello/function.py", PYTHON_FUNCTION)
    project.serve()
    project.wait_ready()
    slots = {"name": {"name": "name", "value": "Ada"}}
    for skill_id in (DEVELOPMENT_SKILL_ID, "amzn1.ask.skill.real"):
        answer = project.ask(intent("HelloIntent", slots, application_id=skill_id))
        assert answer.status == 200 and answer.speech == "Hello, Ada!"
    other = project.ask(intent("HelloIntent", slots, application_id="amzn1.ask.skill.other"))
    assert other.status == 400
