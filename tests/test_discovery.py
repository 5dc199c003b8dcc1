"""Docker discovery (dispatch.discovery) against a fake Docker Engine API on a real unix socket.

The fake serves `/_ping` and `/services` (plain or under `/vX.Y`) from a list
the test edits, and records every request it receives: discovery must only
ever send GET. Background refreshes are awaited on the fake's request count
(a condition variable), never on sleeps.
"""

from __future__ import annotations

import json
import logging
import re
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from dispatch.discovery import DiscoveringRouter, DockerDiscovery, docker_socket
from dispatch.registry import NoRoute, Route

SERVICES_PATH = re.compile(r"^(/v\d+\.\d+)?/services$")
# Bound on waiting for the fake to see requests: a failure guard, not a timing claim.
WITHIN = 10.0
EXAMPLE_INTENTS = ["SpaceCountIntent", "HelloIntent", "HostnameIntent", "CaptainsIntent"]


def service(name: str, labels: dict[str, str] | None = None, **container: str) -> dict[str, Any]:
    """One entry of `GET /services` as the engine returns it (the fields discovery reads)."""
    return {
        "ID": f"id-{name}",
        "Spec": {
            "Name": name,
            "Labels": dict(labels or {}),
            "TaskTemplate": {"ContainerSpec": {"Image": f"{name}:latest", "Labels": container}},
        },
    }


def stack_service(stack: str, name: str, **labels: str) -> dict[str, Any]:
    """A service as `docker stack deploy -c ... <stack>` names and labels it."""
    return service(f"{stack}_{name}", {"com.docker.stack.namespace": stack, **labels})


