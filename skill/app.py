"""The Flask apps: the pre-check seam, flask-ask-sdk's SkillAdapter, JSON errors, status routes.

`create_app` is the public listener's app (Alexa, /healthz); `create_admin_app`
the admin listener's (/healthz, /readyz, /metrics, /intents, and the console
when `[console] enabled`), sharing its state.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from typing import Any

from verification import sdkcompat

sdkcompat.install()  # before flask_ask_sdk imports the SDK's verifier module

from ask_sdk_core.exceptions import SerializationException  # noqa: E402
from ask_sdk_core.skill_builder import SkillBuilder  # noqa: E402
from ask_sdk_model import Request  # noqa: E402
from ask_sdk_webservice_support.verifier import VerificationException  # noqa: E402
from flask import Flask, Response, current_app, g, jsonify, request  # noqa: E402
from flask_ask_sdk.skill_adapter import (  # noqa: E402
    VERIFY_SIGNATURE_APP_CONFIG,
    VERIFY_TIMESTAMP_APP_CONFIG,
    SkillAdapter,
)
from werkzeug.exceptions import HTTPException  # noqa: E402
from werkzeug.http import parse_options_header  # noqa: E402

from dispatch import funker  # noqa: E402
from dispatch.discovery import DiscoveringRouter, DockerDiscovery  # noqa: E402
from dispatch.probe import probe_router  # noqa: E402
from dispatch.registry import Router  # noqa: E402
from skill import trace  # noqa: E402
from skill.draining import draining  # noqa: E402  (its shared flag: made before any fork)
from skill.envelope import (  # noqa: E402
    MAX_BODY_BYTES,
    EnvelopeSerializer,
    MalformedRequest,
    precheck,
)
from skill.environ import ARRIVED, BODY_ERROR, BodyFailure, EventAdmission  # noqa: E402
from skill.handlers import (  # noqa: E402
    BUILT_INS,
    ApologyExceptionHandler,
    Dispatcher,
    RequestRecord,
    request_handlers,
    start_record,
)
from skill.models import examples_by_locale, load_models  # noqa: E402
from skill.observability import (  # noqa: E402
    LabelPolicy,
    log_request,
    metrics,
    render_metrics,
    short_hash,
)
from skill.progressive import origin, sender_for  # noqa: E402
from skill.settings import Settings, admin_origin  # noqa: E402
from skill.verifiers import build_verifiers  # noqa: E402
from verification import SignatureVerifier  # noqa: E402

log = logging.getLogger("funker_dispatch")

ALEXA_ENDPOINT = "alexa"
MAX_ID_LOGGED = 128  # Alexa's request ids are ~70 characters; a body may claim anything
# An id as Alexa writes them (printable ASCII, no quotes or escapes), in a body not parsed.
_REQUEST_ID = re.compile(rb'"requestId"\s*:\s*"([!#-\[\]-~]{1,128})"')

# What a refused client is told, by reason; the detail goes to the operator log.
PUBLIC_MESSAGES = {
    "headers": "signature headers missing or unreadable",
    "cert-url": "certificate chain URL is not an Amazon signing URL",
    "cert-fetch": "certificate chain could not be fetched",
    "chain": "certificate chain is not trusted",
    "san": "signing certificate is not for echo-api.amazon.com",
    "expired": "signing certificate has expired",
    "not-yet-valid": "signing certificate is not yet valid",
    "signature": "signature does not match the request body",
    "timestamp": "request timestamp is too far from now",
    "application-id": "request is not for this skill",
}
JSON_TYPES = ("application/json", "text/json")

# flask-ask-sdk logs these with a full traceback for every refused request; we
# log one precise line ourselves, so a flood of bad requests stays readable.
_ADAPTER_NOISE = ("Request verification failed", "Skill dispatch exception")


class _DropAdapterNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in _ADAPTER_NOISE


def create_app(settings: Settings) -> Flask:
    """Build the public listener's app from settings; nothing happens at import time."""
    app = Flask("funker_dispatch")
    if not any(isinstance(f, _DropAdapterNoise) for f in app.logger.filters):
        app.logger.addFilter(_DropAdapterNoise())  # the logger is shared by every app
    # One byte over the cap: werkzeug refuses a larger Content-Length itself but
    # silently truncates a chunked body there, and the pre-check then sees it is
    # too large instead of acting on a cut-off request. (Under the server the
    # bridge has already refused anything over the cap before reading it.) The
    # largest path's cap: each path's own is checked where its body is read.
    app.config["MAX_CONTENT_LENGTH"] = max([MAX_BODY_BYTES, *_event_caps(settings).values()]) + 1
    app.config["SETTINGS"] = settings
    # Our verifiers replace the SDK's own (which need certvalidator/oscrypto).
    app.config[VERIFY_SIGNATURE_APP_CONFIG] = False
    app.config[VERIFY_TIMESTAMP_APP_CONFIG] = False

    models = load_models(settings.skill.models_dir)
    router = build_router(settings, models)
    dispatcher = Dispatcher(
        router,
        settings.dispatch.deadline,
        settings.dispatch.max_response_bytes,
        call=partial(funker.call, connect_timeout=settings.dispatch.connect_timeout),
        progressive=sender_for(
            settings.dispatch.progressive_after,
            _progressive_hosts(settings),
            settings.routes,
        ),
    )
    examples = examples_by_locale(models, _reachable(router, models))

    builder = SkillBuilder()
    for handler in request_handlers(dispatcher, examples, models):
        builder.add_request_handler(handler)
    builder.add_exception_handler(ApologyExceptionHandler())
    skill = builder.create()
    skill.serializer = EnvelopeSerializer()  # one JSON parse; unknown request types tolerated

    verifiers = build_verifiers(settings)
    # The signature is checked in the pre-check on the raw bytes, before the SDK
    # builds a single model object: an unsigned body costs a header lookup, a
    # forged one one RSA verify, whatever its shape (docs/robustness.md). Timestamp and
    # skill id need the parsed envelope and stay with the SDK.
    signature = next((v for v in verifiers if isinstance(v, SignatureVerifier)), None)
    adapter = SkillAdapter(
        skill=skill,
        skill_id=settings.skill.application_ids[0] if settings.skill.application_ids else "any",
        verifiers=[v for v in verifiers if v is not signature],
        app=app,
    )
    # SkillAdapter.register() without Flask's automatic OPTIONS: only POST reaches it.
    app.add_url_rule(
        settings.server.path,
        endpoint=ALEXA_ENDPOINT,
        view_func=adapter.dispatch_request,
        methods=["POST"],
        provide_automatic_options=False,
    )

    known_intents = {*settings.routes, *BUILT_INS, *model_intents(models)}
    ready = threading.Event()
    app.extensions["funker_dispatch"] = {
        "router": router,
        "models": models,
        "labels": LabelPolicy(
            known_intents, [*Request.discriminator_value_class_map, *settings.routes, "mcp"]
        ),
        "metrics": metrics(),
        "ready": ready,
        "signature": signature,
        "settings": settings,
        "dispatcher": dispatcher,
        # Made here, before granian forks: every worker and the admin process share it.
        "console_key": trace.new_key() if settings.console.enabled else None,
    }
    _prefetch(verifiers, settings.verification.prefetch, ready)

    app.before_request(_precheck)
    app.after_request(_log_request)
    app.teardown_request(_request_done)
    _json_errors(app)
    app.add_url_rule("/healthz", "healthz", healthz)
    if settings.triggers.configured:
        from skill import events

        events.register(app, settings)  # POST /events/X for each [triggers.X] table
    if settings.mcp.enabled:
        from skill.mcptools import view

        view.register(app, settings)  # POST /mcp, and the OAuth endpoints with [mcp.oauth]
    if isinstance(router, DiscoveringRouter):
        app.before_request(_discovery_starter(router.discovery))
    return app


