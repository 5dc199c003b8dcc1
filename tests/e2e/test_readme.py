"""What the README tells a newcomer to type does what the README says it does.

The curl commands of "Try it" run as written against a real server (its URL
swapped in); the listeners paragraphs (README and the operations page) name every
public path the server has; every file the README links to exists.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from skill.events import PATHS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")


def curl_commands() -> list[tuple[str, str]]:
    """Each `curl ... http://127.0.0.1:3000/` of the README with the status it promises."""
    found = re.findall(r"`(curl [^`]*?http://127\.0\.0\.1:3000/)`\s+gets\s+`?(\d{3})", README)
    found += re.findall(r"a bare\s+`(curl [^`]*)`\s+gets\s+`(\d{3})`", README)
    return found


def test_the_readme_promises_statuses_for_an_unsigned_request():
    statuses = sorted(status for _, status in curl_commands())
    assert statuses == ["400", "415"], curl_commands()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("command, status", curl_commands())
def test_each_readme_curl_gets_the_status_it_promises(start_server, command, status):
    server = start_server()
    argv = shlex.split(command)
    argv = [server.url + "/" if arg.startswith("http://127.0.0.1:3000") else arg for arg in argv]
    if not any(arg.startswith("http") for arg in argv):
        argv.append(server.url + "/")
    done = subprocess.run(
        [*argv, "-s", "-o", "/dev/null", "-w", "%{http_code}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout == status, done.stderr


@pytest.mark.parametrize("text", [README, OPERATIONS], ids=["README", "operations"])
def test_the_listeners_paragraph_names_every_event_endpoint(text):
    paragraph = text[text.index("Two listeners") :].split("\n\n", 1)[0]
    for path in PATHS.values():
        assert f"`{path}`" in paragraph or f"`POST {path}`" in paragraph, path


def test_the_readme_is_short_and_opens_with_the_two_commands():
    assert len(README.encode()) <= 16 * 1024
    assert [line.split()[:2] for line in README.splitlines()[3:5]] == [
        ["make", "run"],
        ["make", "test"],
    ]


def test_every_file_the_readme_links_exists():
    targets = re.findall(r"\]\(([^)#\s]+)", README) + re.findall(r'src="([^"]+)"', README)
    assert targets
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert missing == []
