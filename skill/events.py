"""The event endpoints' thin Flask view: POST /events/sns, /eventbridge, /github (docs/events).

The view hands the raw body and headers to the endpoint of its path
(`triggers.endpoint`) and writes its answer; what happened becomes one JSON
log line per delivery and per rule fired, and the event metrics. Bodies and
secrets are never logged.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import Any, Protocol

from flask import Flask, Response, current_app, jsonify, request

from dispatch import funker
from dispatch.funker import DEFAULT_MAX_RESPONSE_BYTES
from skill import trace
from skill.environ import ARRIVED, BODY_DIGEST, BodyCheck, EventAdmission
from skill.observability import log_request, metrics
from skill.settings import Settings
from triggers.endpoint import Delivery, EventBridgeEndpoint, GitHubEndpoint, SnsEndpoint
from triggers.fanout import Fanout, Memory
from verification import EventBridgeAuth, GitHubSignature

log = logging.getLogger("funker_dispatch")

SNS_PATH = "/events/sns"
EVENTBRIDGE_PATH = "/events/eventbridge"
GITHUB_PATH = "/events/github"
SNS_VIEW = "events_sns"
#: Each endpoint's path by trigger: the `[triggers.X]` table, the log's "trigger", the metric's.
PATHS = {"sns": SNS_PATH, "eventbridge": EVENTBRIDGE_PATH, "github": GITHUB_PATH}
_STATE = "funker_dispatch_events"
_CAPS = "funker_dispatch_event_caps"


class Endpoint(Protocol):
    def receive(self, headers: Any, body: bytes, **options: Any) -> Delivery: ...


def _fanout(settings: Settings, deadline: float, max_age: float) -> Fanout:
    return Fanout(
        deadline,
        Memory(max_age),
        max_response_bytes=settings.dispatch.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES,
        call=partial(funker.call, connect_timeout=settings.dispatch.connect_timeout),
    )


def sns_endpoint(settings: Settings) -> SnsEndpoint | None:
    """The SNS endpoint from settings, or None without a `[triggers.sns]` table."""
    from skill.verifiers import sns_verifier

    sns = settings.triggers.sns
    verifier = sns_verifier(settings)
    if sns is None or verifier is None:
        return None
    return SnsEndpoint(
        verifier,
        list(settings.rules.values()),
        _fanout(settings, sns.deadline, sns.max_age),
        confirm=sns.confirm,
        allow_raw=sns.allow_raw,
    )


def eventbridge_endpoint(settings: Settings) -> EventBridgeEndpoint | None:
    """The EventBridge endpoint, or None without a `[triggers.eventbridge]` table."""
    table = settings.triggers.eventbridge
    if table is None:
        return None
    if table.api_key is not None:
        auth = EventBridgeAuth.api_key(table.api_key_header, table.api_key)
    else:  # settings guarantee one or the other
        auth = EventBridgeAuth.basic(table.username or "", table.password or "")
    return EventBridgeEndpoint(
        auth, list(settings.rules.values()), _fanout(settings, table.deadline, table.max_age)
    )


def github_endpoint(settings: Settings) -> GitHubEndpoint | None:
    """The GitHub endpoint, or None without a `[triggers.github]` table."""
    table = settings.triggers.github
    if table is None or table.secret is None:
        return None
    return GitHubEndpoint(
        GitHubSignature(table.secret),
        list(settings.rules.values()),
        _fanout(settings, table.deadline, table.max_age),
    )


def register(app: Flask, settings: Settings) -> None:
    """Add POST /events/X for each `[triggers.X]` table (else that path is the usual 404)."""
    built: dict[str, Endpoint | None] = {
        "sns": sns_endpoint(settings),
        "eventbridge": eventbridge_endpoint(settings),
        "github": github_endpoint(settings),
    }
    if settings.triggers.sns is not None and settings.triggers.sns.allow_raw:
        log.warning("[triggers.sns] allow_raw: raw SNS deliveries are accepted UNAUTHENTICATED")
    endpoints = {trigger: endpoint for trigger, endpoint in built.items() if endpoint is not None}
    app.extensions[_STATE] = endpoints
    app.extensions[_CAPS] = body_caps(settings)  # once, not per delivery
    for trigger in endpoints:
        app.add_url_rule(
            PATHS[trigger],
            endpoint=f"events_{trigger}",
            view_func=_view,
            methods=["POST"],
            provide_automatic_options=False,
            defaults={"trigger": trigger},
        )


def admission(app: Flask) -> EventAdmission:
    """Event deliveries' own threads and body budget, for the bridge (docs/robustness.md)."""
    settings: Settings = app.config["SETTINGS"]
    return EventAdmission(
        paths=frozenset(PATHS[trigger] for trigger in app.extensions[_STATE]),
        threads=settings.server.event_threads,
        body_budget=settings.server.event_body_budget,
        refused=_refused_busy,
    )


def body_checks(app: Flask) -> dict[str, BodyCheck]:
    """Per path, what the bridge checks before reading a body: EventBridge's credential and
    GitHub's signature and event headers are in the headers, so a delivery that fails them
    never has its body read (GitHub's may be 25 MiB); GitHub's HMAC is computed as it arrives."""
    endpoints = app.extensions[_STATE]
    checks: dict[str, BodyCheck] = {}
    for trigger in ("eventbridge", "github"):
        if trigger in endpoints:
            checks[PATHS[trigger]] = endpoints[trigger].body_check
    return checks