class FakeDockerAPI:
    """The read-only part of a Docker Engine API, served for real on a unix socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.services: list[dict[str, Any]] = []
        self.api_version: str | None = "1.47"
        self.failure: tuple[int, str] | None = None  # (status, message) for /services
        self.requests: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, headers, body = fake.answer(self.command, self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            # Anything but GET is recorded (so the test fails on it) and refused.
            do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass  # unix-socket peers have no address for the default log line

        self.server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        self.server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one of them.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def answer(self, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        with self.changed:
            # Counted and answered under one lock: a request counted after an edit sees it.
            self.requests.append((method, path))
            self.changed.notify_all()
            if method != "GET":
                return 405, {}, b'{"message": "read-only fake"}'
            if path == "/_ping":
                headers = {"API-Version": self.api_version} if self.api_version else {}
                return 200, {**headers, "Content-Type": "text/plain"}, b"OK"
            if SERVICES_PATH.match(path):
                if self.failure is not None:
                    status, message = self.failure
                    return status, {}, json.dumps({"message": message}).encode()
                body = json.dumps(self.services).encode()
                return 200, {"Content-Type": "application/json"}, body
            return 404, {}, b'{"message": "page not found"}'

    def request_count(self) -> int:
        with self.changed:
            return len(self.requests)

    def wait_for_requests(self, count: int) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.requests) >= count, WITHIN):
                raise AssertionError(f"the fake Docker API saw {len(self.requests)} < {count}")

    def stop(self) -> None:
        """The engine goes away: nothing listens and the socket file is gone."""
        self.server.shutdown()
        self.server.server_close()
        self.path.unlink(missing_ok=True)


@pytest.fixture
def docker_api(tmp_path: Path) -> Iterator[FakeDockerAPI]:
    # A short path: AF_UNIX paths are limited to about 100 bytes.
    api = FakeDockerAPI(tmp_path / "docker.sock")
    yield api
    if api.path.exists():
        api.stop()
    assert {method for method, _ in api.requests} <= {"GET"}, "discovery must be read-only"


def discovery(api: FakeDockerAPI, **options: Any) -> DockerDiscovery:
    options.setdefault("intents", EXAMPLE_INTENTS)
    return DockerDiscovery(str(api.path), **options)


# ---------------------------------------------------------------- which service serves what


def test_service_with_intent_label_is_routed_to_its_name_and_labelled_port(
    docker_api: FakeDockerAPI,
) -> None:
    docker_api.services = [
        service("greeter", {"funker.intent": "HelloIntent", "funker.port": "8080"})
    ]

    routes = discovery(docker_api).refresh()

    assert routes == {
        "HelloIntent": Route(name="HelloIntent", host="greeter", port=8080, source="discovery")
    }
    assert [path for _, path in docker_api.requests] == ["/_ping", "/v1.47/services"]


def test_intent_label_may_name_several_intents_and_built_ins(docker_api: FakeDockerAPI) -> None:
    docker_api.services = [
        service("helpdesk", {"funker.intent": "AMAZON.HelpIntent, LaunchRequest,"}),
    ]

    routes = discovery(docker_api, default_port=7000).refresh()

    assert {name: (r.host, r.port) for name, r in routes.items()} == {
        "AMAZON.HelpIntent": ("helpdesk", 7000),
        "LaunchRequest": ("helpdesk", 7000),
    }


def test_container_labels_count_and_service_labels_win(docker_api: FakeDockerAPI) -> None:
    docker_api.services = [
        service("greeter", None, **{"funker.intent": "HelloIntent", "funker.port": "9000"}),
        service(
            "counter",
            {"funker.port": "9100"},
            **{"funker.intent": "SpaceCountIntent", "funker.port": "9001"},
        ),
    ]

    routes = discovery(docker_api).refresh()

    assert (routes["HelloIntent"].host, routes["HelloIntent"].port) == ("greeter", 9000)
    assert (routes["SpaceCountIntent"].host, routes["SpaceCountIntent"].port) == ("counter", 9100)


def test_stack_service_named_after_an_intent_serves_it(docker_api: FakeDockerAPI) -> None:
    # The example stack deployed as `docker stack deploy -c docker-stack.yml funker`.
    docker_api.services = [
        stack_service("funker", "dispatcher"),
        stack_service("funker", "spacecount"),
        stack_service("funker", "hello"),
        stack_service("funker", "hostname"),
        stack_service("funker", "captains"),
    ]

    routes = discovery(docker_api).refresh()

    assert {name: (r.host, r.port, r.source) for name, r in routes.items()} == {
        "SpaceCountIntent": ("funker_spacecount", 9999, "discovery"),
        "HelloIntent": ("funker_hello", 9999, "discovery"),
        "HostnameIntent": ("funker_hostname", 9999, "discovery"),
        "CaptainsIntent": ("funker_captains", 9999, "discovery"),
    }


def test_service_name_matches_the_intent_name_whole_or_less_intent_ignoring_case(
    docker_api: FakeDockerAPI,
) -> None:
    docker_api.services = [
        service("hello"),  # no stack: the name itself
        service("SpaceCountIntent"),  # the whole intent name
        stack_service("other", "HOSTNAME"),  # case does not matter
        service("funker_captains"),  # no namespace label: the prefix is part of the name
    ]

    routes = discovery(docker_api).refresh()

    assert {name: r.host for name, r in routes.items()} == {
        "HelloIntent": "hello",
        "SpaceCountIntent": "SpaceCountIntent",
        "HostnameIntent": "other_HOSTNAME",
    }


def test_name_matching_uses_only_the_given_custom_intents(docker_api: FakeDockerAPI) -> None:
    docker_api.services = [service("hello"), service("help"), service("amazon.helpintent")]

    routes = discovery(docker_api, intents=["AMAZON.HelpIntent", "SpaceCountIntent"]).refresh()

    assert routes == {}


def test_label_beats_name_and_an_empty_label_opts_out(docker_api: FakeDockerAPI) -> None:
    docker_api.services = [
        stack_service("funker", "hello"),
        service("greeter-v2", {"funker.intent": "HelloIntent"}),
        stack_service("funker", "captains", **{"funker.intent": ""}),
    ]

    routes = discovery(docker_api).refresh()

    assert {name: r.host for name, r in routes.items()} == {"HelloIntent": "greeter-v2"}


def test_two_services_claiming_one_intent_first_by_name_wins_with_a_warning(
    docker_api: FakeDockerAPI, caplog: pytest.LogCaptureFixture
) -> None:
    docker_api.services = [
        service("zeta", {"funker.intent": "HelloIntent"}),
        service("alpha", {"funker.intent": "HelloIntent"}),
    ]
    caplog.set_level(logging.WARNING, logger="dispatch.discovery")
    found = discovery(docker_api)

    assert found.refresh()["HelloIntent"].host == "alpha"
    found.refresh()  # the same problem is not reported again every interval

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "alpha" in warnings[0] and "zeta" in warnings[0]


def test_bad_port_label_leaves_the_service_unrouted_with_a_warning(
    docker_api: FakeDockerAPI, caplog: pytest.LogCaptureFixture
) -> None:
    docker_api.services = [
        service("greeter", {"funker.intent": "HelloIntent", "funker.port": "http"}),
        service("counter", {"funker.intent": "SpaceCountIntent", "funker.port": "70000"}),
    ]
    caplog.set_level(logging.WARNING, logger="dispatch.discovery")

    assert discovery(docker_api).refresh() == {}
    assert "funker.port='http'" in caplog.text
    assert "funker.port='70000'" in caplog.text


def test_non_ascii_digit_port_label_is_unrouted_and_refresh_and_start_do_not_raise(
    docker_api: FakeDockerAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # "²".isdigit() is true but int("²") raises ValueError: that must not escape refresh() or
    # start() (the app starts discovery in a before_request; a raise answers 500 forever).
    docker_api.services = [
        service("greeter", {"funker.intent": "HelloIntent", "funker.port": "\u00b2"}),
        service("counter", {"funker.intent": "SpaceCountIntent", "funker.port": "\u0661\u0662"}),
        stack_service("funker", "captains"),
    ]
    caplog.set_level(logging.WARNING, logger="dispatch.discovery")
    found = discovery(docker_api, interval=60)

    try:
        found.start()
        assert {name: r.host for name, r in found.routes().items()} == {
            "CaptainsIntent": "funker_captains"
        }
        assert set(found.refresh()) == {"CaptainsIntent"}
    finally:
        found.stop()
    assert "funker.port='\u00b2'" in caplog.text
    assert found.last_error is None


def test_unexpected_error_in_refresh_or_start_keeps_the_table_and_warns(
    docker_api: FakeDockerAPI, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_api.services = [stack_service("funker", "hello")]
    found = discovery(docker_api, interval=60)
    good = found.refresh()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a bug in the listing code")

    monkeypatch.setattr("dispatch.discovery.routes_from_services", broken)
    caplog.set_level(logging.WARNING, logger="dispatch.discovery")

    assert found.refresh() == good
    try:
        found.start()  # must not raise either
        found.start()  # nor when already started
    finally:
        found.stop()
    assert dict(found.routes()) == good
    assert "a bug in the listing code" in caplog.text
    assert found.last_error is not None and "a bug in the listing code" in found.last_error


def test_listing_that_is_not_a_list_keeps_the_table(
    docker_api: FakeDockerAPI, caplog: pytest.LogCaptureFixture
) -> None:
    docker_api.services = [service("hello")]
    found = discovery(docker_api)
    found.refresh()
    docker_api.services = {"message": "surprise"}  # type: ignore[assignment]
    caplog.set_level(logging.WARNING, logger="dispatch.discovery")

    assert set(found.refresh()) == {"HelloIntent"}
    assert "not a JSON array" in caplog.text


def test_malformed_services_are_skipped_not_fatal(docker_api: FakeDockerAPI) -> None:
    docker_api.services = [
        "not a service",
        {"Spec": None},
        {"Spec": {"Name": "bad name!", "Labels": {"funker.intent": "HelloIntent"}}},
        {"Spec": {"Name": "hello", "Labels": ["not", "a", "mapping"]}},
    ]

    routes = discovery(docker_api).refresh()

    assert {name: r.host for name, r in routes.items()} == {"HelloIntent": "hello"}


# ---------------------------------------------------------------- the Docker Engine API


def test_engine_without_a_reported_version_is_asked_unversioned(docker_api: FakeDockerAPI) -> None:
    docker_api.api_version = None
    docker_api.services = [service("hello")]

    assert set(discovery(docker_api).refresh()) == {"HelloIntent"}
    assert [path for _, path in docker_api.requests] == ["/_ping", "/services"]


def test_version_is_negotiated_once_not_per_refresh(docker_api: FakeDockerAPI) -> None:
    found = discovery(docker_api)
    found.refresh()
    found.refresh()

    assert [path for _, path in docker_api.requests] == [
        "/_ping",
        "/v1.47/services",
        "/v1.47/services",
    ]


def test_engine_that_cannot_list_services_keeps_table_and_logs_its_reason(
    docker_api: FakeDockerAPI, caplog: pytest.LogCaptureFixture
) -> None:
    docker_api.services = [stack_service("funker", "hello")]
    found = discovery(docker_api)
    found.refresh()
    docker_api.failure = (503, "This node is not a swarm manager.")
    caplog.set_level(logging.WARNING, logger="dispatch.discovery")

    routes = found.refresh()

    assert set(routes) == set(found.routes()) == {"HelloIntent"}
    assert "503" in caplog.text and "not a swarm manager" in caplog.text
    assert found.last_error is not None


def test_service_that_appears_is_routed_after_the_next_refresh(docker_api: FakeDockerAPI) -> None:
    found = discovery(docker_api)
    router = DiscoveringRouter(naming="none", discovery=found)
    found.refresh()
    with pytest.raises(NoRoute):
        router.resolve("HelloIntent")

    docker_api.services = [stack_service("funker", "hello")]
    found.refresh()

    assert router.resolve("HelloIntent") == Route(
        name="HelloIntent", host="funker_hello", source="discovery"
    )
    assert router.has_route("HelloIntent")


def test_service_that_disappears_stops_resolving_after_the_next_refresh(
    docker_api: FakeDockerAPI,
) -> None:
    docker_api.services = [stack_service("funker", "hello"), stack_service("funker", "captains")]
    found = discovery(docker_api)
    router = DiscoveringRouter(naming="none", discovery=found)
    found.refresh()
    assert router.resolve("HelloIntent").host == "funker_hello"

    docker_api.services = [stack_service("funker", "captains")]
    found.refresh()

    with pytest.raises(NoRoute):
        router.resolve("HelloIntent")
    assert not router.has_route("HelloIntent")
    assert router.resolve("CaptainsIntent").host == "funker_captains"


def test_api_down_keeps_the_last_good_table_and_warns_once(
    docker_api: FakeDockerAPI, caplog: pytest.LogCaptureFixture
) -> None:
    docker_api.services = [stack_service("funker", "hello")]
    found = discovery(docker_api)
    good = found.refresh()
    docker_api.stop()  # socket removed
    caplog.set_level(logging.WARNING, logger="dispatch.discovery")

    assert found.refresh() == good
    assert found.refresh() == good
    assert dict(found.routes()) == good

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage, not one per interval"
    assert str(docker_api.path) in warnings[0].getMessage()
    assert "no such file" in warnings[0].getMessage().lower()


def test_api_down_from_the_start_gives_an_empty_table(tmp_path: Path) -> None:
    found = DockerDiscovery(str(tmp_path / "absent.sock"), intents=EXAMPLE_INTENTS)

    assert found.refresh() == {}
    assert found.routes() == {}
    assert found.last_error is not None


def test_background_refresh_follows_the_listing_until_stopped(docker_api: FakeDockerAPI) -> None:
    found = discovery(docker_api, interval=0.01)
    found.start()  # the first listing happens before start() returns
    try:
        assert dict(found.routes()) == {}
        docker_api.services = [stack_service("funker", "hello")]
        # Requests counted after the edit see it; the one after that proves its refresh ended.
        docker_api.wait_for_requests(docker_api.request_count() + 2)
        assert set(found.routes()) == {"HelloIntent"}

        docker_api.services = []
        docker_api.wait_for_requests(docker_api.request_count() + 2)
        assert dict(found.routes()) == {}
    finally:
        found.stop()

    stopped_at = docker_api.request_count()
    # A refresh by hand still works, and proves no background thread is left asking.
    found.refresh()
    assert docker_api.request_count() == stopped_at + 1


def test_background_refresh_survives_an_outage(docker_api: FakeDockerAPI) -> None:
    docker_api.services = [stack_service("funker", "hello")]
    with discovery(docker_api, interval=0.01) as found:
        docker_api.failure = (500, "engine trouble")
        docker_api.wait_for_requests(docker_api.request_count() + 2)
        assert set(found.routes()) == {"HelloIntent"}

        docker_api.failure = None
        docker_api.services = [stack_service("funker", "captains")]
        docker_api.wait_for_requests(docker_api.request_count() + 3)  # re-ping, list, list
        assert set(found.routes()) == {"CaptainsIntent"}
        assert found.last_error is None


# ---------------------------------------------------------------- routing order and table


class StaticDiscovery:
    """A route source without Docker, for the router's own rules."""

    def __init__(self, *routes: Route) -> None:
        self.table = {route.name: route for route in routes}

    def routes(self) -> dict[str, Route]:
        return self.table


