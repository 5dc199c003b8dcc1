"""Each fault a small cluster really has, under a steady stream of signed Alexa requests.

One at a time, on the stack of conftest.py (three nodes, two dispatchers behind HAProxy,
every function on two nodes): a node of a function replica killed (power loss: every
process of the node SIGKILLed), a node of a dispatcher killed, a function rolled and the
dispatcher rolled (`docker service update --force`), a node cut off and healed. The
manager (node 1) is never the victim: one manager is the documented layout here, and a
swarm without its manager schedules nothing.

For each: HelloIntent requests at RATE a second through the balancer, from before the
fault until the stack has converged again (every replica running on nodes that are up,
every dispatcher answering /healthz) and MORE answers after; an S3 upload through SNS
every second, resent as SNS resends on a 5xx. Asserted: every Alexa request answered with
the function's own speech within Alexa's 8 s (no apology, no error), at least 10 a
second, and every SNS delivery ending in a 2xx with no 4xx on the way. The counts,
latencies and the time to converge go to the "cluster report".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from skill.settings.embedded import DEVELOPMENT_TOPIC
from tests.cluster.conftest import CONVERGE_WITHIN, Stack
from tests.cluster.traffic import AlexaStream, SnsStream, summary
from tests.swarm.engine import wait_for

#: Alexa requests a second through the balancer (the contract: at least 10).
RATE = 12.0
#: Answers from the function before a fault, and again after the stack converged.
BEFORE = 30
MORE = 60
#: Seconds past which an answer is reported with when it was sent (not a failure).
SLOW = 1.0


@dataclass(frozen=True)
class Fault:
    name: str
    victim: str  # what is hurt: a node, or a service
    act: Callable[[], None]
    settled: Callable[[], bool]  # the fault has taken effect (a node seen down, an update done)
    undo: Callable[[], None] | None = None


def worker_with(stack: Stack, short: str, avoid: str) -> int:
    """A worker node running `short`, preferably one not running `avoid`."""
    placement = stack.placement()
    workers = [k for k in placement[short] if k != 1]
    assert workers, f"no worker runs {short}: {placement}"
    alone = [k for k in workers if k not in placement.get(avoid, [])]
    return (alone or workers)[0]


def node_fault(stack: Stack, name: str, short: str, avoid: str, how: str, back: str) -> Fault:
    cluster = stack.cluster
    k = worker_with(stack, short, avoid)
    there = sorted(service for service, nodes in stack.placement().items() if k in nodes)
    return Fault(
        name,
        f"fdnode{k}, running {' '.join(there)}",
        act=lambda: cluster.script(how, k),
        settled=lambda: cluster.node_states().get(k) == "down",
        undo=lambda: cluster.script(back, k),
    )


def roll(stack: Stack, short: str) -> Fault:
    manager = stack.cluster.manager
    return Fault(
        f"roll {short}",
        f"service {short}",
        act=lambda: manager.run("service", "update", "--force", "--detach", stack.service(short)),
        settled=lambda: stack.update_state(short) == "completed",
    )


FAULTS: dict[str, Callable[[Stack], Fault]] = {
    "kill-function-node": lambda s: node_fault(
        s, "kill node of a function", "hello", "dispatcher", "kill-node", "start-node"
    ),
    "kill-dispatcher-node": lambda s: node_fault(
        s, "kill node of a dispatcher", "dispatcher", "hello", "kill-node", "start-node"
    ),
    "roll-function": lambda s: roll(s, "hello"),
    "roll-dispatcher": lambda s: roll(s, "dispatcher"),
    "cut-node": lambda s: node_fault(s, "cut a node off", "hello", "none", "cut-node", "heal-node"),
}


@pytest.mark.parametrize("which", list(FAULTS))
def test_no_answer_is_lost(stack: Stack, report: list[str], which: str) -> None:
    wait_for(stack.converged, CONVERGE_WITHIN, "the stack to converge before the fault")
    fault = FAULTS[which](stack)
    alexa = AlexaStream(stack.url + "/", stack.ca, RATE)
    sns = SnsStream(stack.url + "/events/sns", stack.ca, DEVELOPMENT_TOPIC)
    alexa.start()
    sns.start()
    try:
        began = time.monotonic()
        wait_for(lambda: alexa.answered_since(began) >= BEFORE, 60, "answers before the fault")
        hurt = time.monotonic()
        fault.act()
        wait_for(fault.settled, CONVERGE_WITHIN, f"{fault.name} to take effect", every=0.5)
        noticed = time.monotonic() - hurt
        if fault.undo is not None:
            # The swarm has moved the work off the node; converged means moved and answering.
            wait_for(stack.converged, CONVERGE_WITHIN, f"the stack to recover from {fault.name}")
            recovered = time.monotonic() - hurt
            undone: float | None = time.monotonic() - hurt
            fault.undo()
            wait_for(
                lambda: set(stack.cluster.node_states().values()) == {"ready"},
                CONVERGE_WITHIN,
                "the node back",
            )
        else:
            recovered = time.monotonic() - hurt
            undone = None
        wait_for(stack.converged, CONVERGE_WITHIN, f"the stack to converge after {fault.name}")
        after = time.monotonic()
        wait_for(lambda: alexa.answered_since(after) >= MORE, 60, "answers after the fault")
    finally:
        samples = alexa.stop()
        deliveries = sns.stop()
    figures = summary(samples)
    report.append(
        f"{fault.name:<26} sent {figures['sent']:>5}  function {figures['answered']:>5}  "
        f"apologies {figures['apologies']:>3}  errors {figures['errors']:>3}  "
        f"p50 {figures['p50_ms']:>6.0f} ms  p99 {figures['p99_ms']:>6.0f} ms  "
        f"max {figures['max_ms']:>6.0f} ms  {figures['rate']:.1f}/s  "
        f"noticed {noticed:.1f} s  recovered {recovered:.1f} s  "
        f"sns {sum(d.delivered for d in deliveries)}/{len(deliveries)} delivered, "
        f"{sum(len(d.statuses) - 1 for d in deliveries)} resends  [{fault.victim}]"
    )
    # When the slow answers came, against the fault and its undoing: what caused them.
    slow = [f"+{s.at - hurt:.1f}" for s in samples if s.seconds > SLOW]
    if slow:
        back = "" if undone is None else f", node back at +{undone:.1f} s"
        sent = " ".join(slow[:12])
        report.append(f"  {len(slow)} answers over {SLOW:g} s, sent at {sent} s{back}")
    failed = [s.describe() for s in samples if not s.answered]
    assert failed == [], f"{fault.name}: {len(failed)} of {len(samples)} not answered: {failed[:5]}"
    assert figures["rate"] >= 10, f"the stream ran at {figures['rate']:.1f} requests a second"
    lost = [d for d in deliveries if d.refused or not d.delivered]
    assert lost == [], f"{fault.name}: SNS deliveries lost: {lost[:3]}"
