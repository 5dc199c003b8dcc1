"""Progressive responses (docs/alexa.md): one "One moment." while a slow function works.

Alexa waits about 8 s for an answer and the user hears nothing meanwhile; its
Progressive Response API lets a skill speak before the answer is ready. When a
function call outlasts its `progressive_after`, one `VoicePlayer.Speak` goes to
`POST {context.System.apiEndpoint}/v1/directives` (bearer `apiAccessToken`)
through the ASK SDK's `DirectiveServiceClient`, while the call goes on:

- The request thread only arms a timer (`ProgressiveSender.arm`) and disarms it
  when the function answers (`Pending.done`): a heap push and a flag under one
  lock, so a fast function pays microseconds (bench/profile.py measures it).
- One thread per process fires due timers; each POST runs in a thread of its
  own, bounded by what is left of the function call's deadline. The answer
  never waits for it: a POST still in flight when the function answers ends (or
  times out) on its own.
- The POST goes only to Alexa's three API origins, or to one the operator lists
  in `[dispatch] progressive_hosts`. The address comes from the request body,
  and with verification off anyone could choose it (SSRF).
- The SDK's `DefaultApiClient` is not used. It is built on `requests`, which is
  installed only as ask-sdk-core's own dependency, never ours; it sets no
  timeout at all (an API that hangs would hold the thread for ever), follows
  redirects (a 307 would re-send the POST, token and all, wherever it points),
  and refuses http (the simulator's loopback stand-in). `DeadlineApiClient`
  implements the SDK's `ApiClient` on `skill.client.post` instead: http.client
  over verification/deadline.py's one-deadline socket, no redirects, no proxy,
  a read cap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, NamedTuple

from verification import sdkcompat

sdkcompat.install()

from ask_sdk_core.serialize import DefaultSerializer  # noqa: E402
from ask_sdk_model.services import (  # noqa: E402
    ApiClient,
    ApiClientRequest,
    ApiClientResponse,
    ApiConfiguration,
    ServiceException,
)
from ask_sdk_model.services.directive import (  # noqa: E402
    DirectiveServiceClient,
    Header,
    SendDirectiveRequest,
    SpeakDirective,
)

from dispatch.registry import Route  # noqa: E402
from dispatch.responses import compact_json, escape_speech  # noqa: E402
from skill import client  # noqa: E402
from skill.messages import message  # noqa: E402
from skill.text import one_line  # noqa: E402

log = logging.getLogger("funker_dispatch")

#: Where Alexa's requests say its API is, by region (North America, Europe, Far East).
ALEXA_API_HOSTS = (
    "https://api.amazonalexa.com",
    "https://api.eu.amazonalexa.com",
    "https://api.fe.amazonalexa.com",
)
#: Alexa accepts progressive responses only while it waits for one of these.
REQUEST_TYPES = frozenset({"LaunchRequest", "IntentRequest"})
DIRECTIVES_PATH = "/v1/directives"
#: The API answers 204 with no body; an error is a small JSON object.
MAX_API_ANSWER_BYTES = 64 * 1024
#: How late the timer thread may fire (it wakes at most this often): a few hundredths of a
#: second do not matter to a 1.5 s threshold, and batching spares a wake-up per request.
TIMER_RESOLUTION = 0.05

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r"(?::(?P<port>[0-9]{1,5}))?/?",
    re.IGNORECASE,
)
#: Alexa's tokens are JWTs of about a kilobyte; anything far larger is not one.
MAX_TOKEN_CHARACTERS = 16384
#: apiEndpoint strings already found allowed, so the usual three cost a dict lookup, not a
#: regex; bounded, since with verification off a request may send any variant.
_ALLOWED_SEEN_MAX = 64


def origin(text: str) -> str:
    """`text` as a normalised origin `scheme://host:port` (lower case, port always written).

    ValueError when `text` is anything more or less than `scheme://host[:port]` with scheme
    http or https: no user info, path, query or fragment (one trailing "/" is tolerated, as
    Alexa has been seen to send none and people type one). An omitted port is the scheme's
    default, so `https://api.amazonalexa.com` and `https://api.amazonalexa.com:443` are one.
    """
    found = _ORIGIN.fullmatch(text) if isinstance(text, str) else None
    port = int(found["port"]) if found and found["port"] else None
    if found is None or port == 0 or (port is not None and port > 65535):
        raise ValueError(
            f"{one_line(str(text))[:100]!r} is not an origin (http:// or https://, a host, "
            "an optional port, nothing else)"
        )
    scheme = found["scheme"].lower()
    return f"{scheme}://{found['host'].lower()}:{port or _DEFAULT_PORTS[scheme]}"


ALEXA_API_ORIGINS = frozenset(origin(host) for host in ALEXA_API_HOSTS)


def progressive_text(route: Route, locale: str | None) -> str:
    """What the progressive response says: the route's own text for the locale, else "One
    moment." in the request's language (English fallback)."""
    text = route.progressive
    if isinstance(text, Mapping):
        language = (locale or "").split("-")[0].lower()
        text = next((text[key] for key in (locale, language, "default") if key in text), None)
    return text or message(locale, "progressive")


