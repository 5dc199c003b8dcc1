"""`funker-dispatch test` runs Bespoken's published example suites unchanged.

A real server, a real function answering as the "Space Facts" sample skill the examples
were written for (tests/functions/fact_function.py), its interaction model, and the
command line as a user runs it, JUnit XML included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bespoken"
FUNCTION = Path(__file__).resolve().parents[1] / "functions" / "fact_function.py"

FACTS_MODEL = {
    "interactionModel": {
        "languageModel": {
            "invocationName": "space facts",
            "intents": [
                {
                    "name": "GetNewFactIntent",
                    "slots": [],
                    "samples": [
                        "tell me a space fact",
                        "give me fact",
                        "give me a fact",
                        "give me a space trivia",
                        "get new fact",
                    ],
                },
                *(
                    {"name": name, "samples": []}
                    for name in (
                        "AMAZON.HelpIntent",
                        "AMAZON.StopIntent",
                        "AMAZON.CancelIntent",
                        "AMAZON.FallbackIntent",
                    )
                ),
            ],
            "types": [],
        }
    }
}


@pytest.fixture(scope="module")
def facts(
    start_server: Any, dev_ca: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("facts")
    model = tmp / "models" / "interactionModels" / "custom" / "en-US.json"
    model.parent.mkdir(parents=True)
    model.write_text(json.dumps(FACTS_MODEL))
    from tests.helpers import free_port

    port = free_port()
    function = subprocess.Popen(
        [sys.executable, str(FUNCTION), "--port", str(port)], stdout=subprocess.PIPE, text=True
    )
    assert function.stdout is not None and function.stdout.readline().strip() == "ready"
    routes = "".join(
        f'[intents."{name}"]\nhost = "127.0.0.1"\nport = {port}\n\n'
        for name in ("LaunchRequest", "GetNewFactIntent", "AMAZON.HelpIntent")
    )
    env = {"FUNKER_DISPATCH_INTERACTION_MODELS": str(tmp / "models")}
    server = start_server(routes, env=env)
    # The tools sign with the development CA the server trusts.
    yield {
        "server": server,
        "env": {**env, "FUNKER_DISPATCH_HOME": str(dev_ca.path.parent)},
        "tmp": tmp,
    }
    function.kill()
    function.wait()


def run(facts: dict, *args: str) -> subprocess.CompletedProcess[str]:
    server = facts["server"]
    env = {**os.environ, **facts["env"]}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "funker_dispatch",
            "test",
            "--config",
            str(server.config),
            "--url",
            server.url + "/",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=facts["tmp"],
    )


def test_the_published_examples_pass_against_the_skill_they_were_written_for(facts):
    suites = [str(next(FIXTURES.glob(f"{n}-*.yml"))) for n in ("01", "02", "03", "05")]
    junit = facts["tmp"] / "junit.xml"
    done = run(facts, *suites, "--junit", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "7 passed, 0 failed"
    root = ET.parse(junit).getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 7 and not root.findall(".//failure")
    assert {s.get("name").split("/")[-1] for s in root.findall("testsuite")} == {
        f"{Path(s).name} (en-US)" for s in suites
    }


def test_goto_skips_to_its_target_and_a_failure_fails_the_run(facts):
    suite = next(FIXTURES.glob("06-*.yml"))
    junit = facts["tmp"] / "goto.xml"
    done = run(facts, str(suite), "--junit", str(junit))
    assert done.returncode == 1
    assert "✗ Goes to successfully" in done.stdout
    assert "Get New Fact:" in done.stdout  # reached by the goto; it wants "ABC"
    assert "Help:" not in done.stdout  # skipped over
    assert done.stdout.strip().splitlines()[-1] == "0 passed, 1 failed"
    failure = ET.parse(junit).getroot().find(".//failure")
    assert failure is not None and "Expected value at [response.outputSpeech.ssml]" in failure.text


def test_a_file_that_is_not_a_suite_fails_the_run_and_names_it(facts):
    bad = facts["tmp"] / "broken.yml"
    bad.write_text("---\n- hi:\n  - prompt\n")
    done = run(facts, str(bad))
    assert done.returncode == 1
    assert "broken.yml: test 'Test 1': invalid assertion: prompt" in done.stdout
    assert "Traceback" not in done.stderr


def test_the_documented_suite_passes_against_the_embedded_default(tmp_path):
    page = (Path(__file__).resolve().parents[2] / "docs" / "alexa.md").read_text()
    (block,) = [b for b in page.split("```yaml\n")[1:] if "configuration:" in b]
    suite = tmp_path / "documented.yml"
    suite.write_text(block.split("```")[0])
    env = {**os.environ, "FUNKER_DISPATCH_HOME": str(tmp_path / "home")}
    env.pop("FUNKER_DISPATCH_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "funker_dispatch", "test", "--in-process", str(suite)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "SPACECOUNT_DELAY": "0"},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "2 passed, 0 failed"