def create_admin_app(public: Flask, extensions: Sequence[Callable[[Flask], None]] = ()) -> Flask:
    """The admin listener's app, sharing the public app's router, models, readiness.

    Only the operator's tools reach it: it is bound to loopback unless the
    operator says otherwise, and with `[server] admin_token_file` every path
    but /healthz needs the bearer token. Each of `extensions` registers more
    on it: the command line passes the web console's when `[console] enabled`,
    so the server never imports the developer's tools itself.
    """
    state = public.extensions["funker_dispatch"]
    settings: Settings = state["settings"]
    router, models, ready = state["router"], state["models"], state["ready"]
    app = Flask("funker_dispatch_admin")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES + 1
    app.extensions["funker_dispatch"] = state
    if settings.server.admin_token is not None:
        app.before_request(_bearer_token_check(settings.server.admin_token))
    _json_errors(app)
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", lambda: _readyz(ready))
    app.add_url_rule("/metrics", "metrics", _metrics)
    app.add_url_rule("/intents", "intents", lambda: _intents(router, models))
    if isinstance(router, DiscoveringRouter):
        app.before_request(_discovery_starter(router.discovery))
    for extend in extensions:
        extend(app)
    return app


def _progressive_hosts(settings: Settings) -> tuple[str, ...]:
    """Where progressive responses may go: the configured origins, and the console's.

    The console serves the directive API on the admin listener itself (loopback
    only, its own bearer token), so a turn it sends shows the "One moment."
    the server sent while the function worked (docs/alexa.md).
    """
    hosts = settings.dispatch.progressive_hosts
    if settings.console.enabled and settings.server.admin_port:
        hosts = (*hosts, origin(admin_origin(settings.server)))
    return hosts


