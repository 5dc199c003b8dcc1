"""Alexa's request-timestamp rule, as an ASK SDK verifier: replays older than 150 s are refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ask_sdk_webservice_support.verifier import AbstractVerifier

from verification.errors import TimestampInvalid

#: Amazon's tolerance for ordinary requests, either direction.
REQUEST_TOLERANCE = timedelta(seconds=150)
#: Skill events (enable, disable, permission changes) may arrive up to an hour late.
SKILL_EVENT_TOLERANCE = timedelta(seconds=3600)
SKILL_EVENT_PREFIX = "AlexaSkillEvent."


class TimestampVerifier(AbstractVerifier):
    """Refuse requests whose `request.timestamp` is too far from `now()`."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now if now is not None else _utcnow

    def verify(
        self, headers: Any, serialized_request_env: str, deserialized_request_env: Any
    ) -> None:
        request_type, timestamp = _from_model(deserialized_request_env)
        if timestamp is None or request_type is None:
            # The SDK's model may not know this request type (or the caller
            # passed none): the raw JSON is the source of truth.
            raw_type, raw_timestamp = _from_json(serialized_request_env)
            request_type = request_type or raw_type
            timestamp = timestamp or raw_timestamp
        if timestamp is None:
            raise TimestampInvalid("request.timestamp is missing or not an ISO 8601 time")
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)  # Alexa's timestamps are UTC
        now = self._now()
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        tolerance = (
            SKILL_EVENT_TOLERANCE
            if isinstance(request_type, str) and request_type.startswith(SKILL_EVENT_PREFIX)
            else REQUEST_TOLERANCE
        )
        if abs(now - timestamp) > tolerance:
            raise TimestampInvalid(
                f"request.timestamp is {(now - timestamp).total_seconds():.0f} s from now "
                f"(tolerance {tolerance.total_seconds():.0f} s)"
            )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _from_model(envelope: Any) -> tuple[str | None, datetime | None]:
    request = getattr(envelope, "request", None)
    timestamp = getattr(request, "timestamp", None)
    request_type = getattr(request, "object_type", None)
    return (
        request_type if isinstance(request_type, str) else None,
        timestamp if isinstance(timestamp, datetime) else None,
    )


def _from_json(serialized: Any) -> tuple[str | None, datetime | None]:
    try:
        request = json.loads(serialized).get("request")
    except (TypeError, ValueError, AttributeError, RecursionError):
        return None, None
    if not isinstance(request, dict):
        return None, None
    request_type = request.get("type")
    value = request.get("timestamp")
    timestamp = None
    if isinstance(value, str):
        try:
            timestamp = datetime.fromisoformat(value)
        except ValueError:
            timestamp = None
    return (request_type if isinstance(request_type, str) else None), timestamp
