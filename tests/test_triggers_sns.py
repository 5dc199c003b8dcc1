"""A verified SNS Notification becomes events: S3 records, a CloudWatch alarm, or any message."""

from __future__ import annotations

import json
from pathlib import Path

from tests import pki
from triggers.events import payload
from triggers.sns import parse_notification

EVENTS = Path(__file__).parent / "fixtures" / "events"


def sample(name: str) -> str:
    return (EVENTS / name).read_text()


def notification(message: str, **options) -> dict:
    return pki.sns_notification(message, **options)


def test_an_s3_notification_is_one_event_per_record_with_decoded_keys():
    parsed = parse_notification(notification(sample("s3-two-records.json"), message_id="m-1"))
    assert parsed.kind == "s3"
    assert [e.id for e in parsed.events] == ["m-1#0", "m-1#1"]
    assert [e.extra["s3"] for e in parsed.events] == [
        {"bucket": "photos", "key": "holiday/red flower.jpg"},
        {"bucket": "photos", "key": "notes/café menu.txt"},
    ]
    first = parsed.events[0]
    assert first.source == "s3"
    assert first.time == "2030-06-01T11:59:58.412Z"  # the record's eventTime
    assert first.event == json.loads(sample("s3-two-records.json"))["Records"][0]
    assert first.match == {
        "topic": pki.SNS_TOPIC,
        "bucket": "photos",
        "event": "ObjectCreated:Put",
        "key": "holiday/red flower.jpg",
    }


def test_the_s3_payload_carries_the_record_the_decoded_key_and_the_sns_attributes():
    message = notification(sample("s3-two-records.json"), message_id="m-1", subject="S3")
    message["MessageAttributes"] = {"team": {"Type": "String", "Value": "web"}}
    event = parse_notification(message).events[0]
    assert payload(event, "uploads") == {
        "trigger": "s3",
        "rule": "uploads",
        "id": "m-1#0",
        "time": "2030-06-01T11:59:58.412Z",
        "event": event.event,
        "attributes": {
            "topic": pki.SNS_TOPIC,
            "subject": "S3",
            "message_id": "m-1",
            "message_attributes": {"team": {"Type": "String", "Value": "web"}},
        },
        "s3": {"bucket": "photos", "key": "holiday/red flower.jpg"},
    }


# As SNS sends them over HTTP/S: the type tells a function how to read the value.
TYPED_ATTRIBUTES = {
    "team": {"Type": "String", "Value": "web"},
    "priority": {"Type": "Number", "Value": "3.5"},
    "token": {"Type": "Binary", "Value": "AAECAw=="},
    "tags": {"Type": "String.Array", "Value": '["a", "b"]'},
}


def test_message_attributes_reach_the_function_exactly_as_sns_sends_them():
    message = notification("plain text", message_id="m-attr")
    message["MessageAttributes"] = TYPED_ATTRIBUTES
    (event,) = parse_notification(message).events
    assert event.attributes["message_attributes"] == TYPED_ATTRIBUTES


def test_lambda_powertools_reads_the_attributes_a_function_receives():
    # What function authors already use for SNS (aws-lambda-powertools' data classes).
    from aws_lambda_powertools.utilities.data_classes.sns_event import SNSMessage

    message = notification("plain text", message_id="m-pt")
    message["MessageAttributes"] = TYPED_ATTRIBUTES
    (event,) = parse_notification(message).events
    received = payload(event, "any")["attributes"]["message_attributes"]
    read = SNSMessage({"MessageAttributes": received}).message_attributes
    assert (read["priority"].get_type, read["priority"].value) == ("Number", "3.5")
    assert (read["token"].get_type, read["token"].value) == ("Binary", "AAECAw==")


def test_an_attribute_sns_never_sends_is_left_out_not_guessed():
    message = notification("plain text", message_id="m-odd")
    message["MessageAttributes"] = {
        "ok": {"Type": "String", "Value": "v"},
        "no-type": {"Value": "v"},
        "not-text": {"Type": "Number", "Value": 3},
        "flat": "v",
    }
    (event,) = parse_notification(message).events
    assert event.attributes["message_attributes"] == {"ok": {"Type": "String", "Value": "v"}}


def test_only_s3_records_become_s3_events_and_keep_their_index():
    records = json.loads(sample("s3-two-records.json"))["Records"]
    mixed = json.dumps({"Records": [{"eventSource": "aws:sqs"}, records[1]]})
    parsed = parse_notification(notification(mixed, message_id="m-2"))
    assert [e.id for e in parsed.events] == ["m-2#1"]


def test_an_s3_record_missing_fields_still_parses_and_matches_less():
    message = json.dumps({"Records": [{"eventSource": "aws:s3"}]})
    (event,) = parse_notification(notification(message)).events
    assert event.match["bucket"] == "" and event.match["key"] == ""
    assert event.time == notification(message)["Timestamp"]


def test_the_s3_test_event_is_no_event():
    parsed = parse_notification(notification(sample("s3-test-event.json")))
    assert (parsed.kind, parsed.events) == ("s3-test", ())


def test_a_cloudwatch_alarm_is_one_event_with_the_alarm_object():
    parsed = parse_notification(notification(sample("cloudwatch-alarm.json"), message_id="a-1"))
    assert parsed.kind == "cloudwatch"
    (event,) = parsed.events
    assert (event.source, event.id) == ("cloudwatch", "a-1")
    assert event.event["NewStateReason"].startswith("Threshold Crossed")
    assert event.match == {"topic": pki.SNS_TOPIC, "alarm": "HighCPU", "state": "ALARM"}
    assert event.time == notification(sample("cloudwatch-alarm.json"))["Timestamp"]
    assert "s3" not in payload(event, "alarms")


def test_any_other_json_message_is_an_sns_event_parsed():
    parsed = parse_notification(notification('{"deploy": "done", "n": 3}', subject="CI"))
    (event,) = parsed.events
    assert (parsed.kind, event.source) == ("sns", "sns")
    assert event.event == {"deploy": "done", "n": 3}
    assert event.match == {"topic": pki.SNS_TOPIC, "subject": "CI"}


def test_a_text_message_stays_a_string_and_nan_is_not_json():
    # 1e400 overflows a double: parsed, it would be infinity, which no function can be sent.
    for text in ("hello world", "NaN", "[1, Infinity]", "[" * 5000, '{"n": 1e400}'):
        (event,) = parse_notification(notification(text)).events
        assert event.event == text


def test_an_sns_event_without_subject_matches_an_empty_subject():
    (event,) = parse_notification(notification("hi")).events
    assert event.match["subject"] == "" and event.attributes["subject"] is None
