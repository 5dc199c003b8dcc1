"""DynamoDB stream records (delivered by an EventBridge Pipe) as events, images as plain JSON.

Only parsing happens here. A record is what DynamoDB Streams writes (and a
Pipe passes on unchanged in its batch): `eventID`, `eventName` (INSERT,
MODIFY, REMOVE), `eventSourceARN` (`arn:aws:dynamodb:REGION:ACCOUNT:table/
NAME/stream/LABEL`) and `dynamodb` with `Keys`, `NewImage`, `OldImage` in
DynamoDB's typed JSON (`{"N": "42"}`, `{"M": {...}}`).

The event a function receives keeps the record exactly as sent, and adds
`"dynamodb": {"keys", "new", "old"}` converted to plain JSON values, so a
function need not know the type descriptors. Numbers are exact: DynamoDB
holds up to 38 significant digits, a double 15-17, so an integral number
within ±2^53 (what every JSON reader holds exactly) becomes a JSON integer
and every other number stays the string DynamoDB sent (docs/events/index.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from triggers.events import Event, MalformedDelivery, event_id

DYNAMODB = "dynamodb"
EVENT_SOURCE = "aws:dynamodb"
EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
#: Integers a double (and so every JSON reader) holds exactly.
SAFE_INTEGER = 2**53
#: DynamoDB nests documents 32 levels deep at most; anything deeper was not written by it.
MAX_DEPTH = 32
_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def is_record(value: Any) -> bool:
    return isinstance(value, dict) and value.get("eventSource") == EVENT_SOURCE


def record_event(record: Mapping[str, Any], *, received: datetime) -> Event:
    """One `dynamodb` event from a stream record; MalformedDelivery when it cannot be one."""
    record_id = event_id(record.get("eventID"), "a DynamoDB record's eventID")
    name = record.get("eventName")
    if name not in EVENT_NAMES:
        raise MalformedDelivery(
            f"DynamoDB record {record_id}: eventName is not INSERT, MODIFY or REMOVE"
        )
    arn = record.get("eventSourceARN")
    arn = arn if isinstance(arn, str) else ""
    stream = record.get("dynamodb")
    if not isinstance(stream, dict):
        raise MalformedDelivery(f"DynamoDB record {record_id} has no dynamodb object")
    try:
        images = {
            "keys": item(stream.get("Keys")),
            "new": item(stream.get("NewImage")),
            "old": item(stream.get("OldImage")),
        }
    except ValueError as exc:
        raise MalformedDelivery(f"DynamoDB record {record_id}: {exc}") from None
    table = table_name(arn)
    return Event(
        source=DYNAMODB,
        id=record_id,
        time=_created(stream.get("ApproximateCreationDateTime"), received),
        event=dict(record),
        attributes={"table": table, "event_source_arn": arn},
        match={"table": table, "event": name},
        extra={"dynamodb": images},
    )


def table_name(arn: str) -> str:
    """`Orders` from `arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/...`, else ""."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != "dynamodb":
        return ""
    resource = parts[5].split("/")
    return resource[1] if len(resource) >= 2 and resource[0] == "table" else ""


def item(image: Any) -> dict[str, Any] | None:
    """A DynamoDB item (`{"name": {"S": "x"}, ...}`) as plain JSON; None when there is none."""
    if image is None:
        return None
    if not isinstance(image, dict):
        raise ValueError("an image is not an object of attributes")
    return {name: plain(value, 1) for name, value in image.items()}


def plain(value: Any, depth: int = 0) -> Any:
    """One typed attribute value (`{"N": "1"}`) as a plain JSON value (ValueError if it is none).

    S, B (its base64 string as sent), BOOL, NULL, N, M, L, SS, NS, BS.
    """
    if depth > MAX_DEPTH:
        raise ValueError(f"attribute values nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError("an attribute value is not one {TYPE: value} object")
    ((kind, inner),) = value.items()
    if kind in ("S", "B") and isinstance(inner, str):
        return inner
    if kind == "BOOL" and isinstance(inner, bool):
        return inner
    if kind == "NULL" and inner is True:
        return None
    if kind == "N" and isinstance(inner, str):
        return number(inner)
    if kind == "M" and isinstance(inner, dict):
        return {name: plain(member, depth + 1) for name, member in inner.items()}
    if kind == "L" and isinstance(inner, list):
        return [plain(member, depth + 1) for member in inner]
    if kind in ("SS", "BS") and isinstance(inner, list) and all(isinstance(s, str) for s in inner):
        return list(inner)
    if kind == "NS" and isinstance(inner, list) and all(isinstance(s, str) for s in inner):
        return [number(n) for n in inner]
    raise ValueError(f"{kind!r} is not a DynamoDB type, or its value has the wrong shape")


def number(text: str) -> int | str:
    """An N value: an int when integral and within ±2^53, else the string as DynamoDB sent it."""
    # Decimal() alone also takes " 1", "1_000", "NaN" and "Infinity", none of which DynamoDB writes.
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a DynamoDB number")
    value = Decimal(text)
    # The exponent test first: 1E+400000000 is integral, and building its int would be slow.
    if value.adjusted() < 16 and value == value.to_integral_value() and abs(value) <= SAFE_INTEGER:
        return int(value)
    return text


def _created(stamp: Any, received: datetime) -> str:
    """`ApproximateCreationDateTime` as ISO 8601, else when the delivery was received.

    DynamoDB Streams write epoch seconds; Kinesis Data Streams for DynamoDB
    (another Pipe source) epoch milliseconds. Seconds reach 1e11 in the year
    5138, so the magnitude tells them apart.
    """
    when = received
    if isinstance(stamp, int | float) and not isinstance(stamp, bool) and 0 <= stamp < 1e14:
        when = datetime.fromtimestamp(stamp / 1000 if stamp >= 1e11 else stamp, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
