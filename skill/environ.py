"""What the server tells the Flask app about a request, beside the WSGI environ's own keys.

The server's bridge (`funker_dispatch/server/bridge.py`) reads each body
before the app runs, on its own terms (a cap, a budget, a deadline, checks
on the headers), and hands the app what it learnt in these environ keys; the
event view hands the bridge, the other way, what it checks before a body is
read and which paths are deliveries. Both sides import this module, which
imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Environ key carrying why the body could not be read: (error code, HTTP status, message).
BODY_ERROR = "funker_dispatch.body_error"
#: Environ key: `time.monotonic()` when the request's head had arrived (deadlines start there).
ARRIVED = "funker_dispatch.arrived"
#: Environ key: the digest of the path's `BodyCheck` hash, fed with the body as it arrived.
BODY_DIGEST = "funker_dispatch.body_digest"
#: Environ key set when a `BodyCheck` refused the headers: the body was never read.
BODY_UNREAD = "funker_dispatch.body_unread"


@dataclass(frozen=True)
class BodyFailure:
    """Why a body could not be read: the error code, the HTTP status and the client's message."""

    error: str
    status: int
    message: str


class BodyHash(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


#: Per path: the request headers -> False when they alone refuse the request (the body is
#: never read; the app answers the refusal, seeing BODY_UNREAD), True to read the body, or a
#: hash to feed the body into as it arrives (its digest reaches the app as BODY_DIGEST).
BodyCheck = Callable[[Any], "BodyHash | bool"]


@dataclass(frozen=True)
class EventAdmission:
    """Paths whose requests run on `threads` of their own, never on Alexa's.

    Their bodies draw on `body_budget` bytes of their own too. When all the
    threads are busy a request is answered 503 at once (senders retry);
    `refused(path)` then writes its log line and metric.
    """

    paths: frozenset[str]
    threads: int
    body_budget: int
    refused: Callable[[str], None] = field(default=lambda path: None)
