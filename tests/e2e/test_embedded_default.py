"""`funker-dispatch serve` with no config: example functions, dev CA trusted, loopback only."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from skill.settings import DEVELOPMENT_TOPIC
from tests import pki
from tests.e2e.conftest import free_port, intent, post, wait_until
from verification.devca import DevCA

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "events"


@pytest.fixture(scope="module")
def embedded_environment(tmp_path_factory) -> dict[str, str]:
    """The environment the embedded default's server runs in; its tools need the same."""
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    env["FUNKER_DISPATCH_HOME"] = str(home)
    # Not port + 1: on a busy machine that port may be some other test's.
    env["FUNKER_DISPATCH_SERVER_ADMIN_PORT"] = str(free_port())
    # The sample request below names Alexa's real API and carries a token: with spacecount
    # slow (the embedded default's 2 s) it would earn a progressive response, which must
    # never leave the machine. tests/e2e/test_progressive.py shows them, on loopback.
    env["FUNKER_DISPATCH_PROGRESSIVE_AFTER"] = "0"
    env["SPACECOUNT_DELAY"] = "0"
    return env


@pytest.fixture(scope="module")
def embedded(embedded_environment):
    env = embedded_environment
    home = Path(env["FUNKER_DISPATCH_HOME"])
    port = free_port()
    log_path = home / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "funker_dispatch", "serve", "--port", str(port)],
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
    assert len(ports) == 7, log_path.read_text()
    return ports


def test_banner_says_verification_is_on_and_names_the_skill_id(embedded):
    _, _, log_path, _ = embedded
    text = log_path.read_text()
    assert "verification  ON" in text
    assert "amzn1.ask.skill.00000000-0000-4000-8000-000000000000" in text
    assert "/events/sns (topic arn:aws:sns:us-east-1:123456789012:funker-dispatch-dev" in text


def test_seed_request_signed_by_the_dev_ca_gets_a_spoken_answer(embedded):
    url, _, _, dev_ca = embedded
    body = json.dumps(intent("SpaceCountIntent")).encode()
    answer = post(url + "/", body, dev_ca.sign(body))
    assert answer.status == 200, answer.body
    assert "people in space" in answer.speech
    assert answer.json["response"]["card"]["title"] == "People in space"


