"""The function examples of docs/functions.md run as printed and answer the dispatcher.

Each is taken from the page's own code block, started as a real process on a free port,
and called with the dispatcher's own client (`dispatch.funker.call`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dispatch.funker import call
from dispatch.registry import Route
from tests.helpers import accepts, free_port, wait_until

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "functions.md").read_text()
HELLO_ADA = {"request": {"type": "IntentRequest", "intent": {"slots": {"name": {"value": "Ada"}}}}}


def block(language: str) -> str:
    [found] = re.findall(rf"^```{language}\n(.*?)^```", PAGE, flags=re.M | re.S)
    return found


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[[list[str], str, str], int]]:
    children: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], source: str, name: str) -> int:
        port = free_port()
        script = tmp_path / name
        script.write_text(source)
        env = {**os.environ, "FUNKER_PORT": str(port)}
        children.append(subprocess.Popen([*argv, str(script)], env=env))
        wait_until(lambda: children[-1].poll() is None and accepts(port), 30, f"{name} to listen")
        return port

    yield start
    for child in children:
        child.kill()
        child.wait()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_example_answers_the_dispatcher(started):
    port = started(["node"], block("js"), "function.js")
    route = Route(name="HelloIntent", host="127.0.0.1", port=port)
    assert call(route, HELLO_ADA, timeout=10) == {"speech": "Hello, Ada!"}


def test_the_python_example_answers_the_dispatcher(started):
    # The page serves on 9999; the test's port comes in as FUNKER_PORT would.
    assert "port=9999" in block("python")
    source = block("python").replace(
        "port=9999", "port=int(__import__('os').environ['FUNKER_PORT'])"
    )
    port = started([sys.executable], source, "function.py")
    route = Route(name="HelloIntent", host="127.0.0.1", port=port)
    assert call(route, HELLO_ADA, timeout=10) == {"speech": "Hello from a function!"}
