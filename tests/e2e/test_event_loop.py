"""Which asyncio event loop `serve`'s workers run (the bridge's hand-off runs on it).

uvloop is a dependency where it ships wheels, and its thread hand-off is
cheaper than asyncio's (bench/bridge.py prints both); elsewhere (32-bit ARM)
the workers fall back to asyncio's own loop. Either way the log says which, so
an operator's figures can be read against it.
"""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import Requirement


def expected_loop() -> str:
    for line in importlib.metadata.requires("funker-dispatch") or []:
        requirement = Requirement(line)
        if requirement.name == "uvloop":
            applies = requirement.marker is None or requirement.marker.evaluate({"extra": ""})
            return "uvloop" if applies else "asyncio"
    return "asyncio"


def test_the_package_requires_uvloop_where_it_has_wheels():
    # A guard for the test below: without the requirement it would pass vacuously.
    assert any(
        Requirement(line).name == "uvloop"
        for line in importlib.metadata.requires("funker-dispatch") or []
    )


def test_each_worker_logs_the_event_loop_it_runs(start_server):
    server = start_server()
    log = server.wait_for_log("event loop: ")
    assert f"event loop: {expected_loop()}" in log
