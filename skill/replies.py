"""A Reply as the ASK SDK's own model: `ask_sdk_model.Response`, typed where the SDK knows the type.

`dispatch.responses` maps a function's answer to Alexa's response format as
plain data; here the SDK's model takes it over, so whatever the model knows
(PlainText or SSML with `playBehavior`, every card type, reprompt, directives,
canFulfillIntent...) reaches Alexa as the function wrote it. Two things the
model cannot carry are handled on purpose:

- a directive whose type the installed SDK does not know (a newer APL
  directive, say) is passed through as the function wrote it, untouched;
- a field the model does not know is dropped, as the model drops it, and the
  operator is told once per route which field it was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from verification import sdkcompat

sdkcompat.install()

from ask_sdk_core.serialize import DefaultSerializer  # noqa: E402
from ask_sdk_model import Directive, Response  # noqa: E402

from dispatch.responses import BadReply, Reply  # noqa: E402

log = logging.getLogger("funker_dispatch")

_serializer = DefaultSerializer()
# The dict-level deserializer is private to DefaultSerializer; using it saves
# encoding the data to JSON text only to parse it again (ask-sdk-core pinned < 2).
_to_model = _serializer._DefaultSerializer__deserialize  # type: ignore[attr-defined]
_KNOWN_DIRECTIVES = Directive.discriminator_value_class_map

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def to_model(reply: Reply, route: str | None = None) -> Response:
    """The SDK Response for `reply`; BadReply when the model refuses a value (a bad enum...)."""
    data = dict(reply.response)
    directives = data.pop("directives", None) or []
    try:
        response: Response = _to_model(data, Response)
        typed = [
            _to_model(d, Directive) if d.get("type") in _KNOWN_DIRECTIVES else d for d in directives
        ]
    except Exception as exc:  # the model raises SerializationException, ValueError...
        raise BadReply(f"the ASK SDK's model refuses the reply: {_reason(exc)}") from None
    if typed:
        response.directives = typed  # the serializer writes a plain dict as it is
    dropped = sorted(set(_dropped(reply.response, _serializer.serialize(response))))
    if dropped:
        _warn_once(route or "-", dropped)
    return response


def _reason(exc: Exception) -> str:
    # The SDK's message names the offending value and type ("'LOUD' is not a valid
    # PlayBehavior"), never our internals: fit for the operator's log line.
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _dropped(sent: Any, kept: Any, path: str = "response") -> Iterator[str]:
    """Paths of the fields in `sent` that are not in `kept` (what the model dropped)."""
    if isinstance(sent, Mapping) and isinstance(kept, Mapping):
        for key, value in sent.items():
            if value is None:
                continue  # an explicit null is absent either way
            where = f"{path}.{key}"
            if key not in kept:
                yield where
            else:
                yield from _dropped(value, kept[key], where)
    elif isinstance(sent, list) and isinstance(kept, list):
        for index, (item, kept_item) in enumerate(zip(sent, kept, strict=False)):
            yield from _dropped(item, kept_item, f"{path}[{index}]")


def _warn_once(route: str, dropped: list[str]) -> None:
    with _warned_lock:
        new = [field for field in dropped if (route, field) not in _warned]
        _warned.update((route, field) for field in new)
    if new:
        log.warning(
            "reply fields the ASK SDK model does not know were dropped: route=%s fields=%s",
            route,
            ",".join(new),
        )
