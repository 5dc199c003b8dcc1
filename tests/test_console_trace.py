"""The public app hands its own request record to the console that sent it (docs/console.md).

Only a request marked with an HMAC of its body under the process's console key
gets the record back, in `X-Funker-Trace`; the record is the request log line
itself. Without the console enabled there is no key, and nothing is ever added.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dispatch.funker import make_server
from skill import trace
from skill.app import create_admin_app, create_app
from skill.settings import DEVELOPMENT_SKILL_ID, load_settings
from verification.devca import DevCA


@pytest.fixture(scope="module")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    return DevCA.load_or_create(tmp_path_factory.mktemp("devca-home"))


@pytest.fixture(scope="module")
def function_port() -> Iterator[int]:
    server = make_server(lambda payload: {"speech": "Hi."}, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def app_for(dev_ca: DevCA, tmp: Path, port: int, *, console: bool) -> Any:
    root = tmp / "root.pem"
    root.write_bytes(dev_ca.root.public_bytes(Encoding.PEM))
    config = tmp / f"dispatch-{console}.toml"
    config.write_text(
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        f'[verification]\ntrusted_roots = ["{root}"]\n\n'
        f'[verification.local_chains]\n"{dev_ca.chain_url}" = "{dev_ca.chain_path}"\n\n'
        f"[console]\nenabled = {'true' if console else 'false'}\n\n"
        f'[intents.HelloIntent]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    return create_app(load_settings(config, environ={}))


def hello() -> bytes:
    application = {"applicationId": DEVELOPMENT_SKILL_ID}
    user = {"userId": "amzn1.ask.account.TRACE"}
    return json.dumps(
        {
            "version": "1.0",
            "session": {
                "new": True,
                "sessionId": "amzn1.echo-api.session.trace",
                "application": application,
                "attributes": {},
                "user": user,
            },
            "context": {"System": {"application": application, "user": user}},
            "request": {
                "type": "IntentRequest",
                "requestId": "amzn1.echo-api.request.trace-1",
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "locale": "en-US",
                "intent": {"name": "HelloIntent", "confirmationStatus": "NONE", "slots": {}},
            },
        }
    ).encode()


def test_a_marked_request_gets_the_servers_own_record_back(dev_ca, tmp_path, function_port):
    app = app_for(dev_ca, tmp_path, function_port, console=True)
    key = app.extensions["funker_dispatch"]["console_key"]
    body = hello()
    headers = {**dev_ca.sign(body), trace.MARKER_HEADER: trace.marker(key, body)}
    answer = app.test_client().post(
        "/", data=body, headers=headers, content_type="application/json"
    )
    assert answer.status_code == 200
    record = trace.decode(answer.headers[trace.TRACE_HEADER])
    assert record["route"] == "HelloIntent"
    assert record["function"] == f"127.0.0.1:{function_port}"
    assert record["outcome"] == "ok" and record["reason"] is None
    assert record["request_id"] == "amzn1.echo-api.request.trace-1"
    assert {"verify_ms", "function_ms", "total_ms"} <= set(record)


def test_a_refused_request_gets_its_reason_back(dev_ca, tmp_path, function_port):
    app = app_for(dev_ca, tmp_path, function_port, console=True)
    key = app.extensions["funker_dispatch"]["console_key"]
    body = hello()
    edited = body.replace(b"trace-1", b"trace-2")
    headers = {**dev_ca.sign(body), trace.MARKER_HEADER: trace.marker(key, edited)}
    answer = app.test_client().post(
        "/", data=edited, headers=headers, content_type="application/json"
    )
    assert answer.status_code == 400
    record = trace.decode(answer.headers[trace.TRACE_HEADER])
    assert record["outcome"] == "rejected" and record["reason"] == "signature"


@pytest.mark.parametrize("marker", [None, "", "0" * 64, "not hex"])
def test_without_the_consoles_marker_nothing_is_added(dev_ca, tmp_path, function_port, marker):
    app = app_for(dev_ca, tmp_path, function_port, console=True)
    body = hello()
    headers = dict(dev_ca.sign(body))
    if marker is not None:
        headers[trace.MARKER_HEADER] = marker
    answer = app.test_client().post(
        "/", data=body, headers=headers, content_type="application/json"
    )
    assert answer.status_code == 200
    assert trace.TRACE_HEADER not in answer.headers


def test_a_marker_for_another_body_opens_nothing(dev_ca, tmp_path, function_port):
    app = app_for(dev_ca, tmp_path, function_port, console=True)
    key = app.extensions["funker_dispatch"]["console_key"]
    body = hello()
    headers = {**dev_ca.sign(body), trace.MARKER_HEADER: trace.marker(key, body + b" ")}
    answer = app.test_client().post(
        "/", data=body, headers=headers, content_type="application/json"
    )
    assert trace.TRACE_HEADER not in answer.headers


def test_without_the_console_there_is_no_key_and_no_record(dev_ca, tmp_path, function_port):
    app = app_for(dev_ca, tmp_path, function_port, console=False)
    assert app.extensions["funker_dispatch"]["console_key"] is None
    body = hello()
    forged = trace.marker(b"\0" * 32, body)
    headers = {**dev_ca.sign(body), trace.MARKER_HEADER: forged}
    answer = app.test_client().post(
        "/", data=body, headers=headers, content_type="application/json"
    )
    assert answer.status_code == 200
    assert trace.TRACE_HEADER not in answer.headers


def test_the_admin_app_shares_the_key_built_before_the_fork(dev_ca, tmp_path, function_port):
    public = app_for(dev_ca, tmp_path, function_port, console=True)
    admin = create_admin_app(public)
    state = admin.extensions["funker_dispatch"]
    assert state["console_key"] == public.extensions["funker_dispatch"]["console_key"]


# --- events: the rules fired and each function's answer, for the console only ----------

GITHUB_SECRET = b"trace-secret"


@pytest.fixture(scope="module")
def event_function_port() -> Iterator[int]:
    server = make_server(lambda payload: {"remembered": payload.get("rule")}, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def events_app_for(tmp: Path, port: int, *, console: bool) -> Any:
    secret = tmp / "github-secret"
    secret.write_bytes(GITHUB_SECRET)
    config = tmp / f"events-{console}.toml"
    config.write_text(
        f"[console]\nenabled = {'true' if console else 'false'}\n\n"
        f'[triggers.github]\nsecret_file = "{secret}"\n\n'
        f'[events.deploys]\nsource = "github"\nevent = "push"\nhost = "127.0.0.1"\nport = {port}\n'
    )
    return create_app(load_settings(config, environ={}))


def push_delivery(delivery_id: str) -> tuple[bytes, dict[str, str]]:
    import hashlib
    import hmac

    body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/site"}})
    data = body.encode()
    digest = hmac.new(GITHUB_SECRET, data, hashlib.sha256).hexdigest()
    return data, {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": f"sha256={digest}",
        "Content-Type": "application/json",
    }


def test_a_marked_event_gets_each_rules_function_answer_back(tmp_path, event_function_port):
    app = events_app_for(tmp_path, event_function_port, console=True)
    key = app.extensions["funker_dispatch"]["console_key"]
    body, headers = push_delivery("trace-event-1")
    headers[trace.MARKER_HEADER] = trace.marker(key, body)
    answer = app.test_client().post("/events/github", data=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json == {
        "rules": [{"name": "deploys", "outcome": "ok", "reason": None, "id": "trace-event-1"}]
    }  # the sender's answer: unchanged
    record = trace.decode(answer.headers[trace.TRACE_HEADER])
    assert record["trigger"] == "github" and record["outcome"] == "ok"
    (rule,) = record["rules"]
    assert rule["name"] == "deploys" and rule["outcome"] == "ok"
    assert rule["function"] == f"127.0.0.1:{event_function_port}"
    assert json.loads(rule["answer"]) == {"remembered": "deploys"}


def test_an_unmarked_event_gets_no_trace_and_no_answer(tmp_path, event_function_port):
    app = events_app_for(tmp_path, event_function_port, console=True)
    body, headers = push_delivery("trace-event-2")
    answer = app.test_client().post("/events/github", data=body, headers=headers)
    assert answer.status_code == 200
    assert trace.TRACE_HEADER not in answer.headers
    assert b"remembered" not in answer.data  # the function's answer is not returned


def test_without_the_console_a_marked_event_gets_nothing(tmp_path, event_function_port):
    app = events_app_for(tmp_path, event_function_port, console=False)
    body, headers = push_delivery("trace-event-3")
    headers[trace.MARKER_HEADER] = "0" * 64
    answer = app.test_client().post("/events/github", data=body, headers=headers)
    assert answer.status_code == 200
    assert trace.TRACE_HEADER not in answer.headers


def test_many_answers_fit_one_header_however_they_escape():
    from types import SimpleNamespace

    from skill.events import ANSWERS_SHOWN, event_record
    from triggers.fanout import Fired

    # Non-ASCII and quotes grow when escaped into the header: the budget counts that.
    answer = {"text": 'é"' * 900}
    fired = tuple(Fired(f"r{n}", "github", "id", "ok", answer=answer) for n in range(40))
    record = event_record({"trigger": "github"}, SimpleNamespace(fired=fired))
    header = trace.encode(record)
    assert header.isascii() and len(header) < ANSWERS_SHOWN + 8_000
    shown = [rule["answer"] for rule in record["rules"]]
    assert shown[0] is not None and shown[-1] is None  # the first ones shown, the rest not


def test_a_long_answer_is_cut_in_the_trace():
    from skill.events import traced_answer

    shown = traced_answer({"text": "x" * 10_000})
    assert len(shown) <= 2001 and shown.endswith("…")
    assert traced_answer(None) is None
