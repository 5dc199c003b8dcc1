"""Slot values as Alexa sends them: entity resolution against a model's custom slot types,
and the slot objects of an IntentRequest.

The simulator (simulate, dialog, test, the console) and the MCP tools build their
requests here, so a value resolves the same way whoever asks: matched against a custom
type's values and synonyms word by word, case and apostrophes aside ("whats" is
"what's"), as Alexa matches spoken words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def spoken_words(text: str) -> list[str]:
    """The words of a phrase as typed (punctuation dropped, case kept)."""
    return _WORD.findall(text)


def normal(word: str) -> str:
    # "What's" and "whats" are the same spoken word.
    return word.lower().replace("'", "").replace("’", "")


@dataclass(frozen=True)
class TypeValue:
    """One value of a custom slot type: what entity resolution answers."""

    id: str | None
    name: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resolution:
    """Entity resolution of one spoken slot value against a custom type."""

    slot_type: str
    value: TypeValue | None  # None: ER_SUCCESS_NO_MATCH


def type_values(document: Mapping[str, Any]) -> dict[str, tuple[TypeValue, ...]]:
    """A language model's custom slot types (its `types` list) as name -> values."""
    types: dict[str, tuple[TypeValue, ...]] = {}
    for slot_type in document.get("types") or []:
        try:
            types[slot_type["name"]] = tuple(
                TypeValue(
                    value.get("id"),
                    value["name"]["value"],
                    tuple(value["name"].get("synonyms") or ()),
                )
                for value in slot_type.get("values") or []
            )
        except (KeyError, TypeError, AttributeError):
            continue  # `models check` reports a malformed type; it resolves nothing here
    return types


def match(slot_type: str, values: Sequence[TypeValue], said: str) -> Resolution:
    """The value of `slot_type` whose name or a synonym is the words said, if any."""
    words = [normal(w) for w in spoken_words(said)]
    for candidate in values:
        for name in (candidate.name, *candidate.synonyms):
            if [normal(w) for w in spoken_words(name)] == words:
                return Resolution(slot_type, candidate)
    return Resolution(slot_type, None)


def slot_objects(
    declared: Iterable[str],
    values: Mapping[str, str],
    resolve: Callable[[str, str], Resolution | None],
    application_id: str,
) -> dict[str, Any]:
    """Slot objects as Alexa sends them: every declared slot (those not filled without a
    value, as Alexa sends them), each value with its entity resolution when `resolve`
    (slot name, value) finds its slot custom-typed."""
    slots: dict[str, Any] = {
        name: {"name": name, "confirmationStatus": "NONE"} for name in declared
    }
    for name, value in values.items():
        slot: dict[str, Any] = {"name": name, "value": value, "confirmationStatus": "NONE"}
        simple: dict[str, Any] = {"type": "Simple", "value": value}
        resolution = resolve(name, value)
        if resolution is not None:
            slot["resolutions"] = simple["resolutions"] = resolutions(resolution, application_id)
        slot["slotValue"] = simple
        slots[name] = slot
    return slots


def resolutions(resolution: Resolution, application_id: str) -> dict[str, Any]:
    """A slot's `resolutions` object: one authority, matched or not."""
    authority: dict[str, Any] = {
        "authority": f"amzn1.er-authority.echo-sdk.{application_id}.{resolution.slot_type}",
        "status": {"code": "ER_SUCCESS_MATCH" if resolution.value else "ER_SUCCESS_NO_MATCH"},
    }
    if resolution.value is not None:
        value: dict[str, Any] = {"name": resolution.value.name}
        if resolution.value.id is not None:
            value["id"] = resolution.value.id
        authority["values"] = [{"value": value}]
    return {"resolutionsPerAuthority": [authority]}
