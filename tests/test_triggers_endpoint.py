"""SnsEndpoint in process: verified deliveries fan out to real loopback functions, retries re-run
only what failed, confirmations are checked before anything is fetched."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import pki
from tests.recording import ConnectionRecorder, RecordingFunction, close_listener
from triggers.endpoint import SnsEndpoint
from triggers.fanout import MAX_IDS, Fanout, Memory
from triggers.rules import parse_rule
from verification import SnsVerifier
from verification.errors import CertFetchFailed

EVENTS = Path(__file__).parent / "fixtures" / "events"
S3_TWO = (EVENTS / "s3-two-records.json").read_text()
ALARM = (EVENTS / "cloudwatch-alarm.json").read_text()


@pytest.fixture(scope="module")
def signer() -> pki.SnsSigner:
    return pki.sns_signer()


@pytest.fixture
def functions() -> Iterator[dict[str, RecordingFunction]]:
    made: dict[str, RecordingFunction] = {}
    yield made
    for function in made.values():
        function.close()


class Stall:
    """A function that accepts and never answers."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        close_listener(self._listener)
        for conn in self._held:
            conn.close()


def endpoint(
    signer: pki.SnsSigner, rules: dict[str, dict[str, Any]], *, deadline: float = 5.0, **options
) -> SnsEndpoint:
    verifier = SnsVerifier(
        roots=[signer.root.cert],
        fetch=lambda url: signer.pem,
        now=lambda: pki.NOW,
        topics=[pki.SNS_TOPIC],
    )
    parsed = [parse_rule(name, table, default_port=9999) for name, table in rules.items()]
    return SnsEndpoint(verifier, parsed, Fanout(deadline, Memory(3600)), **options)


