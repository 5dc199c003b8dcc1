"""The console's guards (docs/console.md), on the admin app in process: off unless enabled, its own
Host only, a per-page token and the page's own origin on every API call, JSON bodies.

What the console does with a request that passes is tested against a real server and a real
browser in tests/browser/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from funker_dispatch.cli import admin_extensions
from skill.app import create_admin_app, create_app
from skill.settings import DEVELOPMENT_SKILL_ID, load_settings
from tests.helpers import free_port

ADMIN = "127.0.0.1:3001"  # [server] port 3000: the admin listener is port + 1


def admin_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, console: bool = True) -> Any:
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(tmp_path / "home"))  # the console's dev CA
    config = tmp_path / "dispatch.toml"
    config.write_text(
        f'[server]\nport = 3000\n\n[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        f"[console]\nenabled = {'true' if console else 'false'}\n"
    )
    settings = load_settings(config, environ={})
    return create_admin_app(create_app(settings), admin_extensions(settings))


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return admin_app(tmp_path, monkeypatch).test_client()


def page_token(client: Any, host: str = ADMIN) -> str:
    page = client.get("/console", headers={"Host": host})
    assert page.status_code == 200
    found = re.search(r'name="console-token" content="([^"]+)"', page.get_data(as_text=True))
    assert found is not None
    return found.group(1)


def api_headers(token: str, *, host: str = ADMIN, origin: str | None = None) -> dict[str, str]:
    return {"Host": host, "Origin": origin or f"http://{host}", "X-Console-Token": token}


def test_without_console_enabled_there_is_no_console(tmp_path, monkeypatch):
    client = admin_app(tmp_path, monkeypatch, console=False).test_client()
    for path in ("/console", "/console/api/model", "/console/static/main.js"):
        answer = client.get(path, headers={"Host": ADMIN})
        assert answer.status_code == 404 and answer.json["error"] == "not-found"
    assert client.post("/v1/directives", headers={"Host": ADMIN}).status_code == 404


def test_the_page_carries_a_token_and_a_policy_that_runs_only_its_own_scripts(client):
    page = client.get("/console", headers={"Host": ADMIN})
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["Cache-Control"] == "no-store"
    assert "__CONSOLE_TOKEN__" not in page.get_data(as_text=True)
    assert page_token(client) != page_token(client)  # one per page


@pytest.mark.parametrize(
    "host", ["evil.example:3001", "127.0.0.1:3000", "127.0.0.1", "localhost", "127.0.0.1:3001,x"]
)
def test_any_host_but_the_admin_listeners_own_is_refused(client, host):
    for path in ("/console", "/console/static/main.js", "/console/api/model"):
        answer = client.get(path, headers={"Host": host})
        assert answer.status_code == 403 and answer.json["error"] == "host", path
    assert "console-token" not in client.get("/console", headers={"Host": host}).get_data(
        as_text=True
    )


def test_localhost_names_the_admin_listener_too(client):
    token = page_token(client, "localhost:3001")
    answer = client.get("/console/api/model", headers=api_headers(token, host="localhost:3001"))
    assert answer.status_code == 200


def test_an_api_call_with_the_token_from_the_page_origin_is_served(client):
    answer = client.get("/console/api/model", headers=api_headers(page_token(client)))
    assert answer.status_code == 200
    assert answer.json["locales"] == ["en-GB", "en-US"]
    assert "say hello to Ada" in answer.json["suggestions"]


@pytest.mark.parametrize("token", [None, "", "forged.0000", "no-dot"])
def test_an_api_call_without_the_pages_token_is_refused(client, token):
    page_token(client)
    headers = {"Host": ADMIN, "Origin": f"http://{ADMIN}"}
    if token is not None:
        headers["X-Console-Token"] = token
    for method, path in (("get", "/console/api/model"), ("post", "/console/api/turn")):
        answer = getattr(client, method)(path, headers=headers, json={"action": "launch"})
        assert answer.status_code == 403 and answer.json["error"] == "csrf"


def test_a_token_of_another_console_process_is_refused(client, tmp_path, monkeypatch):
    (tmp_path / "other").mkdir()
    other = admin_app(tmp_path / "other", monkeypatch).test_client()
    answer = client.get("/console/api/model", headers=api_headers(page_token(other)))
    assert answer.status_code == 403 and answer.json["error"] == "csrf"


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:3000", "https://127.0.0.1:3001", "null"]
)
def test_an_api_call_from_another_origin_is_refused(client, origin):
    headers = api_headers(page_token(client), origin=origin)
    answer = client.post("/console/api/turn", headers=headers, json={"action": "launch"})
    assert answer.status_code == 403 and answer.json["error"] == "origin"


def test_without_origin_only_a_same_origin_fetch_is_served(client):
    token = page_token(client)
    base = {"Host": ADMIN, "X-Console-Token": token}
    assert client.get("/console/api/model", headers=base).json["error"] == "origin"
    cross = {**base, "Sec-Fetch-Site": "cross-site"}
    assert client.get("/console/api/model", headers=cross).json["error"] == "origin"
    same = {**base, "Sec-Fetch-Site": "same-origin"}
    assert client.get("/console/api/model", headers=same).status_code == 200


def test_api_bodies_must_be_json(client):
    headers = api_headers(page_token(client))
    answer = client.post(
        "/console/api/turn", headers=headers, data="action=launch", content_type="text/plain"
    )
    assert answer.status_code == 415


@pytest.mark.parametrize("name", ["index.html", "..%2fconsole.py", "missing.js", "main.py"])
def test_only_the_pages_scripts_styles_and_icon_are_served_as_assets(client, name):
    answer = client.get(f"/console/static/{name}", headers={"Host": ADMIN})
    assert answer.status_code == 404


def test_scripts_are_served_as_javascript_modules_with_the_policy(client):
    answer = client.get("/console/static/main.js", headers={"Host": ADMIN})
    assert answer.status_code == 200
    assert answer.mimetype == "text/javascript"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]


def test_no_script_of_the_page_writes_html(client):
    scripts = Path(__file__).resolve().parent.parent / "skill" / "devtools" / "console"
    for script in scripts.glob("*.js"):
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{script.name} uses {sink}"


def test_the_directive_inbox_answers_only_the_admin_host_and_its_token(client):
    speak = {
        "header": {"requestId": "r-1"},
        "directive": {"type": "VoicePlayer.Speak", "speech": "<speak>One moment.</speak>"},
    }
    assert (
        client.post("/v1/directives", headers={"Host": "evil.example"}, json=speak).status_code
        == 403
    )
    wrong = {"Host": ADMIN, "Authorization": "Bearer not-it"}
    assert client.post("/v1/directives", headers=wrong, json=speak).status_code == 401


def test_an_events_fields_do_not_become_the_next_pages_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(tmp_path / "home"))
    config = tmp_path / "dispatch.toml"
    config.write_text(
        f"[server]\nport = {free_port()}\nadmin_port = 3001\n\n"
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        "[console]\nenabled = true\n\n"
        '[triggers.sns]\ntopics = ["arn:aws:sns:us-east-1:123456789012:uploads"]\n'
    )
    settings = load_settings(config, environ={})
    client = create_admin_app(create_app(settings), admin_extensions(settings)).test_client()
    headers = api_headers(page_token(client))

    def s3_key() -> str:
        kinds = client.get("/console/api/events", headers=headers).json["kinds"]
        (s3,) = [kind for kind in kinds if kind["kind"] == "s3"]
        return next(field["value"] for field in s3["fields"] if field["name"] == "key")

    before = s3_key()
    # Nothing listens on the public port: the send fails, after its fields were read.
    client.post(
        "/console/api/event", json={"kind": "s3", "fields": {"key": "mine.jpg"}}, headers=headers
    )
    assert s3_key() == before != "mine.jpg"
