"""A signed GitHub delivery as one event: headers name it, the body is sent on as it came."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest

from triggers.events import MalformedDelivery, payload
from triggers.github import parse_delivery

RECEIVED = datetime(2026, 12, 1, 9, 0, 5, 532000, tzinfo=UTC)
PUSH = {
    "ref": "refs/heads/main",
    "repository": {"full_name": "acme/site"},
    "pusher": {"name": "baxterthehacker"},
}
HEADERS = {
    "Content-Type": "application/json",
    "X-GitHub-Event": "push",
    "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    "X-GitHub-Hook-ID": "292430182",
}


def parse(headers=HEADERS, body: object = PUSH):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_delivery(headers, raw, received=RECEIVED)


def test_a_push_is_one_github_event_with_its_delivery_as_id():
    event = parse()
    assert (event.source, event.id, event.time) == (
        "github",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "2026-12-01T09:00:05.532Z",
    )
    assert event.attributes == {
        "event": "push",
        "delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "hook_id": 292430182,
    }
    assert event.match == {"event": "push", "repository": "acme/site", "ref": "refs/heads/main"}
    assert payload(event, "deploys")["event"] == PUSH


def test_events_without_a_ref_or_repository_match_empty_strings_and_hook_id_is_optional():
    headers = {**HEADERS, "X-GitHub-Event": "release", "X-GitHub-Hook-ID": "²"}
    event = parse(headers, {"action": "published", "repository": {"full_name": 3}})
    assert event.match == {"event": "release", "repository": "", "ref": ""}
    assert event.attributes["hook_id"] is None


def form_encoded(document: object) -> bytes:
    """A body as GitHub sends it with the webhook's default content type (form)."""
    return urlencode({"payload": json.dumps(document)}).encode("ascii")


FORM = {**HEADERS, "Content-Type": "application/x-www-form-urlencoded"}
GITHUB_EVENTS = json.loads((Path(__file__).parent / "fixtures/github/event-names.json").read_text())


@pytest.mark.parametrize("name", GITHUB_EVENTS["events"])
@pytest.mark.parametrize("content_type", ["json", "form"])
def test_every_event_github_sends_is_read_in_both_of_its_content_types(name, content_type):
    # Form is a new webhook's default (the REST API's content_type defaults to "form").
    headers = {**(FORM if content_type == "form" else HEADERS), "X-GitHub-Event": name}
    body = form_encoded(PUSH) if content_type == "form" else json.dumps(PUSH).encode()
    event = parse(headers, body)
    assert event.attributes["event"] == name and event.event == PUSH
    assert event.match["repository"] == "acme/site"


def test_a_form_encoded_payload_is_the_json_of_its_payload_field_exactly():
    document = {"ref": "refs/heads/main", "note": "café & tea + 100% = ok"}
    assert parse(FORM, form_encoded(document)).event == document


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "payload"),
        (b"other=1", "payload"),
        (b"payload=%7B%7D&payload=%7B%7D", "payload"),
        (b"payload=%ZZ", "not JSON"),  # a bad escape stays as it is: not JSON then
        (b"payload=%FF", "payload"),
        (b"payload=%7B", "not JSON"),
        (b"payload=%5B%5D", "not a JSON object"),
    ],
)
def test_a_form_body_without_one_json_object_in_its_payload_field_is_malformed(body, says):
    with pytest.raises(MalformedDelivery) as error:
        parse(FORM, body)
    assert says in error.value.message and error.value.status == 400


@pytest.mark.parametrize(
    ("headers", "body", "says"),
    [
        ({**HEADERS, "X-GitHub-Event": ""}, PUSH, "X-GitHub-Event"),
        ({**HEADERS, "X-GitHub-Event": "push\nforged"}, PUSH, "X-GitHub-Event"),
        ({k: v for k, v in HEADERS.items() if k != "X-GitHub-Delivery"}, PUSH, "X-GitHub-Delivery"),
        ({**HEADERS, "X-GitHub-Delivery": "a" * 65}, PUSH, "X-GitHub-Delivery"),
        (HEADERS, b"{", "not JSON"),
        (HEADERS, [1, 2], "not a JSON object"),
    ],
)
def test_what_github_never_sends_is_malformed(headers, body, says):
    with pytest.raises(MalformedDelivery) as error:
        parse(headers, body)
    assert says in error.value.message and error.value.status == 400
