"""A tool call as Alexa's IntentRequest, answered by the intent's function, as a tool result.

The envelope is the one Alexa would send for the intent with these slots —
entity resolution from the model as the simulator builds it, the configured
locale, the skill id — so a function answers an MCP client without knowing
one asked. The caller is in it only as a hash (`userId`), and nothing names
Alexa's API (no `apiAccessToken`): no progressive response is ever posted for
a tool call. The call itself is `Dispatcher.answer`, the Alexa path's own:
same deadline, same reply mapping, same log line and metrics.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dispatch.responses import ssml_to_text
from skill.envelope import remember
from skill.handlers import Dispatcher, current_record
from skill.mcptools.catalog import Catalog, Tool
from skill.sdkmodel import ModelSerializer
from skill.slots import slot_objects

#: The request type of a tool call in the log line and the metrics.
REQUEST_TYPE = "mcp"
#: A slot value longer than this is refused (Alexa hears a few words, not documents).
MAX_SLOT_CHARS = 1000


class BadArguments(ValueError):
    """The tool call's arguments do not fit the tool's input schema."""


@dataclass(frozen=True)
class ToolAnswer:
    """What a tool call gives back: the text, the structured content, whether it failed."""

    text: str
    structured: dict[str, Any]
    is_error: bool


def caller_id(identity: str) -> str:
    """The caller as the envelope's userId: a hash, never the client id or token itself."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest().upper()
    return f"amzn1.ask.account.MCP{digest[:48]}"


def check_arguments(tool: Tool, arguments: Mapping[str, Any] | None) -> dict[str, str]:
    """The slot values of a call; BadArguments names what does not fit the schema."""
    values: dict[str, str] = {}
    schema = tool.input_schema
    for name, value in (arguments or {}).items():
        if name not in tool.slots:
            known = ", ".join(tool.slots) or "none"
            raise BadArguments(f"{tool.name} has no slot {name!r} (slots: {known})")
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadArguments(f"slot {name!r} must be a string")
        if len(value) > MAX_SLOT_CHARS:
            raise BadArguments(f"slot {name!r} is longer than {MAX_SLOT_CHARS} characters")
        allowed = schema["properties"][name].get("enum")
        if allowed is not None and value not in allowed:
            raise BadArguments(f"slot {name!r} must be one of: {', '.join(allowed)}")
        if value.strip():
            values[name] = value.strip()
    missing = [name for name in schema.get("required", ()) if name not in values]
    if missing:
        raise BadArguments(f"{tool.name} needs {', '.join(missing)}")
    return values


def intent_envelope(
    catalog: Catalog,
    tool: Tool,
    values: Mapping[str, str],
    *,
    application_id: str,
    user_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The request envelope Alexa would send for `tool`'s intent with these slot values."""
    slots = slot_objects(
        tool.slots,
        values,
        lambda name, value: catalog.resolve(tool.slots[name], value),
        application_id,
    )
    application = {"applicationId": application_id}
    user = {"userId": user_id}
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "1.0",
        "session": {
            # Stateless: each call is a one-shot request, as "Alexa, ask … to …" is.
            "new": True,
            "sessionId": f"amzn1.echo-api.session.{uuid.uuid4()}",
            "application": application,
            "attributes": {},
            "user": user,
        },
        "context": {
            "System": {
                "application": dict(application),
                "user": dict(user),
                "device": {"deviceId": "amzn1.ask.device.MCP", "supportedInterfaces": {}},
            }
        },
        "request": {
            "type": "IntentRequest",
            "requestId": f"amzn1.echo-api.request.{uuid.uuid4()}",
            "timestamp": stamp,
            "locale": catalog.locale,
            "intent": {"name": tool.name, "confirmationStatus": "NONE", "slots": slots},
        },
    }


def answer_tool(
    dispatcher: Dispatcher,
    catalog: Catalog,
    tool: Tool,
    values: Mapping[str, str],
    *,
    application_id: str,
    identity: str,
) -> ToolAnswer:
    """Send the intent's envelope to its function, as Alexa's path does, and map the answer.

    Runs on the thread serving the HTTP request (the event lane's), so the
    request record the log line and metrics read is this request's.
    """
    envelope = intent_envelope(
        catalog, tool, values, application_id=application_id, user_id=caller_id(identity)
    )
    text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
    remember(text, envelope)  # the payload the function receives, byte for byte
    record = current_record()
    request = envelope["request"]
    record.request_id = request["requestId"]
    record.request_type = REQUEST_TYPE
    record.intent = tool.name
    record.locale = catalog.locale
    record.user_id = envelope["context"]["System"]["user"]["userId"]
    record.handled_at = time.perf_counter()
    answer = dispatcher.answer(tool.name, catalog.locale, record.request_id)
    response = ModelSerializer().serialize(answer.response) or {}
    speech = _speech_text(response.get("outputSpeech"))
    structured = {
        "speech": speech,
        "card": response.get("card"),
        "end_session": response.get("shouldEndSession") is not False,
    }
    return ToolAnswer(speech, structured, record.outcome != "ok")


def _speech_text(speech: Any) -> str:
    """What Alexa would say, as text: PlainText as is, SSML reduced to its words."""
    if not isinstance(speech, Mapping):
        return ""
    if speech.get("type") == "SSML":
        return ssml_to_text(str(speech.get("ssml", "")))
    return str(speech.get("text", ""))