def body_cap(settings: Settings) -> Callable[[str], int]:
    """The largest body each path accepts, for the server's bridge (413 above it)."""

    caps = _event_caps(settings)  # the event endpoints' own (docs/events/index.md)
    if settings.mcp.enabled:
        from skill.mcptools import view

        caps |= view.body_caps(settings)  # MCP's (docs/mcp.md)

    def cap(path: str) -> int:
        return caps.get(path, MAX_BODY_BYTES)  # Alexa's cap everywhere else

    return cap


def admission(app: Flask) -> EventAdmission | None:
    """The paths that run on threads of their own, never on Alexa's: event deliveries and MCP
    requests (docs/robustness.md); None when there are none."""
    settings: Settings = app.config["SETTINGS"]
    lanes: list[EventAdmission] = []
    if settings.triggers.configured:
        from skill import events

        lanes.append(events.admission(app))
    if settings.mcp.enabled:
        from skill.mcptools import view

        lanes.append(view.admission(app))
    if not lanes:
        return None
    refusers = {path: lane.refused for lane in lanes for path in lane.paths}
    return EventAdmission(
        paths=frozenset(refusers),
        threads=settings.server.event_threads,
        body_budget=settings.server.event_body_budget,
        refused=lambda path: refusers[path](path),
    )


def body_checks(app: Flask) -> dict[str, Any]:
    """What the bridge checks of a path's headers before its body is read (event endpoints)."""
    if not app.config["SETTINGS"].triggers.configured:
        return {}
    from skill import events

    return events.body_checks(app)


def _event_caps(settings: Settings) -> dict[str, int]:
    """Each event path's body cap. Without a `[triggers]` table the event view, the
    triggers package and its verifiers are never imported: each process's start-up
    time and memory are spent on nothing it can use."""
    if not settings.triggers.configured:
        return {}
    from skill import events

    return events.body_caps(settings)