def test_configured_routes_beat_discovered_ones_which_beat_naming() -> None:
    configured = Route(name="HelloIntent", host="hello-configured")
    discovered = StaticDiscovery(
        Route(name="HelloIntent", host="funker_hello", source="discovery"),
        Route(name="CaptainsIntent", host="funker_captains", source="discovery"),
    )
    router = DiscoveringRouter({"HelloIntent": configured}, naming="intent", discovery=discovered)

    assert router.resolve("HelloIntent") is configured
    assert router.resolve("CaptainsIntent").host == "funker_captains"
    assert router.resolve("HostnameIntent") == Route(
        name="HostnameIntent", host="HostnameIntent", source="naming"
    )
    with pytest.raises(NoRoute):
        router.resolve("AMAZON.HelpIntent")


def test_table_marks_discovered_rows_and_lists_each_intent_once() -> None:
    discovered = StaticDiscovery(
        Route(name="HelloIntent", host="funker_hello", source="discovery"),
        Route(name="CaptainsIntent", host="funker_captains", port=8000, source="discovery"),
    )
    router = DiscoveringRouter(
        {"HelloIntent": Route(name="HelloIntent", host="hello")}, discovery=discovered
    )

    rows = router.table(["HelloIntent", "CaptainsIntent", "HostnameIntent", "AMAZON.StopIntent"])

    assert rows == [
        {"name": "HelloIntent", "host": "hello", "port": 9999, "source": "config"},
        {"name": "CaptainsIntent", "host": "funker_captains", "port": 8000, "source": "discovery"},
        {"name": "HostnameIntent", "host": "HostnameIntent", "port": 9999, "source": "naming"},
    ]


# ---------------------------------------------------------------- configuration


def test_socket_comes_from_docker_host_or_the_default() -> None:
    assert docker_socket({}) == "/var/run/docker.sock"
    assert docker_socket({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}) == (
        "/run/user/1000/docker.sock"
    )
    with pytest.raises(ValueError, match="unix://"):
        docker_socket({"DOCKER_HOST": "tcp://10.0.0.1:2375"})


def test_explicit_socket_wins_over_docker_host(
    monkeypatch: pytest.MonkeyPatch, docker_api: FakeDockerAPI
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.1:2375")

    assert discovery(docker_api).socket_path == str(docker_api.path)
    with pytest.raises(ValueError):
        DockerDiscovery()
