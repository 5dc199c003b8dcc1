"""What each example function is asked from outside the swarm, and what its answer sounds like.

Requests go through `funker-dispatch simulate --url`, signed by the dev CA of
$FUNKER_DISPATCH_HOME, exactly as an operator checks a stack. The functions
come from examples/functions/*/ (tests/swarm builds and deploys every one);
one that has no entry in EXERCISES fails loudly, naming what to add.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skill.settings import Settings

FUNKER_DISPATCH = str(Path(sys.executable).parent / "funker-dispatch")


@dataclass(frozen=True)
class Exercise:
    """An intent a function serves, its slots, and a pattern its spoken answer matches."""

    intent: str
    answer: str  # a regular expression searched in the speech
    slots: Mapping[str, str] = field(default_factory=dict)


EXERCISES: dict[str, Exercise] = {
    "spacecount": Exercise("SpaceCountIntent", r"There (are \d+ people|is 1 person) in space"),
    "hello": Exercise("HelloIntent", r"Hello, Ada!", {"name": "Ada"}),
    "hostname": Exercise("HostnameIntent", r"This answer came from"),
    "captains": Exercise("CaptainsIntent", r"There are \d+ Docker captains\."),
    # Nothing is sent through SNS on the swarm: the event examples answer from empty memory.
    "alarms": Exercise("AlarmStatusIntent", r"No alarm has been reported yet\.|The alarm"),
    "uploads": Exercise("UploadsIntent", r"No files have been uploaded yet\.|new files?"),
    "deploys": Exercise("LastDeployIntent", r"No push has been|The last push"),
}


def exercise_for(function: str, deployed: Settings) -> Exercise:
    """The function's exercise, checked against the routes of the deployed config."""
    exercise = EXERCISES.get(function)
    if exercise is None:
        raise AssertionError(
            f"examples/functions/{function} is built and deployed, but tests/swarm does not "
            f"know how to ask it: add {function!r} to EXERCISES in tests/swarm/exercises.py "
            "(an intent that deploy/dispatch.toml routes to it, its slots, and a pattern of "
            "its answer)"
        )
    route = deployed.routes.get(exercise.intent)
    assert route is not None, f"deploy/dispatch.toml has no route for {exercise.intent}"
    assert route.host == function, (
        f"deploy/dispatch.toml routes {exercise.intent} to {route.host!r}, not to the "
        f"service {function!r}"
    )
    return exercise


@dataclass
class Answer:
    """One simulate run: what came back from outside, or why nothing did."""

    exit_code: int
    status: int | None
    speech: str
    card: dict[str, Any]
    error: str
    seconds: float

    def matches(self, exercise: Exercise) -> bool:
        return self.status == 200 and re.search(exercise.answer, self.speech) is not None

    def summary(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.status}: {self.speech!r}"


def ask(url: str, exercise: Exercise, home: Path, timeout: float = 8.0) -> Answer:
    """`funker-dispatch simulate --url URL --json --intent ...`, signed with home's dev CA."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    environ["FUNKER_DISPATCH_HOME"] = str(home)
    command = [FUNKER_DISPATCH, "simulate", "--url", url, "--timeout", str(timeout), "--json"]
    command += ["--intent", exercise.intent]
    for name, value in exercise.slots.items():
        command += ["--slot", f"{name}={value}"]
    started = time.monotonic()
    result = subprocess.run(
        command, capture_output=True, text=True, env=environ, timeout=timeout + 20
    )
    seconds = time.monotonic() - started
    if result.returncode == 2 or not result.stdout.strip():
        # The tools' convention: no usable answer is one line on stderr and exit 2.
        error = result.stderr.strip().splitlines()[-1:] or ["(nothing on stderr)"]
        return Answer(result.returncode, None, "", {}, error[0], seconds)
    turn = json.loads(result.stdout)
    response = (turn.get("response") or {}).get("response") or {}
    speech = response.get("outputSpeech") or {}
    return Answer(
        result.returncode,
        turn.get("status"),
        speech.get("text") or speech.get("ssml") or "",
        response.get("card") or {},
        "",
        seconds,
    )


def answering_host(answer: Answer) -> str:
    """The container the hostname function says it runs in (its card names it)."""
    found = re.fullmatch(r"This answer came from (\S+)\.", answer.card.get("text", ""))
    assert found, f"not a hostname answer: {answer.summary()} {answer.card}"
    return found.group(1)
