"""POST /events/eventbridge on a real server: an API destination's deliveries, authenticated as
its connection sends them, reach real function processes; a Pipes batch is one event per record."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import post

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "events"
EC2 = json.loads((EVENTS / "eventbridge-ec2.json").read_text())
BATCH = json.loads((EVENTS / "dynamodb-batch.json").read_text())
KEY = "eb-key-0123456789"
HEADER = "x-funker-key"


@pytest.fixture(scope="module")
def functions(event_function):
    return {name: event_function() for name in ("instances", "orders", "flaky")}


def rules(functions) -> str:
    return (
        '[events.instances]\nsource = "eventbridge"\nevent_source = "aws.ec2"\n'
        + functions["instances"].route()
        + '\n[events.orders]\nsource = "dynamodb"\ntable = "Orders"\nevent = ["INSERT", "MODIFY"]\n'
        + functions["orders"].route()
        + '\n[events.flaky]\nsource = "dynamodb"\ntable = "Flaky"\n'
        + functions["flaky"].route()
    )


@pytest.fixture(scope="module")
def server(start_server, functions, tmp_path_factory):
    key = tmp_path_factory.mktemp("eb-secret") / "api_key"
    key.write_text(KEY + "\n")  # as `echo KEY > file` writes a Docker secret
    table = f'[triggers.eventbridge]\napi_key_header = "{HEADER}"\napi_key_file = "{key}"\n\n'
    return start_server(table + rules(functions))


@pytest.fixture(scope="module")
def basic_server(start_server, functions, tmp_path_factory):
    password = tmp_path_factory.mktemp("eb-basic") / "password"
    password.write_text("pa:ss wörd\n")
    table = f'[triggers.eventbridge]\nusername = "eventbridge"\npassword_file = "{password}"\n\n'
    return start_server(table + rules(functions))


def deliver(server, document: Any, headers: dict[str, str] | None = None):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    sent = {HEADER: KEY} if headers is None else headers
    return post(server.url + "/events/eventbridge", body, sent)


def envelope(**changes: Any) -> dict[str, Any]:
    return {**EC2, "id": str(uuid.uuid4()), **changes}


def records(*tables_and_names: tuple[str, str]) -> list[dict[str, Any]]:
    """Fresh DynamoDB records (new eventIDs) for tables, from the fixture's INSERT."""
    made = []
    for table, name in tables_and_names:
        arn = BATCH[0]["eventSourceARN"].replace("table/Orders", f"table/{table}")
        made.append(
            {**BATCH[0], "eventID": uuid.uuid4().hex, "eventName": name, "eventSourceARN": arn}
        )
    return made


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# --- authentication ----------------------------------------------------------------------------


def test_the_right_api_key_lets_one_envelope_reach_its_function(server, functions):
    sent = envelope()
    answer = deliver(server, sent)
    assert answer.status == 200, answer.body
    assert answer.json == {
        "rules": [{"name": "instances", "outcome": "ok", "reason": None, "id": sent["id"]}]
    }
    (received,) = [p for p in functions["instances"].payloads() if p["id"] == sent["id"]]
    assert received["trigger"] == "eventbridge" and received["rule"] == "instances"
    assert received["event"] == sent  # the envelope exactly as sent
    assert received["time"] == EC2["time"]
    assert received["attributes"] == {
        "event_source": "aws.ec2",
        "detail_type": "EC2 Instance State-change Notification",
    }


@pytest.mark.parametrize(
    "headers",
    [{HEADER: KEY + "x"}, {HEADER: KEY[:-1]}, {HEADER: ""}, {}, {"x-api-key": KEY}],
    ids=["wrong", "truncated", "empty", "missing", "other-header"],
)
def test_a_wrong_or_missing_api_key_is_401_and_calls_nothing(server, functions, headers):
    sent = envelope()
    answer = deliver(server, sent, headers)
    assert (answer.status, answer.json["error"]) == (401, "eventbridge-auth")
    assert set(answer.json) == {"error", "message"}
    assert sent["id"] not in functions["instances"].ids()


def test_right_basic_credentials_are_accepted(basic_server, functions):
    sent = envelope()
    answer = deliver(basic_server, sent, basic("eventbridge", "pa:ss wörd"))
    assert answer.status == 200, answer.body
    assert sent["id"] in functions["instances"].ids()


