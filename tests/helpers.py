"""Small helpers every suite shares: free loopback ports and polling with a deadline."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], T], within: float, what: str, every: float = 0.02) -> T:
    """Poll `condition` until it returns something truthy, and return that; fail naming
    `what` after `within` seconds.

    The one place tests wait for something another process does (a port that
    starts listening, a log line, a swarm task): a condition with a deadline.
    Such a process can signal nothing to the test, so the condition is polled,
    every `every` seconds (slower where each poll is a docker CLI call).
    """
    deadline = time.monotonic() + within
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(every)
    return value


def accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on host:port (a connect that sends nothing)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def console_script() -> list[str]:
    """The `funker-dispatch` a user runs: the venv's console script, else `python -m`."""
    script = Path(sys.executable).parent / "funker-dispatch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "funker_dispatch"]


def stop(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM, then SIGKILL when it has not exited within `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def report_section(title: str) -> tuple[Any, Callable[[Any], None]]:
    """A session fixture `report` (lines to print) and the `pytest_terminal_summary` hook
    printing them under `title`, for an engine suite's conftest to bind:

        report, pytest_terminal_summary = report_section("swarm report")
    """
    import pytest

    lines: list[str] = []

    @pytest.fixture(scope="session")
    def report() -> list[str]:
        return lines

    def pytest_terminal_summary(terminalreporter: Any) -> None:
        if lines:
            terminalreporter.section(title)
            for line in lines:
                terminalreporter.write_line(line)

    return report, pytest_terminal_summary
