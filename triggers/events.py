"""The one value every sender's delivery becomes, and the payload a function receives from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    """The JSON object the function of `rule` receives for `event` (DESIGN §11)."""
    return {
        "trigger": event.source,
        "rule": rule,
        "id": event.id,
        "time": event.time,
        "event": event.event,
        "attributes": dict(event.attributes),
        **event.extra,
    }