def at(function: RecordingFunction | Stall, **table: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": function.port, **table}


def deliver(target: SnsEndpoint, message: dict[str, Any]):
    return target.receive({"x-amz-sns-message-type": message["Type"]}, json.dumps(message).encode())


def test_a_genuine_message_whose_chain_cannot_be_fetched_now_is_503_so_sns_retries(
    signer, functions
):
    # SNS never retries a 4xx: a 400 here would drop a genuine message for a passing reason.
    alarms = functions["alarms"] = RecordingFunction()

    def unreachable(url: str) -> bytes:
        raise CertFetchFailed("the certificate host did not answer")

    verifier = SnsVerifier(
        roots=[signer.root.cert], fetch=unreachable, now=lambda: pki.NOW, topics=[pki.SNS_TOPIC]
    )
    rules = [parse_rule("paging", at(alarms, source="cloudwatch"), default_port=9999)]
    target = SnsEndpoint(verifier, rules, Fanout(5.0, Memory(3600)))
    message = signer.sign(pki.sns_notification(ALARM, message_id="fetch-1"))

    for _ in range(2):  # the remembered failure (negative cache) is as passing as the first
        delivery = deliver(target, message)
        assert (delivery.status, delivery.body["error"]) == (503, "sns-cert-fetch")
    assert alarms.ids() == []


def test_a_message_id_longer_than_128_characters_is_malformed(signer, functions):
    alarms = functions["alarms"] = RecordingFunction()
    target = endpoint(signer, {"paging": at(alarms, source="cloudwatch")})
    message = signer.sign(pki.sns_notification(ALARM, message_id="m" * 129))
    delivery = deliver(target, message)
    assert (delivery.status, delivery.body["error"]) == (400, "sns-malformed")
    assert alarms.ids() == [] and len(target.fanout.memory) == 0


def test_an_s3_notification_calls_once_per_matching_record_with_decoded_keys(signer, functions):
    uploads = functions["uploads"] = RecordingFunction()
    target = endpoint(signer, {"uploads": at(uploads, source="s3", key_prefix="holiday/")})
    message = signer.sign(pki.sns_notification(S3_TWO, message_id="m-s3"))
    delivery = deliver(target, message)
    assert delivery.status == 200
    assert delivery.body == {
        "rules": [{"name": "uploads", "outcome": "ok", "reason": None, "id": "m-s3#0"}]
    }
    (received,) = uploads.payloads()
    assert received["s3"] == {"bucket": "photos", "key": "holiday/red flower.jpg"}
    assert received["trigger"] == "s3" and received["rule"] == "uploads"
    assert delivery.unmatched == ["s3"]  # the second record matched no rule


def test_every_matching_record_is_one_call(signer, functions):
    uploads = functions["uploads"] = RecordingFunction()
    target = endpoint(signer, {"uploads": at(uploads, source="s3", bucket="photos")})
    deliver(target, signer.sign(pki.sns_notification(S3_TWO, message_id="m")))
    assert sorted(uploads.ids()) == ["m#0", "m#1"]
    assert sorted(p["s3"]["key"] for p in uploads.payloads()) == [
        "holiday/red flower.jpg",
        "notes/café menu.txt",
    ]


def test_a_cloudwatch_rule_takes_alarm_but_not_ok(signer, functions):
    alarms = functions["alarms"] = RecordingFunction()
    target = endpoint(signer, {"paging": at(alarms, source="cloudwatch", state="ALARM")})
    firing = signer.sign(pki.sns_notification(ALARM, message_id="a-1"))
    calm = signer.sign(pki.sns_notification(ALARM.replace('"ALARM"', '"OK"'), message_id="a-2"))
    assert deliver(target, firing).outcome == "ok"
    assert deliver(target, calm).outcome == "unmatched"
    (received,) = alarms.payloads()
    assert received["event"]["AlarmName"] == "HighCPU" and received["id"] == "a-1"


def test_two_matching_rules_both_fire(signer, functions):
    a = functions["a"] = RecordingFunction()
    b = functions["b"] = RecordingFunction()
    target = endpoint(
        signer, {"first": at(a, source="cloudwatch"), "second": at(b, source="cloudwatch")}
    )
    delivery = deliver(target, signer.sign(pki.sns_notification(ALARM, message_id="fan")))
    assert delivery.status == 200
    assert [r["name"] for r in delivery.body["rules"]] == ["first", "second"]
    assert a.ids() == ["fan"] and b.ids() == ["fan"]
    assert {p["rule"] for p in a.payloads() + b.payloads()} == {"first", "second"}


def test_a_failing_function_answers_503_and_the_resend_reruns_only_it(signer, functions):
    failures = {"left": 1}

    def fail_once(payload: Any) -> bool:
        failures["left"] -= 1
        return failures["left"] >= 0

    good = functions["good"] = RecordingFunction()
    flaky = functions["flaky"] = RecordingFunction(fail=fail_once)
    target = endpoint(
        signer, {"good": at(good, source="cloudwatch"), "flaky": at(flaky, source="cloudwatch")}
    )
    message = signer.sign(pki.sns_notification(ALARM, message_id="retry-me"))
    first = deliver(target, message)
    assert first.status == 503
    assert {r["name"]: r["outcome"] for r in first.body["rules"]} == {
        "good": "ok",
        "flaky": "failed",
    }
    assert next(r for r in first.body["rules"] if r["name"] == "flaky")["reason"] == "protocol"
    again = deliver(target, message)  # SNS resends the same message
    assert again.status == 200
    assert {r["name"]: (r["outcome"], r["reason"]) for r in again.body["rules"]} == {
        "good": ("duplicate", "already-succeeded"),
        "flaky": ("ok", None),
    }
    assert good.ids() == ["retry-me"]
    assert flaky.ids() == ["retry-me", "retry-me"]


def test_a_duplicate_message_id_calls_once(signer, functions):
    once = functions["once"] = RecordingFunction()
    target = endpoint(signer, {"once": at(once, source="cloudwatch")})
    message = signer.sign(pki.sns_notification(ALARM, message_id="dup"))
    assert deliver(target, message).outcome == "ok"
    second = deliver(target, message)
    assert (second.status, second.outcome) == (200, "duplicate")
    assert once.ids() == ["dup"]


def test_an_unreachable_function_fails_the_delivery(signer, functions):
    gone = RecordingFunction()
    gone.close()
    target = endpoint(signer, {"gone": at(gone, source="sns")}, deadline=0.5)
    delivery = deliver(target, signer.sign(pki.sns_notification("hello")))
    assert delivery.status == 503
    assert delivery.body["rules"][0]["reason"] in ("unreachable", "deadline")


def test_a_rule_timeout_shortens_the_deadline(signer):
    stall = Stall()
    try:
        target = endpoint(signer, {"slow": at(stall, source="sns", timeout=0.3)}, deadline=10)
        delivery = deliver(target, signer.sign(pki.sns_notification("hello")))
        assert delivery.body["rules"][0]["reason"] == "deadline"
        assert delivery.fired[0].function_ms < 5000  # bounded by the rule, not by the endpoint
    finally:
        stall.close()


def test_the_endpoint_deadline_bounds_a_longer_rule_timeout(signer):
    stall = Stall()
    try:
        target = endpoint(signer, {"slow": at(stall, source="sns", timeout=30)}, deadline=0.3)
        delivery = deliver(target, signer.sign(pki.sns_notification("hello")))
        assert (delivery.status, delivery.body["rules"][0]["reason"]) == (503, "deadline")
    finally:
        stall.close()


def test_an_s3_test_event_is_answered_and_counted_unmatched(signer, functions):
    uploads = functions["uploads"] = RecordingFunction()
    target = endpoint(signer, {"uploads": at(uploads, source="s3")})
    test_event = (EVENTS / "s3-test-event.json").read_text()
    delivery = deliver(target, signer.sign(pki.sns_notification(test_event)))
    assert (delivery.status, delivery.outcome, delivery.reason) == (
        200,
        "unmatched",
        "s3-test-event",
    )
    assert delivery.body == {"rules": []} and uploads.payloads() == []


def test_sns_rules_take_plain_messages_only(signer, functions):
    plain = functions["plain"] = RecordingFunction()
    target = endpoint(signer, {"plain": at(plain, source="sns", subject="Deploy*")})
    deliver(target, signer.sign(pki.sns_notification(ALARM, subject="Deploy alarm")))
    deliver(target, signer.sign(pki.sns_notification("done", subject="Deploy 7", message_id="d")))
    assert plain.ids() == ["d"]


def test_a_refused_delivery_calls_nothing_and_says_why(signer, functions):
    uploads = functions["uploads"] = RecordingFunction()
    target = endpoint(signer, {"uploads": at(uploads, source="sns")})
    message = signer.sign(pki.sns_notification("hello", message_id="abc-123"))
    message["Message"] = "forged"
    delivery = deliver(target, message)
    assert (delivery.status, delivery.body["error"]) == (400, "sns-signature")
    assert set(delivery.body) == {"error", "message"}
    assert delivery.message_id == "abc-123"  # for the operator's log line
    assert uploads.payloads() == []


def test_an_unlisted_topic_is_403(signer):
    target = endpoint(signer, {})
    other = "arn:aws:sns:us-east-1:123456789012:someone-else"
    delivery = deliver(target, signer.sign(pki.sns_notification("hi", topic=other)))
    assert (delivery.status, delivery.body["error"]) == (403, "sns-topic")


# --- subscriptions -------------------------------------------------------------------------------


def test_auto_confirmation_gets_snss_own_url(signer):
    fetched: list[str] = []
    target = endpoint(signer, {}, get=lambda url: fetched.append(url) or b"<ok/>")
    message = signer.sign(pki.sns_confirmation())
    delivery = deliver(target, message)
    assert (delivery.status, delivery.outcome) == (200, "confirmed")
    assert delivery.body == {"rules": [], "subscription": "confirmed"}
    assert fetched == [message["SubscribeURL"]]


def test_a_failed_confirmation_is_503_so_sns_sends_it_again(signer):
    def refuse(url: str) -> bytes:
        raise OSError("connection reset")

    target = endpoint(signer, {}, get=refuse)
    delivery = deliver(target, signer.sign(pki.sns_confirmation()))
    assert (delivery.status, delivery.outcome) == (503, "confirm-failed")


def test_an_ssrf_subscribe_url_is_never_connected_to(signer):
    listener = ConnectionRecorder()
    try:
        # The real fetcher, pointed at a real listener: only the URL check stands between.
        target = endpoint(signer, {})
        url = f"http://127.0.0.1:{listener.port}/?Action=ConfirmSubscription"
        delivery = deliver(target, signer.sign(pki.sns_confirmation(subscribe_url=url)))
        assert (delivery.status, delivery.body["error"]) == (400, "sns-subscribe-url")
        https = url.replace("http://", "https://")
        delivery = deliver(target, signer.sign(pki.sns_confirmation(subscribe_url=https)))
        assert delivery.body["error"] == "sns-subscribe-url"
        assert listener.connections == 0
    finally:
        listener.close()


def test_log_mode_logs_the_url_and_fetches_nothing(signer, caplog):
    fetched: list[str] = []
    target = endpoint(signer, {}, confirm="log", get=fetched.append)
    message = signer.sign(pki.sns_confirmation())
    with caplog.at_level("WARNING", logger="funker_dispatch"):
        delivery = deliver(target, message)
    assert (delivery.status, delivery.outcome) == (200, "confirm-logged")
    assert fetched == []
    assert message["SubscribeURL"] in caplog.text


def test_a_confirmation_for_an_unlisted_topic_is_refused_before_anything(signer):
    fetched: list[str] = []
    target = endpoint(signer, {}, get=fetched.append)
    other = "arn:aws:sns:us-east-1:123456789012:someone-else"
    delivery = deliver(target, signer.sign(pki.sns_confirmation(topic=other)))
    assert delivery.status == 403 and fetched == []


def test_an_unsubscribe_confirmation_is_acknowledged(signer, caplog):
    target = endpoint(signer, {})
    message = signer.sign(pki.sns_confirmation(kind="UnsubscribeConfirmation"))
    with caplog.at_level("WARNING", logger="funker_dispatch"):
        delivery = deliver(target, message)
    assert (delivery.status, delivery.outcome) == (200, "unsubscribed")
    assert "unsubscribed" in caplog.text


# --- raw delivery --------------------------------------------------------------------------------

RAW_HEADERS = {
    "x-amz-sns-message-type": "Notification",
    "x-amz-sns-rawdelivery": "true",
    "x-amz-sns-message-id": "raw-1",
    "x-amz-sns-topic-arn": pki.SNS_TOPIC,
}


def test_raw_delivery_is_refused_by_default(signer):
    delivery = endpoint(signer, {}).receive(RAW_HEADERS, b"hello")
    assert (delivery.status, delivery.body["error"]) == (400, "sns-raw")


def test_raw_delivery_when_allowed_is_dispatched_unauthenticated(signer, functions):
    plain = functions["plain"] = RecordingFunction()
    target = endpoint(signer, {"plain": at(plain, source="sns")}, allow_raw=True)
    assert target.receive(RAW_HEADERS, b'{"n": 1}').status == 200
    (received,) = plain.payloads()
    assert (received["id"], received["event"]) == ("raw-1", {"n": 1})
    other = {**RAW_HEADERS, "x-amz-sns-topic-arn": "arn:aws:sns:us-east-1:123456789012:x"}
    assert target.receive(other, b"hi").status == 403


# --- the memory ----------------------------------------------------------------------------------


def test_memory_forgets_after_max_age():
    now = [0.0]
    memory = Memory(60, clock=lambda: now[0])
    assert memory.claim("id", "r") is None
    memory.done("id", "r", succeeded=True)
    assert memory.claim("id", "r") == "already-succeeded"
    now[0] = 61
    assert memory.claim("id", "r") is None


def test_memory_is_bounded_oldest_first():
    memory = Memory(3600, max_ids=3)
    for index in range(5):
        memory.claim(f"id-{index}", "r")
        memory.done(f"id-{index}", "r", succeeded=True)
    assert len(memory) == 3
    assert memory.claim("id-0", "r") is None  # forgotten
    assert memory.claim("id-4", "r") == "already-succeeded"


def test_the_default_bound_is_ten_thousand_ids():
    memory = Memory(3600)
    for index in range(MAX_IDS + 50):
        memory.claim(str(index), "r")
    assert len(memory) == MAX_IDS == 10_000


def test_a_rule_running_now_is_not_started_twice():
    memory = Memory(3600)
    assert memory.claim("id", "r") is None
    assert memory.claim("id", "r") == "in-flight"
    memory.done("id", "r", succeeded=False)
    assert memory.claim("id", "r") is None  # a failure is retried