def _refused_busy(path: str) -> None:
    """The log line and metric of a delivery refused with 503 because every event thread is busy."""
    trigger = next(name for name, known in PATHS.items() if known == path)
    metrics().event_verification_failures.labels(source=trigger, reason="busy").inc()
    log_request({"trigger": trigger, "outcome": "refused", "reason": "busy", "status": 503})


def body_caps(settings: Settings) -> dict[str, int]:
    """The body cap of each event path that is on (SNS 320 KiB, EventBridge 1 MiB, GitHub 25)."""
    tables = {
        "sns": settings.triggers.sns,
        "eventbridge": settings.triggers.eventbridge,
        "github": settings.triggers.github,
    }
    return {PATHS[name]: table.max_body_bytes for name, table in tables.items() if table}


def _view(trigger: str) -> Response:
    began = time.perf_counter()
    cap = current_app.extensions[_CAPS][PATHS[trigger]]
    # Any Content-Type: SNS sends text/plain, and each endpoint knows its own sender's.
    # The raw bytes are what is verified.
    body = request.get_data(cache=False)
    if len(body) > cap:  # the server's bridge refuses it unread; this is for direct WSGI use
        response = jsonify(error="too-large", message=f"body larger than {cap} bytes")
        response.status_code = 413
        return response
    endpoint: Endpoint = current_app.extensions[_STATE][trigger]
    options: dict[str, Any] = {"arrived": request.environ.get(ARRIVED)}
    if BODY_DIGEST in request.environ:  # computed by the server's bridge as the body arrived
        options["digest"] = request.environ[BODY_DIGEST]
    delivery = endpoint.receive(request.headers, body, **options)
    line: dict[str, Any] | None = None
    try:
        line = observe(delivery, (time.perf_counter() - began) * 1000, trigger)
    except Exception:  # bookkeeping must never turn an answer into a 500
        log.exception("event log or metrics failed: message_id=%s", delivery.message_id)
    response = jsonify(delivery.body)
    response.status_code = delivery.status
    response.headers.update(delivery.headers)
    key = current_app.extensions.get("funker_dispatch", {}).get("console_key")
    if line is not None and trace.asked(key, request.headers, body):
        response.headers[trace.TRACE_HEADER] = trace.encode(event_record(line, delivery))
    return response


#: How much of one function's answer a trace shows (characters), and how many bytes all
#: of them may take in the header once escaped (http.client reads header lines of 64 KiB).
ANSWER_SHOWN = 2000
ANSWERS_SHOWN = 32_000


def event_record(line: dict[str, Any], delivery: Delivery) -> dict[str, Any]:
    """The delivery's log line with each rule fired and its function's answer (docs/console.md).

    Only the console that sent the delivery gets this (skill/trace.py): the
    sender's answer and the log never carry a function's answer (docs/events/index.md).
    """
    rules = []
    room = ANSWERS_SHOWN
    for fired in delivery.fired:
        answer = traced_answer(fired.answer)
        if answer is not None:
            cost = len(json.dumps(answer))  # as the header carries it: ASCII, quotes escaped
            answer, room = (answer, room - cost) if cost <= room else (None, 0)
        rules.append(
            {
                **fired.as_dict(),  # what the sender got, then what only the console sees
                "function": fired.function,
                "function_ms": _round(fired.function_ms),
                "answer": answer,
            }
        )
    return {**line, "rules": rules}


def traced_answer(value: Any) -> str | None:
    """A function's answer as compact JSON, cut to ANSWER_SHOWN characters; None for none."""
    if value is None:
        return None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= ANSWER_SHOWN else text[:ANSWER_SHOWN] + "…"


def observe(delivery: Delivery, total_ms: float, trigger: str = "sns") -> dict[str, Any]:
    """The metrics and JSON log lines of one delivery (docs/operations.md); returns its line."""
    measure = metrics()
    if delivery.outcome == "refused":
        measure.event_verification_failures.labels(source=trigger, reason=delivery.reason).inc()
        log.warning(
            "%s delivery refused: message_id=%s reason=%s detail=%s",
            trigger,
            delivery.message_id,
            delivery.reason,
            delivery.detail,
        )
    for fired in delivery.fired:
        measure.events.labels(source=fired.source, rule=fired.rule, outcome=fired.outcome).inc()
        log_request(
            {
                "trigger": trigger,
                "message_id": delivery.message_id,
                "id": fired.id,
                "source": fired.source,
                "rule": fired.rule,
                "function": fired.function,
                "outcome": fired.outcome,
                "reason": fired.reason,
                "function_ms": _round(fired.function_ms),
            }
        )
    for source in delivery.unmatched:
        measure.events.labels(source=source, rule="", outcome="unmatched").inc()
    line: dict[str, Any] = {"trigger": trigger, "message_id": delivery.message_id}
    if trigger == "sns":
        line |= {"type": delivery.message_type, "topic": delivery.topic}
    else:
        line["events"] = delivery.events
    line |= {
        "kind": delivery.kind,
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "status": delivery.status,
        "rules": len(delivery.fired),
        "verify_ms": _round(delivery.verify_ms),
        "total_ms": _round(total_ms),
    }
    log_request(line)
    return line


def _round(value: float | None) -> Any:
    return None if value is None else round(value, 2)