def _json_errors(app: Flask) -> None:
    app.before_request(_refuse_unread_body)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _refuse_unread_body() -> Response | None:
    """A body the server could not receive whole (too large, too slow, broken) is refused."""
    failure: BodyFailure | None = request.environ.get(BODY_ERROR)
    if failure is None or request.endpoint == ALEXA_ENDPOINT:
        return None  # the Alexa pre-check refuses it itself, with its request record
    log.warning(
        "request refused before its body was read: path=%s reason=%s status=%d",
        request.path[:200],
        failure.error,
        failure.status,
    )
    return error_response(failure.error, failure.message, failure.status)


def _bearer_token_check(token: str) -> Callable[[], Response | None]:
    expected = f"Bearer {token}".encode()

    def check() -> Response | None:
        if request.path == "/healthz":
            return None  # liveness for the orchestrator needs no secret
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if hmac.compare_digest(given, expected):
            return None
        response = error_response("unauthorized", "admin token required", 401)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    return check


def healthz() -> Any:
    """Alive: 200; draining after SIGTERM: 503, so a balancer stops sending here first."""
    if draining():
        return jsonify(status="draining"), 503
    return jsonify(status="ok")


def model_intents(models: dict[str, Any]) -> list[str]:
    return sorted({name for model in models.values() for name in model.samples})


def build_router(settings: Settings, models: dict[str, Any]) -> Router:
    """Configured routes, then (when enabled) swarm services, then the naming convention."""
    if settings.dispatch.discovery != "docker":
        return Router(
            settings.routes,
            naming=settings.dispatch.naming,
            function_port=settings.dispatch.function_port,
        )
    discovery = DockerDiscovery(
        settings.dispatch.discovery_socket,
        default_port=settings.dispatch.function_port,
        interval=settings.dispatch.discovery_interval,
        intents={*settings.routes, *model_intents(models)},
    )
    return DiscoveringRouter(
        settings.routes,
        naming=settings.dispatch.naming,
        function_port=settings.dispatch.function_port,
        discovery=discovery,
    )


def _discovery_starter(discovery: DockerDiscovery) -> Any:
    """Start refreshing in the process that serves: threads do not survive gunicorn's fork."""
    started: dict[str, int] = {}
    lock = threading.Lock()

    def start() -> None:
        # Health, readiness and metrics never wait on the Docker socket.
        if started.get("pid") == os.getpid() or request.endpoint not in (ALEXA_ENDPOINT, "intents"):
            return
        with lock:
            if started.get("pid") != os.getpid():
                started["pid"] = os.getpid()
                try:
                    discovery.start()  # refreshes once before returning
                except Exception:  # discovery must never take the endpoint down
                    log.exception("docker discovery failed to start; configured routes still serve")

    return start


def _prefetch(verifiers: list[Any], urls: tuple[str, ...], ready: threading.Event) -> None:
    """Fetch and validate configured chains so the first real request pays nothing.

    Done before serving, not in a background thread: under gunicorn the app is
    built in the master and forked, and the workers inherit the warm cache
    (a thread would not survive the fork). Fetches are bounded (2 s each).
    """
    try:
        for verifier in (v for v in verifiers if hasattr(v, "prefetch")):
            for url, error in verifier.prefetch(urls):
                if error is not None:
                    detail = getattr(error, "detail", None) or error
                    log.warning(
                        "prefetch failed: url=%s reason=%s detail=%s",
                        url,
                        getattr(error, "reason", "verification"),
                        detail,
                    )
    finally:
        ready.set()


def _readyz(ready: threading.Event) -> Response:
    if ready.is_set():
        return jsonify(status="ready")
    return error_response("not-ready", "verifier still starting", 503)


def _metrics() -> Response:
    body, content_type = render_metrics()
    return Response(body, content_type=content_type)


def _reachable(router: Router, models: dict[str, Any]) -> set[str]:
    names = set()
    for model in models.values():
        for intent in model.samples:
            try:
                router.resolve(intent)
            except LookupError:
                continue
            names.add(intent)
    return names


