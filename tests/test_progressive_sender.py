"""Progressive responses (docs/alexa.md): configuration, the origin rule, directive and sender.

Alexa's API is a real HTTP server on loopback (tests/alexa_api.py): nothing here
reaches Amazon. The end-to-end behaviour (a real server, a slow function, the
answer after the progressive response) is in tests/e2e/test_progressive.py.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatch.registry import Route
from skill.envelope import raw_envelope, remember
from skill.progressive import (
    ALEXA_API_ORIGINS,
    ProgressiveSender,
    Target,
    Timer,
    origin,
    progressive_text,
    send_directive,
    sender_for,
    speech_ssml,
    target,
)
from skill.settings import SIMULATOR_API_ORIGIN, ConfigError, load_settings
from tests.alexa_api import AlexaApiStandIn
from tests.helpers import wait_until

ROUTE = Route(name="SlowIntent", host="127.0.0.1", port=9)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dispatch.toml"
    path.write_text(text)
    return path


@pytest.fixture
def alexa_api() -> Iterator[Any]:
    started: list[AlexaApiStandIn] = []

    def start(mode: str = "ok", **kwargs: Any) -> AlexaApiStandIn:
        started.append(AlexaApiStandIn(mode, **kwargs))
        return started[-1]

    yield start
    for stand_in in started:
        stand_in.close()


def envelope(
    api_endpoint: str | None = "https://api.amazonalexa.com",
    token: str | None = "test-token",
    kind: str = "IntentRequest",
) -> dict[str, Any]:
    system: dict[str, Any] = {"application": {"applicationId": "amzn1.ask.skill.test"}}
    if api_endpoint is not None:
        system["apiEndpoint"] = api_endpoint
    if token is not None:
        system["apiAccessToken"] = token
    return {
        "version": "1.0",
        "context": {"System": system},
        "request": {
            "type": kind,
            "requestId": f"amzn1.echo-api.request.{uuid.uuid4()}",
            "locale": "en-US",
        },
    }


def serving(data: dict[str, Any]) -> str:
    """Make `data` the request this thread serves (as the web view's pre-check does)."""
    remember(json.dumps(data), data)
    return data["request"]["requestId"]


# --- configuration -----------------------------------------------------------------


def test_progressive_responses_are_on_after_one_and_a_half_seconds_by_default(tmp_path):
    settings = load_settings(write(tmp_path, ""), environ={})
    assert settings.dispatch.progressive_after == 1.5
    assert settings.dispatch.progressive_hosts == ()


def test_a_route_sets_its_own_threshold_and_text(tmp_path):
    settings = load_settings(
        write(
            tmp_path,
            "[intents.SpaceCountIntent]\n"
            'host = "spacecount"\ntimeout = 3.0\nprogressive_after = 0.8\n'
            'progressive = "Let me look that up."\n\n'
            '[intents.CaptainsIntent]\nhost = "captains"\nprogressive_after = 0\n'
            'progressive = { default = "One moment.", de = "Moment bitte." }\n',
        ),
        environ={},
    )
    space, captains = settings.routes["SpaceCountIntent"], settings.routes["CaptainsIntent"]
    assert (space.progressive_after, space.progressive) == (0.8, "Let me look that up.")
    assert captains.progressive_after == 0.0
    assert progressive_text(captains, "de-DE") == "Moment bitte."
    assert progressive_text(captains, "en-GB") == "One moment."


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[dispatch]\nprogressive_after = -1\n", "dispatch.progressive_after", "0 or more"),
        ("[dispatch]\nprogressive_after = inf\n", "dispatch.progressive_after", "finite"),
        ("[dispatch]\nprogressive_after = nan\n", "dispatch.progressive_after", "finite"),
        ("[dispatch]\nprogressive_after = 8\n", "dispatch.progressive_after", "under 8"),
        ("[dispatch]\nprogressive_after = true\n", "dispatch.progressive_after", "number"),
        (
            "[dispatch]\ndeadline = 2.5\nprogressive_after = 3\n",
            "dispatch.progressive_after",
            "under dispatch.deadline",
        ),
        (
            '[dispatch]\nprogressive_hosts = ["https://api.example.com/v1"]\n',
            "dispatch.progressive_hosts",
            "not an origin",
        ),
        (
            '[dispatch]\nprogressive_hosts = ["ftp://api.example.com"]\n',
            "dispatch.progressive_hosts",
            "not an origin",
        ),
        (
            '[dispatch]\nprogressive_hosts = ["https://user@api.example.com"]\n',
            "dispatch.progressive_hosts",
            "not an origin",
        ),
        (
            '[dispatch]\nprogressive_hosts = ["http://127.0.0.1:0"]\n',
            "dispatch.progressive_hosts",
            "not an origin",
        ),
        (
            '[dispatch]\nprogressive_hosts = ["http://127.0.0.1:70000"]\n',
            "dispatch.progressive_hosts",
            "not an origin",
        ),
        (
            "[dispatch]\nprogressive_hosts = [3]\n",
            "dispatch.progressive_hosts",
            "list of strings",
        ),
        (
            '[intents.A]\nhost = "a"\nprogressive_after = -0.5\n',
            "intents.A.progressive_after",
            "0 or more",
        ),
        (
            '[intents.A]\nhost = "a"\nprogressive_after = inf\n',
            "intents.A.progressive_after",
            "finite",
        ),
        (
            '[intents.A]\nhost = "a"\nprogressive_after = "soon"\n',
            "intents.A.progressive_after",
            "finite",
        ),
        (
            '[intents.A]\nhost = "a"\nprogressive_after = 9\n',
            "intents.A.progressive_after",
            "under 8",
        ),
        (
            '[intents.A]\nhost = "a"\ntimeout = 1.0\nprogressive_after = 1.0\n',
            "intents.A.progressive_after",
            "under the route's deadline (1 s)",
        ),
        (
            '[dispatch]\ndeadline = 2.0\n\n[intents.A]\nhost = "a"\nprogressive_after = 3\n',
            "intents.A.progressive_after",
            "under the route's deadline (2 s)",
        ),
        ('[intents.A]\nhost = "a"\nprogressive = 3\n', "intents.A.progressive", "string"),
        ('[intents.A]\nhost = "a"\nprogressive = ""\n', "intents.A.progressive", "empty"),
        (
            '[intents.A]\nhost = "a"\nprogressive = "<speak>Hm</speak>"\n',
            "intents.A.progressive",
            "plain text",
        ),
        (
            '[intents.A]\nhost = "a"\nprogressive = "Ring \\u0007"\n',
            "intents.A.progressive",
            "control characters",
        ),
    ],
)
def test_bad_progressive_settings_fail_at_start_naming_the_key(tmp_path, text, key, reason):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_the_environment_sets_the_threshold_and_the_extra_origins(tmp_path):
    settings = load_settings(
        write(tmp_path, ""),
        environ={
            "FUNKER_DISPATCH_PROGRESSIVE_AFTER": "0",
            "FUNKER_DISPATCH_PROGRESSIVE_HOSTS": "http://127.0.0.1:8080, https://API.example.com/",
        },
    )
    assert settings.dispatch.progressive_after == 0.0
    assert settings.dispatch.progressive_hosts == (
        "http://127.0.0.1:8080",
        "https://api.example.com:443",
    )


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "7"])
def test_an_out_of_bounds_threshold_from_the_environment_is_refused(tmp_path, value):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, ""), environ={"FUNKER_DISPATCH_PROGRESSIVE_AFTER": value})
    assert "progressive_after" in caught.value.key.lower()


