"""Docker discovery through the real server: a service appears → routed; disappears → apology."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, intent, post, trusted_config, wait_until
from tests.test_discovery import FakeDockerAPI, service


@pytest.fixture(scope="module")
def docker_api():
    # AF_UNIX paths are short: a directory of its own under /tmp, not pytest's long one.
    with tempfile.TemporaryDirectory(prefix="fd-docker-") as directory:
        api = FakeDockerAPI(Path(directory) / "docker.sock")
        yield api
        api.stop()
    assert {method for method, _ in api.requests} <= {"GET"}, "discovery must be read-only"


@pytest.fixture(scope="module")
def server(function_process, start_server, docker_api, dev_ca, tmp_path_factory):
    base = trusted_config(dev_ca, tmp_path_factory.mktemp("discovery")) + (
        "[dispatch]\n"
        'discovery = "docker"\n'
        f'discovery_socket = "{docker_api.path}"\n'
        "discovery_interval = 0.2\n"
        'naming = "none"\n\n'
    )
    return start_server("", base=base)


def speech(signed, server, name):
    answer = signed(server.url, intent(name))
    assert answer.status == 200, answer.body
    return answer.speech


def test_service_appearing_with_an_intent_label_gets_routed_then_refused_when_gone(
    signed, server, docker_api, function_process
):
    port = function_process("text")
    assert "Sorry" in speech(signed, server, "DiscoveredIntent")  # nothing serves it yet

    with docker_api.changed:
        docker_api.services = [
            service("localhost", {"funker.intent": "DiscoveredIntent", "funker.port": str(port)})
        ]
    wait_until(
        lambda: "Fish" in speech(signed, server, "DiscoveredIntent"), 30, "the route to appear"
    )
    rows = post(server.admin_url + "/intents", b"", method="GET").json["intents"]
    assert {
        "name": "DiscoveredIntent",
        "host": "localhost",
        "port": port,
        "source": "discovery",
    } in rows

    with docker_api.changed:
        docker_api.services = []
    wait_until(lambda: "Sorry" in speech(signed, server, "DiscoveredIntent"), 30, "the route to go")
    server.wait_for_log("reason=no-route")


def test_probe_resolves_without_connecting(server, docker_api, function_process):
    port = free_port()
    with docker_api.changed:
        docker_api.services = [
            service("localhost", {"funker.intent": "ProbedIntent", "funker.port": str(port)})
        ]

    def probed() -> list[dict]:
        rows = post(server.admin_url + "/intents?probe=1", b"", method="GET").json["intents"]
        return [row for row in rows if row["name"] == "ProbedIntent"]

    wait_until(lambda: bool(probed()), 10, "the discovered route")
    row = probed()[0]
    assert row["resolves"] is True and row["addresses"] >= 1
    assert "connects" not in row  # no TCP connection unless the route opts in
