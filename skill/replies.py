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
from functools import cache
from typing import Any

from verification import sdkcompat

sdkcompat.install()

from ask_sdk_model import Directive, Response  # noqa: E402

from dispatch.responses import BadReply, Reply  # noqa: E402
from skill.sdkmodel import ModelSerializer  # noqa: E402

log = logging.getLogger("funker_dispatch")

# Strict, as the SDK is: a reply's unknown enum value is refused, never made None.
_serializer = ModelSerializer()
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
    dropped = sorted(set(_dropped(reply.response, response)))
    if dropped:
        _warn_once(route or "-", dropped)
    return response


def _reason(exc: Exception) -> str:
    # The SDK's message names the offending value and type ("'LOUD' is not a valid
    # PlayBehavior"), never our internals: fit for the operator's log line.
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _dropped(sent: Any, model: Any, path: str = "response") -> Iterator[str]:
    """Paths of the fields in `sent` that the model object built from it has no place for.

    Walks the function's data beside the model, by each model class's own
    `attribute_map` (its JSON names), rather than serializing the model back
    and comparing: the same answer, for a fraction of the cost.
    """
    if sent is model:
        return  # passed through untouched (a directive the SDK does not know)
    names = getattr(type(model), "attribute_map", None)
    if isinstance(sent, Mapping) and names is not None:
        fields = _json_fields(type(model))
        for key, value in sent.items():
            if value is None:
                continue  # an explicit null is absent either way
            where = f"{path}.{key}"
            attribute = fields.get(key)
            if attribute is None:
                yield where
            else:
                yield from _dropped(value, getattr(model, attribute, None), where)
    elif isinstance(sent, Mapping) and isinstance(model, Mapping):  # a free-form map
        for key, value in sent.items():
            yield from _dropped(value, model.get(key), f"{path}.{key}")
    elif isinstance(sent, list) and isinstance(model, list):
        for index, (item, kept) in enumerate(zip(sent, model, strict=False)):
            yield from _dropped(item, kept, f"{path}[{index}]")


@cache
def _json_fields(cls: type) -> dict[str, str]:
    """JSON field name -> Python attribute name, for one SDK model class."""
    return {json_name: attribute for attribute, json_name in cls.attribute_map.items()}


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
