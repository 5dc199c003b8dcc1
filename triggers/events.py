"""The one value every sender's delivery becomes, and the payload a function receives from it."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: An event id's length at most: ids are remembered for `max_age` (docs/events/index.md), so their
#: size, not only their number, must be bounded. Senders' ids are 36-64 characters.
MAX_ID_CHARS = 128
#: Events one delivery may carry (an API destination gets one; SNS one S3 record a message).
MAX_EVENTS = 100


@dataclass(frozen=True)
class Event:
    """One event from a sender: what a rule matches on and what its function receives.

    `id` is stable across the sender's retries (SNS MessageId, `#n` for the
    n-th S3 record), so functions can be idempotent on it. `match` holds the
    values rules match against (`topic`, `bucket`, `event`, `key`, `alarm`,
    `state`, `subject`: whichever the source has); `extra` holds payload keys
    beside the common ones (S3: `"s3": {"bucket", "key"}`).
    """

    source: str
    id: str
    time: str
    event: Any
    attributes: Mapping[str, Any]
    match: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def payload(event: Event, rule: str) -> dict[str, Any]:
    """The JSON object the function of `rule` receives for `event` (docs/events/index.md)."""
    return {
        "trigger": event.source,
        "rule": rule,
        "id": event.id,
        "time": event.time,
        "event": event.event,
        "attributes": dict(event.attributes),
        **event.extra,
    }


def event_id(value: Any, what: str) -> str:
    """`value` as an event id: a non-empty string of at most MAX_ID_CHARS, else malformed."""
    if not isinstance(value, str) or not value:
        raise MalformedDelivery(f"{what} is missing or not a string")
    if len(value) > MAX_ID_CHARS:
        raise MalformedDelivery(f"{what} is longer than {MAX_ID_CHARS} characters")
    return value


class MalformedDelivery(ValueError):
    """A delivery that passed authentication but is not what its sender sends; refused (400).

    `message` is short and safe to answer with; nothing in the body is quoted at length.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def parse_json(body: bytes | str) -> Any:
    """`body` as strict JSON: no NaN or Infinity, no number a double overflows (ValueError).

    What a function is sent must be JSON it can read, and what the dispatcher
    forwards it must be able to write (the funker client refuses NaN).
    """
    return json.loads(body, parse_constant=_not_json, parse_float=_finite)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} overflows a double")
    return value
