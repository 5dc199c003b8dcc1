"""The ASK SDK's dict-to-model and model-to-dict steps, planned once per type, not per value.

`DefaultSerializer` (ask-sdk-core, pinned < 2) decides afresh for every value
what its type string means (two prefix tests and two regular expressions, a
class import, five type comparisons) and, for every model object, rebuilds the
class's attribute map and scans it once per payload key; writing a model back
out rebuilds the map again. On an Alexa request that was most of the SDK's cost.
`ModelSerializer` gives the same answer - the same model classes, the same
attributes, the same refusals with the same messages, the same JSON keys in
the same order - from a plan made the first time each type is met.

Only JSON objects whose type is a plain model take the planned path; anything
unusual (a list where an object belongs, a `list[a, b]` type, a tuple or a
date to write) goes through the SDK's own code, so its behaviour there is the
SDK's by construction. `tests/test_sdkmodel.py` holds the two to the same
result on real and mutated requests, replies and directives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from verification import sdkcompat

sdkcompat.install()

from ask_sdk_core.exceptions import SerializationException  # noqa: E402
from ask_sdk_core.serialize import DefaultSerializer  # noqa: E402

Plan = Callable[["ModelSerializer", Any], Any]

_LIST = re.compile(r"list\[(.*)\]")  # the SDK's own patterns, matched the SDK's way
_DICT = re.compile(r"dict\(([^,]*), (.*)\)")


class ModelSerializer(DefaultSerializer):
    """DefaultSerializer with the dict-to-model walk planned per type (see the module)."""

    def serialize(self, obj: Any) -> Any:
        """The SDK's model-to-dict step, with each model class's fields read once."""
        kind = type(obj)
        if obj is None or kind in _LEAVES:
            return obj
        if kind is dict:
            return {key: self.serialize(value) for key, value in obj.items()}
        if kind is list:
            return [self.serialize(item) for item in obj]
        fields = _fields(kind)
        if fields is None:
            return super().serialize(obj)  # tuples, dates, enums, decimals...
        serialized = {}
        for attribute, json_name in fields.by_type_order:
            value = getattr(obj, attribute)
            if value is not None:  # the SDK leaves out what is None
                serialized[json_name] = self.serialize(value)
        return serialized

    def _DefaultSerializer__deserialize(self, payload: Any, obj_type: Any) -> Any:
        if payload is None:
            return None
        try:
            plan = _PLANS[obj_type]
        except KeyError:
            plan = _PLANS[obj_type] = _plan(self, obj_type)
        except TypeError:  # not a type string or a class: only the SDK knows what it does
            plan = _generic(obj_type)
        return plan(self, payload)

    def _DefaultSerializer__deserialize_model(self, payload: Any, obj_type: Any) -> Any:
        fields = _fields(obj_type) if type(payload) is dict else None
        if fields is None:
            return super()._DefaultSerializer__deserialize_model(payload, obj_type)  # type: ignore[misc]
        try:
            if fields.discriminated:
                # The SDK's own lookup (through the class cache below).
                obj_type = self._DefaultSerializer__get_obj_by_discriminator(payload, obj_type)  # type: ignore[attr-defined]
                fields = _fields(obj_type) or _Fields(obj_type)  # no model: fails as the SDK does
            model = obj_type()
            deserialize = self._DefaultSerializer__deserialize
            for attribute, json_name, field_type in fields.fields:
                if json_name in payload:
                    setattr(model, attribute, deserialize(payload[json_name], field_type))
            for key in payload:
                if key not in fields.json_names:  # as the SDK does: kept under its JSON name
                    setattr(model, key, payload[key])
            return model
        except Exception as exc:
            raise SerializationException(str(exc)) from exc

    def _DefaultSerializer__load_class_from_name(self, class_name: str) -> Any:
        cls = _CLASSES.get(class_name)
        if cls is None:  # the SDK imports the module on every call
            cls = super()._DefaultSerializer__load_class_from_name(class_name)  # type: ignore[misc]
            _CLASSES[class_name] = cls
        return cls

    def _DefaultSerializer__deserialize_datetime(self, payload: Any, obj_type: Any) -> Any:
        if isinstance(payload, str):
            try:  # Alexa sends ISO 8601 ("2026-11-27T12:00:00Z"); 3.11 parses it natively
                parsed = datetime.fromisoformat(payload)
            except ValueError:
                pass  # anything unusual goes through dateutil, as the SDK does
            else:
                return parsed.date() if obj_type is date else parsed
        return super()._DefaultSerializer__deserialize_datetime(payload, obj_type)  # type: ignore[misc]


class _Fields:
    """A model class's fields as the SDK walks them: (attribute, JSON name, type string)."""

    __slots__ = ("by_type_order", "discriminated", "fields", "json_names")

    def __init__(self, cls: type) -> None:
        types: dict[str, Any] = cls.deserialized_types  # type: ignore[attr-defined]
        names: dict[str, str] = dict(getattr(cls, "attribute_map", {}))
        names.update({k: k for k in types if k not in names})  # the SDK's rule
        self.fields = tuple(
            (attribute, json, types[attribute]) for attribute, json in names.items()
        )
        self.json_names = frozenset(names.values())
        # Serializing walks `deserialized_types`, in its order.
        self.by_type_order = tuple((attribute, names[attribute]) for attribute in types)
        self.discriminated = hasattr(cls, "get_real_child_model")