def test_the_embedded_default_adds_only_the_simulators_loopback_origin():
    settings = load_settings(environ={})
    assert settings.dispatch.progressive_after == 1.5
    assert settings.dispatch.progressive_hosts == (origin(SIMULATOR_API_ORIGIN),)
    # ...and its spacecount is slow enough (2 s) to earn one under `make run`.
    spacecount = next(f for f in settings.functions if f.name == "spacecount")
    assert spacecount.env == {"SPACECOUNT_DELAY": "2"}


def test_no_sender_is_built_when_no_route_can_ever_send_one():
    assert sender_for(0, (), {"A": ROUTE}) is None
    assert sender_for(0, (), {"A": Route(name="A", host="a", progressive_after=1.0)}) is not None
    assert sender_for(1.5, (), {}) is not None


# --- the origin rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("https://api.amazonalexa.com", "https://api.amazonalexa.com:443"),
        ("https://api.amazonalexa.com:443", "https://api.amazonalexa.com:443"),
        ("https://api.amazonalexa.com/", "https://api.amazonalexa.com:443"),
        ("HTTPS://API.EU.AmazonAlexa.com", "https://api.eu.amazonalexa.com:443"),
        ("http://127.0.0.1:3009", "http://127.0.0.1:3009"),
        ("http://localhost", "http://localhost:80"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_an_origin_is_normalised_an_omitted_port_being_the_schemes_default(text, normal):
    assert origin(text) == normal


@pytest.mark.parametrize(
    "text",
    [
        "https://api.amazonalexa.com/v1/directives",
        "https://api.amazonalexa.com?x=1",
        "https://api.amazonalexa.com#x",
        "https://evil@api.amazonalexa.com",
        "https://api.amazonalexa.com:443@evil.example",
        "https://api.amazonalexa.com\\@evil.example",
        "https://api.amazonalexa.com:",
        "//api.amazonalexa.com",
        "api.amazonalexa.com",
        "file:///etc/passwd",
        "https://api.amazonalexa.com\n",
        "https://",
        "",
    ],
)
def test_anything_but_a_bare_origin_is_refused(text):
    with pytest.raises(ValueError, match="not an origin"):
        origin(text)


def test_alexas_three_api_hosts_are_always_allowed():
    assert {
        "https://api.amazonalexa.com:443",
        "https://api.eu.amazonalexa.com:443",
        "https://api.fe.amazonalexa.com:443",
    } == ALEXA_API_ORIGINS


# --- which requests may have one ---------------------------------------------------


@pytest.mark.parametrize("kind", ["LaunchRequest", "IntentRequest"])
def test_launch_and_intent_requests_with_api_endpoint_and_token_may_have_one(kind):
    data = envelope("https://api.eu.amazonalexa.com", "token-1", kind)
    assert target(data, ALEXA_API_ORIGINS) == Target(
        "https://api.eu.amazonalexa.com:443", "token-1", data["request"]["requestId"]
    )


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (envelope(kind="CanFulfillIntentRequest"), "takes no progressive response"),
        (envelope(kind="AudioPlayer.PlaybackStarted"), "takes no progressive response"),
        (envelope(api_endpoint=None), "no apiEndpoint"),
        (envelope(token=None), "no usable apiAccessToken"),
        (envelope(token=""), "no usable apiAccessToken"),
        (envelope(token="two\r\nlines"), "no usable apiAccessToken"),
        (envelope("https://evil.example"), "not an allowed origin"),
        (envelope("http://127.0.0.1:8080"), "not an allowed origin"),
        (envelope("http://api.amazonalexa.com"), "not an allowed origin"),
        (envelope("https://api.amazonalexa.com:8443"), "not an allowed origin"),
        (envelope("https://api.amazonalexa.com."), "not an allowed origin"),
        (envelope("https://api.amazonalexa.com/x"), "not an allowed origin"),
        (None, "no request envelope"),
    ],
)
def test_other_requests_cannot_have_one_and_say_why(data, why):
    assert why in target(data, ALEXA_API_ORIGINS)


