"""Funker function: remembers the CloudWatch alarms SNS delivers, and says how they stand.

One process, two faces. The dispatcher sends it every alarm state change
(an `[events.alarms]` rule with `source = "cloudwatch"`: docs/events/sns.md's
payload, `{"trigger": "cloudwatch", "event": <the alarm>, ...}`), and when
someone asks Alexa "what is the alarm status", the AlarmStatusIntent request:

    The alarm HighCPU went to ALARM four minutes ago: Threshold Crossed.

State is this process's memory: the latest change of each alarm (at most
`MAX_ALARMS`), forgotten on restart. With several replicas each would
remember only the events it was sent, so the stack runs one. Events are
idempotent on the alarm's state-change time, so SNS's retries and
redeliveries change nothing.

Run: python examples/functions/alarms/function.py --port 9105
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_ALARMS = 100
#: Other alarms still not OK named after the latest, at most.
MAX_OTHERS = 3
NONE_YET = "No alarm has been reported yet."


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str
    reason: str
    changed: datetime


class Alarms:
    """The latest state change per alarm, safe for serve()'s one thread per request."""

    def __init__(self, limit: int = MAX_ALARMS) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._latest: dict[str, Alarm] = {}

    def remember(self, alarm: Alarm) -> None:
        with self._lock:
            known = self._latest.get(alarm.name)
            if known is not None and known.changed > alarm.changed:
                return  # a late retry of an older change must not undo a newer one
            self._latest[alarm.name] = alarm
            while len(self._latest) > self.limit:
                oldest = min(self._latest.values(), key=lambda a: a.changed)
                del self._latest[oldest.name]

    def newest_first(self) -> list[Alarm]:
        with self._lock:
            return sorted(self._latest.values(), key=lambda a: a.changed, reverse=True)


ALARMS = Alarms()


def alarm_from_event(payload: dict[str, Any]) -> Alarm | None:
    """The alarm in a cloudwatch event payload, or None when it carries none."""
    alarm = payload.get("event")
    if not isinstance(alarm, dict):
        return None
    name, state = alarm.get("AlarmName"), alarm.get("NewStateValue")
    if not isinstance(name, str) or not isinstance(state, str) or not name:
        return None
    reason = alarm.get("NewStateReason")
    changed = _time(alarm.get("StateChangeTime")) or _time(payload.get("time"))
    return Alarm(
        name, state, reason if isinstance(reason, str) else "", changed or datetime.now(UTC)
    )


def status(alarms: list[Alarm], now: datetime) -> dict[str, Any]:
    """The spoken answer to AlarmStatusIntent, newest change first."""
    if not alarms:
        return {"speech": NONE_YET, "card": {"title": "Alarms", "content": NONE_YET}}
    latest = alarms[0]
    speech = f"The alarm {latest.name} went to {latest.state} {ago(latest.changed, now)}" + (
        f": {short_reason(latest.reason)}." if latest.reason else "."
    )
    others = [a.name for a in alarms[1:] if a.state != "OK"][:MAX_OTHERS]
    if others:
        verb = "is" if len(others) == 1 else "are"
        speech += f" {_join(others)} {verb} not OK either."
    card = "\n".join(
        f"{a.name}: {a.state} since {a.changed:%Y-%m-%d %H:%M} UTC. {a.reason}" for a in alarms
    )
    return {"speech": speech, "card": {"title": "Alarms", "content": card.strip()}}


def short_reason(reason: str) -> str:
    """What is worth saying of CloudWatch's NewStateReason: its headline, before the detail.

    "Threshold Crossed: 1 out of the last 1 datapoints [92.5 ...] was greater
    than ..." is spoken as "Threshold Crossed"; the card has it all.
    """
    head = reason.split(":", 1)[0].strip()
    if 0 < len(head) <= 60:
        return head
    return reason[:120].rsplit(" ", 1)[0] + "…" if len(reason) > 120 else reason


def ago(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 60:
        return "less than a minute ago"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{number(count)} {unit}{'' if count == 1 else 's'} ago"
    return "just now"  # not reached


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number(n: int) -> str:
    """0-99 in words ("four", "twenty-one"), digits beyond: it is spoken, not read."""
    if 0 <= n < 20:
        return _ONES[n]
    if 20 <= n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    return str(n)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # "2030-06-01T11:59:00.000+0000" included
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def handle(payload: Any) -> Any:
    if isinstance(payload, dict) and "trigger" in payload:  # an event from the dispatcher
        alarm = alarm_from_event(payload) if payload.get("trigger") == "cloudwatch" else None
        if alarm is None:
            return {"remembered": None}
        ALARMS.remember(alarm)
        return {"remembered": alarm.name}
    return status(ALARMS.newest_first(), datetime.now(UTC))  # AlarmStatusIntent (or any ask)


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `handle` can be imported and tested without the protocol layer.
    from dispatch.funker import run

    run(handle, argv, description="Funker function: CloudWatch alarms, remembered and spoken.")


if __name__ == "__main__":
    main()
