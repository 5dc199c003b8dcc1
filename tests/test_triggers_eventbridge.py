"""EventBridge deliveries as events: one envelope, or a Pipes batch of records and envelopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from triggers.eventbridge import parse_delivery
from triggers.events import MalformedDelivery, payload

EVENTS = Path(__file__).parent / "fixtures" / "events"
EC2 = json.loads((EVENTS / "eventbridge-ec2.json").read_text())
BATCH = json.loads((EVENTS / "dynamodb-batch.json").read_text())
RECEIVED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def parse(document) -> list:
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return list(parse_delivery(raw, received=RECEIVED).events)


def test_one_envelope_is_one_eventbridge_event():
    (event,) = parse(EC2)
    assert (event.source, event.id, event.time) == (
        "eventbridge",
        "7bf73129-1428-4cd3-a780-95db273d1602",
        "2026-11-30T15:39:08Z",
    )
    assert event.attributes == {
        "event_source": "aws.ec2",
        "detail_type": "EC2 Instance State-change Notification",
    }
    assert event.match == event.attributes
    sent = payload(event, "instances")
    assert sent["event"] == EC2 and sent["trigger"] == "eventbridge"
    assert set(sent) == {"trigger", "rule", "id", "time", "event", "attributes"}


def test_a_pipes_batch_is_one_event_per_element_in_order():
    events = parse([*BATCH, EC2])
    assert [(e.source, e.id) for e in events] == [
        ("dynamodb", "c4ca4238a0b923820dcc509a6f75849b"),
        ("dynamodb", "c81e728d9d4c2f636f067f89cc14862c"),
        ("dynamodb", "eccbc87e4b5ce2fe28308fd9f2a7baf3"),
        ("eventbridge", EC2["id"]),
    ]
    assert [e.match.get("table") for e in events] == ["Orders", "Orders", "Customers", None]


def test_a_single_record_outside_a_batch_and_an_empty_batch():
    assert [e.source for e in parse(BATCH[0])] == ["dynamodb"]
    assert parse([]) == []
    assert parse_delivery(b"\xef\xbb\xbf[]", received=RECEIVED).batch  # a BOM is allowed
    assert not parse_delivery(json.dumps(EC2).encode(), received=RECEIVED).batch


def test_an_envelope_without_time_gets_the_receive_time():
    (event,) = parse({k: v for k, v in EC2.items() if k != "time"})
    assert event.time == "2026-12-01T09:00:00Z"


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (b"not json", "not JSON"),
        (b'{"id": NaN}', "not JSON"),
        (b'{"detail": 1e400}', "not JSON"),
        (b"\xff", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        ("a string", "neither"),
        ({"id": "x", "source": "aws.ec2"}, "neither an EventBridge event"),
        ({**EC2, "id": ""}, "neither an EventBridge event"),
        ([BATCH[0], {"eventSource": "aws:sqs", "messageId": "m"}], "batch element 1"),
        ([{**BATCH[0], "eventID": 7}], "batch element 0: a DynamoDB record's eventID is missing"),
    ],
)
def test_what_no_sender_sends_is_malformed(document, says):
    with pytest.raises(MalformedDelivery) as error:
        parse(document)
    assert says in error.value.message and error.value.status == 400