def test_an_operator_listed_origin_is_allowed_exactly():
    allowed = ALEXA_API_ORIGINS | {origin("http://127.0.0.1:8080")}
    assert isinstance(target(envelope("http://127.0.0.1:8080/"), allowed), Target)
    assert isinstance(target(envelope("http://127.0.0.1:8081"), allowed), str)
    assert isinstance(target(envelope("http://localhost:8080"), allowed), str)


# --- the directive and its API client -------------------------------------------------


def deadline_in(seconds: float) -> float:
    return time.monotonic() + seconds


def test_the_directive_is_one_speak_posted_with_the_request_id_and_the_bearer_token(alexa_api):
    api = alexa_api()
    send_directive(
        api.url, "token-1", "amzn1.echo-api.request.1", "<speak>Hm.</speak>", deadline_in(5)
    )
    (post,) = api.posts
    assert post.path == "/v1/directives"
    assert post.headers["Authorization"] == "Bearer token-1"
    assert post.headers["Content-Type"] == "application/json"
    assert [k for k in post.headers if k.lower() == "content-type"] == ["Content-Type"]
    assert post.json == {
        "header": {"requestId": "amzn1.echo-api.request.1"},
        "directive": {"type": "VoicePlayer.Speak", "speech": "<speak>Hm.</speak>"},
    }


