"""Funker function: how many Docker Captains there are, answered as data.

It returns `{"total_captains": N}` and leaves the words to the dispatcher's
route template (`speech = "There are {total_captains} Docker captains."`), so
the sentence can change, or be translated, without touching the function.

Its handler is written the way Python funker 0.0.1 handlers were: fixed
keyword parameters (`handle(session, request, version)`), called as
`func(**payload)`. Such a handler rejects keys it does not name, such as
`context`, which is why its route narrows the payload with
`arguments = ["session", "request", "version"]`. `takes_keywords` adapts it to
`dispatch.funker.serve`, which calls `handler(payload)`.

Run: python examples/functions/captains/function.py --port 9104
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROSTER = Path(__file__).resolve().with_name("captains.txt")


def takes_keywords(func: Callable[..., Any]) -> Callable[[dict[str, Any]], Any]:
    """Let a funker-0.0.1-style handler (`func(**payload)`) be served as `handler(payload)`.

    The original stays reachable as `.__wrapped__`.
    """

    @functools.wraps(func)
    def handler(payload: dict[str, Any]) -> Any:
        if not isinstance(payload, dict):
            raise TypeError(
                f"{func.__name__} takes keyword arguments: the payload must be an object"
            )
        # Unknown keys (an un-narrowed payload's `context`) raise TypeError here,
        # exactly as they did under funker 0.0.1.
        return func(**payload)

    return handler


def count_captains(roster: Path = ROSTER) -> int:
    # One name a line; blank lines and '#' comments do not count.
    lines = roster.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


@takes_keywords
def handle(session: dict[str, Any] | None, request: dict[str, Any], version: str) -> dict[str, int]:
    # The count does not depend on who asks; the parameters are the contract
    # the route's `arguments` promises, so they are named even though unused.
    return {"total_captains": count_captains()}


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `handle` can be imported and tested without the protocol layer.
    from dispatch.funker import run

    run(handle, argv, description="Funker function: count Docker Captains.")


if __name__ == "__main__":
    main()
