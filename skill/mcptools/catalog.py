"""The tool list: one MCP tool per routed custom intent, its input schema from the model's slots.

A slot is a string property. A custom slot type lists its values as the
schema's `examples` (Alexa's custom types are open: a value outside them still
reaches the function, without a resolution), or as `enum` (values and
synonyms) where the dialog model closes the slot with a
`hasEntityResolutionMatch` validation. Slots the dialog model elicits are
required. Nothing here knows HTTP or the SDK: plain data, testable alone.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatch.registry import Router
from skill.models import LanguageModel
from skill.slots import Resolution, TypeValue, match, type_values

#: A tool's description, when its route gives none, quotes this many sample utterances.
SAMPLES_QUOTED = 3
#: What every tool's `structuredContent` holds (the tool's outputSchema).
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "speech": {"type": "string", "description": "what Alexa would say, as plain text"},
        "card": {
            "type": ["object", "null"],
            "description": "the card Alexa would show (Alexa's card JSON), if any",
        },
        "end_session": {"type": "boolean", "description": "whether the skill ended the session"},
    },
    "required": ["speech", "end_session"],
}


@dataclass(frozen=True)
class Tool:
    """One intent as an MCP tool."""

    name: str  # the intent's name
    description: str
    input_schema: dict[str, Any]
    slots: Mapping[str, str] = field(default_factory=dict)  # slot name -> slot type


@dataclass(frozen=True)
class Catalog:
    """The tools of one locale's model, and what a call needs to build its request."""

    locale: str
    tools: Mapping[str, Tool]
    types: Mapping[str, tuple[TypeValue, ...]]  # custom slot type -> its values

    def resolve(self, slot_type: str, value: str) -> Resolution | None:
        """Entity resolution of a spoken value against a custom type, as Alexa does it
        (skill.slots, the simulator's too); None for a built-in type."""
        values = self.types.get(slot_type)
        return None if values is None else match(slot_type, values, value)


def pick_locale(models: Mapping[str, LanguageModel], wanted: str | None) -> str | None:
    """`[mcp] locale` when the model has it (else the same language's), else the first model's."""
    if not models:
        return None
    if wanted is None:
        return next(iter(models))
    if wanted in models:
        return wanted
    language = wanted.split("-")[0]
    return next((name for name in models if name.split("-")[0] == language), wanted)


def build_catalog(
    models: Mapping[str, LanguageModel],
    router: Router,
    *,
    locale: str | None,
    globs: Iterable[str] = ("*",),
    descriptions: Mapping[str, str | None] | None = None,
) -> Catalog:
    """The tools: each custom intent of the locale's model that has a route and matches a glob."""
    chosen = pick_locale(models, locale)
    model = models.get(chosen or "")
    if model is None:
        return Catalog(chosen or "en-US", {}, {})
    patterns = tuple(globs)
    document = model.document
    types = type_values(document)
    closed = _closed_slots(model.dialog)
    required = _required_slots(model.dialog)
    tools: dict[str, Tool] = {}
    for intent, samples in model.samples.items():
        wanted = any(fnmatch.fnmatchcase(intent, pattern) for pattern in patterns)
        if intent.startswith("AMAZON.") or not wanted:
            continue
        try:
            router.resolve(intent)
        except LookupError:
            continue  # nothing serves it: not a tool anyone could call
        slots = model.slots.get(intent, {})
        description = (descriptions or {}).get(intent) or _described(intent, samples)
        tools[intent] = Tool(
            intent,
            description,
            _schema(intent, slots, types, closed, required.get(intent, ())),
            dict(slots),
        )
    return Catalog(model.locale, tools, types)


def _described(intent: str, samples: list[str]) -> str:
    quoted = ", ".join(f'"{sample}"' for sample in samples[:SAMPLES_QUOTED])
    if not quoted:
        return f"Asks the skill's {intent}."
    return f"Answers what a user asks the skill, such as {quoted}."


def _schema(
    intent: str,
    slots: Mapping[str, str],
    types: Mapping[str, tuple[TypeValue, ...]],
    closed: set[tuple[str, str]],
    required: Iterable[str],
) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, slot_type in slots.items():
        prop: dict[str, Any] = {"type": "string"}
        values = types.get(slot_type)
        if values is None:
            prop["description"] = f"a value of Alexa's built-in slot type {slot_type}"
        elif (intent, name) in closed:
            prop["description"] = f"one of the {slot_type} values"
            prop["enum"] = sorted({n for v in values for n in (v.name, *v.synonyms)})
        else:
            prop["description"] = f"a {slot_type}, such as one of its examples"
            prop["examples"] = [v.name for v in values]
        properties[name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    needed = [name for name in required if name in slots]
    if needed:
        schema["required"] = needed
    return schema


def _dialog_slots(dialog: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for intent in dialog.get("intents") or []:
        if not isinstance(intent, Mapping):
            continue
        for slot in intent.get("slots") or []:
            if isinstance(slot, Mapping) and isinstance(slot.get("name"), str):
                yield str(intent.get("name")), slot


def _closed_slots(dialog: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(intent, slot) pairs whose value must resolve to one of its type's values."""
    return {
        (intent, slot["name"])
        for intent, slot in _dialog_slots(dialog)
        if any(
            isinstance(v, Mapping) and v.get("type") == "hasEntityResolutionMatch"
            for v in slot.get("validations") or []
        )
    }


def _required_slots(dialog: Mapping[str, Any]) -> dict[str, list[str]]:
    required: dict[str, list[str]] = {}
    for intent, slot in _dialog_slots(dialog):
        if slot.get("elicitationRequired") is True:
            required.setdefault(intent, []).append(slot["name"])
    return required