def test_a_redirect_from_the_api_is_not_followed(alexa_api):
    elsewhere = alexa_api()
    api = alexa_api("redirect", redirect_to=elsewhere.url + "/v1/directives")
    with pytest.raises(Exception) as caught:
        send_directive(api.url, "token-1", "req", "<speak>Hm.</speak>", deadline_in(5))
    assert getattr(caught.value, "status_code", None) == 307
    assert len(api.posts) == 1
    assert elsewhere.posts == []


def test_an_api_that_hangs_fails_at_the_deadline(alexa_api):
    api = alexa_api("hang")
    with pytest.raises(Exception, match="within"):
        send_directive(api.url, "token-1", "req", "<speak>Hm.</speak>", deadline_in(0.3))
    assert len(api.posts) == 1


def test_an_api_error_raises_with_its_status(alexa_api):
    api = alexa_api("error")
    with pytest.raises(Exception) as caught:
        send_directive(api.url, "token-1", "req", "<speak>Hm.</speak>", deadline_in(5))
    assert getattr(caught.value, "status_code", None) == 500


def test_the_text_is_escaped_into_ssml():
    assert speech_ssml("Fish & <chips>") == "<speak>Fish &amp; &lt;chips&gt;</speak>"


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        ("en-US", "One moment."),
        ("en-GB", "One moment."),
        ("de-DE", "Einen Moment."),
        ("fr-CA", "Un instant."),
        ("es-MX", "Un momento."),
        ("ja-JP", "One moment."),
        (None, "One moment."),
    ],
)
def test_the_default_text_is_in_the_requests_language(locale, text):
    assert progressive_text(ROUTE, locale) == text


# --- the sender: armed by a call, disarmed by its answer ------------------------------


class Outcomes:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, outcome: str) -> None:
        self.seen.append(outcome)


def sender_to(api: AlexaApiStandIn, outcomes: Outcomes, **kwargs: Any) -> ProgressiveSender:
    return ProgressiveSender(0.2, (api.url,), count=outcomes, **kwargs)


def test_a_call_that_outlasts_its_threshold_sends_exactly_one(alexa_api):
    api, outcomes = alexa_api(), Outcomes()
    request_id = serving(envelope(api.url))

    pending = sender_to(api, outcomes).arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope())
    (post,) = api.wait_for(1)
    wait_until(lambda: outcomes.seen == ["sent"], 30, "the outcome")
    pending.done()

    assert post.json["header"]["requestId"] == request_id
    assert post.json["directive"]["speech"] == "<speak>One moment.</speak>"
    assert len(api.posts) == 1


def test_a_call_answered_before_its_threshold_sends_nothing(alexa_api):
    api, outcomes = alexa_api(), Outcomes()
    sender = sender_to(api, outcomes)
    serving(envelope(api.url))
    sender.arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope()).done()  # answered at once
    # A later call that is slow: by the time its response arrives, the first was long due.
    slow_id = serving(envelope(api.url))
    later = sender.arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope())
    (post,) = api.wait_for(1)
    later.done()
    assert post.json["header"]["requestId"] == slow_id
    wait_until(lambda: outcomes.seen == ["sent"], 30, "the outcome")