# Exactly these types are returned as they are (the SDK's isinstance test also
# passes their subclasses, a str-valued Enum say: those take the SDK's path).
_LEAVES = frozenset(DefaultSerializer.PRIMITIVE_TYPES)
# What the SDK tests for before it treats a value as a model (Enum among them).
_NOT_MODELS = (*DefaultSerializer.PRIMITIVE_TYPES, list, tuple, date, Enum, Decimal, dict)
_PLANS: dict[Any, Plan] = {}  # type string or class -> plan; model types are finitely many
_FIELDS: dict[type, _Fields | None] = {}
_CLASSES: dict[str, Any] = {}


def _fields(obj_type: Any) -> _Fields | None:
    """The planned fields of a model class; None for anything the SDK does not walk as one
    (no `deserialized_types`, or a type it tests for first: an Enum, a primitive...)."""
    try:
        return _FIELDS[obj_type]
    except KeyError:
        pass
    except TypeError:  # unhashable: not a class at all
        return None
    plain = (
        isinstance(obj_type, type)
        and not issubclass(obj_type, _NOT_MODELS)
        and hasattr(obj_type, "deserialized_types")
    )
    fields = _FIELDS[obj_type] = _Fields(obj_type) if plain else None
    return fields


def _plan(serializer: ModelSerializer, obj_type: Any) -> Plan:
    """What the SDK's `__deserialize` does with a value of `obj_type`, decided once."""
    if isinstance(obj_type, str):
        if obj_type.startswith("list["):
            match = _LIST.match(obj_type)
            if match is None:
                return lambda s, payload: []
            item_type = match.group(1)
            if "," in item_type:  # per-position types: rare enough to leave to the SDK
                return _generic(obj_type)
            item_type = item_type.strip()
            return lambda s, payload: [
                s._DefaultSerializer__deserialize(item, item_type) for item in payload
            ]
        if obj_type.startswith("dict("):
            match = _DICT.match(obj_type)
            if match is None:
                return lambda s, payload: {}
            value_type = match.group(2)
            return lambda s, payload: {
                key: s._DefaultSerializer__deserialize(value, value_type)
                for key, value in payload.items()
            }
        if obj_type in DefaultSerializer.NATIVE_TYPES_MAPPING:
            obj_type = DefaultSerializer.NATIVE_TYPES_MAPPING[obj_type]
        else:
            try:
                obj_type = serializer._DefaultSerializer__load_class_from_name(obj_type)
            except SerializationException:
                return _generic(obj_type)  # raises when met, as in the SDK; tried again then
    return _class_plan(obj_type)


def _class_plan(cls: Any) -> Plan:
    if cls in DefaultSerializer.PRIMITIVE_TYPES:
        return lambda s, payload: s._DefaultSerializer__deserialize_primitive(payload, cls)
    if cls is object:
        return lambda s, payload: payload
    if cls in (date, datetime):
        return lambda s, payload: s._DefaultSerializer__deserialize_datetime(payload, cls)
    return lambda s, payload: s._DefaultSerializer__deserialize_model(payload, cls)


def _generic(obj_type: Any) -> Plan:
    generic = DefaultSerializer._DefaultSerializer__deserialize  # type: ignore[attr-defined]
    return lambda s, payload: generic(s, payload, obj_type)
