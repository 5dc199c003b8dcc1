"""Utterance → intent + slots against an interaction model, and the request envelope Alexa sends.

Matching is deliberately literal (a sample with `{slot}` holes, compared word
by word, case and punctuation ignored): it is a development tool that must say
exactly why an utterance did or did not match, not a guess at Alexa's NLU.
"""

from __future__ import annotations

import difflib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from funker_dispatch.devtools.dialogmodel import DialogModel
from skill.models import LanguageModel, load_models

# Re-exported: the simulator's callers (dialog, yamltest, the console) name them from here.
from skill.slots import (
    Resolution,
    TypeValue,
    match,
    normal,
    slot_objects,
    spoken_words,
    type_values,
)

ENVELOPE_VERSION = "1.0"

# What people commonly say for the built-ins; Alexa trains these itself, so
# models carry no samples for them. Keyed by language; English is the fallback.
BUILT_IN_PHRASINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "AMAZON.HelpIntent": (
            "help",
            "help me",
            "i need help",
            "what can i say",
            "what can you do",
            "what can i ask",
            "what can i do",
            "how does this work",
        ),
        "AMAZON.StopIntent": ("stop", "off", "shut up", "be quiet", "quit", "enough", "stop it"),
        "AMAZON.CancelIntent": ("cancel", "never mind", "nevermind", "forget it", "cancel that"),
        "AMAZON.NavigateHomeIntent": ("go home", "home", "go to the home screen", "exit to home"),
        "AMAZON.YesIntent": ("yes", "yeah", "yep", "sure", "ok", "okay"),
        "AMAZON.NoIntent": ("no", "nope", "no thanks"),
        "AMAZON.RepeatIntent": ("repeat", "say that again", "repeat that"),
        "AMAZON.StartOverIntent": ("start over", "restart", "start again"),
        "AMAZON.PauseIntent": ("pause",),
        "AMAZON.ResumeIntent": ("resume", "continue"),
        "AMAZON.NextIntent": ("next", "skip"),
        "AMAZON.PreviousIntent": ("previous", "go back"),
    },
}

# "open funker dispatch", "ask funker dispatch to ...": how a user starts a skill.
_OPENERS = ("open", "launch", "start", "begin", "load", "run", "talk to", "play")
_ASKERS = ("ask", "tell")
_CONNECTORS = ("to", "for", "about", "whether", "if", "that", "and")

_SLOT_REF = re.compile(r"(\{[^{}]*\})")


# --- the interaction model as the simulator needs it -----------------------


@dataclass(frozen=True)
class IntentModel:
    name: str
    slots: dict[str, str] = field(default_factory=dict)  # slot name -> slot type
    samples: tuple[str, ...] = ()
    # slot name -> what a user says when Alexa asks for that slot ("{name}", "it's {name}")
    slot_samples: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class InteractionModel:
    """One locale's language model: intents with slots and samples, custom slot types."""

    locale: str
    invocation_name: str
    intents: dict[str, IntentModel]
    types: dict[str, tuple[TypeValue, ...]]
    path: Path | None = None
    dialog: DialogModel = field(default_factory=DialogModel)


class ModelNotFound(LookupError):
    """No interaction model for the requested locale."""


def load_interaction_model(locale: str, directory: Path | None = None) -> InteractionModel:
    """The model of `locale` (exact, else the same language), read from the skill package."""
    return choose_model(load_models(directory), locale)


def choose_model(models: Mapping[str, LanguageModel], locale: str) -> InteractionModel:
    """The model of `locale` (exact, else the same language) among `models`, as loaded."""
    chosen = models.get(locale)
    if chosen is None:
        language = locale.split("-")[0].lower()
        chosen = next((m for name, m in models.items() if name.startswith(language + "-")), None)
    if chosen is None or chosen.path is None:
        available = ", ".join(sorted(models)) or "none"
        raise ModelNotFound(f"no interaction model for locale {locale} (available: {available})")
    return interaction_model_from_json(
        chosen.document,
        chosen.locale,
        chosen.path,
        DialogModel.from_json(chosen.dialog, chosen.prompts),
    )


def interaction_model_from_json(
    language_model: Mapping[str, Any],
    locale: str,
    path: Path | None = None,
    dialog: DialogModel | None = None,
) -> InteractionModel:
    intents = {}
    for intent in language_model.get("intents", []):
        slots = {slot["name"]: slot["type"] for slot in intent.get("slots", []) or []}
        samples = tuple(s for s in intent.get("samples", []) or [] if isinstance(s, str))
        slot_samples = {
            slot["name"]: tuple(s for s in slot.get("samples") or [] if isinstance(s, str))
            for slot in intent.get("slots", []) or []
            if slot.get("samples")
        }
        intents[intent["name"]] = IntentModel(intent["name"], slots, samples, slot_samples)
    types = type_values(language_model)
    return InteractionModel(
        locale,
        str(language_model.get("invocationName", "")),
        intents,
        types,
        path,
        dialog or DialogModel(),
    )


