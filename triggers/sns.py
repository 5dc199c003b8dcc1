"""A verified SNS Notification as events: S3 records, a CloudWatch alarm, or any message.

Only parsing happens here. What the message is decides the source, and
`sns` is exclusive: S3 notifications, S3 test events and alarms never fire
`sns` rules (docs/events/index.md).

- An S3 event notification (`Message` is JSON with `Records[].eventSource`
  `"aws:s3"`): one `s3` event per S3 record, id `<MessageId>#n` (n counting
  records from 0), time the record's `eventTime`, and `s3.key` decoded with
  `unquote_plus` as S3 encodes it (`red+flower.jpg` is `red flower.jpg`).
- `s3:TestEvent` (sent once when a bucket's notification is configured):
  no event at all; the caller answers 200 and counts it unmatched.
- A CloudWatch alarm (`Message` is JSON with `AlarmName`, `NewStateValue`):
  one `cloudwatch` event, the alarm object as `event`.
- Anything else: one `sns` event, `Message` parsed when it is JSON, else
  the string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from triggers.events import Event, event_id, parse_json

S3 = "s3"
S3_TEST = "s3-test"
CLOUDWATCH = "cloudwatch"
SNS = "sns"


@dataclass(frozen=True)
class Notification:
    """What one SNS Notification carried: its kind and the events it became (none for a test)."""

    kind: str  # s3 | s3-test | cloudwatch | sns
    events: tuple[Event, ...]


def parse_notification(message: Mapping[str, Any]) -> Notification:
    """The events of a verified SNS Notification (the dict `SnsVerifier.verify` returned).

    MalformedDelivery when its MessageId is too long to be remembered as an id.
    """
    event_id(message["MessageId"], "MessageId")
    body = _json(message["Message"])
    attributes = {
        "topic": message["TopicArn"],
        "subject": message.get("Subject"),
        "message_id": message["MessageId"],
        "message_attributes": _message_attributes(message.get("MessageAttributes")),
    }
    if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
        return Notification(S3_TEST, ())
    records = body.get("Records") if isinstance(body, dict) else None
    if isinstance(records, list) and any(_is_s3(record) for record in records):
        events = tuple(
            _s3_event(message, index, record, attributes)
            for index, record in enumerate(records)
            if _is_s3(record)
        )
        return Notification(S3, events)
    topic = message["TopicArn"]
    if (
        isinstance(body, dict)
        and isinstance(body.get("AlarmName"), str)
        and isinstance(body.get("NewStateValue"), str)
    ):
        alarm = Event(
            source=CLOUDWATCH,
            id=message["MessageId"],
            time=message["Timestamp"],
            event=body,
            attributes=attributes,
            match={"topic": topic, "alarm": body["AlarmName"], "state": body["NewStateValue"]},
        )
        return Notification(CLOUDWATCH, (alarm,))
    subject = message.get("Subject")
    other = Event(
        source=SNS,
        id=message["MessageId"],
        time=message["Timestamp"],
        event=body,
        attributes=attributes,
        match={"topic": topic, "subject": subject if isinstance(subject, str) else ""},
    )
    return Notification(SNS, (other,))


def _s3_event(
    message: Mapping[str, Any], index: int, record: dict[str, Any], attributes: dict[str, Any]
) -> Event:
    bucket = _text(record, "s3", "bucket", "name")
    key = unquote_plus(_text(record, "s3", "object", "key"))
    time = record.get("eventTime")
    return Event(
        source=S3,
        id=f"{message['MessageId']}#{index}",
        time=time if isinstance(time, str) else message["Timestamp"],
        event=record,
        attributes=attributes,
        match={
            "topic": message["TopicArn"],
            "bucket": bucket,
            "event": _text(record, "eventName"),
            "key": key,
        },
        extra={"s3": {"bucket": bucket, "key": key}},
    )


def _is_s3(record: Any) -> bool:
    return isinstance(record, dict) and record.get("eventSource") == "aws:s3"


def _text(value: Any, *path: str) -> str:
    """The string at `path` in nested objects, else "" (a record missing a field matches less)."""
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def _json(message: str) -> Any:
    """`message` parsed when it is strict JSON (as every event body is), else the string."""
    try:
        return parse_json(message)
    except (ValueError, RecursionError):
        return message


def _message_attributes(attributes: Any) -> dict[str, dict[str, str]]:
    """SNS MessageAttributes exactly as SNS sends them: `{name: {"Type", "Value"}}`.

    The type is kept: it is how a function tells String, Number and Binary
    (base64) apart, and what AWS's SDKs and Lambda Powertools' data classes
    read. An entry that is not a Type and a Value, both text, is not SNS's.
    """
    if not isinstance(attributes, dict):
        return {}
    typed = {}
    for name, attribute in attributes.items():
        if not isinstance(attribute, dict):
            continue
        kind, value = attribute.get("Type"), attribute.get("Value")
        if isinstance(kind, str) and isinstance(value, str):
            typed[name] = {"Type": kind, "Value": value}
    return typed
