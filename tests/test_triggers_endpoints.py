"""EventBridgeEndpoint and GitHubEndpoint in process: credential or signature first, then the
events of the delivery fan out to real loopback functions; retries re-run only what failed."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.recording import RecordingFunction
from triggers.endpoint import EventBridgeEndpoint, GitHubEndpoint
from triggers.fanout import Fanout, Memory
from triggers.rules import parse_rule
from verification import EventBridgeAuth, GitHubSignature
from verification.github import signature

EVENTS = Path(__file__).parent / "fixtures" / "events"
EC2 = json.loads((EVENTS / "eventbridge-ec2.json").read_text())
BATCH = json.loads((EVENTS / "dynamodb-batch.json").read_text())
KEY = "dev-key"
SECRET = b"webhook secret"


@pytest.fixture
def functions() -> Iterator[dict[str, RecordingFunction]]:
    made: dict[str, RecordingFunction] = {}
    yield made
    for function in made.values():
        function.close()


def at(function: RecordingFunction, **table: Any) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": function.port, **table}


def rules(tables: dict[str, dict[str, Any]]):
    return [parse_rule(name, table, default_port=9999) for name, table in tables.items()]


def eventbridge(tables, auth=None) -> EventBridgeEndpoint:
    auth = auth or EventBridgeAuth.api_key("x-api-key", KEY)
    return EventBridgeEndpoint(auth, rules(tables), Fanout(3.0, Memory(3600)))


def github(tables) -> GitHubEndpoint:
    return GitHubEndpoint(GitHubSignature(SECRET), rules(tables), Fanout(3.0, Memory(3600)))


def post_eventbridge(target, document, **headers: str):
    return target.receive({"x-api-key": KEY, **headers}, json.dumps(document).encode())


def post_github(target, document, event="push", delivery="d-1", **headers: str):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    sent = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature(SECRET, body),
        **headers,
    }
    return target.receive(sent, body)


# --- EventBridge ---------------------------------------------------------------------------------


def test_an_envelope_reaches_its_rule(functions):
    ec2 = functions["ec2"] = RecordingFunction()
    target = eventbridge({"ec2": at(ec2, source="eventbridge", event_source="aws.ec2")})
    delivery = post_eventbridge(target, EC2)
    assert (delivery.status, delivery.outcome, delivery.message_id) == (200, "ok", EC2["id"])
    assert delivery.body == {
        "rules": [{"name": "ec2", "outcome": "ok", "reason": None, "id": EC2["id"]}]
    }
    (received,) = ec2.payloads()
    assert received["event"] == EC2 and received["trigger"] == "eventbridge"


def test_a_batch_runs_each_matching_record_and_counts_the_rest_unmatched(functions):
    orders = functions["orders"] = RecordingFunction()
    target = eventbridge({"orders": at(orders, source="dynamodb", table="Orders")})
    delivery = post_eventbridge(target, BATCH)
    assert (delivery.status, delivery.kind, delivery.events) == (200, "batch", 3)
    assert sorted(orders.ids()) == sorted(r["eventID"] for r in BATCH[:2])
    assert delivery.unmatched == ["dynamodb"]  # the Customers record


def test_an_empty_batch_is_200_with_nothing_run(functions):
    delivery = eventbridge({}).receive({"x-api-key": KEY}, b"\xef\xbb\xbf[]")
    assert (delivery.status, delivery.kind, delivery.body) == (200, "batch", {"rules": []})


def test_without_the_credential_nothing_runs(functions):
    ec2 = functions["ec2"] = RecordingFunction()
    target = eventbridge({"ec2": at(ec2, source="eventbridge")})
    for headers in ({"x-api-key": "wrong"}, {"x-api-key": ""}):
        delivery = post_eventbridge(target, EC2, **headers)
        assert (delivery.status, delivery.body["error"]) == (401, "eventbridge-auth")
    assert ec2.payloads() == []


def test_basic_refusals_say_how_to_authenticate(functions):
    target = eventbridge({}, auth=EventBridgeAuth.basic("eb", "pw"))
    refused = target.receive({}, b"{}")
    assert refused.status == 401 and refused.headers["WWW-Authenticate"].startswith("Basic ")
    token = base64.b64encode(b"eb:pw").decode()
    assert (
        target.receive({"Authorization": f"Basic {token}"}, json.dumps(EC2).encode()).status == 200
    )


def test_a_delivery_of_more_than_100_events_is_413_and_runs_nothing(functions):
    # An API destination gets one record per call; a batch this large is not a Pipe's.
    orders = functions["orders"] = RecordingFunction()
    target = eventbridge({"orders": at(orders, source="dynamodb")})
    records = [{**BATCH[0], "eventID": f"r-{n}"} for n in range(101)]
    delivery = post_eventbridge(target, records)
    assert (delivery.status, delivery.body["error"]) == (413, "too-many-events")
    assert orders.payloads() == []
    assert post_eventbridge(target, records[:100]).status == 200  # the limit itself is fine
    assert len(orders.payloads()) == 100


@pytest.mark.parametrize(
    "document",
    [
        {**EC2, "id": "e" * 129},
        [{**BATCH[0], "eventID": "r" * 129}],
    ],
    ids=["envelope", "dynamodb-record"],
)
def test_an_id_longer_than_128_characters_is_malformed(functions, document):
    # Ids are remembered for max_age (replays): their size must be bounded, not only their count.
    ec2 = functions["ec2"] = RecordingFunction()
    target = eventbridge({"any": at(ec2, source="eventbridge"), "db": at(ec2, source="dynamodb")})
    delivery = post_eventbridge(target, document)
    assert (delivery.status, delivery.body["error"]) == (400, "eventbridge-malformed")
    assert "128" in delivery.body["message"]
    assert ec2.payloads() == []
    assert len(target.fanout.memory) == 0


def test_a_malformed_body_is_400_and_runs_nothing(functions):
    ec2 = functions["ec2"] = RecordingFunction()
    target = eventbridge({"ec2": at(ec2, source="eventbridge")})
    delivery = post_eventbridge(target, [EC2, {"eventSource": "aws:sqs"}])
    assert (delivery.status, delivery.body["error"]) == (400, "eventbridge-malformed")
    assert ec2.payloads() == []


def test_a_failed_record_is_503_and_the_resend_reruns_only_it(functions):
    fail = {"c81e728d9d4c2f636f067f89cc14862c"}
    orders = functions["orders"] = RecordingFunction(fail=lambda p: p["id"] in fail)
    target = eventbridge({"orders": at(orders, source="dynamodb")})
    first = post_eventbridge(target, BATCH)
    assert first.status == 503
    assert [r["outcome"] for r in first.body["rules"]] == ["ok", "failed", "ok"]
    fail.clear()
    again = post_eventbridge(target, BATCH)
    assert again.status == 200
    assert [r["outcome"] for r in again.body["rules"]] == ["duplicate", "ok", "duplicate"]
    assert orders.ids().count("c81e728d9d4c2f636f067f89cc14862c") == 2
    assert orders.ids().count("c4ca4238a0b923820dcc509a6f75849b") == 1


def test_only_eventbridge_and_dynamodb_rules_are_the_endpoints(functions):
    target = eventbridge(
        {
            "ec2": {"host": "h", "source": "eventbridge"},
            "orders": {"host": "h", "source": "dynamodb"},
            "pushes": {"host": "h", "source": "github"},
            "alarms": {"host": "h", "source": "cloudwatch"},
        }
    )
    assert [rule.name for rule in target.rules] == ["ec2", "orders"]


# --- GitHub -------------------------------------------------------------------------------------

PUSH = {"ref": "refs/heads/main", "repository": {"full_name": "acme/site"}}


def test_a_signed_push_reaches_its_rule(functions):
    deploys = functions["deploys"] = RecordingFunction()
    target = github({"deploys": at(deploys, source="github", event="push", ref="refs/heads/main")})
    delivery = post_github(target, PUSH, delivery="abc-1")
    assert (delivery.status, delivery.kind, delivery.message_id) == (200, "push", "abc-1")
    (received,) = deploys.payloads()
    assert received["id"] == "abc-1" and received["event"] == PUSH
    assert received["attributes"] == {"event": "push", "delivery": "abc-1", "hook_id": None}


def test_a_failing_function_is_502_with_the_rule_named_and_redelivery_reruns_only_it(functions):
    good = functions["good"] = RecordingFunction()
    bad = functions["bad"] = RecordingFunction(fail=lambda p: True)
    target = github({"good": at(good, source="github"), "bad": at(bad, source="github")})
    first = post_github(target, PUSH, delivery="abc-2")
    assert first.status == 502
    assert {r["name"]: r["outcome"] for r in first.body["rules"]} == {"good": "ok", "bad": "failed"}
    bad.fail = lambda p: False
    again = post_github(target, PUSH, delivery="abc-2")  # "Redeliver" in GitHub's UI
    assert again.status == 200
    assert {r["name"]: r["outcome"] for r in again.body["rules"]} == {
        "good": "duplicate",
        "bad": "ok",
    }
    assert good.ids() == ["abc-2"]


def test_ping_is_answered_and_dispatched_nowhere(functions):
    catch_all = functions["all"] = RecordingFunction()
    target = github({"all": at(catch_all, source="github")})
    delivery = post_github(
        target, {"zen": "Keep it logically awesome.", "hook_id": 1}, event="ping"
    )
    assert (delivery.status, delivery.body) == (200, {"rules": [], "pong": True})
    assert catch_all.payloads() == []


def test_an_unsigned_ping_is_refused(functions):
    target = github({})
    body = b'{"zen": "x"}'
    delivery = target.receive({"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p"}, body)
    assert (delivery.status, delivery.body["error"]) == (401, "github-signature")


def test_form_encoded_runs_its_payload_signed_over_the_raw_form_and_malformed_is_400(functions):
    catch_all = functions["all"] = RecordingFunction()
    target = github({"all": at(catch_all, source="github")})
    form_body = b"payload=%7B%22zen%22%3A%22Keep+it+logically+awesome.%22%7D"
    form = post_github(target, form_body, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status == 200, form.body
    (received,) = catch_all.payloads()
    assert received["event"] == {"zen": "Keep it logically awesome."}
    broken = post_github(target, b"[1]")
    assert (broken.status, broken.body["error"]) == (400, "github-malformed")
    assert len(catch_all.payloads()) == 1


def test_a_refused_delivery_keeps_only_a_well_formed_delivery_id_for_the_log(functions):
    target = github({})
    delivery = target.receive({"X-GitHub-Delivery": "x\ny"}, b"{}")
    assert delivery.message_id is None
    delivery = target.receive({"X-GitHub-Delivery": "abc-3"}, b"{}")
    assert delivery.message_id == "abc-3"
