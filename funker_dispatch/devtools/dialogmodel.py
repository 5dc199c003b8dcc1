"""The dialog model, as Alexa runs it: required slots elicited with their prompts, slots and
intents confirmed, `dialogState` STARTED → IN_PROGRESS → COMPLETED.

The interaction model's `dialog` (per intent: its slots' `elicitationRequired`,
`confirmationRequired` and prompt ids, the intent's own confirmation, the delegation
strategy) and `prompts` (id → variations) are read here; `DialogProgress` is one dialog
under way in a session: what is filled and confirmed, and what Alexa is waiting for. The
conversation (conversation.py) asks it what to send and hands it each answer's Dialog
directive (Delegate, ElicitSlot, ConfirmSlot, ConfirmIntent).

Where Amazon's behaviour has a choice the simulator must make, it is deterministic: a
prompt's first variation is spoken; a skill or intent that names no
`delegationStrategy` is delegated by its own responses (SKILL_RESPONSE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STARTED, IN_PROGRESS, COMPLETED = "STARTED", "IN_PROGRESS", "COMPLETED"
ALWAYS, SKILL_RESPONSE = "ALWAYS", "SKILL_RESPONSE"
NONE, CONFIRMED, DENIED = "NONE", "CONFIRMED", "DENIED"


@dataclass(frozen=True)
class SlotDialog:
    name: str
    elicitation_required: bool = False
    confirmation_required: bool = False
    elicitation_prompt: str | None = None  # a prompt id
    confirmation_prompt: str | None = None


@dataclass(frozen=True)
class IntentDialog:
    name: str
    delegation: str = SKILL_RESPONSE
    confirmation_required: bool = False
    confirmation_prompt: str | None = None
    slots: tuple[SlotDialog, ...] = ()

    def slot(self, name: str) -> SlotDialog | None:
        return next((slot for slot in self.slots if slot.name == name), None)


@dataclass(frozen=True)
class DialogModel:
    """The `dialog` and `prompts` of one locale's interaction model (empty when it has none)."""

    intents: Mapping[str, IntentDialog] = field(default_factory=dict)
    prompts: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, dialog: Any, prompts: Any) -> DialogModel:
        """From the interactionModel's `dialog` and `prompts`; what is malformed is left out
        (`models check` is where a model's errors are reported)."""
        dialog = dialog if isinstance(dialog, dict) else {}
        skill_strategy = dialog.get("delegationStrategy") or SKILL_RESPONSE
        intents = {}
        for intent in dialog.get("intents") or []:
            if not isinstance(intent, dict) or not isinstance(intent.get("name"), str):
                continue
            slots = tuple(
                SlotDialog(
                    slot["name"],
                    bool(slot.get("elicitationRequired")),
                    bool(slot.get("confirmationRequired")),
                    (slot.get("prompts") or {}).get("elicitation"),
                    (slot.get("prompts") or {}).get("confirmation"),
                )
                for slot in intent.get("slots") or []
                if isinstance(slot, dict) and isinstance(slot.get("name"), str)
            )
            intents[intent["name"]] = IntentDialog(
                intent["name"],
                intent.get("delegationStrategy") or skill_strategy,
                bool(intent.get("confirmationRequired")),
                (intent.get("prompts") or {}).get("confirmation"),
                slots,
            )
        variations = {
            prompt["id"]: tuple(v for v in prompt.get("variations") or [] if isinstance(v, dict))
            for prompt in prompts or []
            if isinstance(prompt, dict) and isinstance(prompt.get("id"), str)
        }
        return cls(intents, variations)

    def speak(self, prompt_id: str | None, slots: Mapping[str, str | None]) -> dict[str, Any]:
        """The outputSpeech Alexa says for a prompt: its first variation, `{slot}` filled."""
        variation = (self.prompts.get(prompt_id or "") or ({},))[0]
        kind = "SSML" if variation.get("type") == "SSML" else "PlainText"
        text = str(variation.get("value") or "")
        for name, value in slots.items():
            text = text.replace("{" + name + "}", value or "")
        if kind == "SSML":
            return {"type": "SSML", "ssml": text}
        return {"type": "PlainText", "text": text}


@dataclass
class Waiting:
    """What Alexa asked the user and waits for: a slot's value, or a yes or a no."""

    kind: str  # "elicit" | "confirm-slot" | "confirm-intent"
    slot: str | None = None