@pytest.mark.parametrize(
    "headers",
    [basic("eventbridge", "wrong"), basic("someone", "pa:ss wörd"), {}, {HEADER: KEY}],
    ids=["wrong-password", "wrong-user", "missing", "an-api-key"],
)
def test_wrong_or_missing_basic_credentials_are_401(basic_server, functions, headers):
    sent = envelope()
    request = urllib.request.Request(
        basic_server.url + "/events/eventbridge",
        data=json.dumps(sent).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 401
        assert json.loads(error.read())["error"] == "eventbridge-auth"
        assert error.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert sent["id"] not in functions["instances"].ids()


# --- batches, failures, retries ----------------------------------------------------------------


def test_a_batch_of_three_records_two_matching_makes_two_calls_with_converted_images(
    server, functions
):
    batch = [{**record, "eventID": uuid.uuid4().hex} for record in BATCH]  # Orders ×2, Customers
    answer = deliver(server, batch)
    assert answer.status == 200, answer.body
    assert answer.json["rules"] == [
        {"name": "orders", "outcome": "ok", "reason": None, "id": batch[0]["eventID"]},
        {"name": "orders", "outcome": "ok", "reason": None, "id": batch[1]["eventID"]},
    ]
    received = {
        p["id"]: p for p in functions["orders"].payloads() if p["id"] in answer.body.decode()
    }
    assert set(received) == {batch[0]["eventID"], batch[1]["eventID"]}
    insert, modify = received[batch[0]["eventID"]], received[batch[1]["eventID"]]
    assert insert["trigger"] == "dynamodb" and insert["event"] == batch[0]  # DynamoDB JSON as sent
    assert insert["dynamodb"]["keys"] == {"id": 101}
    assert insert["dynamodb"]["new"]["total"] == "19.99"  # exact, never a float
    assert insert["dynamodb"]["new"]["lines"] == [{"sku": "TSHIRT-L", "quantity": 2}]
    assert insert["dynamodb"]["old"] is None
    assert (modify["dynamodb"]["old"]["status"], modify["dynamodb"]["new"]["status"]) == (
        "paid",
        "shipped",
    )
    assert insert["attributes"] == {
        "table": "Orders",
        "event_source_arn": BATCH[0]["eventSourceARN"],
    }
    assert insert["time"] == "2025-12-01T09:14:05.000Z"


def test_a_failing_function_is_503_and_the_resend_reruns_only_it(server, functions):
    batch = records(("Orders", "INSERT"), ("Flaky", "INSERT"))
    good, bad = batch[0]["eventID"], batch[1]["eventID"]
    functions["flaky"].fail(bad)
    first = deliver(server, batch)
    assert first.status == 503, first.body
    assert {r["name"]: r["outcome"] for r in first.json["rules"]} == {
        "orders": "ok",
        "flaky": "failed",
    }
    functions["flaky"].fail()  # fixed before EventBridge retries
    again = deliver(server, batch)
    assert again.status == 200, again.body
    assert {r["name"]: r["outcome"] for r in again.json["rules"]} == {
        "orders": "duplicate",
        "flaky": "ok",
    }
    assert functions["orders"].ids().count(good) == 1
    assert functions["flaky"].ids().count(bad) == 2


def test_a_resent_envelope_runs_nothing_twice(server, functions):
    sent = envelope()
    assert deliver(server, sent).status == 200
    again = deliver(server, sent)
    assert (again.status, again.json["rules"][0]["outcome"]) == (200, "duplicate")
    assert functions["instances"].ids().count(sent["id"]) == 1


def test_unmatched_events_are_200_with_no_rules(server):
    answer = deliver(server, envelope(source="aws.s3"))
    assert (answer.status, answer.json) == (200, {"rules": []})
    assert deliver(server, []).json == {"rules": []}


def test_a_malformed_delivery_is_400_and_calls_nothing(server, functions):
    before = len(functions["orders"].payloads())
    for body in (b"not json", json.dumps([*records(("Orders", "INSERT")), {"x": 1}]).encode()):
        answer = deliver(server, body)
        assert (answer.status, answer.json["error"]) == (400, "eventbridge-malformed")
    assert len(functions["orders"].payloads()) == before


def test_a_body_over_1_mib_is_413_unread(server):
    answer = deliver(server, b"[" + b" " * (1024 * 1024) + b"]")
    assert (answer.status, answer.json["error"]) == (413, "too-large")


def test_without_the_table_the_path_is_a_json_404(start_server):
    answer = deliver(start_server(), envelope())
    assert answer.status == 404 and answer.json["error"] == "not-found"


# --- what the operator sees --------------------------------------------------------------------


def metric(server, name: str, **labels: str) -> float:
    with urllib.request.urlopen(server.admin_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if found and ",".join(sorted(found.group(1).split(","))) == wanted:
            return float(found.group(2))
    return 0.0


def test_refusals_and_events_are_counted_by_endpoint(server):
    def refusals() -> float:
        return metric(
            server,
            "funker_dispatch_event_verification_failures_total",
            source="eventbridge",
            reason="eventbridge-auth",
        )

    def orders_ok() -> float:
        return metric(
            server, "funker_dispatch_events_total", source="dynamodb", rule="orders", outcome="ok"
        )

    before, ok = refusals(), orders_ok()
    deliver(server, envelope(), {HEADER: "nope"})
    deliver(server, records(("Orders", "INSERT")))
    assert refusals() == before + 1
    assert orders_ok() == ok + 1


def test_one_log_line_per_delivery_and_rule_and_never_the_key_or_the_body(server):
    marker = f"private-{uuid.uuid4()}"
    batch = records(("Orders", "INSERT"), ("Customers", "INSERT"))
    batch[0]["dynamodb"]["NewImage"]["customer"] = {"S": marker}
    deliver(server, batch)
    deliver(server, envelope(), {HEADER: "guess-" + marker})
    text = server.wait_for_log(f'"id":"{batch[0]["eventID"]}"')
    fired = next(json.loads(line) for line in text.splitlines() if batch[0]["eventID"] in line)
    assert (fired["trigger"], fired["source"], fired["rule"]) == (
        "eventbridge",
        "dynamodb",
        "orders",
    )
    server.wait_for_log("eventbridge delivery refused")
    delivery = [
        json.loads(line)
        for line in server.log().splitlines()
        if line.startswith("{") and '"kind":"batch"' in line and '"events":2' in line
    ]
    assert delivery and delivery[-1]["rules"] == 1
    assert marker not in server.log() and KEY not in server.log()