def speech_ssml(text: str) -> str:
    """Plain text as the SSML document `VoicePlayer.Speak` wants."""
    return f"<speak>{escape_speech(text)}</speak>"


@cache
def _tls() -> ssl.SSLContext:
    import certifi  # the roots verification trusts by default, whatever the host image has

    return ssl.create_default_context(cafile=certifi.where())


class DeadlineApiClient(ApiClient):
    """The ASK SDK's `ApiClient` on http.client: one deadline for the whole exchange.

    `deadline` is a `time.monotonic()` value. Redirects come back as answers (the
    service client then raises); only POST is needed (the directive API).
    """

    def __init__(
        self,
        deadline: float,
        post: Callable[..., client.Answer] = client.post,
        context: ssl.SSLContext | None = None,
    ) -> None:
        self.deadline = deadline
        self._post = post
        self._context = context

    def invoke(self, request: ApiClientRequest) -> ApiClientResponse:
        if request.method != "POST":
            raise ValueError(f"only POST is supported, not {request.method}")
        body = request.body
        data = (body if isinstance(body, str) else compact_json(body)).encode()
        # client.post writes Content-Type itself; the SDK's "Content-type" would go out twice.
        headers = {k: v for k, v in request.headers or () if k.lower() != "content-type"}
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no time left before the deadline")
        answer = self._post(
            request.url,
            data,
            headers,
            timeout=remaining,
            max_bytes=MAX_API_ANSWER_BYTES,
            context=self._context or _tls(),
        )
        return ApiClientResponse(
            headers=[], status_code=answer.status, body=answer.body.decode("utf-8", "replace")
        )


def send_directive(
    api_origin: str,
    token: str,
    request_id: str,
    ssml: str,
    deadline: float,
    *,
    post: Callable[..., client.Answer] = client.post,
) -> None:
    """One `VoicePlayer.Speak` through the SDK's directive service client; raises on failure
    (`ServiceException` for an answer that is not 2xx or no answer at all)."""
    configuration = ApiConfiguration(
        serializer=DefaultSerializer(),
        api_client=DeadlineApiClient(deadline, post),
        authorization_value=token,
        api_endpoint=api_origin,
    )
    DirectiveServiceClient(configuration).enqueue(
        SendDirectiveRequest(
            header=Header(request_id=request_id), directive=SpeakDirective(speech=ssml)
        )
    )


class Target(NamedTuple):  # a tuple: built on every eligible request, cheaply
    """Where one request's progressive response may go, read from its envelope."""

    api_origin: str
    token: str
    request_id: str


def _header_safe(token: str) -> bool:
    """Visible ASCII only: a bearer token goes into a header as it is (no CR/LF to split it)."""
    return (
        0 < len(token) <= MAX_TOKEN_CHARACTERS
        and token.isascii()
        and token.isprintable()
        and " " not in token
    )


