"""`funker-dispatch serve` with no config: example functions, dev CA trusted, loopback only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, intent, post, wait_until
from verification.devca import DevCA


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    port = free_port()
    log_path = home / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    env["FUNKER_DISPATCH_HOME"] = str(home)
    # The sample request below names Alexa's real API and carries a token: with spacecount
    # slow (the embedded default's 2 s) it would earn a progressive response, which must
    # never leave the machine. tests/e2e/test_progressive.py shows them, on loopback.
    env["FUNKER_DISPATCH_PROGRESSIVE_AFTER"] = "0"
    env["SPACECOUNT_DELAY"] = "0"
    process = subprocess.Popen(
        [sys.executable, "-m", "skill.cli", "serve", "--port", str(port)],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    wait_until(healthy, 30, "the embedded default to start")
    yield url, process, log_path, DevCA.load_or_create(home)
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


def function_ports(log_path: Path) -> list[int]:
    ports = [int(p) for p in re.findall(r"on 127\.0\.0\.1:(\d+)", log_path.read_text())]
    assert len(ports) == 4, log_path.read_text()
    return ports


def test_banner_says_verification_is_on_and_names_the_skill_id(embedded):
    _, _, log_path, _ = embedded
    text = log_path.read_text()
    assert "verification  ON" in text
    assert "amzn1.ask.skill.00000000-0000-4000-8000-000000000000" in text


def test_seed_request_signed_by_the_dev_ca_gets_a_spoken_answer(embedded):
    url, _, _, dev_ca = embedded
    body = json.dumps(intent("SpaceCountIntent")).encode()
    answer = post(url + "/", body, dev_ca.sign(body))
    assert answer.status == 200, answer.body
    assert "people in space" in answer.json["response"]["outputSpeech"]["ssml"]
    assert answer.json["response"]["card"]["title"] == "People in space"


def test_data_function_is_spoken_through_its_template(embedded):
    url, _, _, dev_ca = embedded
    body = json.dumps(intent("CaptainsIntent")).encode()
    answer = post(url + "/", body, dev_ca.sign(body))
    assert answer.json["response"]["outputSpeech"]["ssml"].startswith("<speak>There are ")


def test_unsigned_request_is_refused(embedded):
    url, _, _, _ = embedded
    answer = post(url + "/", json.dumps(intent("SpaceCountIntent")).encode())
    assert answer.status == 400
    assert answer.json["error"] == "headers"


def test_example_requests_file_is_answered_once_restamped_and_signed(embedded):
    url, _, _, dev_ca = embedded
    envelope = json.loads(Path("examples/requests/space-count.json").read_text())
    envelope["request"]["timestamp"] = intent("X")["request"]["timestamp"]
    body = json.dumps(envelope).encode()
    answer = post(url + "/", body, dev_ca.sign(body))
    assert answer.status == 200, answer.body


def test_non_loopback_host_is_refused_at_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    env["FUNKER_DISPATCH_HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "skill.cli", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr


def test_sigterm_stops_the_server_and_its_function_processes(embedded):
    # Last in the module: it ends the shared server.
    _, process, log_path, _ = embedded
    ports = function_ports(log_path)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0

    def all_closed() -> bool:
        import socket

        for port in ports:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return False
            except OSError:
                continue
        return True

    wait_until(all_closed, 10, "the example functions to stop")