# --- matching ---------------------------------------------------------------


@dataclass(frozen=True)
class _Hole:
    slot: str


_Piece = str | _Hole


def _pattern(sample: str) -> list[_Piece]:
    pieces: list[_Piece] = []
    for part in _SLOT_REF.split(sample):
        if _SLOT_REF.fullmatch(part):
            pieces.append(_Hole(part[1:-1].strip()))
        else:
            pieces.extend(normal(w) for w in spoken_words(part))
    return pieces


def _fit(pattern: list[_Piece], words: list[str]) -> dict[str, tuple[int, int]] | None:
    """Word spans of each slot when the pattern covers all words, else None.

    Backtracking over slot lengths; samples are short, so this stays cheap.
    Slots take as few words as possible, leaving literals to match first.
    """

    def walk(p: int, w: int, spans: dict[str, tuple[int, int]]) -> dict | None:
        if p == len(pattern):
            return spans if w == len(words) else None
        piece = pattern[p]
        if isinstance(piece, str):
            if w < len(words) and normal(words[w]) == piece:
                return walk(p + 1, w + 1, spans)
            return None
        for end in range(w + 1, len(words) + 1):
            found = walk(p + 1, end, {**spans, piece.slot: (w, end)})
            if found is not None:
                return found
        return None

    return walk(0, 0, {})


#: What Alexa sends for an utterance no sample covers, when the model declares it.
FALLBACK = "AMAZON.FallbackIntent"


@dataclass(frozen=True)
class Match:
    """The intent an utterance resolved to, the sample that matched, and slot values.

    For AMAZON.FallbackIntent, `sample` is "" and `nearest` the samples that came closest.
    """

    intent: str
    sample: str
    slots: dict[str, str]  # slot name -> value as spoken
    nearest: tuple[tuple[str, str], ...] = ()


class NoMatch(LookupError):
    """The utterance matches no sample; `nearest` are (intent, sample) pairs to suggest."""

    def __init__(self, utterance: str, nearest: list[tuple[str, str]]) -> None:
        super().__init__(f"no intent matches {utterance!r}")
        self.utterance = utterance
        self.nearest = nearest


def intent_samples(model: InteractionModel) -> list[tuple[str, str]]:
    """Every (intent, sample) the simulator understands: the model's plus built-in phrasings."""
    phrasings = BUILT_IN_PHRASINGS.get(model.locale.split("-")[0].lower(), BUILT_IN_PHRASINGS["en"])
    pairs = []
    for intent in model.intents.values():
        pairs.extend((intent.name, sample) for sample in intent.samples)
        # Built-ins only fire when the model declares them, as on Alexa.
        pairs.extend((intent.name, sample) for sample in phrasings.get(intent.name, ()))
    return pairs


def match_utterance(model: InteractionModel, utterance: str) -> Match:
    """The best sample for an utterance; else AMAZON.FallbackIntent when the model declares
    it, as Alexa would send; else NoMatch, listing the nearest samples.

    Best: most literal words matched (a sample that spells more of the
    utterance out is more specific), then slot values that resolve, then
    model order.
    """
    words = spoken_words(utterance)
    best: tuple[tuple[int, int, int], Match] | None = None
    for order, (intent, sample) in enumerate(intent_samples(model)):
        pattern = _pattern(sample)
        spans = _fit(pattern, words) if words else None
        if spans is None:
            continue
        slots = {name: " ".join(words[start:end]) for name, (start, end) in spans.items()}
        literal = sum(1 for piece in pattern if isinstance(piece, str))
        resolved = sum(
            1
            for name, value in slots.items()
            if (r := resolve(model, intent, name, value)) is not None and r.value is not None
        )
        score = (literal, resolved, -order)
        if best is None or score > best[0]:
            best = (score, Match(intent, sample, slots))
    if best is None:
        nearest = nearest_samples(model, utterance)
        if FALLBACK in model.intents:  # as a device does: the skill hears it, and can help
            return Match(FALLBACK, "", {}, tuple(nearest))
        raise NoMatch(utterance, nearest)
    return best[1]


