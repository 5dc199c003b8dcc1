"""A verified GitHub webhook delivery as one event (the signature is checked before, in
`verification.GitHubSignature`).

Only parsing happens here. The event name is the `X-GitHub-Event` header,
the id `X-GitHub-Delivery` (kept when a delivery is redelivered from
GitHub's UI, so a function can be idempotent on it), the time when it was
received (GitHub's body has no common timestamp), `event` the body as sent.
Rules match `event`, `repository` (the body's `repository.full_name`) and
`ref` (its top-level `ref`: push, create, delete; "" for other events).

A webhook's content type is `application/json` or, GitHub's default for a
new webhook, `application/x-www-form-urlencoded`: one field `payload` whose
value is the JSON. Both are read; the signature is always over the raw body
as received (checked before, in verification/).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from triggers.events import Event, MalformedDelivery, parse_json
from verification.signature import header

GITHUB = "github"
PING = "ping"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
HOOK_HEADER = "X-GitHub-Hook-ID"
FORM = "application/x-www-form-urlencoded"
# GitHub's event names (projects_v2_item has digits) and delivery GUIDs; anything else is
# not from GitHub (and is logged).
_EVENT_NAME = re.compile(r"[a-z0-9_]{1,64}")
_DELIVERY = re.compile(r"[0-9A-Za-z-]{1,64}")
_HOOK_ID = re.compile(r"[0-9]{1,19}")


def check_event_header(headers: Mapping[str, str]) -> str:
    """The event's name from `X-GitHub-Event`, or MalformedDelivery; needs no body."""
    name = header(headers, EVENT_HEADER) or ""
    if not _EVENT_NAME.fullmatch(name):
        raise MalformedDelivery(f"{EVENT_HEADER} header is missing or not an event name")
    return name


def parse_delivery(headers: Mapping[str, str], body: bytes, *, received: datetime) -> Event:
    """The event of one signed delivery; MalformedDelivery (400) if it is not one."""
    content_type = (header(headers, "Content-Type") or "").split(";", 1)[0].strip().lower()
    name = check_event_header(headers)
    delivery = header(headers, DELIVERY_HEADER) or ""
    if not _DELIVERY.fullmatch(delivery):
        raise MalformedDelivery(f"{DELIVERY_HEADER} header is missing or not a delivery id")
    text = form_payload(body) if content_type == FORM else body
    try:
        document = parse_json(text)
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


def form_payload(body: bytes) -> str:
    """The JSON text of a form-encoded delivery: its one `payload` field, percent-decoded."""
    try:
        fields = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=16,
        )
    except (UnicodeError, ValueError):  # not ASCII, a bad escape, not UTF-8, too many fields
        raise MalformedDelivery("form-encoded body is not one payload field") from None
    values = [value for key, value in fields if key == "payload"]
    if len(values) != 1:
        raise MalformedDelivery("form-encoded body has no single payload field")
    return values[0]


def _text(value: Any, name: str) -> str:
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""
