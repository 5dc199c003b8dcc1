"""The request log line: written whole, once, to the stream `serve` sets, and still logging's."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from skill.observability import RequestLineHandler, log_request, request_log


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """The request logger as `configure_logging` leaves it, writing to a string.

    Handlers are set when the test asks for `only`: pytest attaches its own
    capture handlers to every logger once the test body starts.
    """
    saved = request_log.handlers[:], request_log.propagate, request_log.level
    stream = io.StringIO()
    request_log.propagate = False
    request_log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        request_log.handlers[:], request_log.propagate, request_log.level = saved


def only(handler: logging.Handler) -> None:
    request_log.handlers[:] = [handler]


def test_a_line_reaches_the_configured_stream_whole_and_once(configured: io.StringIO) -> None:
    only(RequestLineHandler(configured))
    line = log_request({"request_id": "r-1", "intent": "SpaceCountIntent", "note": "a\nb"})
    assert configured.getvalue() == line + "\n"
    assert json.loads(line)["note"] == "a\nb"  # escaped: still one line


def test_the_configured_stream_gets_the_line_without_a_log_record(
    configured: io.StringIO,
) -> None:
    # The line is complete before logging sees it: a LogRecord, the logger's
    # checks and a formatter only add CPU to every request.
    made: list[logging.LogRecord] = []
    factory = logging.getLogRecordFactory()

    def counting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record)
        return record

    only(RequestLineHandler(configured))
    logging.setLogRecordFactory(counting)
    try:
        log_request({"request_id": "r-2"})
    finally:
        logging.setLogRecordFactory(factory)
    assert made == []
    assert '"request_id":"r-2"' in configured.getvalue()


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_any_other_handler_or_filter_gets_the_line_through_logging(
    configured: io.StringIO,
) -> None:
    only(RequestLineHandler(configured))
    extra = Collect()
    request_log.addHandler(extra)
    line = log_request({"request_id": "r-3"})
    assert extra.messages == [line]
    assert configured.getvalue() == line + "\n"
    request_log.removeHandler(extra)

    request_log.addFilter(lambda record: False)  # an operator's filter still decides
    try:
        log_request({"request_id": "r-4"})
    finally:
        request_log.filters.clear()
    assert "r-4" not in configured.getvalue()


def test_a_level_above_info_silences_the_line(configured: io.StringIO) -> None:
    only(RequestLineHandler(configured))
    request_log.setLevel(logging.WARNING)
    log_request({"request_id": "r-5"})
    assert configured.getvalue() == ""


class Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("the log reader went away")


def test_a_stream_that_fails_is_reported_as_logging_reports_it(
    configured: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    only(RequestLineHandler(Broken()))
    line = log_request({"request_id": "r-6"})  # never raises into the request
    assert json.loads(line)["request_id"] == "r-6"
    assert "Logging error" in capsys.readouterr().err