def match_slot_answer(
    model: InteractionModel, intent: str, slot: str, utterance: str
) -> dict[str, str] | None:
    """The slot values in what the user answered when Alexa asked for `slot`.

    The slot's own samples ("{name}", "it's {name}") when the model has them, else the
    intent's samples that fill the slot; else, when the slot has no samples, the whole
    utterance is its value (what a device hears as the answer). None: no fit.
    """
    words = spoken_words(utterance)
    if not words:
        return None
    intent_model = model.intents.get(intent)
    if intent_model is None:
        return None
    own = intent_model.slot_samples.get(slot, ())
    candidates = [*own, *(s for s in intent_model.samples if "{" + slot + "}" in s)]
    best: tuple[int, dict[str, str]] | None = None
    for sample in candidates:
        pattern = _pattern(sample)
        spans = _fit(pattern, words)
        if spans is None or slot not in spans:
            continue
        literal = sum(1 for piece in pattern if isinstance(piece, str))
        values = {name: " ".join(words[a:b]) for name, (a, b) in spans.items()}
        if best is None or literal > best[0]:
            best = (literal, values)
    if best is not None:
        return best[1]
    return None if own else {slot: " ".join(words)}


def yes_or_no(model: InteractionModel, utterance: str) -> bool | None:
    """True for a yes, False for a no (Alexa understands both while confirming, whether
    or not the model declares AMAZON.YesIntent), None for anything else."""
    phrasings = BUILT_IN_PHRASINGS.get(model.locale.split("-")[0].lower(), BUILT_IN_PHRASINGS["en"])
    said = " ".join(normal(word) for word in spoken_words(utterance))
    for intent, answer in (("AMAZON.YesIntent", True), ("AMAZON.NoIntent", False)):
        samples = {
            *phrasings.get(intent, ()),
            *(model.intents.get(intent, IntentModel(intent)).samples),
        }
        if said in {" ".join(normal(w) for w in spoken_words(s)) for s in samples}:
            return answer
    return None


#: Intents a user can say in the middle of a dialog to leave it, as on a device.
ESCAPES = (
    "AMAZON.StopIntent",
    "AMAZON.CancelIntent",
    "AMAZON.HelpIntent",
    "AMAZON.NavigateHomeIntent",
)


def escape_intent(model: InteractionModel, utterance: str) -> str | None:
    """A built-in the model declares that the utterance says word for word ("stop")."""
    phrasings = BUILT_IN_PHRASINGS.get(model.locale.split("-")[0].lower(), BUILT_IN_PHRASINGS["en"])
    said = " ".join(normal(word) for word in spoken_words(utterance))
    for intent in ESCAPES:
        if intent not in model.intents:
            continue
        samples = (*phrasings.get(intent, ()), *model.intents[intent].samples)
        if said in {" ".join(normal(w) for w in spoken_words(s)) for s in samples}:
            return intent
    return None


def nearest_samples(model: InteractionModel, utterance: str, n: int = 3) -> list[tuple[str, str]]:
    """The samples that read most like the utterance (difflib ratio), best first."""
    spoken = " ".join(normal(w) for w in spoken_words(utterance))
    scored = []
    for intent, sample in intent_samples(model):
        text = " ".join(f"{{{p.slot}}}" if isinstance(p, _Hole) else p for p in _pattern(sample))
        ratio = difflib.SequenceMatcher(None, spoken, text).ratio()
        scored.append((ratio, intent, sample))
    scored.sort(key=lambda item: -item[0])
    return [(intent, sample) for _, intent, sample in scored[:n]]


def resolve(model: InteractionModel, intent: str, slot: str, value: str) -> Resolution | None:
    """Entity resolution for a custom-typed slot; None for built-in types or unknown slots."""
    intent_model = model.intents.get(intent)
    slot_type = intent_model.slots.get(slot) if intent_model else None
    if slot_type is None or slot_type not in model.types:
        return None
    return match(slot_type, model.types[slot_type], value)


# --- invocation phrases -----------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """What a full phrase asks for: open the skill, or ask it something (one-shot)."""

    launch: bool
    utterance: str


def strip_invocation(model: InteractionModel, utterance: str) -> Invocation:
    """Recognise "open <invocation name>" and "ask <invocation name> [to] ..."."""
    spoken = spoken_words(utterance)
    words = [normal(w) for w in spoken]
    skip = 1 if words[:1] == ["alexa"] else 0
    words = words[skip:]
    name = [normal(w) for w in spoken_words(model.invocation_name)]
    if not name:
        return Invocation(False, utterance)
    for opener in _OPENERS:
        if words == [*opener.split(), *name]:
            return Invocation(True, "")
    for asker in _ASKERS:
        if words[: 1 + len(name)] == [asker, *name]:
            rest = skip + 1 + len(name)
            if len(spoken) > rest + 1 and normal(spoken[rest]) in _CONNECTORS:
                rest += 1
            # The request keeps the words as typed: slot values keep their case.
            remainder = " ".join(spoken[rest:])
            return Invocation(not remainder, remainder)
    return Invocation(False, utterance)