def _intents(router: Router, models: dict[str, Any]) -> Response:
    # A probe resolves names only; it never connects unless a route says
    # probe = "connect" (a funker function takes any connection as its request).
    if request.args.get("probe") in ("1", "true", "yes"):
        return jsonify(intents=probe_router(router, model_intents(models), timeout=1.0))
    return jsonify(intents=router.table(model_intents(models)))


def error_response(error: str, message: str, status: int) -> Response:
    response = jsonify(error=error, message=message)
    response.status_code = status
    return response


def _precheck() -> Response | None:
    if request.endpoint != ALEXA_ENDPOINT:
        return None
    g.started = time.perf_counter()
    g.record = start_record()
    g.record.arrived = request.environ.get(ARRIVED)
    metrics().in_flight.inc()
    g.in_flight = True
    failure: BodyFailure | None = request.environ.get(BODY_ERROR)
    if failure is not None:  # the server could not receive the body whole
        return _reject(failure.error, failure.message, failure.status)
    mimetype = _mimetype(request.environ.get("CONTENT_TYPE", ""))
    if mimetype and mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        return _reject("malformed", "Content-Type must be application/json", 415)
    try:
        body = request.get_data(cache=True)
    except HTTPException:
        raise  # 413 from the size cap: answered by _http_error
    except Exception:
        # Under the test client the body is read lazily: broken framing or a
        # client that vanished mid-body surfaces here, and it is the client's fault.
        return _reject("malformed", "request body could not be read", 400)
    if len(body) > MAX_BODY_BYTES:
        return _reject("too-large", f"body larger than {MAX_BODY_BYTES} bytes", 413)
    g.body = body
    signature: SignatureVerifier | None = current_app.extensions["funker_dispatch"]["signature"]
    if signature is not None:
        began = time.perf_counter()
        try:
            # Raw bytes, before any parse: refusing a forged body costs no model objects.
            signature.verify(request.headers, body, None)
        except VerificationException as exc:
            return _verification_failed(exc)
        g.signature_s = time.perf_counter() - began
    try:
        _, g.raw = precheck(body)
    except MalformedRequest as exc:
        return _reject(exc.error, str(exc), exc.status)
    g.checked_at = time.perf_counter()
    return None


@lru_cache(maxsize=64)
def _mimetype(content_type: str) -> str:
    """`request.mimetype`, parsed once per spelling: every Alexa request sends the same one,
    and werkzeug's header parser would cost each of them a few µs."""
    return parse_options_header(content_type)[0].lower()


def _reject(error: str, message: str, status: int) -> Response:
    record: RequestRecord | None = g.get("record")
    if record is not None:
        record.outcome, record.reason = "rejected", error
    return error_response(error, message, status)


def _verification_failed(exc: BaseException) -> Response:
    reason = getattr(exc, "reason", "verification")
    detail = getattr(exc, "detail", None) or getattr(exc, "message", str(exc))
    log.warning(
        "verification failed: request_id=%s reason=%s detail=%s", _request_id(), reason, detail
    )
    # The client learns the reason code, never our internals (paths, resolver errors).
    return _reject(reason, PUBLIC_MESSAGES.get(reason, "request failed verification"), 400)


def _http_error(exc: HTTPException) -> Response:
    cause = exc.__context__
    record: RequestRecord | None = g.get("record")
    if isinstance(cause, VerificationException):
        return _verification_failed(cause)
    if isinstance(cause, SerializationException):
        return _reject("malformed", "body is not a valid Alexa request", 400)
    if exc.code == 500:
        return _unexpected_error(cause or exc)
    if record is None and exc.code == 405 and _alexa_path():
        # Refused before any endpoint matched: still one log line and one count.
        g.started = time.perf_counter()
        record = g.record = start_record()
    error = {
        405: "method-not-allowed",
        413: "too-large",
        404: "not-found",
    }.get(exc.code or 400, "malformed")
    return _reject(error, exc.description or exc.name, exc.code or 400)


