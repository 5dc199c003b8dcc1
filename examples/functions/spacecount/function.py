"""Funker function: how many people are in space, answered as a full Alexa response envelope.

This is the seed function of the original prototype, kept in its old answer
shape (a complete `{"version": "1.0", "response": {...}}` envelope) so the
dispatcher's pass-through of full envelopes has a living example.

The count comes from `people-in-space.json` beside this file (a snapshot in
the shape of open-notify's astros.json). Set `SPACECOUNT_URL` to ask a live
service of that shape instead; any failure there falls back to the snapshot,
because a stale number is a better answer than an apology.

`SPACECOUNT_DELAY` (seconds, default 0) makes every answer take that long, as
the original's remote API did: the embedded default sets 2, so a developer
hears the dispatcher's progressive response ("One moment.") before the answer.

Run: python examples/functions/spacecount/function.py --port 9101
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).resolve().with_name("people-in-space.json")
LIVE_URL_ENV = "SPACECOUNT_URL"
# Well inside the dispatcher's deadline (6.5 s), leaving room for the fallback answer.
LIVE_TIMEOUT = 2.0
DELAY_ENV = "SPACECOUNT_DELAY"
# Past the dispatcher's deadline a delay only demonstrates the apology.
MAX_DELAY = 30.0


def delay_seconds(environ: dict[str, str] | None = None) -> float:
    """`SPACECOUNT_DELAY` in seconds (0 when unset); ValueError when it is not 0 to 30."""
    text = (os.environ if environ is None else environ).get(DELAY_ENV, "").strip()
    if not text:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{DELAY_ENV}={text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY:
        raise ValueError(f"{DELAY_ENV}={text!r} must be from 0 to {MAX_DELAY:g} seconds")
    return seconds


def pause(seconds: float) -> None:
    # An Event nobody sets: a wait that a test can replace, unlike time.sleep in a handler.
    threading.Event().wait(seconds)


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, Any]:
    return _checked(json.loads(path.read_text(encoding="utf-8")))


def fetch_live(url: str, timeout: float = LIVE_TIMEOUT) -> dict[str, Any]:
    # The URL is the operator's own setting, never taken from a request.
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return _checked(json.load(reply))


def _checked(astros: Any) -> dict[str, Any]:
    # A live service may answer anything; only the astros.json shape is spoken.
    if not isinstance(astros, dict) or astros.get("message") != "success":
        raise ValueError("not a successful astros.json answer")
    people = astros.get("people")
    if not isinstance(people, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in people
    ):
        raise ValueError("astros.json 'people' is not a list of named people")
    number = astros.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise ValueError("astros.json 'number' is not a count")
    return astros


def people_in_space() -> dict[str, Any]:
    url = os.environ.get(LIVE_URL_ENV)
    if url:
        try:
            return fetch_live(url)
        except Exception as exc:  # any failure: timeout, DNS, HTTP error, bad JSON, bad shape
            print(
                f"spacecount: {url} failed ({exc!r}); answering from the snapshot", file=sys.stderr
            )
    return load_snapshot()


def crews(people: list[dict[str, Any]]) -> str:
    """One line per craft, in the order the crafts first appear: "ISS: A, B"."""
    by_craft: dict[str, list[str]] = {}
    for person in people:
        by_craft.setdefault(str(person.get("craft") or "Unknown craft"), []).append(person["name"])
    return "\n".join(f"{craft}: {', '.join(names)}" for craft, names in by_craft.items())


def speech(number: int) -> str:
    if number == 1:
        return "There is 1 person in space right now."
    return f"There are {number} people in space right now."


def handle(payload: dict[str, Any]) -> dict[str, Any]:
    """Answer any request (the payload is not needed) with a complete Alexa response."""
    delay = delay_seconds()
    if delay:
        pause(delay)  # slow on purpose, like the remote API the original asked
    astros = people_in_space()
    return {
        "version": "1.0",
        "response": {
            "outputSpeech": {"type": "PlainText", "text": speech(astros["number"])},
            "card": {
                "type": "Simple",
                "title": "People in space",
                "content": crews(astros["people"]),
            },
            "shouldEndSession": True,
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `handle` can be imported and tested without the protocol layer.
    from dispatch.funker import run

    try:
        delay_seconds()  # a bad setting fails at start, not at the first request
    except ValueError as exc:
        raise SystemExit(f"spacecount: {exc}") from None
    run(handle, argv, description="Funker function: people in space.")


if __name__ == "__main__":
    main()
