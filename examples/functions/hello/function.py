"""Funker function: greets the person named in HelloIntent's `name` slot (short answer form).

Without a name it asks for one with Dialog.ElicitSlot, keeping the session open
(a reprompt does that) and remembering in the session attributes that it asked:
Alexa then takes the user's next words ("Ada") as the slot's value and sends
HelloIntent again in the same session.

Run: python examples/functions/hello/function.py --port 9102
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ASK_FOR_NAME = "Who should I say hello to?"


def name_slot(payload: dict[str, Any]) -> str | None:
    """The spoken name, canonical when entity resolution matched one of FriendName's values.

    "Amazing Grace" is a synonym of Grace: the resolved canonical value is
    what we greet, the raw `value` only when resolution found no match.
    """
    request = payload.get("request")
    intent = request.get("intent") if isinstance(request, dict) else None
    slots = intent.get("slots") if isinstance(intent, dict) else None
    slot = slots.get("name") if isinstance(slots, dict) else None
    if not isinstance(slot, dict):
        return None
    canonical = _resolved_name(slot)
    if canonical:
        return canonical
    value = slot.get("value")
    return (value.strip() or None) if isinstance(value, str) else None


def _resolved_name(slot: dict[str, Any]) -> str | None:
    try:
        authority = slot["resolutions"]["resolutionsPerAuthority"][0]
        if authority["status"]["code"] != "ER_SUCCESS_MATCH":
            return None
        name = authority["values"][0]["value"]["name"]
    except (KeyError, IndexError, TypeError):
        return None
    return (name.strip() or None) if isinstance(name, str) else None


def handle(payload: dict[str, Any]) -> dict[str, Any]:
    name = name_slot(payload if isinstance(payload, dict) else {})
    if name is None:
        # A reprompt keeps the session open (end_session defaults to false with one).
        return {
            "speech": f"Hello! {ASK_FOR_NAME}",
            "reprompt": ASK_FOR_NAME,
            "session_attributes": {"asked_name": True},
            "directives": [{"type": "Dialog.ElicitSlot", "slotToElicit": "name"}],
        }
    greeting = f"Hello, {name}!"
    return {"speech": greeting, "card": {"title": "Hello", "content": greeting}}


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `handle` can be imported and tested without the protocol layer.
    from dispatch.funker import run

    run(handle, argv, description="Funker function: say hello.")


if __name__ == "__main__":
    main()
