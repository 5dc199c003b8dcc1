"""The one place where "these rules matched" becomes "these functions ran", and what is remembered.

Every matched (event, rule) pair is called in parallel through
`dispatch.funker.call`, each within the endpoint's deadline (a rule's
`timeout` only shortens it), all of them within one deadline for the whole
delivery, so the answer reaches the sender before it gives up.

What succeeded is remembered per event id for `max_age` seconds, so the
sender's retry of a delivery where one rule failed re-runs only that rule,
and a redelivered message runs nothing twice. The memory is per process and
bounded (`MAX_IDS`, oldest dropped): with several workers or replicas a retry
may land elsewhere and run a rule again. Delivery is at-least-once; functions
are idempotent on the event id.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dispatch import funker
from dispatch.funker import FunctionError
from triggers.events import Event, payload
from triggers.rules import Rule

#: Event ids remembered per process, at most (docs/events/index.md).
MAX_IDS = 10_000
#: Function calls in flight at once from one process's fan-outs; the rest queue in the deadline.
MAX_WORKERS = 32

OK, FAILED, DUPLICATE = "ok", "failed", "duplicate"

Call = Callable[..., Any]


@dataclass(frozen=True)
class Fired:
    """One rule for one event: ran (ok or failed, how long) or was already done (duplicate)."""

    rule: str
    source: str
    id: str
    outcome: str  # ok | failed | duplicate
    reason: str | None = None  # the FunctionError kind, or why it was a duplicate
    function_ms: float | None = None
    function: str = ""  # host:port, for the operator log
    # The function's answer: neither returned to the sender nor logged (docs/events/index.md); only
    # the console's trace shows it (docs/console.md).
    answer: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.rule, "outcome": self.outcome, "reason": self.reason, "id": self.id}


@dataclass
class _Seen:
    expires: float
    succeeded: set[str] = field(default_factory=set)
    running: set[str] = field(default_factory=set)


class Memory:
    """Which rules succeeded (or are running) per event id, for `max_age` seconds, bounded."""

    def __init__(
        self,
        max_age: float,
        *,
        max_ids: int = MAX_IDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age = max_age
        self.max_ids = max_ids
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, _Seen] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def claim(self, event_id: str, rule: str) -> str | None:
        """None when `rule` should run for `event_id` now (it is marked running); else why not."""
        now = self._clock()
        with self._lock:
            seen = self._seen.get(event_id)
            if seen is not None and seen.expires <= now:
                del self._seen[event_id]
                seen = None
            if seen is None:
                seen = self._seen[event_id] = _Seen(now + self.max_age)
                self._forget_oldest()
            if rule in seen.succeeded:
                return "already-succeeded"
            if rule in seen.running:
                return "in-flight"  # a concurrent redelivery; the first one answers for it
            seen.running.add(rule)
            return None

    def done(self, event_id: str, rule: str, *, succeeded: bool) -> None:
        with self._lock:
            seen = self._seen.get(event_id)
            if seen is None:  # dropped for room meanwhile: a success is still worth keeping
                if not succeeded:
                    return
                seen = self._seen[event_id] = _Seen(self._clock() + self.max_age)
                self._forget_oldest()
            seen.running.discard(rule)
            if succeeded:
                seen.succeeded.add(rule)

    def _forget_oldest(self) -> None:
        while len(self._seen) > self.max_ids:
            self._seen.popitem(last=False)


class Fanout:
    """Run matched rules' functions in parallel, each once per event id as far as we know."""

    def __init__(
        self,
        deadline: float,
        memory: Memory,
        *,
        max_response_bytes: int = funker.DEFAULT_MAX_RESPONSE_BYTES,
        call: Call = funker.call,
    ) -> None:
        self.deadline = deadline
        self.memory = memory
        self._max_response_bytes = max_response_bytes
        self._call = call

    def fire(
        self, pairs: Sequence[tuple[Event, Rule]], *, arrived: float | None = None
    ) -> list[Fired]:
        """Call each pair's function (in parallel) and return one Fired per pair, in order.

        The deadline counts from `arrived` (`time.monotonic()` when the delivery
        came in; now when not given): the sender's timeout started then.
        """
        deadline = (time.monotonic() if arrived is None else arrived) + self.deadline
        if len(pairs) == 1:  # the common case: no thread hand-off
            event, rule = pairs[0]
            return [self._one(event, rule, deadline)]
        pool = _executor()
        futures: list[Future[Fired]] = [
            pool.submit(self._one, event, rule, deadline) for event, rule in pairs
        ]
        return [future.result() for future in futures]  # each call is bounded by the deadline

    def _one(self, event: Event, rule: Rule, deadline: float) -> Fired:
        route = rule.route
        where = f"{route.host}:{route.port}"
        already = self.memory.claim(event.id, rule.name)
        if already is not None:
            return Fired(rule.name, rule.source, event.id, DUPLICATE, already, function=where)
        timeout = min(deadline - time.monotonic(), route.timeout or math.inf)
        started = time.perf_counter()
        succeeded = False
        answer: Any = None
        try:
            if timeout <= 0:  # queued behind other calls until no time was left
                return Fired(rule.name, rule.source, event.id, FAILED, "deadline", function=where)
            answer = self._call(
                route,
                payload(event, rule.name),
                timeout=timeout,
                max_response_bytes=self._max_response_bytes,
            )
            succeeded = True
            outcome, reason = OK, None
        except FunctionError as exc:
            outcome, reason = FAILED, exc.kind
        finally:
            self.memory.done(event.id, rule.name, succeeded=succeeded)
        elapsed = (time.perf_counter() - started) * 1000
        return Fired(rule.name, rule.source, event.id, outcome, reason, elapsed, where, answer)


# One pool per process for every endpoint's Fanout: MAX_WORKERS bounds the process.
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    # Created in the process that fires: the app is built before the server forks,
    # and a pool's threads do not survive a fork.
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="fanout")
            _pool_pid = os.getpid()
        return _pool