def test_a_failed_post_is_counted_and_logged_once_without_the_token(alexa_api, caplog):
    api, outcomes = alexa_api("error"), Outcomes()
    request_id = serving(envelope(api.url, token="secret-token-42"))
    with caplog.at_level(logging.INFO, logger="funker_dispatch"):
        pending = sender_to(api, outcomes).arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope())
        wait_until(lambda: outcomes.seen == ["failed"], 30, "the outcome")
        pending.done()
    (line,) = [r.getMessage() for r in caplog.records if "progressive" in r.getMessage()]
    assert "reason=progressive-failed" in line
    assert f"request_id={request_id}" in line
    assert "500" in line
    assert "secret-token-42" not in caplog.text


def test_no_threshold_or_one_past_the_calls_deadline_arms_nothing(alexa_api):
    api, outcomes = alexa_api(), Outcomes()
    serving(envelope(api.url))
    assert (
        ProgressiveSender(0, (api.url,), count=outcomes).arm(
            ROUTE, "en-US", 5.0, envelope=raw_envelope()
        )
        is None
    )
    assert (
        sender_to(api, outcomes).arm(ROUTE, "en-US", timeout=0.2, envelope=raw_envelope()) is None
    )
    off = Route(name="Off", host="a", progressive_after=0)
    assert sender_to(api, outcomes).arm(off, "en-US", timeout=5.0, envelope=raw_envelope()) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "data",
    [envelope(api_endpoint=None), envelope("https://evil.example"), envelope(kind="Messaging")],
)
def test_a_request_that_cannot_have_one_counts_skipped_only_once_it_was_due(data, caplog):
    outcomes, clock = Outcomes(), Clock()
    sender = ProgressiveSender(1.5, count=outcomes, clock=clock)
    serving(data)
    sender.arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope()).done()  # answered in no time
    assert outcomes.seen == []
    with caplog.at_level(logging.INFO, logger="funker_dispatch"):
        pending = sender.arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope())
        clock.now += 2.0  # the function took 2 s
        pending.done()
    assert outcomes.seen == ["skipped"]
    assert "reason=progressive-skipped" in caplog.text


def test_a_listener_not_allowed_is_never_connected_to(alexa_api):
    api, outcomes = alexa_api(), Outcomes()
    sender = sender_to(api, outcomes)  # only the stand-in's origin is listed
    with socket.create_server(("127.0.0.1", 0)) as listener:
        serving(envelope(f"http://127.0.0.1:{listener.getsockname()[1]}"))
        refused = sender.arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope())
        # One armed after it, to an allowed origin: once it has been sent, the first was
        # due earlier and would have been sent first.
        serving(envelope(api.url))
        allowed = sender.arm(ROUTE, "en-US", timeout=5.0, envelope=raw_envelope())
        wait_until(lambda: outcomes.seen == ["sent"], 30, "the allowed one to be sent")
        refused.done()
        allowed.done()
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever connected
    assert outcomes.seen == ["sent", "skipped"]


# --- the timer --------------------------------------------------------------------------


class FakeJob:
    def __init__(self, due: float) -> None:
        self.due = due
        self.state = "armed"
        self.fired = threading.Event()

    def fire(self) -> None:
        self.fired.set()


def test_the_timer_fires_a_due_job_and_never_a_disarmed_one():
    timer = Timer()
    disarmed, later = FakeJob(time.monotonic() + 0.05), FakeJob(time.monotonic() + 0.1)
    timer.schedule(disarmed)  # type: ignore[arg-type]
    timer.schedule(later)  # type: ignore[arg-type]
    assert timer.cancel(disarmed)  # type: ignore[arg-type]
    assert later.fired.wait(5)
    assert not disarmed.fired.is_set()
    assert not timer.cancel(later)  # type: ignore[arg-type]  (it already fired)


def test_the_timer_fires_an_earlier_job_scheduled_after_a_later_one():
    timer = Timer()
    late, early = FakeJob(time.monotonic() + 30), FakeJob(time.monotonic() + 0.05)
    timer.schedule(late)  # type: ignore[arg-type]
    timer.schedule(early)  # type: ignore[arg-type]
    assert early.fired.wait(5)
    assert not late.fired.is_set()
    timer.cancel(late)  # type: ignore[arg-type]
