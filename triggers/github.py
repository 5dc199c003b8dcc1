"""A verified GitHub webhook delivery as one event (the signature is checked before, in
`verification.GitHubSignature`).

Only parsing happens here. The event name is the `X-GitHub-Event` header,
the id `X-GitHub-Delivery` (kept when a delivery is redelivered from
GitHub's UI, so a function can be idempotent on it), the time when it was
received (GitHub's body has no common timestamp), `event` the body as sent.
Rules match `event`, `repository` (the body's `repository.full_name`) and
`ref` (its top-level `ref`: push, create, delete; "" for other events).

GitHub can send a webhook form-encoded (`payload=<url-encoded JSON>`); that
is refused with 415 naming the setting to change, rather than decoded: one
body format is one thing to get right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from triggers.events import Event, MalformedDelivery, parse_json
from verification.signature import header

GITHUB = "github"
PING = "ping"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
HOOK_HEADER = "X-GitHub-Hook-ID"
FORM = "application/x-www-form-urlencoded"
# GitHub's event names and delivery GUIDs; anything else is not from GitHub (and is logged).
_EVENT_NAME = re.compile(r"[a-z_]{1,64}")
_DELIVERY = re.compile(r"[0-9A-Za-z-]{1,64}")
_HOOK_ID = re.compile(r"[0-9]{1,19}")


def check_event_header(headers: Mapping[str, str]) -> str:
    """The event's name from `X-GitHub-Event`, or MalformedDelivery; needs no body."""
    name = header(headers, EVENT_HEADER) or ""
    if not _EVENT_NAME.fullmatch(name):
        raise MalformedDelivery(f"{EVENT_HEADER} header is missing or not an event name")
    return name


def parse_delivery(headers: Mapping[str, str], body: bytes, *, received: datetime) -> Event:
    """The event of one signed delivery; MalformedDelivery (400, or 415 form-encoded) if none."""
    content_type = (header(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()
    if content_type == FORM:
        raise MalformedDelivery(
            "form-encoded webhook: set the webhook's Content type to application/json",
            status=415,
        )
    name = check_event_header(headers)
    delivery = header(headers, DELIVERY_HEADER) or ""
    if not _DELIVERY.fullmatch(delivery):
        raise MalformedDelivery(f"{DELIVERY_HEADER} header is missing or not a delivery id")
    try:
        document = parse_json(body)
    except (ValueError, RecursionError):
        raise MalformedDelivery("body is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedDelivery("body is not a JSON object")
    hook = header(headers, HOOK_HEADER) or ""
    return Event(
        source=GITHUB,
        id=delivery,
        time=received.strftime("%Y-%m-%dT%H:%M:%S.") + f"{received.microsecond // 1000:03d}Z",
        event=document,
        attributes={
            "event": name,
            "delivery": delivery,
            "hook_id": int(hook) if _HOOK_ID.fullmatch(hook) else None,
        },
        match={
            "event": name,
            "repository": _text(document.get("repository"), "full_name"),
            "ref": _text(document, "ref"),
        },
    )


def _text(value: Any, name: str) -> str:
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""
