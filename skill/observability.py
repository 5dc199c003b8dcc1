"""Metrics and the per-request log line (docs/operations.md), correct under several server workers.

prometheus-client decides at import time whether it runs in multiprocess
mode, so `prepare_multiprocess()` must run in the server's master before
anything imports prometheus_client; workers then write to files in
`PROMETHEUS_MULTIPROC_DIR` and `/metrics` (the admin listener) sums them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from dispatch.responses import compact_json

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Alexa's locales: anything else is untrusted input and becomes "other".
ALEXA_LOCALES = frozenset(
    {
        *("ar-SA", "de-DE", "en-AU", "en-CA", "en-GB", "en-IN", "en-US", "es-ES", "es-MX"),
        *("es-US", "fr-CA", "fr-FR", "hi-IN", "it-IT", "ja-JP", "nl-NL", "pt-BR"),
    }
)

request_log = logging.getLogger("funker_dispatch.requests")


def prepare_multiprocess() -> tuple[str, bool]:
    """Point prometheus-client at an empty directory shared by this master's workers.

    Returns the directory and whether we created it (then `cleanup_multiprocess`
    removes it at exit). A configured directory is only emptied of metric files.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        # Files left by an earlier run would add their counts to ours; anything
        # else in the directory is not ours to delete.
        for stale in Path(directory).glob("*.db"):
            stale.unlink(missing_ok=True)
        return directory, False
    directory = tempfile.mkdtemp(prefix="funker-dispatch-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory, True


def cleanup_multiprocess(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def forget_dead_processes(directory: str) -> list[int]:
    """Drop the live gauges of worker processes that no longer run; returns their pids.

    A worker that died (or was replaced) leaves its `gauge_live*_<pid>.db`
    behind, and `in_flight` would count its last value for ever. granian has
    no child-exit hook, so the scrape itself looks: a pid that is not alive
    has no requests in flight.
    """
    from prometheus_client import multiprocess

    dead = set()
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid_text = path.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            dead.add(int(pid_text))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, only not ours to signal
    return True


#: `funker_dispatch_progressive_total{outcome}`: every progressive response that fell due (a
#: function outlasted its threshold) is counted once. `sent`: Alexa's API took it (2xx);
#: `failed`: it was posted but refused, broken or out of time (logged, reason
#: progressive-failed); `skipped`: it could not be sent at all (not a Launch or Intent request,
#: no apiEndpoint or apiAccessToken, an origin not allowed). Fast answers count nothing.
PROGRESSIVE_OUTCOMES = ("sent", "failed", "skipped")


class Metrics:
    """The metrics of docs/operations.md. One instance per process (the registry is global)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "funker_dispatch_requests_total",
            "Alexa requests by type, intent, locale and outcome.",
            ["request_type", "intent", "locale", "outcome"],
        )
        self.verification_failures = Counter(
            "funker_dispatch_verification_failures_total",
            "Requests refused by verification or the pre-check, by reason.",
            ["reason"],
        )
        self.function_seconds = Histogram(
            "funker_dispatch_function_seconds",
            "Time spent calling a funker function, by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 6.5, 8),
        )
        self.function_failures = Counter(
            "funker_dispatch_function_failures_total",
            "Function calls that gave no answer, by route and kind.",
            ["route", "kind"],
        )
        self.in_flight = Gauge(
            "funker_dispatch_in_flight",
            "Alexa requests being handled now.",
            multiprocess_mode="livesum",
        )
        # Event triggers (§11): `rule` is a configured rule's name, "" for unmatched events.
        self.events = Counter(
            "funker_dispatch_events_total",
            "Events by source, rule and outcome (ok, failed, duplicate, unmatched).",
            ["source", "rule", "outcome"],
        )
        self.event_verification_failures = Counter(
            "funker_dispatch_event_verification_failures_total",
            "Event deliveries refused, by endpoint and reason.",
            ["source", "reason"],
        )
        # Robustness (§14): what request bodies hold of each lane's budget right now.
        self.body_bytes_in_flight = Gauge(
            "funker_dispatch_body_bytes_in_flight",
            "Request body bytes held now, by lane (alexa: all but event deliveries).",
            ["lane"],
            multiprocess_mode="livesum",
        )
        self.progressive = Counter(
            "funker_dispatch_progressive_total",
            "Progressive responses due because a function was slow, by outcome.",
            ["outcome"],
        )
        for outcome in PROGRESSIVE_OUTCOMES:  # all three exist from the start, at 0
            self.progressive.labels(outcome=outcome)
        # Every Alexa request counts one of these and times one of those.
        self.request_count = Children(self.requests)
        self.function_time = Children(self.function_seconds)


class Children:
    """A labelled metric's children by label values, looked up once each.

    `labels()` checks its arguments and takes the metric's lock on every call;
    label values here are bounded (`LabelPolicy`), so the children are too. A
    race only asks `labels()` twice, and it returns the same child.
    """

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


@cache
def metrics() -> Metrics:
    return Metrics()


def render_metrics() -> tuple[bytes, str]:
    """The Prometheus text exposition, summed over workers in multiprocess mode."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    metrics()  # registered even before the first request
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        forget_dead_processes(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class LabelPolicy:
    """Keeps label values bounded: untrusted names become "other"."""

    def __init__(self, intents: Iterable[str], request_types: Iterable[str]) -> None:
        self.intents = frozenset(intents)
        self.request_types = frozenset(request_types)

    def intent(self, name: str | None) -> str:
        if name is None:
            return ""
        return name if name in self.intents else "other"

    def request_type(self, name: str | None) -> str:
        if name is None:
            return ""
        return name if name in self.request_types else "other"

    @staticmethod
    def locale(locale: str | None) -> str:
        if locale is None:
            return ""
        return locale if locale in ALEXA_LOCALES else "other"


def short_hash(value: str | None) -> str | None:
    """A stable, short, non-reversible stand-in for a user or device id."""
    if not value:
        return None
    # surrogatepass: ids come from untrusted JSON, which may carry lone surrogates.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class RequestLineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The request log's handler, as `serve` installs it: one finished JSON line per request.

    While it is the request logger's only handler, `log_request` gives it the
    line directly: the line is already escaped JSON, and a LogRecord, the
    logger's checks and a formatter would cost about 90 µs of a request's CPU
    (bench/profile.py) without changing a byte of it. Anything else an operator
    adds (a handler, a filter, a level) sends the line through logging again.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.setFormatter(logging.Formatter("%(message)s"))

    def write_line(self, line: str) -> None:
        try:
            with self.lock:  # whole lines, whichever thread writes
                self.stream.write(line + self.terminator)
                self.stream.flush()
        except Exception:
            # As logging does for its own handlers: reported on stderr, never raised.
            self.handleError(
                logging.LogRecord(request_log.name, logging.INFO, "", 0, line, None, None)
            )


def log_request(fields: dict[str, Any]) -> str:
    """Write the request's JSON log line; returns it (the console's trace is that line)."""
    # ASCII-escaped: any string from the request (even a lone surrogate) stays one safe line.
    line = compact_json(fields)
    handlers = request_log.handlers
    if (
        len(handlers) == 1
        and type(handler := handlers[0]) is RequestLineHandler
        and not (request_log.propagate or request_log.filters or handler.filters)
        and handler.level <= logging.INFO
        and request_log.isEnabledFor(logging.INFO)
    ):
        handler.write_line(line)
    else:
        request_log.info(line)
    return line