@dataclass
class DialogProgress:
    """One dialog under way: the intent, its slots as filled so far, what Alexa waits for."""

    intent: str
    dialog: IntentDialog | None
    values: dict[str, str | None] = field(default_factory=dict)
    slot_confirmations: dict[str, str] = field(default_factory=dict)
    confirmation: str = NONE
    state: str = STARTED
    waiting: Waiting | None = None

    def fill(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self.values[name] = value
            self.slot_confirmations[name] = NONE  # a new value is unconfirmed again

    def update(self, intent: Any) -> None:
        """A directive's `updatedIntent`: its slots and confirmations replace ours."""
        if not isinstance(intent, dict):
            return
        if isinstance(intent.get("confirmationStatus"), str):
            self.confirmation = intent["confirmationStatus"]
        for name, slot in (intent.get("slots") or {}).items():
            if not isinstance(slot, dict):
                continue
            self.values[name] = slot.get("value") if isinstance(slot.get("value"), str) else None
            status = slot.get("confirmationStatus")
            self.slot_confirmations[name] = status if isinstance(status, str) else NONE

    def answer(self, confirmed: bool) -> None:
        """The user's yes or no to what Alexa asked them to confirm."""
        assert self.waiting is not None
        status = CONFIRMED if confirmed else DENIED
        if self.waiting.kind == "confirm-slot" and self.waiting.slot:
            self.slot_confirmations[self.waiting.slot] = status
        else:
            self.confirmation = status
        self.waiting = None

    def next_step(self) -> Waiting | None:
        """What Alexa asks next by the dialog model; None when the dialog is complete."""
        dialog = self.dialog
        if dialog is None:
            return None
        for slot in dialog.slots:
            if slot.elicitation_required and not self.values.get(slot.name):
                return Waiting("elicit", slot.name)
        for slot in dialog.slots:
            if (
                slot.confirmation_required
                and self.values.get(slot.name)
                and self.slot_confirmations.get(slot.name, NONE) == NONE
            ):
                return Waiting("confirm-slot", slot.name)
        if dialog.confirmation_required and self.confirmation == NONE:
            return Waiting("confirm-intent")
        return None

    def prompt_id(self, step: Waiting) -> str | None:
        dialog = self.dialog
        if dialog is None:
            return None
        if step.kind == "confirm-intent":
            return dialog.confirmation_prompt
        slot = dialog.slot(step.slot or "")
        if slot is None:
            return None
        return slot.elicitation_prompt if step.kind == "elicit" else slot.confirmation_prompt


def progress_json(progress: DialogProgress | None) -> dict[str, Any] | None:
    """A dialog under way as the console's page keeps it between turns."""
    if progress is None:
        return None
    return {
        "intent": progress.intent,
        "values": progress.values,
        "slot_confirmations": progress.slot_confirmations,
        "confirmation": progress.confirmation,
        "state": progress.state,
        "waiting": None
        if progress.waiting is None
        else {"kind": progress.waiting.kind, "slot": progress.waiting.slot},
    }


def progress_from_json(given: Any, model: DialogModel) -> DialogProgress | None:
    """A dialog from the page, checked field by field; anything unusable is no dialog."""
    if not isinstance(given, dict) or not isinstance(given.get("intent"), str):
        return None
    progress = DialogProgress(given["intent"], model.intents.get(given["intent"]))
    values = given.get("values")
    if isinstance(values, dict):
        progress.values = {
            k: v for k, v in values.items() if isinstance(k, str) and isinstance(v, str | None)
        }
    confirmations = given.get("slot_confirmations")
    if isinstance(confirmations, dict):
        progress.slot_confirmations = {
            k: v for k, v in confirmations.items() if v in (NONE, CONFIRMED, DENIED)
        }
    if given.get("confirmation") in (NONE, CONFIRMED, DENIED):
        progress.confirmation = given["confirmation"]
    if given.get("state") in (STARTED, IN_PROGRESS, COMPLETED):
        progress.state = given["state"]
    waiting = given.get("waiting")
    if isinstance(waiting, dict) and waiting.get("kind") in (
        "elicit",
        "confirm-slot",
        "confirm-intent",
    ):
        slot = waiting.get("slot")
        progress.waiting = Waiting(waiting["kind"], slot if isinstance(slot, str) else None)
    return progress
