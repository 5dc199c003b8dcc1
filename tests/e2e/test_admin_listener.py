"""Two listeners (docs/operations.md): Alexa's port serves Alexa and /healthz; the rest is admin."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import post, trusted_config
from tests.helpers import free_port


@pytest.fixture(scope="module")
def server(start_server):
    return start_server()


@pytest.mark.parametrize("path", ["/intents", "/intents?probe=1", "/metrics", "/readyz"])
def test_operator_paths_are_not_on_the_public_listener(server, path):
    answer = post(server.url + path, b"", method="GET")
    assert answer.status == 404
    assert answer.json["error"] == "not-found"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/intents"])
def test_admin_listener_serves_health_readiness_metrics_and_routes(server, path):
    assert post(server.admin_url + path, b"", method="GET").status == 200


def test_public_listener_still_answers_healthz_for_the_orchestrator(server):
    assert post(server.url + "/healthz", b"", method="GET").json == {"status": "ok"}


def test_anything_else_on_the_admin_listener_is_a_json_404(server):
    answer = post(server.admin_url + "/", b"{}")
    assert answer.status == 404 and answer.json["error"] == "not-found"


@pytest.fixture(scope="module")
def guarded(start_server, tmp_path_factory):
    token = tmp_path_factory.mktemp("admin-token") / "token"
    token.write_text("a-long-random-token\n")  # as `echo token > file` writes it
    return start_server(env={"FUNKER_DISPATCH_SERVER_ADMIN_TOKEN_FILE": str(token)})


@pytest.mark.parametrize("path", ["/metrics", "/intents", "/readyz"])
def test_admin_token_guards_every_admin_path(guarded, path):
    assert post(guarded.admin_url + path, b"", method="GET").status == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert post(guarded.admin_url + path, b"", wrong, method="GET").status == 401
    right = {"Authorization": "Bearer a-long-random-token"}
    assert post(guarded.admin_url + path, b"", right, method="GET").status == 200


def test_admin_token_does_not_guard_healthz(guarded):
    assert post(guarded.admin_url + "/healthz", b"", method="GET").status == 200


def test_an_admin_port_that_cannot_be_bound_fails_the_start_naming_the_key(dev_ca, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = tmp_path / "dispatch.toml"
    admin_port = taken.getsockname()[1]
    config.write_text(trusted_config(dev_ca, tmp_path) + f"[server]\nadmin_port = {admin_port}\n")
    with taken:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "funker_dispatch", "serve", "--config", str(config)),
                *("--host", "127.0.0.1", "--port", str(free_port())),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
            env={"FUNKER_DISPATCH_HOME": str(tmp_path / "home"), "PATH": ""},
        )
    assert result.returncode != 0
    assert "server.admin_port" in result.stderr
    assert "Traceback" not in result.stderr
