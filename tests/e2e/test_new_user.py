"""A new user's first session, scripted: the README's loop, command by command.

new → new function (Node and Python) → serve → simulate → edit → the edit heard → an
utterance no sample covers → a dialog whose slot is elicited → `test` passing, then
failing → JUnit XML. Every command is the real console script in a real project folder,
against a real server with real function processes; nothing is configured by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import console_script, free_port, stop, wait_until

NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_a_new_user_gets_their_own_skill_speaking_editing_and_tested(tmp_path):
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "FUNKER_DISPATCH_HOME": str(tmp_path / "home"),
        "FUNKER_DISPATCH_SERVER_PORT": str(port),
        "FUNKER_DISPATCH_SERVER_ADMIN_PORT": str(admin_port),
    }
    env.pop("FUNKER_DISPATCH_CONFIG", None)
    project = tmp_path / "myskill"
    began = time.monotonic()

    def run(*args: str, cwd: Path = project, code: int | None = 0) -> str:
        done = subprocess.run(
            [*console_script(), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if code is not None:
            assert done.returncode == code, (args, done.stdout, done.stderr)
        return done.stdout

    run("new", "myskill", cwd=tmp_path)
    run(
        "new", "function", "weather", "--lang", "node",
        "--intent", "WeatherIntent", "--utterance", "what is the weather",
    )  # fmt: skip
    run("new", "function", "joke", "--intent", "JokeIntent", "--utterance", "tell me a joke")

    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*console_script(), "serve"], cwd=project, env=env, stdout=log, stderr=log
        )
    try:

        def ready() -> bool:
            assert server.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(ready, 60, "the project's server")
        assert "alexa This is weather." in run("simulate", "what is the weather")
        speaking = time.monotonic() - began
        assert "alexa This is joke." in run("simulate", "tell me a joke")

        # An edit is heard without a restart.
        handler = project / "functions" / "weather" / "index.js"
        handler.write_text(handler.read_text().replace("This is weather.", "Sunny, all day."))
        edited = time.monotonic()
        wait_until(
            lambda: "alexa Sunny, all day." in run("simulate", "what is the weather"),
            30,
            "the edited answer",
        )
        reload = time.monotonic() - edited
        assert "function weather restarted: index.js changed" in log_path.read_text()

        # What no sample covers is the fallback, as on a device.
        fallback = run("simulate", "sing me a song about whales")
        assert "AMAZON.FallbackIntent" in fallback and "no sample matched" in fallback

        # A dialog: the function elicits the name, the next words fill it.
        script = project / "hello.txt"
        script.write_text("say hello\nGrace\n")
        transcript = run("dialog", "--script", str(script))
        assert "alexa Who should I say hello to?" in transcript
        assert "alexa Hello, Grace!" in transcript

        # The project's own tests pass; a wrong expectation fails, in JUnit XML too.
        assert run("test").strip().splitlines()[-1] == "3 passed, 0 failed"
        (project / "tests" / "weather.yml").write_text(
            "---\n- test: weather\n- what is the weather: Rainy*\n"
        )
        failing = run("test", "--junit", str(tmp_path / "junit.xml"), code=1)
        assert failing.strip().splitlines()[-1] == "3 passed, 1 failed"
        assert "Received:" in failing and "Sunny, all day." in failing
        failure = (
            ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase[@name='weather']/failure")
        )
        assert failure is not None and "Expected value at [prompt]" in failure.text
    finally:
        stop(server)
    print(f"new user: own answer {speaking:.1f} s after `new`; an edit heard in {reload:.2f} s")
