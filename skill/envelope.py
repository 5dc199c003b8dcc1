"""The request body before and inside the SDK: pre-check, one JSON parse, unknown types.

The pre-check (docs/reference/code-map.md, the sanctioned seam) refuses what the SDK would
answer with an HTML 500. It parses the body once; `EnvelopeSerializer` reuses
that parse for the SDK's model objects, and handlers read the raw dict through
`raw_envelope()` so functions receive the request exactly as Alexa sent it,
unknown fields included.
"""

from __future__ import annotations

import json
import math
from contextvars import ContextVar
from datetime import datetime
from enum import Enum
from typing import Any

from verification import sdkcompat

sdkcompat.install()

from ask_sdk_core.exceptions import SerializationException  # noqa: E402
from ask_sdk_model import Request, RequestEnvelope  # noqa: E402

from skill.sdkmodel import ModelSerializer  # noqa: E402

MAX_BODY_BYTES = 128 * 1024  # Alexa sends a few KiB; docs/robustness.md
MAX_DEPTH = 64  # Alexa envelopes nest about 8 deep; deeper is an attack or a bug

# (body text, parsed dict, body bytes) of the request this thread is serving.
_RAW: ContextVar[tuple[str, dict[str, Any], bytes] | None] = ContextVar(
    "raw_envelope", default=None
)


class MalformedRequest(ValueError):
    """The body is not an Alexa request envelope; `code` is the HTTP error code."""

    def __init__(self, message: str, *, error: str = "malformed", status: int = 400) -> None:
        super().__init__(message)
        self.error = error
        self.status = status


def precheck(body: bytes) -> tuple[str, dict[str, Any]]:
    """Validate size, UTF-8, JSON object shape and request.type; remember the parse."""
    _RAW.set(None)  # nothing of the previous request on this thread survives a refusal
    if len(body) > MAX_BODY_BYTES:
        raise MalformedRequest(
            f"body larger than {MAX_BODY_BYTES} bytes", error="too-large", status=413
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("body is not UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise MalformedRequest("JSON nested too deeply") from None
    except ValueError:
        raise MalformedRequest("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedRequest("body is not a JSON object")
    # Nesting needs an opening bracket per level: count them before walking.
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise MalformedRequest("JSON nested too deeply")
    request = data.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("type"), str):
        raise MalformedRequest("body has no request.type")
    if not request["type"] or len(request["type"]) > 200:
        raise MalformedRequest("request.type is not a request type")
    _RAW.set((text, data, body))
    return text, data


def _finite(literal: str) -> float:
    # 1e400 is valid JSON text, but Python reads it as infinity, which no JSON
    # encoder may write back: a request carrying one could only make a bad reply.
    value = float(literal)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{literal} is beyond a double")
    return value


def _not_json(constant: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and every other parser) does not.
    raise ValueError(f"{constant} is not JSON")


def _depth(value: Any) -> int:
    # Iterative, so a hostile body cannot exhaust the stack here either.
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def raw_envelope() -> dict[str, Any] | None:
    """The request as Alexa sent it, for the request being handled on this thread."""
    current = _RAW.get()
    return current[1] if current is not None else None


def raw_body() -> bytes | None:
    """The request body exactly as received, for the request handled on this thread."""
    current = _RAW.get()
    return current[2] if current is not None else None


def remember(text: str, data: dict[str, Any]) -> None:
    """Make `data` the raw envelope of this thread's request (used outside HTTP)."""
    _RAW.set((text, data, text.encode("utf-8", "surrogatepass")))


class EnvelopeSerializer(ModelSerializer):
    """The SDK's serializer, reusing the pre-check's parse and tolerating new request types.

    The SDK's model raises on request types it does not know (Alexa adds them
    over time); they become a plain `Request` carrying the type name, so
    handlers can route or acknowledge them instead of the SDK answering 500.
    """

    def deserialize(self, payload: Any, obj_type: Any) -> Any:
        if obj_type is not RequestEnvelope:
            return super().deserialize(payload, obj_type)
        current = _RAW.get()
        if current is not None and current[0] == payload:
            data = current[1]
        else:
            try:
                data = json.loads(payload)
            except (ValueError, RecursionError, TypeError) as exc:
                raise SerializationException("body is not valid JSON") from exc
            if not isinstance(data, dict):
                raise SerializationException("body is not a JSON object")
            _RAW.set((payload, data, payload.encode("utf-8", "surrogatepass")))
        try:
            return self._envelope(data)
        except SerializationException:
            raise
        except Exception as exc:  # the model code raises assorted errors on bad types
            raise SerializationException(f"{type(exc).__name__}: {exc}") from exc

    def _DefaultSerializer__deserialize_model(self, payload: Any, obj_type: Any) -> Any:
        if is_enum_text(payload, obj_type):
            return enum_member(payload, obj_type)
        return super()._DefaultSerializer__deserialize_model(payload, obj_type)  # type: ignore[misc]

    def _envelope(self, data: dict[str, Any]) -> RequestEnvelope:
        request = data.get("request")
        request_type = request.get("type") if isinstance(request, dict) else None
        # The dict-level deserializer is private to DefaultSerializer; using it
        # saves re-encoding the JSON we already parsed (pinned ask-sdk-core < 2).
        to_model = self._DefaultSerializer__deserialize  # type: ignore[attr-defined]
        if request_type in Request.discriminator_value_class_map:
            return to_model(data, RequestEnvelope)
        envelope = to_model({**data, "request": None}, RequestEnvelope)
        envelope.request = Request(
            object_type=request_type,
            request_id=_str_or_none(request.get("requestId")),
            timestamp=_timestamp(request.get("timestamp")),
            locale=_str_or_none(request.get("locale")),
        )
        return envelope


def is_enum_text(payload: Any, obj_type: Any) -> bool:
    return isinstance(obj_type, type) and issubclass(obj_type, Enum) and isinstance(payload, str)


def enum_member(payload: str, obj_type: type[Enum]) -> Enum | None:
    """The member named by `payload`, or None for a value the installed SDK does not know.

    Alexa adds enum values over time (session-ended reasons, error types...):
    an unknown *string* becomes None in the model instead of refusing the
    request; functions still receive it in the raw envelope.
    """
    try:
        return obj_type(payload)
    except ValueError:
        return None


def _timestamp(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SerializationException("request.timestamp is not a string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise SerializationException("request.timestamp is not an ISO 8601 time") from None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
