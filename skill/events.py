"""The event endpoints' thin Flask view, POST /events/sns (DESIGN §11); the work is in triggers/.

The view hands the raw body and headers to `triggers.endpoint.SnsEndpoint`
and writes its answer; what happened becomes one JSON log line per delivery
and per rule fired, and the event metrics. Message bodies are never logged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, request

from dispatch.funker import DEFAULT_MAX_RESPONSE_BYTES
from skill.observability import log_request, metrics
from skill.settings import Settings
from triggers.endpoint import Delivery, SnsEndpoint
from triggers.fanout import Fanout, Memory

log = logging.getLogger("funker_dispatch")

SNS_PATH = "/events/sns"
SNS_VIEW = "events_sns"
SOURCE = "sns"
_STATE = "funker_dispatch_sns"


def sns_endpoint(settings: Settings) -> SnsEndpoint | None:
    """The SNS endpoint from settings, or None without a `[triggers.sns]` table."""
    from skill.verifiers import sns_verifier

    sns = settings.triggers.sns
    verifier = sns_verifier(settings)
    if sns is None or verifier is None:
        return None
    fanout = Fanout(
        sns.deadline,
        Memory(sns.max_age),
        max_response_bytes=settings.dispatch.max_response_bytes or DEFAULT_MAX_RESPONSE_BYTES,
    )
    return SnsEndpoint(
        verifier,
        list(settings.rules.values()),
        fanout,
        confirm=sns.confirm,
        allow_raw=sns.allow_raw,
    )


def register(app: Flask, settings: Settings) -> None:
    """Add POST /events/sns when `[triggers.sns]` exists (else the path is the usual 404)."""
    endpoint = sns_endpoint(settings)
    if endpoint is None:
        return
    if settings.triggers.sns is not None and settings.triggers.sns.allow_raw:
        log.warning("[triggers.sns] allow_raw: raw SNS deliveries are accepted UNAUTHENTICATED")
    app.extensions[_STATE] = endpoint
    app.add_url_rule(
        SNS_PATH,
        endpoint=SNS_VIEW,
        view_func=_sns_view,
        methods=["POST"],
        provide_automatic_options=False,
    )


def body_caps(settings: Settings) -> dict[str, int]:
    """The body cap of each event path that is on (SNS: 320 KiB unless configured)."""
    sns = settings.triggers.sns
    return {SNS_PATH: sns.max_body_bytes} if sns is not None else {}


def _sns_view() -> Response:
    began = time.perf_counter()
    cap = body_caps(current_app.config["SETTINGS"])[SNS_PATH]
    # Any Content-Type: SNS sends text/plain. The raw bytes are what is verified.
    body = request.get_data(cache=False)
    if len(body) > cap:  # the server's bridge refuses it unread; this is for direct WSGI use
        response = jsonify(error="too-large", message=f"body larger than {cap} bytes")
        response.status_code = 413
        return response
    endpoint: SnsEndpoint = current_app.extensions[_STATE]
    delivery = endpoint.receive(request.headers, body)
    try:
        observe(delivery, (time.perf_counter() - began) * 1000)
    except Exception:  # bookkeeping must never turn an answer into a 500
        log.exception("event log or metrics failed: message_id=%s", delivery.message_id)
    response = jsonify(delivery.body)
    response.status_code = delivery.status
    return response


def observe(delivery: Delivery, total_ms: float) -> None:
    """The metrics and JSON log lines of one delivery (DESIGN §11)."""
    measure = metrics()
    if delivery.outcome == "refused":
        measure.event_verification_failures.labels(source=SOURCE, reason=delivery.reason).inc()
        log.warning(
            "sns delivery refused: message_id=%s reason=%s detail=%s",
            delivery.message_id,
            delivery.reason,
            delivery.detail,
        )
    for fired in delivery.fired:
        measure.events.labels(source=fired.source, rule=fired.rule, outcome=fired.outcome).inc()
        log_request(
            {
                "trigger": SOURCE,
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
    log_request(
        {
            "trigger": SOURCE,
            "message_id": delivery.message_id,
            "type": delivery.message_type,
            "topic": delivery.topic,
            "kind": delivery.kind,
            "outcome": delivery.outcome,
            "reason": delivery.reason,
            "status": delivery.status,
            "rules": len(delivery.fired),
            "verify_ms": _round(delivery.verify_ms),
            "total_ms": _round(total_ms),
        }
    )


def _round(value: float | None) -> Any:
    return None if value is None else round(value, 2)
