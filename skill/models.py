"""Interaction models (ask-cli format) as the skill reads them: intents, samples, slots."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODELS = Path(__file__).resolve().parent.parent / "interaction_models"


@dataclass(frozen=True)
class LanguageModel:
    locale: str
    invocation_name: str
    samples: dict[str, list[str]] = field(default_factory=dict)  # intent -> samples
    path: Path | None = None
    slots: dict[str, dict[str, str]] = field(default_factory=dict)  # intent -> slot -> type
    # custom slot type -> every value and synonym, as `spoken()` writes them
    values: dict[str, frozenset[str]] = field(default_factory=dict)
    # The languageModel as the file holds it, read once at start: the developer's tools
    # build their fuller model from it rather than reading a file edited since.
    document: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # The interactionModel's dialog model and prompts, as the file holds them.
    dialog: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    prompts: list[Any] = field(default_factory=list, repr=False, compare=False)


_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def spoken(text: str) -> str:
    """A phrase as compared with a slot value: its words, lower case, one space apart."""
    return " ".join(word.replace("’", "'") for word in _WORD.findall(text.lower()))


def load_models(directory: Path | None = None) -> dict[str, LanguageModel]:
    """Every `interactionModels/custom/<locale>.json` under the skill package.

    Missing directory or unreadable files give no models: the skill still
    serves; `funker-dispatch models check` is where model errors are reported.
    """
    directory = DEFAULT_MODELS if directory is None else directory
    models = {}
    for path in sorted((directory / "interactionModels" / "custom").glob("*.json")):
        try:
            interaction = json.loads(path.read_text(encoding="utf-8"))["interactionModel"]
            language = interaction["languageModel"]
            dialog = interaction.get("dialog")
            prompts = interaction.get("prompts")
            intents = language.get("intents", [])
            samples = {
                intent["name"]: [s for s in intent.get("samples", []) if isinstance(s, str)]
                for intent in intents
            }
            slots = {
                intent["name"]: {slot["name"]: slot["type"] for slot in intent.get("slots") or []}
                for intent in intents
            }
            values = {
                slot_type["name"]: frozenset(
                    spoken(name)
                    for value in slot_type.get("values") or []
                    for name in (value["name"]["value"], *(value["name"].get("synonyms") or []))
                )
                for slot_type in language.get("types") or []
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        models[path.stem] = LanguageModel(
            path.stem,
            str(language.get("invocationName", "")),
            samples,
            path,
            slots,
            values,
            language,
            dialog if isinstance(dialog, dict) else {},
            prompts if isinstance(prompts, list) else [],
        )
    return models


def examples_by_locale(
    models: dict[str, LanguageModel], intents: set[str] | None = None
) -> dict[str, list[str]]:
    """One example request per custom intent (without slots), for welcome and help."""
    examples: dict[str, list[str]] = {}
    for locale, model in models.items():
        chosen = []
        for intent, samples in model.samples.items():
            if intent.startswith("AMAZON.") or (intents is not None and intent not in intents):
                continue
            plain = [s for s in samples if "{" not in s]
            if plain:
                chosen.append(plain[0])
        examples[locale] = chosen
    return examples