# --- request envelopes ------------------------------------------------------


def _id(kind: str) -> str:
    return f"amzn1.{kind}.{uuid.uuid4()}"


def timestamp(now: datetime | None = None) -> str:
    """Alexa's request timestamp: ISO 8601, UTC, whole seconds, `Z`."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def api_endpoint(locale: str) -> str:
    # Alexa sends the regional API endpoint of the user's account.
    if locale in {"en-US", "en-CA", "es-US", "fr-CA", "pt-BR", "es-MX"}:
        return "https://api.amazonalexa.com"
    if locale in {"ja-JP", "en-AU", "en-IN", "hi-IN"}:
        return "https://api.fe.amazonalexa.com"
    return "https://api.eu.amazonalexa.com"


@dataclass
class SessionState:
    """What Alexa keeps for one conversation: ids, the `new` flag, session attributes."""

    application_id: str
    session_id: str = field(default_factory=lambda: _id("echo-api.session"))
    user_id: str = field(default_factory=lambda: "amzn1.ask.account." + _account())
    device_id: str = field(default_factory=lambda: "amzn1.ask.device." + _account())
    attributes: dict[str, Any] = field(default_factory=dict)
    new: bool = True


def _account() -> str:
    return uuid.uuid4().hex.upper() + uuid.uuid4().hex.upper()


def launch_request(locale: str, *, now: datetime | None = None) -> dict[str, Any]:
    return {
        "type": "LaunchRequest",
        "requestId": _id("echo-api.request"),
        "timestamp": timestamp(now),
        "locale": locale,
    }


def session_ended_request(
    locale: str, *, reason: str = "USER_INITIATED", now: datetime | None = None
) -> dict[str, Any]:
    return {
        "type": "SessionEndedRequest",
        "requestId": _id("echo-api.request"),
        "timestamp": timestamp(now),
        "locale": locale,
        "reason": reason,
    }


def intent_request(
    name: str,
    slots: Mapping[str, Any],
    locale: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """An IntentRequest; `slots` is Alexa's slot object map (see `alexa_slots`)."""
    return {
        "type": "IntentRequest",
        "requestId": _id("echo-api.request"),
        "timestamp": timestamp(now),
        "locale": locale,
        "intent": {"name": name, "confirmationStatus": "NONE", "slots": dict(slots)},
    }


def alexa_slots(
    model: InteractionModel | None,
    intent: str,
    values: Mapping[str, str],
    application_id: str,
) -> dict[str, Any]:
    """Slot objects as Alexa sends them: every declared slot, values with entity resolution.

    Declared slots the user did not fill still appear, without a value, as
    Alexa sends them.
    """
    declared = model.intents[intent].slots if model and intent in model.intents else {}
    return slot_objects(
        declared,
        values,
        lambda name, value: resolve(model, intent, name, value) if model else None,
        application_id,
    )


def envelope(
    request: Mapping[str, Any],
    session: SessionState,
    *,
    api_url: str | None = None,
    api_token: str | None = None,
) -> dict[str, Any]:
    """The complete request envelope around `request`, for the session's state.

    `api_url` and `api_token` (`apiEndpoint`, `apiAccessToken`) stand in for Alexa's
    API: the tools' local one (funker_dispatch/devtools/alexa_api.py). Without them the
    regional endpoint is named and no token is sent, so no progressive response can be
    posted anywhere.
    """
    application = {"applicationId": session.application_id}
    user = {"userId": session.user_id}
    system: dict[str, Any] = {
        "application": dict(application),
        "user": dict(user),
        "device": {"deviceId": session.device_id, "supportedInterfaces": {}},
        "apiEndpoint": api_url or api_endpoint(str(request.get("locale", ""))),
    }
    if api_token is not None:
        system["apiAccessToken"] = api_token
    return {
        "version": ENVELOPE_VERSION,
        "session": {
            "new": session.new,
            "sessionId": session.session_id,
            "application": application,
            "attributes": dict(session.attributes),
            "user": user,
        },
        "context": {"System": system},
        "request": dict(request),
    }


def encode(data: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def undeclared_slots(model: InteractionModel, intent: str, values: Mapping[str, str]) -> list[str]:
    """Slots given for a modelled intent that it does not declare (Alexa never sends them)."""
    declared = model.intents[intent].slots if intent in model.intents else None
    if declared is None:
        return []
    return [name for name in values if name not in declared]


def parse_slot_flags(flags: Iterable[str]) -> dict[str, str]:
    """`--slot name=Ada` flags as a slot map; ValueError names the bad flag."""
    slots = {}
    for flag in flags:
        name, sep, value = flag.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--slot {flag!r}: expected NAME=VALUE")
        slots[name.strip()] = value.strip()
    return slots