def test_data_function_is_spoken_through_its_template(embedded):
    url, _, _, dev_ca = embedded
    body = json.dumps(intent("CaptainsIntent")).encode()
    answer = post(url + "/", body, dev_ca.sign(body))
    assert answer.json["response"]["outputSpeech"]["text"].startswith("There are ")


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
        [sys.executable, "-m", "funker_dispatch", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "loopback" in result.stderr


def sns_post(url: str, message: dict) -> Any:
    body = json.dumps(message).encode()
    return post(url + "/events/sns", body, {"x-amz-sns-message-type": message["Type"]})


def development_notification(message: str) -> dict:
    return pki.sns_notification(
        message, topic=DEVELOPMENT_TOPIC, message_id=str(uuid.uuid4()), when=datetime.now(UTC)
    )


def test_a_dev_signed_alarm_is_remembered_and_alexa_hears_about_it(embedded):
    url, _, _, dev_ca = embedded
    alarm = json.loads((FIXTURES / "cloudwatch-alarm.json").read_text())
    alarm["StateChangeTime"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    answer = sns_post(url, dev_ca.sign_sns(development_notification(json.dumps(alarm))))
    assert answer.status == 200, answer.body
    assert [r["name"] for r in answer.json["rules"]] == ["alarms"]
    body = json.dumps(intent("AlarmStatusIntent")).encode()
    spoken = post(url + "/", body, dev_ca.sign(body)).json["response"]["outputSpeech"]
    assert "The alarm HighCPU went to ALARM" in json.dumps(spoken)


def test_a_dev_signed_upload_is_remembered_and_alexa_hears_about_it(embedded):
    url, _, _, dev_ca = embedded
    records = json.loads((FIXTURES / "s3-two-records.json").read_text())
    for record in records["Records"]:
        record["eventTime"] = datetime.now(UTC).isoformat()
    answer = sns_post(url, dev_ca.sign_sns(development_notification(json.dumps(records))))
    assert [r["outcome"] for r in answer.json["rules"]] == ["ok", "ok"]
    body = json.dumps(intent("UploadsIntent")).encode()
    spoken = json.dumps(post(url + "/", body, dev_ca.sign(body)).json["response"]["outputSpeech"])
    assert "in photos today" in spoken or "No new files today" in spoken  # midnight UTC


def test_a_confirmation_for_the_development_topic_is_only_logged(embedded):
    url, _, log_path, dev_ca = embedded
    confirmation = pki.sns_confirmation(topic=DEVELOPMENT_TOPIC, when=datetime.now(UTC))
    answer = sns_post(url, dev_ca.sign_sns(confirmation))
    assert answer.json == {"rules": [], "subscription": "logged"}
    wait_until(lambda: "awaits confirmation" in log_path.read_text(), 30, "the logged URL")


def events_send(url: str, kind: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`events send` with no config: the embedded default's development credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    path = "/events/github" if kind == "github" else "/events/eventbridge"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "funker_dispatch",
            "events",
            "send",
            kind,
            "--url",
            url + path,
            *args,
        ],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=60,
        check=False,
    )


def test_a_github_push_is_remembered_and_alexa_hears_who_pushed_what(embedded):
    url, _, _, dev_ca = embedded
    done = events_send(url, "github", "--event", "push")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "  deploys              ok" in done.stdout
    body = json.dumps(intent("LastDeployIntent")).encode()
    answer = post(url + "/", body, dev_ca.sign(body))
    assert answer.speech == (
        "The last push to acme/site main was by baxterthehacker: Update README.md."
    )


def test_eventbridge_and_dynamodb_deliveries_reach_the_example_rules(embedded):
    url, _, _, _ = embedded
    dynamodb = events_send(url, "dynamodb", "--table", "Orders", "--new", '{"id": 1}')
    assert dynamodb.returncode == 0, dynamodb.stderr + dynamodb.stdout
    assert "  orders               ok" in dynamodb.stdout
    eventbridge = events_send(url, "eventbridge")
    assert eventbridge.returncode == 0, eventbridge.stderr + eventbridge.stdout
    assert "  instances            ok" in eventbridge.stdout
    ping = events_send(url, "github", "--event", "ping")
    assert "HTTP 200: pong" in ping.stdout


def test_the_banner_names_the_webhook_endpoints(embedded):
    url, _, log_path, _ = embedded
    text = log_path.read_text()
    assert f"POST {url}/events/eventbridge" in text and f"POST {url}/events/github" in text


def tool(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "funker_dispatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_intents_and_models_check_show_the_running_servers_function_ports(
    embedded, embedded_environment
):
    # Each process that loads the embedded default picks its own free ports: the tools
    # printed ports nobody listened on. They ask the running server instead.
    _, _, log_path, _ = embedded
    env = embedded_environment
    listed = json.loads(tool("intents", "--json", env=env).stdout)["intents"]
    ports = {row["name"]: row["port"] for row in listed}
    assert set(function_ports(log_path)) >= {ports["SpaceCountIntent"], ports["HelloIntent"]}
    checked = tool("models", "check", env=env).stdout
    assert f"127.0.0.1:{ports['SpaceCountIntent']} (config)" in checked


def test_the_banner_prints_the_mcp_token_the_mcp_commands_use_without_being_told(
    embedded, embedded_environment
):
    url, _, log_path, _ = embedded
    home = Path(embedded_environment["FUNKER_DISPATCH_HOME"])
    token = (home / "mcp-development-token").read_text().strip()
    assert f"POST {url}/mcp (Authorization: Bearer {token})" in log_path.read_text()
    listed = tool("mcp", "tools", "--url", url + "/mcp", env=embedded_environment).stdout
    assert "HelloIntent(name?=Ada|Grace" in listed and "SpaceCountIntent()" in listed
    called = tool(
        "mcp",
        "call",
        "HelloIntent",
        "name=Ada",
        "--url",
        url + "/mcp",
        "--json",
        env=embedded_environment,
    ).stdout
    result = json.loads(called)
    assert result["isError"] is False and result["structuredContent"]["speech"] == "Hello, Ada!"


def test_without_a_running_server_the_tools_say_the_ports_are_assigned_at_start(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}
    env["FUNKER_DISPATCH_SERVER_ADMIN_PORT"] = str(free_port())  # nothing listens there
    env["FUNKER_DISPATCH_HOME"] = str(tmp_path)
    listed = json.loads(tool("intents", "--json", env=env).stdout)["intents"]
    assert {row["port"] for row in listed if row["host"] == "127.0.0.1"} == {None}
    assert "assigned at start" in tool("intents", env=env).stdout
    assert "127.0.0.1:assigned at start (config)" in tool("models", "check", env=env).stdout


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

    wait_until(all_closed, 30, "the example functions to stop")