def target(
    envelope: dict[str, Any] | None,
    allowed: frozenset[str],
    seen: dict[str, str] | None = None,
) -> Target | str:
    """The request's API origin, token and id, or why it cannot have a progressive response.

    `seen` remembers apiEndpoint strings found allowed (raw string -> origin).
    """
    # dict, not Mapping: the envelope is parsed JSON, and an ABC check costs a microsecond.
    if not isinstance(envelope, dict):
        return "no request envelope"
    request = envelope.get("request")
    kind = request.get("type") if isinstance(request, dict) else None
    if kind not in REQUEST_TYPES:
        return f"a {one_line(str(kind))[:60]} takes no progressive response"
    request_id = request.get("requestId")
    context = envelope.get("context")
    system = context.get("System") if isinstance(context, dict) else None
    if not isinstance(system, dict):
        system = {}
    endpoint = system.get("apiEndpoint")
    token = system.get("apiAccessToken")
    if not isinstance(request_id, str) or not request_id:
        return "no requestId"
    if not isinstance(endpoint, str):
        return "no apiEndpoint"
    if not isinstance(token, str) or not _header_safe(token):
        return "no usable apiAccessToken"
    api_origin = seen.get(endpoint) if seen is not None else None
    if api_origin is None:
        try:
            api_origin = origin(endpoint)
        except ValueError:
            api_origin = None
        if api_origin not in allowed:
            # An operator may need to know (a new Alexa region?); an attacker learns nothing.
            return f"apiEndpoint {one_line(endpoint)[:100]!r} is not an allowed origin"
        if seen is not None and len(seen) < _ALLOWED_SEEN_MAX:
            seen[endpoint] = api_origin
    return Target(api_origin, token, request_id)


class Pending:
    """A progressive response armed for one function call."""

    def done(self) -> None:
        """The function answered (or failed): nothing is sent after this, unless already sent."""


