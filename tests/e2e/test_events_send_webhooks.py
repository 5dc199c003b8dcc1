"""`events send eventbridge|dynamodb|github` against a real server: what the senders send,
authenticated with the credentials of the configuration the server runs, outcomes printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def functions(event_function):
    return {name: event_function() for name in ("instances", "orders", "deploys", "broken")}


@pytest.fixture(scope="module")
def server(start_server, functions, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("send-webhooks")
    (tmp / "api_key").write_text("send-test-key\n")
    (tmp / "github").write_text("send-test-secret\n")
    return start_server(
        f'[triggers.eventbridge]\napi_key_file = "{tmp / "api_key"}"\n\n'
        f'[triggers.github]\nsecret_file = "{tmp / "github"}"\n\n'
        '[events.instances]\nsource = "eventbridge"\nevent_source = "aws.ec2"\n'
        + functions["instances"].route()
        + '\n[events.orders]\nsource = "dynamodb"\ntable = "Orders"\nevent = "INSERT"\n'
        + functions["orders"].route()
        + '\n[events.deploys]\nsource = "github"\nevent = "push"\nrepository = "acme/site"\n'
        + functions["deploys"].route()
        + '\n[events.broken]\nsource = "dynamodb"\ntable = "Broken"\n'
        + functions["broken"].route()
    )


def send(server, kind: str, *args: str, config: Path | None = None, path: str = ""):
    environment = {**os.environ, "COLUMNS": "200"}
    environment.pop("FUNKER_DISPATCH_CONFIG", None)
    url = server.url + (path or ("/events/github" if kind == "github" else "/events/eventbridge"))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "funker_dispatch",
            "events",
            "send",
            kind,
            "--url",
            url,
            "--config",
            str(config or server.config),
            *args,
        ],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_eventbridge_sends_an_ec2_state_change_with_the_api_key(server, functions):
    done = send(
        server,
        "eventbridge",
        "--source",
        "aws.ec2",
        "--detail-type",
        "EC2 Instance State-change Notification",
        "--detail",
        '{"instance-id": "i-0abc", "state": "stopped"}',
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert 'eventbridge aws.ec2 "EC2 Instance State-change Notification"' in done.stdout
    assert "HTTP 200: 1 rule" in done.stdout and "  instances            ok" in done.stdout
    received = functions["instances"].payloads()[-1]
    assert received["event"]["detail"] == {"instance-id": "i-0abc", "state": "stopped"}
    assert received["event"]["resources"] == ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"]


def test_dynamodb_sends_one_record_as_a_pipe_calls_an_api_destination(server, functions):
    # A Pipe cannot batch to an API destination: each call carries one record, no array.
    done = send(server, "dynamodb", "--table", "Orders", "--event", "INSERT", "--new", '{"id": 1}')
    assert done.returncode == 0, done.stderr + done.stdout
    assert "dynamodb INSERT on Orders, one stream record as a Pipe sends it" in done.stdout
    assert "  orders               ok" in done.stdout
    received = functions["orders"].payloads()[-1]
    assert received["event"]["dynamodb"]["NewImage"] == {"id": {"N": "1"}}
    assert received["dynamodb"] == {"keys": {"id": 1}, "new": {"id": 1}, "old": None}
    assert received["attributes"]["table"] == "Orders"


def test_a_failing_rule_is_reported_with_exit_status_one(server, functions):
    functions["broken"].fail("*")
    try:
        done = send(server, "dynamodb", "--table", "Broken")
    finally:
        functions["broken"].fail()
    assert done.returncode == 1, done.stderr + done.stdout
    assert "HTTP 503: 1 rule" in done.stdout
    assert "  broken               failed (protocol)" in done.stdout


def test_numbers_reach_the_function_exact(server, functions):
    done = send(server, "dynamodb", "--table", "Broken", "--new", '{"sku": "x", "n": 1.5}')
    assert done.returncode == 0, done.stderr + done.stdout
    received = functions["broken"].payloads()[-1]
    assert received["event"]["dynamodb"]["NewImage"]["n"] == {"N": "1.5"}
    assert received["dynamodb"]["new"] == {"sku": "x", "n": "1.5"}  # exact, as DynamoDB keeps it
    assert received["dynamodb"]["keys"] == {"sku": "x"}  # no id: the first attribute keys it


def test_github_sends_the_documented_push_sample_signed_with_the_configured_secret(
    server, functions
):
    done = send(server, "github", "--event", "push")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "github push to acme/site refs/heads/main" in done.stdout
    assert "  deploys              ok" in done.stdout
    received = functions["deploys"].payloads()[-1]
    push = received["event"]
    assert push["pusher"]["name"] == "baxterthehacker"
    assert push["head_commit"]["message"] == "Update README.md"
    assert push["repository"]["full_name"] == "acme/site" and push["ref"] == "refs/heads/main"
    assert received["attributes"]["event"] == "push"


def test_github_ping_is_answered_pong(server):
    done = send(server, "github", "--event", "ping")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "HTTP 200: pong" in done.stdout


def test_credentials_the_server_does_not_have_are_refused(server, tmp_path):
    other = tmp_path / "other.toml"
    (tmp_path / "secret").write_text("another secret")
    other.write_text(
        f'[triggers.github]\nsecret_file = "{tmp_path / "secret"}"\n\n'
        '[triggers.eventbridge]\napi_key_file = "' + str(tmp_path / "secret") + '"\n'
    )
    github = send(server, "github", config=other)
    assert github.returncode == 1
    assert "HTTP 401: refused, github-signature" in github.stdout
    eventbridge = send(server, "eventbridge", config=other)
    assert eventbridge.returncode == 1
    assert "HTTP 401: refused, eventbridge-auth" in eventbridge.stdout


def test_basic_credentials_from_the_config(start_server, functions, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("send-basic")
    (tmp / "password").write_text("s3cret:pass\n")
    basic = start_server(
        f'[triggers.eventbridge]\nusername = "eb"\npassword_file = "{tmp / "password"}"\n\n'
        '[events.instances]\nsource = "eventbridge"\n' + functions["instances"].route()
    )
    done = send(basic, "eventbridge")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "  instances            ok" in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("dynamodb", "--new", "{not json"), "--new is not JSON"),
        (("dynamodb", "--event", "UPSERT"), "INSERT, MODIFY, REMOVE"),
        (("dynamodb", "--new", "[1]"), "--new is a JSON object"),
        (("eventbridge", "--detail", "NaN"), "--detail is not JSON"),
        (("github", "--event", "release"), "push and ping"),
    ],
)
def test_bad_options_are_one_line_and_exit_two(server, args, says):
    done = send(server, *args)
    assert done.returncode == 2, done.stdout
    assert says in done.stderr and "Traceback" not in done.stderr


def test_a_config_without_the_table_is_one_line(server, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    done = send(server, "github", config=empty)
    assert done.returncode == 2
    assert "has no [triggers.github]" in done.stderr


def test_a_modify_the_rule_does_not_take_matches_nothing(server):
    done = send(server, "dynamodb", "--event", "MODIFY", "--old", '{"id": 1, "status": "paid"}')
    assert done.returncode == 0, done.stderr + done.stdout
    assert "HTTP 200: no rule matched" in done.stdout
