"""POST /events/github on a real server: deliveries signed as GitHub signs them reach real
function processes; every unsigned or badly signed one is 401 and calls nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import uuid
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.e2e.conftest import post
from verification.github import signature

# GitHub's documented test vector ("Validating webhook deliveries").
SECRET = b"It's a Secret to Everybody"
DOCUMENTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
PUSH = {
    "ref": "refs/heads/main",
    "repository": {"full_name": "acme/site"},
    "pusher": {"name": "baxterthehacker"},
    "head_commit": {"message": "Update README.md"},
}


@pytest.fixture(scope="module")
def functions(event_function):
    return {name: event_function() for name in ("deploys", "audit")}


@pytest.fixture(scope="module")
def server(start_server, functions, tmp_path_factory):
    secret = tmp_path_factory.mktemp("github-secret") / "secret"
    secret.write_bytes(SECRET + b"\n")
    return start_server(
        f'[triggers.github]\nsecret_file = "{secret}"\n\n'
        '[events.deploys]\nsource = "github"\nevent = "push"\nrepository = "acme/*"\n'
        'ref = "refs/heads/main"\n'
        + functions["deploys"].route()
        + '\n[events.audit]\nsource = "github"\n'
        + functions["audit"].route()
    )


def headers(body: bytes, event: str = "push", delivery: str | None = None, **more: str):
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": signature(SECRET, body),
        **more,
    }


def deliver(server, body: bytes, sent: dict[str, str]):
    return post(server.url + "/events/github", body, sent)


def push(**changes: Any) -> bytes:
    return json.dumps({**PUSH, **changes}).encode()


def test_githubs_documented_test_vector_passes_verification_over_the_wire(server):
    # "Hello, World!" is not a JSON webhook: past the signature, it is refused as malformed.
    sent = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": DOCUMENTED}
    answer = deliver(server, b"Hello, World!", sent)
    assert (answer.status, answer.json["error"]) == (400, "github-malformed")


def test_a_signed_push_reaches_the_rules_it_matches(server, functions):
    body = push()
    sent = headers(body)
    answer = deliver(server, body, sent)
    assert answer.status == 200, answer.body
    delivery = sent["X-GitHub-Delivery"]
    assert answer.json["rules"] == [
        {"name": "deploys", "outcome": "ok", "reason": None, "id": delivery},
        {"name": "audit", "outcome": "ok", "reason": None, "id": delivery},
    ]
    (received,) = [p for p in functions["deploys"].payloads() if p["id"] == delivery]
    assert received["trigger"] == "github" and received["event"] == PUSH
    assert received["attributes"] == {"event": "push", "delivery": delivery, "hook_id": 292430182}
    assert received["time"].endswith("Z")


def test_a_push_to_another_branch_reaches_only_the_catch_all(server, functions):
    body = push(ref="refs/heads/feature")
    sent = headers(body)
    assert [r["name"] for r in deliver(server, body, sent).json["rules"]] == ["audit"]
    assert sent["X-GitHub-Delivery"] not in functions["deploys"].ids()


def sha1(body: bytes, secret: bytes = SECRET) -> str:
    return "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()


def bad_signatures(body: bytes) -> dict[str, dict[str, str]]:
    right = signature(SECRET, body)
    without = {k: v for k, v in headers(body).items() if k != "X-Hub-Signature-256"}
    return {
        "wrong-secret": {**without, "X-Hub-Signature-256": signature(b"not the secret", body)},
        "truncated": {**without, "X-Hub-Signature-256": right[:-1]},
        "sha1-only": {**without, "X-Hub-Signature": sha1(body)},
        "sha1-beside-a-wrong-256": {
            **without,
            "X-Hub-Signature": sha1(body),
            "X-Hub-Signature-256": signature(b"wrong", body),
        },
        "missing": without,
        "other-body": {**without, "X-Hub-Signature-256": signature(SECRET, body + b" ")},
    }


@pytest.mark.parametrize(
    "case",
    ["wrong-secret", "truncated", "sha1-only", "sha1-beside-a-wrong-256", "missing", "other-body"],
)
def test_every_bad_signature_is_401_and_calls_nothing(server, functions, case):
    body = push()
    sent = bad_signatures(body)[case]
    answer = deliver(server, body, sent)
    assert (answer.status, answer.json["error"]) == (401, "github-signature")
    assert set(answer.json) == {"error", "message"}
    delivery = sent["X-GitHub-Delivery"]
    assert delivery not in functions["deploys"].ids() + functions["audit"].ids()


def test_ping_is_answered_pong_and_dispatched_nowhere(server, functions):
    body = json.dumps({"zen": "Design for failure.", "hook_id": 292430182}).encode()
    sent = headers(body, event="ping")
    answer = deliver(server, body, sent)
    assert (answer.status, answer.json) == (200, {"rules": [], "pong": True})
    assert sent["X-GitHub-Delivery"] not in functions["audit"].ids()


def test_a_form_encoded_delivery_githubs_default_reaches_its_rules(server, functions):
    # A new webhook's content type is form unless changed: its deliveries must not be lost.
    body = urlencode({"payload": push().decode()}).encode()
    sent = headers(body, **{"Content-Type": "application/x-www-form-urlencoded"})
    answer = deliver(server, body, sent)
    assert answer.status == 200, answer.body
    assert sent["X-GitHub-Delivery"] in functions["deploys"].ids()
    (received,) = [p for p in functions["audit"].payloads() if p["id"] == sent["X-GitHub-Delivery"]]
    assert received["event"] == json.loads(push())


def test_a_failure_is_502_naming_the_rule_and_a_redelivery_reruns_only_it(server, functions):
    body = push()
    sent = headers(body)
    delivery = sent["X-GitHub-Delivery"]
    functions["audit"].fail(delivery)
    first = deliver(server, body, sent)
    assert first.status == 502, first.body  # GitHub shows the delivery failed
    assert {r["name"]: r["outcome"] for r in first.json["rules"]} == {
        "deploys": "ok",
        "audit": "failed",
    }
    functions["audit"].fail()
    again = deliver(server, body, sent)  # "Redeliver" in GitHub's UI: same delivery id
    assert again.status == 200
    assert {r["name"]: r["outcome"] for r in again.json["rules"]} == {
        "deploys": "duplicate",
        "audit": "ok",
    }
    assert functions["deploys"].ids().count(delivery) == 1
    assert functions["audit"].ids().count(delivery) == 2


def test_a_replayed_delivery_runs_nothing_twice(server, functions):
    body = push()
    sent = headers(body)
    assert deliver(server, body, sent).status == 200
    replay = deliver(server, body, sent)
    assert {r["outcome"] for r in replay.json["rules"]} == {"duplicate"}
    assert functions["audit"].ids().count(sent["X-GitHub-Delivery"]) == 1


def test_a_25_mib_delivery_fits_and_one_byte_more_is_413_unread(server):
    cap = 25 * 1024 * 1024
    ping = json.dumps({"zen": "x", "padding": ""}).encode()
    body = ping.replace(b'""', b'"' + b"x" * (cap - len(ping)) + b'"')
    assert len(body) == cap  # GitHub's own maximum
    assert deliver(server, body, headers(body, event="ping")).json == {"rules": [], "pong": True}
    # Refused on what it claims, before a byte of the body is read.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /events/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {cap + 1}\r\n\r\n".encode()
        )
        head = conn.recv(65536).split(b"\r\n", 1)[0]
    assert head == b"HTTP/1.1 413 Payload Too Large"


def test_the_secret_may_come_from_the_environment(start_server):
    env_server = start_server(
        "[triggers.github]\n", env={"FUNKER_DISPATCH_GITHUB_SECRET": "from the environment"}
    )
    body = json.dumps({"zen": "x"}).encode()
    sent = {**headers(body, event="ping")}
    sent["X-Hub-Signature-256"] = signature(b"from the environment", body)
    assert deliver(env_server, body, sent).json == {"rules": [], "pong": True}


def test_without_the_table_the_path_is_a_json_404(start_server):
    body = push()
    answer = deliver(start_server(), body, headers(body))
    assert answer.status == 404 and answer.json["error"] == "not-found"


def test_the_refusal_is_logged_with_the_delivery_and_never_the_secret(server):
    body = push()
    sent = bad_signatures(body)["wrong-secret"]
    deliver(server, body, sent)
    text = server.wait_for_log(f"message_id={sent['X-GitHub-Delivery']} reason=github-signature")
    assert SECRET.decode() not in text
