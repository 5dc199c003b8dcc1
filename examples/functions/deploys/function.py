"""Funker function: remembers the pushes GitHub reports, and says which was the last.

One process, two faces. The dispatcher sends it every push a GitHub webhook
delivers (an `[events.deploys]` rule with `source = "github"` and `event =
"push"`: docs/events/eventbridge-github.md's payload, `{"trigger": "github", "event": <the push as
GitHub sent it>, "attributes": {"event": "push", ...}}`), and when someone
asks Alexa "what was the last deploy", the LastDeployIntent request:

    The last push to acme/site main was by baxterthehacker: Update README.md.

State is this process's memory: the last `MAX_PUSHES` pushes, forgotten on
restart; with several replicas each would remember only its own share, so
the stack runs one. Pushes are idempotent on the delivery id (the payload's
`id`, GitHub's X-GitHub-Delivery): a redelivery from GitHub's UI, or a
replay, never becomes "the last push" again. Other events it is sent (the
embedded default also points its example EventBridge and DynamoDB rules
here, so `events send` has a function to reach) are answered and forgotten.

Run: python examples/functions/deploys/function.py --port 9107
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_PUSHES = 100
#: A commit message is spoken up to this many characters (its first line; the card has it all).
MAX_SPOKEN = 160
NONE_YET = "No push has been reported yet."


@dataclass(frozen=True)
class Push:
    id: str
    repository: str
    ref: str
    pusher: str
    message: str  # the head commit's whole message; "" when the push deleted the ref
    commit: str
    commits: int
    deleted: bool
    compare: str
    at: datetime

    @property
    def branch(self) -> str:
        """What is spoken for the ref: "main" for refs/heads/main, "tag v1.2" for a tag."""
        if self.ref.startswith("refs/heads/"):
            return self.ref.removeprefix("refs/heads/")
        if self.ref.startswith("refs/tags/"):
            return "tag " + self.ref.removeprefix("refs/tags/")
        return self.ref


class Deploys:
    """The pushes seen, in the order first seen, bounded; safe for serve()'s threads."""

    def __init__(self, limit: int = MAX_PUSHES) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._pushes: OrderedDict[str, Push] = OrderedDict()

    def remember(self, push: Push) -> bool:
        """True when `push` is new; a delivery id seen before changes nothing."""
        with self._lock:
            if push.id in self._pushes:
                return False
            self._pushes[push.id] = push
            while len(self._pushes) > self.limit:
                self._pushes.popitem(last=False)
            return True

    def last(self) -> Push | None:
        with self._lock:
            return next(reversed(self._pushes.values()), None)


DEPLOYS = Deploys()


def push_from_event(payload: dict[str, Any]) -> Push | None:
    """The push in a github event payload, or None when it is not one."""
    attributes = payload.get("attributes")
    push = payload.get("event")
    if not isinstance(attributes, dict) or attributes.get("event") != "push":
        return None
    if not isinstance(push, dict) or not isinstance(payload.get("id"), str):
        return None
    repository = _get(push, "repository", "full_name")
    if not repository:
        return None
    head = push.get("head_commit") if isinstance(push.get("head_commit"), dict) else {}
    commits = push.get("commits")
    return Push(
        id=payload["id"],
        repository=repository,
        ref=_get(push, "ref"),
        pusher=_get(push, "pusher", "name") or _get(push, "sender", "login") or "someone",
        message=_get(head, "message"),
        commit=_get(head, "id")[:7],
        commits=len(commits) if isinstance(commits, list) else 0,
        deleted=push.get("deleted") is True,
        compare=_get(push, "compare"),
        at=_time(payload.get("time")) or datetime.now(UTC),
    )


def last_deploy(push: Push | None) -> dict[str, Any]:
    """The spoken answer to LastDeployIntent."""
    if push is None:
        return {"speech": NONE_YET, "card": {"title": "Last deploy", "content": NONE_YET}}
    where = f"{push.repository} {push.branch}"
    if push.deleted:
        speech = f"The last push, by {push.pusher}, deleted {where}."
    elif push.message:
        speech = f"The last push to {where} was by {push.pusher}: {spoken(push.message)}"
    else:
        speech = f"The last push to {where} was by {push.pusher}."
    lines = [
        f"{push.repository} {push.ref}, pushed by {push.pusher}",
        f"{push.commit} {push.message}".strip(),
        f"{push.commits} commit{'' if push.commits == 1 else 's'}, "
        f"received {push.at:%Y-%m-%d %H:%M} UTC",
        push.compare,
    ]
    card = "\n".join(line for line in lines if line)
    return {"speech": speech, "card": {"title": "Last deploy", "content": card}}


def spoken(message: str) -> str:
    """A commit message as said aloud: its first line, not too long, ending a sentence."""
    first = message.strip().splitlines()[0].strip() if message.strip() else ""
    if len(first) > MAX_SPOKEN:
        first = first[:MAX_SPOKEN].rsplit(" ", 1)[0] + "…"
    return first if first.endswith((".", "!", "?", "…")) else first + "."


def _get(value: Any, *path: str) -> str:
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return value if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)  # "2026-12-01T09:14:05.532Z" included
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def handle(payload: Any) -> Any:
    if isinstance(payload, dict) and "trigger" in payload:  # an event from the dispatcher
        push = push_from_event(payload) if payload.get("trigger") == "github" else None
        if push is None:
            return {"remembered": None}
        return {"remembered": push.id if DEPLOYS.remember(push) else None}
    return last_deploy(DEPLOYS.last())  # LastDeployIntent (or any ask)


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `handle` can be imported and tested without the protocol layer.
    from dispatch.funker import run

    run(handle, argv, description="Funker function: GitHub pushes, remembered and spoken.")


if __name__ == "__main__":
    main()
