"""CanFulfillIntentRequest answered from the interaction model and the routing table.

Alexa asks before any session whether the skill could serve an intent with
the slots it heard (name-free interaction); the answer must not act on
anything. Without a route keyed `CanFulfillIntentRequest` (whose function
would answer instead), the dispatcher answers itself, by this rule:

- NO for an intent the request's model does not have, one nothing routes, or
  a slot the intent does not declare (that slot: canUnderstand NO);
- otherwise YES, each slot canUnderstand YES when its value is one of its
  custom type's values or synonyms (or the type is built-in, AMAZON.*), and
  MAYBE when it is not among them (the function may still take it): then
  the intent is MAYBE too. A slot the skill understands it can fulfill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatch.registry import NoRoute, Router
from skill.models import LanguageModel, spoken

YES, NO, MAYBE = "YES", "NO", "MAYBE"


def can_fulfill(
    models: Mapping[str, LanguageModel],
    router: Router,
    intent: str,
    slots: Mapping[str, str | None],
    locale: str | None,
) -> dict[str, Any]:
    """The `canFulfillIntent` object (Alexa's JSON shape) for `intent` heard with `slots`."""
    model = _model(models, locale)
    declared = model.slots.get(intent) if model is not None else None
    if declared is None or not _routed(router, intent):
        return refusal(slots)
    answers = {}
    for name, value in slots.items():
        slot_type = declared.get(name)
        if slot_type is None:
            answers[name] = {"canUnderstand": NO, "canFulfill": NO}
            continue
        known = model.values.get(slot_type) if model is not None else None
        understood = YES if known is None or value is None or spoken(value) in known else MAYBE
        answers[name] = {"canUnderstand": understood, "canFulfill": YES}
    verdicts = {answer["canUnderstand"] for answer in answers.values()}
    overall = NO if NO in verdicts else MAYBE if MAYBE in verdicts else YES
    return {"canFulfill": overall, "slots": answers}


def refusal(slots: Mapping[str, Any]) -> dict[str, Any]:
    """NO, every slot NO: the answer when the skill cannot serve it (or its function failed)."""
    return {
        "canFulfill": NO,
        "slots": {name: {"canUnderstand": NO, "canFulfill": NO} for name in slots},
    }


def _model(models: Mapping[str, LanguageModel], locale: str | None) -> LanguageModel | None:
    if locale in models:
        return models[locale]
    language = (locale or "").split("-")[0].lower()
    return next((m for name, m in models.items() if name.split("-")[0].lower() == language), None)


def _routed(router: Router, intent: str) -> bool:
    try:
        router.resolve(intent)
    except NoRoute:
        return False
    return True
