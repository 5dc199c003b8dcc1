"""skill.handlers.Dispatcher: every way a function call fails is one reason code, one log line.

The function is a real loopback listener; the request is remembered the way the
web view's pre-check does, so `Dispatcher.answer` runs exactly as in a request.
"""

from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from dispatch.registry import Route, Router
from dispatch.responses import apology
from skill.envelope import remember
from skill.handlers import Dispatcher, start_record
from skill.replies import to_model
from tests.e2e.conftest import intent


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that accepts connections into its backlog; nothing ever answers."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        yield listening


def request_with(value: Any) -> dict[str, Any]:
    body = intent("NarrowIntent")
    body["request"]["intent"]["slots"] = {"n": {"name": "n", "value": value}}
    return body


def narrowing(port: int) -> Dispatcher:
    route = Route(
        name="NarrowIntent",
        host="127.0.0.1",
        port=port,
        arguments=("session", "request", "version"),
    )
    return Dispatcher(router=Router(routes={route.name: route}), deadline=2.0)


def test_narrowed_request_json_cannot_carry_is_a_protocol_apology_and_nothing_is_sent(
    listener, caplog
):
    # 1e400 in a body parses as infinity; a narrowed route re-encodes the request.
    text = json.dumps(request_with(1)).replace('"value": 1', '"value": 1e400')
    data = json.loads(text)
    assert math.isinf(data["request"]["intent"]["slots"]["n"]["value"])
    remember(text, data)
    record = start_record()
    dispatcher = narrowing(listener.getsockname()[1])

    with caplog.at_level(logging.WARNING, logger="funker_dispatch"):
        reply = dispatcher.answer("NarrowIntent", "en-GB", "req-1")

    assert reply.response == to_model(apology("en-GB"))
    assert (record.outcome, record.reason, record.route) == ("apology", "protocol", "NarrowIntent")
    lines = [r for r in caplog.records if r.name == "funker_dispatch"]
    assert len(lines) == 1 and lines[0].exc_info is None  # one line, no traceback
    assert "request_id=req-1" in lines[0].getMessage()
    assert "cannot be encoded as JSON" in lines[0].getMessage()
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()  # no connection was ever made
