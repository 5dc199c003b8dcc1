"""An EventBridge API destination delivery as events: one envelope, one record, or an array.

Only parsing happens here (the connection's credential is checked first, in
`verification.EventBridgeAuth`). A rule's target POSTs one event envelope
(`version`, `id`, `detail-type`, `source`, `account`, `time`, `region`,
`resources`, `detail`). A Pipe POSTs one DynamoDB stream record (`eventSource`
`"aws:dynamodb"`, see `dynamodb.py`) a call: an API destination is not a
batching target of EventBridge Pipes. A JSON array of records or envelopes is
accepted too; every element is an event of its own, matched and run on its own:

- an envelope: one `eventbridge` event, id the envelope's `id`, time its
  `time`, attributes `{"event_source", "detail_type"}`;
- a DynamoDB record: one `dynamodb` event (`dynamodb.record_event`).

Anything else in a batch makes the whole delivery malformed (400, which
EventBridge does not retry): a Pipe whose source is neither cannot become
right by being sent again, and its dead-letter queue keeps it for the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from triggers import dynamodb
from triggers.events import Event, MalformedDelivery, event_id, parse_json

EVENTBRIDGE = "eventbridge"


@dataclass(frozen=True)
class Contents:
    """What one delivery carried: its events in the order sent, and whether it was a batch."""

    events: tuple[Event, ...]
    batch: bool


def parse_delivery(body: bytes, *, received: datetime) -> Contents:
    """The events of one delivery; MalformedDelivery when it is not one."""
    try:
        document = parse_json(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise MalformedDelivery("body is not JSON") from None
    if isinstance(document, dict):
        return Contents((_element(document, received),), batch=False)
    if isinstance(document, list):
        events = []
        for index, element in enumerate(document):
            try:
                events.append(_element(element, received))
            except MalformedDelivery as exc:
                raise MalformedDelivery(f"batch element {index}: {exc.message}") from None
        return Contents(tuple(events), batch=True)
    raise MalformedDelivery("body is neither an event, a DynamoDB record nor a batch of them")


def is_envelope(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(value.get(key), str) and value[key] for key in ("id", "source", "detail-type")
    )


def envelope_event(envelope: Mapping[str, Any], *, received: datetime) -> Event:
    time = envelope.get("time")
    return Event(
        source=EVENTBRIDGE,
        id=event_id(envelope["id"], "the event's id"),
        time=time if isinstance(time, str) and time else _stamp(received),
        event=dict(envelope),
        attributes={"event_source": envelope["source"], "detail_type": envelope["detail-type"]},
        match={"event_source": envelope["source"], "detail_type": envelope["detail-type"]},
    )


def _element(element: Any, received: datetime) -> Event:
    if dynamodb.is_record(element):
        return dynamodb.record_event(element, received=received)
    if is_envelope(element):
        return envelope_event(element, received=received)
    raise MalformedDelivery(
        "neither an EventBridge event (id, source, detail-type) nor a DynamoDB stream record"
    )


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
