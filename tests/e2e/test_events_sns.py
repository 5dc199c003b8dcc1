"""POST /events/sns on a real server: test-CA-signed SNS deliveries reach real loopback functions;
every bad variant of docs/events/index.md is refused with 4xx and calls nothing."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from skill.settings import DEVELOPMENT_SKILL_ID
from tests import pki
from tests.e2e.conftest import post
from tests.recording import ConnectionRecorder, RecordingFunction

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"
S3_TWO = (EVENTS / "s3-two-records.json").read_text()
ALARM = (EVENTS / "cloudwatch-alarm.json").read_text()
TOPIC = pki.SNS_TOPIC
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-else"
GOOD_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-good.pem"
SAN_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-san.pem"
STRANGER_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-stranger.pem"


@pytest.fixture(scope="module")
def signers() -> dict[str, pki.SnsSigner]:
    good = pki.sns_signer(url=GOOD_URL, today=True)
    return {
        "good": good,
        "san": pki.sns_signer(
            url=SAN_URL, trusted_root=good.root, today=True, dns_names=("example.com",)
        ),
        "stranger": pki.sns_signer(url=STRANGER_URL, today=True),
    }


@pytest.fixture(scope="module")
def functions() -> Iterator[dict[str, RecordingFunction]]:
    def flaky_once(payload: Any) -> bool:
        # Fails the first delivery of each id, then works: SNS's retry must succeed.
        seen = flaky.payloads()
        return [p["id"] for p in seen].count(payload["id"]) == 1

    flaky = RecordingFunction(fail=flaky_once)
    made = {
        "uploads": RecordingFunction(),
        "alarms": RecordingFunction(),
        "audit": RecordingFunction(),
        "plain": RecordingFunction(),
        "flaky": flaky,
    }
    yield made
    for function in made.values():
        function.close()


def base_config(dev_ca, signers, tmp: Path) -> str:
    roots = tmp / "roots.pem"
    roots.write_bytes(
        signers["good"].root.pem
        + signers["stranger"].root.pem
        + dev_ca.root.public_bytes(Encoding.PEM)
    )
    mapping = [f'"{dev_ca.chain_url}" = "{dev_ca.chain_path}"']
    for name, signer in signers.items():
        # The stranger's chain is served, but its root is not the trusted one below.
        path = tmp / f"sns-{name}.pem"
        path.write_bytes(signer.pem)
        mapping.append(f'"{signer.url}" = "{path}"')
    trusted = tmp / "trusted.pem"
    trusted.write_bytes(signers["good"].root.pem + dev_ca.root.public_bytes(Encoding.PEM))
    return (
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        f'[verification]\ntrusted_roots = ["{trusted}"]\n\n'
        "[verification.local_chains]\n" + "\n".join(mapping) + "\n\n"
    )


def rules(functions: dict[str, RecordingFunction]) -> str:
    def at(name: str) -> str:
        return f'host = "127.0.0.1"\nport = {functions[name].port}\n'

    return (
        '[events.uploads]\nsource = "s3"\nevent = "s3:ObjectCreated:*"\nkey_prefix = "holiday/"\n'
        + at("uploads")
        + '\n[events.alarms]\nsource = "cloudwatch"\nstate = "ALARM"\n'
        + at("alarms")
        + '\n[events.audit]\nsource = "cloudwatch"\n'
        + at("audit")
        + '\n[events.plain]\nsource = "sns"\nsubject = ["", "Hello*"]\n'
        + at("plain")
        + '\n[events.flaky]\nsource = "sns"\nsubject = "flaky"\n'
        + at("flaky")
    )


@pytest.fixture(scope="module")
def server(start_server, dev_ca, signers, functions, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sns")
    triggers = f'[triggers.sns]\ntopics = ["{TOPIC}"]\nmax_age = 600\n\n'
    return start_server(triggers + rules(functions), base=base_config(dev_ca, signers, tmp))


@pytest.fixture(scope="module")
def logging_server(start_server, dev_ca, signers, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sns-log")
    triggers = f'[triggers.sns]\ntopics = ["{TOPIC}"]\nconfirm = "log"\n\n'
    return start_server(triggers, base=base_config(dev_ca, signers, tmp))


def now() -> datetime:
    return datetime.now(UTC)


def notification(message: str, **options: Any) -> dict[str, Any]:
    options.setdefault("message_id", str(uuid.uuid4()))
    options.setdefault("when", now())
    return pki.sns_notification(message, **options)


def deliver(server, message: dict[str, Any] | bytes, kind: str | None = None, **headers: str):
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    if kind is None and isinstance(message, dict):
        kind = str(message.get("Type"))
    sent = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": kind or ""}
    return post(server.url + "/events/sns", body, {**sent, **headers})


def outcomes(answer) -> dict[str, str]:
    return {rule["name"]: rule["outcome"] for rule in answer.json["rules"]}


# --- verified deliveries -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [None, "Hello there"])
def test_a_signed_notification_reaches_its_function(server, signers, functions, version, subject):
    message = signers["good"].sign(notification("hi", subject=subject), version=version)
    answer = deliver(server, message)
    assert answer.status == 200, answer.body
    assert answer.json == {
        "rules": [{"name": "plain", "outcome": "ok", "reason": None, "id": message["MessageId"]}]
    }
    (received,) = [p for p in functions["plain"].payloads() if p["id"] == message["MessageId"]]
    assert received["trigger"] == "sns" and received["event"] == "hi"
    assert received["attributes"]["subject"] == subject
    assert received["attributes"]["topic"] == TOPIC


def test_an_s3_notification_calls_once_per_matching_record_with_decoded_keys(
    server, signers, functions
):
    message = signers["good"].sign(notification(S3_TWO))
    answer = deliver(server, message)
    assert answer.status == 200
    assert answer.json["rules"] == [
        {"name": "uploads", "outcome": "ok", "reason": None, "id": message["MessageId"] + "#0"}
    ]
    (received,) = [
        p for p in functions["uploads"].payloads() if p["id"].startswith(message["MessageId"])
    ]
    assert received["s3"] == {"bucket": "photos", "key": "holiday/red flower.jpg"}
    assert received["event"]["eventName"] == "ObjectCreated:Put"


def test_an_alarm_fans_out_to_both_rules_and_ok_only_to_the_audit(server, signers, functions):
    firing = signers["good"].sign(notification(ALARM))
    calm = signers["good"].sign(notification(ALARM.replace('"ALARM"', '"OK"')))
    assert outcomes(deliver(server, firing)) == {"alarms": "ok", "audit": "ok"}
    assert outcomes(deliver(server, calm)) == {"audit": "ok"}
    assert firing["MessageId"] in functions["alarms"].ids()
    assert calm["MessageId"] not in functions["alarms"].ids()
    assert {firing["MessageId"], calm["MessageId"]} <= set(functions["audit"].ids())


def test_a_failing_function_gets_503_and_the_resend_reruns_only_it(server, signers, functions):
    message = signers["good"].sign(notification(ALARM.replace("HighCPU", "Flaky"), subject="flaky"))
    # An alarm goes to alarms and audit; a plain message with Subject "flaky" to flaky alone.
    plain = signers["good"].sign(notification("flaky body", subject="flaky"))
    first = deliver(server, plain)
    assert first.status == 503
    assert first.json["rules"] == [
        {"name": "flaky", "outcome": "failed", "reason": "protocol", "id": plain["MessageId"]}
    ]
    assert deliver(server, plain).status == 200
    assert functions["flaky"].ids().count(plain["MessageId"]) == 2
    assert deliver(server, message).status == 200  # an alarm never reaches an sns rule


def test_a_resend_after_one_of_two_rules_failed_reruns_only_that_one(
    server, signers, functions, start_server, dev_ca, tmp_path_factory
):
    good, bad = RecordingFunction(), RecordingFunction(fail=lambda payload: True)
    try:
        tmp = tmp_path_factory.mktemp("sns-retry")
        config = (
            f'[triggers.sns]\ntopics = ["{TOPIC}"]\n\n'
            f'[events.good]\nsource = "sns"\nhost = "127.0.0.1"\nport = {good.port}\n\n'
            f'[events.bad]\nsource = "sns"\nhost = "127.0.0.1"\nport = {bad.port}\n'
        )
        retrying = start_server(config, base=base_config(dev_ca, signers, tmp))
        message = signers["good"].sign(notification("twice"))
        first = deliver(retrying, message)
        assert first.status == 503 and outcomes(first) == {"good": "ok", "bad": "failed"}
        bad.fail = lambda payload: False  # fixed before SNS retries
        again = deliver(retrying, message)
        assert again.status == 200 and outcomes(again) == {"good": "duplicate", "bad": "ok"}
        assert good.ids() == [message["MessageId"]]
        assert bad.ids() == [message["MessageId"]] * 2
    finally:
        good.close()
        bad.close()


def test_a_duplicate_message_id_calls_once(server, signers, functions):
    message = signers["good"].sign(notification("once"))
    assert outcomes(deliver(server, message)) == {"plain": "ok"}
    second = deliver(server, message)
    assert second.status == 200
    assert second.json["rules"][0]["outcome"] == "duplicate"
    assert functions["plain"].ids().count(message["MessageId"]) == 1


def test_an_s3_test_event_and_an_unmatched_message_are_200(server, signers):
    test_event = (EVENTS / "s3-test-event.json").read_text()
    assert deliver(server, signers["good"].sign(notification(test_event))).json == {"rules": []}
    unmatched = deliver(server, signers["good"].sign(notification("x", subject="Nobody")))
    assert (unmatched.status, unmatched.json) == (200, {"rules": []})


def test_an_unsubscribe_confirmation_is_acknowledged(server, signers):
    message = signers["good"].sign(pki.sns_confirmation(kind="UnsubscribeConfirmation", when=now()))
    answer = deliver(server, message)
    assert (answer.status, answer.json["subscription"]) == (200, "unsubscribed")


def test_a_subscription_confirmation_in_log_mode_is_logged_not_fetched(logging_server, signers):
    message = signers["good"].sign(pki.sns_confirmation(when=now(), token="tok-logged"))
    answer = deliver(logging_server, message)
    assert (answer.status, answer.json) == (200, {"rules": [], "subscription": "logged"})
    text = logging_server.wait_for_log("tok-logged")
    assert "WARNING" in text.split("tok-logged")[0].rsplit("\n", 1)[-1]


# --- refusals: 4xx and no function called --------------------------------------------------------

BAD_URLS = {
    "s3-host": "https://s3.amazonaws.com/sns-certs/SimpleNotificationService-good.pem",
    "http": GOOD_URL.replace("https://", "http://"),
    "lookalike-host": GOOD_URL.replace("amazonaws.com", "amazonaws.com.evil.com"),
    "not-pem": GOOD_URL.replace(".pem", ".crt"),
    "port": GOOD_URL.replace("amazonaws.com/", "amazonaws.com:8443/"),
}


def bad_variants(signers: dict[str, pki.SnsSigner]) -> dict[str, tuple[Any, dict, str, int]]:
    """name -> (body, extra headers, reason, status): every way §11 refuses."""
    good = signers["good"]

    def signed(**options: Any) -> dict[str, Any]:
        return good.sign(notification("bad", subject="Hello bad", **options))

    variants: dict[str, tuple[Any, dict, str, int]] = {}
    for name, url in BAD_URLS.items():
        variants[f"cert-url-{name}"] = (
            good.sign(notification("bad"), url=url),
            {},
            "sns-cert-url",
            400,
        )
    variants["untrusted-chain"] = (
        signers["stranger"].sign(notification("bad")),
        {},
        "sns-chain",
        400,
    )
    variants["wrong-san"] = (signers["san"].sign(notification("bad")), {}, "sns-chain", 400)
    variants["tampered-message"] = ({**signed(), "Message": "forged"}, {}, "sns-signature", 400)
    variants["tampered-subject"] = (
        {**signed(), "Subject": "Hello forged"},
        {},
        "sns-signature",
        400,
    )
    variants["unlisted-topic"] = (signed(topic=OTHER_TOPIC), {}, "sns-topic", 403)
    variants["stale"] = (signed(when=now() - timedelta(seconds=601)), {}, "sns-stale", 400)
    variants["future"] = (signed(when=now() + timedelta(seconds=400)), {}, "sns-stale", 400)
    variants["type-mismatch"] = (
        signed(),
        {"x-amz-sns-message-type": "SubscriptionConfirmation"},
        "sns-headers",
        400,
    )
    variants["no-type-header"] = (signed(), {"x-amz-sns-message-type": ""}, "sns-headers", 400)
    variants["signature-version-3"] = (
        {**signed(), "SignatureVersion": "3"},
        {},
        "sns-signature",
        400,
    )
    variants["not-json"] = (
        b"Type=Notification",
        {"x-amz-sns-message-type": "Notification"},
        "sns-malformed",
        400,
    )
    variants["raw-delivery"] = (
        b"hello",
        {"x-amz-sns-message-type": "Notification", "x-amz-sns-rawdelivery": "true"},
        "sns-raw",
        400,
    )
    return variants


def test_every_bad_variant_is_refused_and_calls_nothing(server, signers, functions):
    before = {name: len(function.payloads()) for name, function in functions.items()}
    for name, (message, headers, reason, status) in bad_variants(signers).items():
        answer = deliver(server, message, **headers)
        assert (answer.status, answer.json.get("error")) == (status, reason), (name, answer.body)
        assert set(answer.json) == {"error", "message"}, name
    assert {name: len(function.payloads()) for name, function in functions.items()} == before


def test_an_ssrf_subscribe_url_is_never_connected_to(server, signers):
    listener = ConnectionRecorder()
    try:
        for url in (
            f"http://127.0.0.1:{listener.port}/",
            f"https://127.0.0.1:{listener.port}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t",
        ):
            message = signers["good"].sign(pki.sns_confirmation(subscribe_url=url, when=now()))
            answer = deliver(server, message)
            assert (answer.status, answer.json["error"]) == (400, "sns-subscribe-url")
        assert listener.connections == 0
    finally:
        listener.close()


def test_a_body_over_320_kib_is_413_unread(server):
    answer = deliver(server, b"x" * (320 * 1024 + 1), "Notification")
    assert (answer.status, answer.json["error"]) == (413, "too-large")


def test_a_256_kib_message_fits(server, signers):
    message = signers["good"].sign(notification("x" * (256 * 1024), subject="Nobody"))
    assert deliver(server, message).status == 200


def test_other_methods_are_405(server):
    answer = post(server.url + "/events/sns", b"", method="GET")
    assert answer.status == 405 and answer.json["error"] == "method-not-allowed"


def test_without_a_triggers_table_the_path_is_a_json_404(start_server):
    plain = start_server()
    answer = deliver(plain, b"{}", "Notification")
    assert answer.status == 404 and answer.json["error"] == "not-found"


# --- what the operator sees ----------------------------------------------------------------------


def metric(server, name: str, **labels: str) -> float:
    with urllib.request.urlopen(server.admin_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if found and ",".join(sorted(found.group(1).split(","))) == wanted:
            return float(found.group(2))
    return 0.0


def test_events_and_refusals_are_counted(server, signers):
    def events(rule: str, outcome: str, source: str = "sns") -> float:
        return metric(
            server, "funker_dispatch_events_total", source=source, rule=rule, outcome=outcome
        )

    ok, unmatched = events("plain", "ok"), events("", "unmatched")
    refusals = metric(
        server,
        "funker_dispatch_event_verification_failures_total",
        source="sns",
        reason="sns-topic",
    )
    deliver(server, signers["good"].sign(notification("count me")))
    deliver(server, signers["good"].sign(notification("x", subject="Nobody")))
    deliver(server, signers["good"].sign(notification("x", topic=OTHER_TOPIC)))
    assert events("plain", "ok") == ok + 1
    assert events("", "unmatched") == unmatched + 1
    assert (
        metric(
            server,
            "funker_dispatch_event_verification_failures_total",
            source="sns",
            reason="sns-topic",
        )
        == refusals + 1
    )


def test_one_json_line_per_delivery_and_per_rule_and_never_the_message(server, signers):
    secret = f"secret-{uuid.uuid4()}"
    message = signers["good"].sign(notification(secret, subject="Hello log"))
    deliver(server, message)
    text = server.wait_for_log(f'"id":"{message["MessageId"]}"')
    lines = [json.loads(line) for line in text.splitlines() if message["MessageId"] in line]
    delivery = next(line for line in lines if "kind" in line)
    assert (delivery["outcome"], delivery["status"], delivery["rules"]) == ("ok", 200, 1)
    assert delivery["type"] == "Notification" and delivery["topic"] == TOPIC
    fired = next(line for line in lines if line.get("rule") == "plain")
    assert fired["outcome"] == "ok" and fired["function_ms"] >= 0
    assert secret not in text and "Hello log" not in text


def test_a_refusal_is_logged_with_its_reason_and_escaped(server, signers):
    message = signers["good"].sign(notification("x", topic=OTHER_TOPIC + "\nFORGED"))
    deliver(server, message)
    text = server.wait_for_log("reason=sns-")
    assert "\nFORGED" not in text