def _alexa_path() -> bool:
    settings: Settings | None = current_app.extensions.get("funker_dispatch", {}).get("settings")
    return settings is not None and request.path == settings.server.path


def _unexpected_error(exc: BaseException) -> Response:
    log.error("internal error: request_id=%s", _request_id(), exc_info=exc)
    record: RequestRecord | None = g.get("record")
    if record is not None:
        record.outcome, record.reason = "error", "internal"
    return error_response("internal", "internal error", 500)


def _request_id() -> str | None:
    """The request id for logs: a string from this request's body (maybe unverified), cut short.

    Only what this request parsed counts (`g` lives for one request): a refusal
    before the parse is logged without an id, never under the previous one.
    """
    record: RequestRecord | None = g.get("record")
    request_id: Any = record.request_id if record is not None else None
    if not request_id:
        raw = g.get("raw")
        request_part = raw.get("request") if isinstance(raw, dict) else None
        request_id = request_part.get("requestId") if isinstance(request_part, dict) else None
    if not request_id and g.get("body"):
        # Refused before the parse (a bad signature): found without parsing, so
        # the refusal still costs no more than a search of the body it sent.
        found = _REQUEST_ID.search(g.body)
        request_id = found.group(1).decode("ascii") if found else None
    return request_id[:MAX_ID_LOGGED] if isinstance(request_id, str) else None


def _request_done(exc: BaseException | None) -> None:
    if g.pop("in_flight", False):
        metrics().in_flight.dec()


def _log_request(response: Response) -> Response:
    record: RequestRecord | None = g.get("record")
    if record is None:
        return response
    try:
        _observe(record, response)
    except Exception:  # bookkeeping must never turn an answer into a 500
        log.exception("request log or metrics failed: request_id=%s", record.request_id)
    return response


def _observe(record: RequestRecord, response: Response) -> None:
    now = time.perf_counter()
    state = current_app.extensions["funker_dispatch"]
    labels: LabelPolicy = state["labels"]
    measure = state["metrics"]
    measure.request_count(  # in the order the metric declares its labels
        labels.request_type(record.request_type),
        labels.intent(record.intent),
        labels.locale(record.locale),
        record.outcome,
    ).inc()
    if record.outcome == "rejected" and record.reason:
        measure.verification_failures.labels(reason=record.reason).inc()
    route = labels.intent(record.route) if record.route else None
    if route is not None and record.function_ms is not None:
        measure.function_time(route).observe(record.function_ms / 1000)
    if route is not None and record.outcome == "apology" and record.reason:
        measure.function_failures.labels(route=route, kind=record.reason).inc()
    verify_ms = None
    if record.handled_at is not None and g.get("checked_at") is not None:
        # The signature (in the pre-check) plus the SDK's verifiers before the handler.
        verify_ms = (g.get("signature_s", 0.0) + record.handled_at - g.checked_at) * 1000
    fields = {
        "request_id": _request_id(),
        "request_type": record.request_type,
        "intent": record.intent,
        "route": record.route,
        "function": record.function,
        "outcome": record.outcome,
        "reason": record.reason,
        "status": response.status_code,
        "locale": record.locale,
        "user": short_hash(record.user_id),
        "device": short_hash(record.device_id),
        "verify_ms": _round(verify_ms),
        "function_ms": _round(record.function_ms),
        "total_ms": _round((now - g.started) * 1000),
    }
    line = log_request(fields)
    if trace.asked(state.get("console_key"), request.headers, g.get("body")):
        # The log line itself, and what the operator's warning line says went wrong: the
        # console shows "cannot resolve WeatherIntent", not only "unreachable".
        response.headers[trace.TRACE_HEADER] = (
            trace.encode({**fields, "detail": record.detail}) if record.detail else line
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
