"""`funker-dispatch events send` against a real server trusting the dev CA: what SNS would send,
signed as SNS signs, the matched rules and their outcomes printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from skill.settings import DEVELOPMENT_SKILL_ID, DEVELOPMENT_TOPIC
from tests.recording import RecordingFunction
from verification.devca import DevCA

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / "tests" / "fixtures" / "sns-signed" / "notification.json"


@pytest.fixture(scope="module")
def home(dev_ca: DevCA) -> Path:
    return dev_ca.path.parent  # the CA the server below trusts


@pytest.fixture(scope="module")
def functions() -> Iterator[dict[str, RecordingFunction]]:
    made = {
        "uploads": RecordingFunction(),
        "alarms": RecordingFunction(),
        "broken": RecordingFunction(fail=lambda payload: True),
        "plain": RecordingFunction(),
    }
    yield made
    for function in made.values():
        function.close()


@pytest.fixture(scope="module")
def server(start_server, dev_ca, functions, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("events-send")
    root = tmp / "devca-root.pem"
    root.write_bytes(dev_ca.root.public_bytes(Encoding.PEM))

    def at(name: str) -> str:
        return f'host = "127.0.0.1"\nport = {functions[name].port}\n'

    base = (
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        f'[verification]\ntrusted_roots = ["{root}"]\n\n'
        f'[verification.local_chains]\n"{dev_ca.sns_chain_url}" = "{dev_ca.sns_chain_path}"\n\n'
        f'[triggers.sns]\ntopics = ["{DEVELOPMENT_TOPIC}"]\nconfirm = "log"\n\n'
    )
    rules = (
        '[events.uploads]\nsource = "s3"\nevent = "ObjectCreated:*"\n'
        + at("uploads")
        + '\n[events.alarms]\nsource = "cloudwatch"\nstate = "ALARM"\n'
        + at("alarms")
        + '\n[events.broken]\nsource = "cloudwatch"\nalarm = "Broken*"\n'
        + at("broken")
        + '\n[events.plain]\nsource = "sns"\n'
        + at("plain")
    )
    return start_server(rules, base=base)


def send(server, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FUNKER_DISPATCH_HOME": str(home), "COLUMNS": "200"}
    environment.pop("FUNKER_DISPATCH_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "funker_dispatch", "events", "send", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def url(server) -> str:
    return server.url + "/events/sns"


def test_s3_upload_reaches_its_rule_with_the_key_decoded(server, functions, home):
    done = send(
        server,
        "s3",
        "--bucket",
        "photos",
        "--key",
        "holiday/red flower.jpg",
        "--url",
        url(server),
        home=home,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "s3 ObjectCreated:Put s3://photos/holiday/red flower.jpg" in done.stdout
    assert "HTTP 200: 1 rule" in done.stdout
    assert "  uploads              ok" in done.stdout
    (received,) = functions["uploads"].payloads()
    assert received["s3"] == {"bucket": "photos", "key": "holiday/red flower.jpg"}
    assert received["event"]["s3"]["object"]["key"] == "holiday/red+flower.jpg"  # as S3 sends


def test_cloudwatch_alarm_and_a_failing_rule_are_reported(server, functions, home):
    done = send(
        server,
        "cloudwatch",
        "--alarm",
        "BrokenDisk",
        "--state",
        "alarm",
        "--url",
        url(server),
        home=home,
    )
    assert done.returncode == 1, done.stderr + done.stdout
    assert "cloudwatch alarm BrokenDisk → ALARM" in done.stdout
    assert "HTTP 503: 2 rules" in done.stdout
    assert "  alarms               ok" in done.stdout
    assert "  broken               failed (protocol)" in done.stdout
    alarm = functions["alarms"].payloads()[-1]["event"]
    assert (alarm["AlarmName"], alarm["NewStateValue"]) == ("BrokenDisk", "ALARM")


def test_an_ok_alarm_matches_no_alarm_rule(server, home):
    done = send(
        server, "cloudwatch", "--alarm", "HighCPU", "--state", "OK", "--url", url(server), home=home
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "HTTP 200: no rule matched" in done.stdout


@pytest.mark.parametrize("version", ["1", "2"])
def test_an_sns_message_with_either_signature_version(server, functions, home, version):
    text = f"deploy {version} finished"
    done = send(
        server,
        "sns",
        "--message",
        text,
        "--subject",
        "Deploy",
        "--signature-version",
        version,
        "--url",
        url(server),
        home=home,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert any(p["event"] == text for p in functions["plain"].payloads())


def test_a_recorded_message_is_restamped_and_resigned(server, functions, home):
    done = send(
        server, "--file", str(REAL), "--topic", DEVELOPMENT_TOPIC, "--url", url(server), home=home
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Notification from notification.json" in done.stdout
    recorded = json.loads(REAL.read_text())
    assert recorded["MessageId"] in functions["plain"].ids()


def test_a_topic_the_endpoint_does_not_allow_is_403(server, home):
    other = "arn:aws:sns:us-east-1:123456789012:not-allowed"
    done = send(server, "sns", "--topic", other, "--url", url(server), home=home)
    assert done.returncode == 1
    assert "HTTP 403: refused, sns-topic: topic is not allowed here" in done.stdout


@pytest.mark.parametrize("kind", ["sns", "s3", "cloudwatch"])
def test_a_topic_that_is_no_topic_arn_is_a_usage_error_and_sends_nothing(server, home, kind):
    # Its region would be made up, and the endpoint would refuse what it signs.
    done = send(server, kind, "--topic", "my-topic", "--url", url(server), home=home)
    assert done.returncode == 2
    assert "--topic 'my-topic' is not an SNS topic ARN" in done.stderr
    assert "POST" not in done.stdout


def test_confirm_sends_a_subscription_confirmation(server, home):
    done = send(server, "--confirm", "--url", url(server), home=home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "HTTP 200: subscription logged" in done.stdout
    server.wait_for_log("awaits confirmation")


@pytest.mark.parametrize("kind", ["s3", "cloudwatch", "sns"])
def test_confirm_with_an_sns_kind_sends_the_confirmation_of_that_endpoint(server, home, kind):
    # Listed among the SNS kinds' options, so a user writes it after one.
    done = send(server, kind, "--confirm", "--url", url(server), home=home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "SubscriptionConfirmation" in done.stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (["github", "--confirm"], "--confirm and --file are for SNS"),
        (["eventbridge", "--file", "x.json"], "--confirm and --file are for SNS"),
        (["--confirm", "--file", "x.json"], "one of --file and --confirm"),
        ([], "give a KIND"),
    ],
)
def test_what_cannot_go_together_is_a_usage_error(server, home, args, says):
    done = send(server, *args, home=home)
    assert done.returncode == 2 and says in done.stderr, done.stderr


def test_a_file_that_is_not_an_sns_message_is_one_line(server, home, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    done = send(server, "--file", str(bad), "--url", url(server), home=home)
    assert done.returncode == 2
    assert done.stderr.strip().endswith("does not hold an SNS message (a JSON object with a Type)")
    assert "Traceback" not in done.stderr