class ProgressiveSender:
    """Arms one progressive response per function call; sends it if the call is slow.

    `after` is `[dispatch] progressive_after` (a route's own overrides it; 0 is off),
    `hosts` the operator's extra origins. `count(outcome)` records sent / failed /
    skipped (default: `funker_dispatch_progressive_total`).
    """

    def __init__(
        self,
        after: float,
        hosts: Iterable[str] = (),
        *,
        count: Callable[[str], None] | None = None,
        post: Callable[..., client.Answer] = client.post,
        timer: Timer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.after = after
        self.origins = frozenset({*ALEXA_API_ORIGINS, *(origin(host) for host in hosts)})
        self._count = count or _count_metric
        self._post = post
        self._timer = timer or TIMER
        self._clock = clock  # decides whether a skipped one was due (tests turn it)
        self._seen: dict[str, str] = {}

    def arm(
        self,
        route: Route,
        locale: str | None,
        timeout: float,
        *,
        envelope: dict[str, Any] | None,
    ) -> Pending | None:
        """Arm for a call of `route` that may take `timeout` seconds; None when none can be due.

        `envelope` is the request being answered, as its caller already holds it.
        """
        after = self.after if route.progressive_after is None else route.progressive_after
        if not after or after >= timeout:
            return None  # off, or the call's own deadline comes first
        where = target(envelope, self.origins, self._seen)
        if isinstance(where, str):
            return _Skip(self, self._clock() + after, route.name, where, _request_id(envelope))
        now = time.monotonic()  # the timer thread's clock
        job = _Job(self, now + after, now + timeout, where, route, locale)
        self._timer.schedule(job)
        return job

    def _send(self, job: _Job) -> None:
        """Runs in a thread of its own once `job` is due."""
        where = job.target
        try:
            ssml = speech_ssml(progressive_text(job.route, job.locale))
            send_directive(
                where.api_origin, where.token, where.request_id, ssml, job.deadline, post=self._post
            )
        except Exception as exc:  # whatever happens here, the answer is not ours to fail
            self._count("failed")
            log.warning(
                "progressive response failed: request_id=%s route=%s reason=progressive-failed"
                " detail=%s",
                where.request_id,
                job.route.name,
                _detail(exc, where.token),
            )
        else:
            self._count("sent")

    def _skipped(self, skip: _Skip) -> None:
        self._count("skipped")
        log.info(
            "progressive response skipped: request_id=%s route=%s reason=progressive-skipped"
            " detail=%s",
            skip.request_id,
            skip.route_name,
            skip.why,
        )


def _detail(exc: BaseException, token: str) -> str:
    if isinstance(exc, ServiceException):
        answered = exc.headers is not None or exc.body is not None
        text = f"HTTP {exc.status_code} {exc}" if answered else str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    # The token is in no URL or message we write; scrubbed anyway, whatever a library says.
    return one_line(text).replace(token, "<token>")[:300]


def _request_id(envelope: dict[str, Any] | None) -> str | None:
    request = (envelope or {}).get("request")
    request_id = request.get("requestId") if isinstance(request, dict) else None
    return request_id[:128] if isinstance(request_id, str) else None


def _count_metric(outcome: str) -> None:
    from skill.observability import metrics

    metrics().progressive.labels(outcome=outcome).inc()


class _Skip(Pending):
    """A request that cannot have a progressive response: counted only if one fell due."""

    def __init__(
        self,
        sender: ProgressiveSender,
        due: float,
        route_name: str,
        why: str,
        request_id: str | None,
    ) -> None:
        self.sender = sender
        self.due = due
        self.route_name = route_name
        self.why = why
        self.request_id = request_id

    def done(self) -> None:
        if self.sender._clock() >= self.due:
            self.sender._skipped(self)


_ARMED, _CANCELLED, _FIRED = "armed", "cancelled", "fired"


class _Job(Pending):
    """One armed progressive response, in the timer's heap until due or done."""

    def __init__(
        self,
        sender: ProgressiveSender,
        due: float,
        deadline: float,
        where: Target,
        route: Route,
        locale: str | None,
    ) -> None:
        self.sender = sender
        self.due = due
        self.deadline = deadline
        self.target = where
        self.route = route
        self.locale = locale
        self.state = _ARMED

    def done(self) -> None:
        self.sender._timer.cancel(self)

    def fire(self) -> None:
        threading.Thread(
            target=self.sender._send, args=(self,), name="progressive-response", daemon=True
        ).start()


class Timer:
    """One thread per process that fires due jobs; arming and disarming take one lock.

    A disarmed job stays in the heap until it would have been due (at most the
    longest threshold, under 8 s) and is dropped then: cheaper than searching the
    heap on every disarm. The thread starts with the first job, in the process that
    serves (a worker forked from a master gets a fresh timer, see `reset`).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()  # ties broken by arrival, never by comparing jobs
        self._thread: threading.Thread | None = None

    def schedule(self, job: _Job) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="progressive-timer", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (job.due, next(self._order), job))
            if self._heap[0][2] is job:  # due before whatever the thread waits for
                self._lock.notify()

    def cancel(self, job: _Job) -> bool:
        """Disarm `job`; False when it already fired."""
        with self._lock:
            if job.state == _ARMED:
                job.state = _CANCELLED
                return True
            return False

    def _run(self) -> None:
        while True:
            due: list[_Job] = []
            with self._lock:
                while not due:
                    now = time.monotonic()
                    while self._heap and (
                        self._heap[0][2].state != _ARMED or self._heap[0][0] <= now
                    ):
                        job = heapq.heappop(self._heap)[2]
                        if job.state == _ARMED:
                            job.state = _FIRED
                            due.append(job)
                    if due:
                        break
                    wait = self._heap[0][0] - now if self._heap else None
                    self._lock.wait(None if wait is None else max(wait, TIMER_RESOLUTION))
            for job in due:  # outside the lock: starting a thread takes a while
                job.fire()


TIMER = Timer()
# A forked worker inherits the heap and lock but not the thread: it starts its own.
os.register_at_fork(after_in_child=TIMER.reset)


def sender_for(
    after: float, hosts: Iterable[str], routes: Mapping[str, Route]
) -> ProgressiveSender | None:
    """The sender for a configuration, or None when no route can ever send one."""
    if not after and not any(route.progressive_after for route in routes.values()):
        return None
    return ProgressiveSender(after, hosts)
