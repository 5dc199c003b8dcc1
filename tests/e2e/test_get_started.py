"""Get started's "Your own skill" runs as written, and the README shows the same commands.

Each command of the page's code blocks is run in order, as a user types them: `cd`
moves into the project, `serve` runs in the background (a second terminal), every
other command must succeed. Only what a shared test machine needs changes: free ports
(through the environment, as the tools read them) and the CA's home in a temporary
folder. The README's own-skill lines must be lines of the same recipe.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import console_script, free_port, stop, wait_until

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "get-started.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
RECIPE = PAGE[PAGE.index("## Your own skill") : PAGE.index("## Dialogs")]


def blocks(text: str, language: str = "sh") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def lines(text: str) -> list[str]:
    return [line.strip() for block in blocks(text) for line in block.splitlines() if line.strip()]


def test_the_readme_shows_the_recipe_of_get_started():
    section = README[README.index("## Your own skill") :]
    section = section[: section.index("\n## ", 1)]
    shown = [line.split("  #")[0].strip() for line in lines(section)]
    assert shown
    recipe = lines(RECIPE)
    assert [line for line in shown if line not in recipe] == []


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_your_own_skill_runs_as_written(tmp_path: Path):
    port, admin_port = free_port(), free_port()
    env = {
        **os.environ,
        "FUNKER_DISPATCH_HOME": str(tmp_path / "home"),
        "FUNKER_DISPATCH_SERVER_PORT": str(port),
        "FUNKER_DISPATCH_SERVER_ADMIN_PORT": str(admin_port),
    }
    env.pop("FUNKER_DISPATCH_CONFIG", None)
    command = console_script()
    cwd, outputs, servers = tmp_path, [], []
    try:
        for line in lines(RECIPE):
            words = shlex.split(line)
            if words[0] == "cd":
                cwd = cwd / words[1]
                continue
            assert words[0] == "funker-dispatch", line
            if words[1] == "serve":
                servers.append(subprocess.Popen([*command, *words[1:]], cwd=cwd, env=env))

                def ready() -> bool:
                    assert servers[-1].poll() is None, "serve exited"
                    try:
                        url = f"http://127.0.0.1:{admin_port}/readyz"
                        with urllib.request.urlopen(url, timeout=1):
                            return True
                    except OSError:
                        return False

                wait_until(ready, 60, "the project's server")
                continue
            done = subprocess.run(
                [*command, *words[1:]],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, (line, done.stdout, done.stderr)
            outputs.append(done.stdout)
    finally:
        for server in servers:
            stop(server)
    assert "`simulate` answers `This is weather.`" in RECIPE
    assert any("alexa This is weather." in output for output in outputs)
    assert outputs[-1].strip().splitlines()[-1].endswith("passed, 0 failed")
