"""The steady streams a fault runs under: signed Alexa requests, and SNS deliveries retried
as SNS retries them.

Alexa: a HelloIntent (slot name=Ada) every 1/rate seconds, each in its own thread, so a slow
answer never slows the stream; each sample records when it was sent, how long it took, and
whether the function's own speech came back. SNS: an S3 upload notification every second,
resent on a 5xx or a broken connection (SNS's retry), until a 2xx; any 4xx is a loss.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from verification.devca import DevCA

ANSWER = "Hello, Ada"
APOLOGY = "Sorry"
#: Alexa waits this long for an answer, then the user hears an error.
ALEXA_WAITS = 8.0


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic, when sent
    seconds: float
    status: int | None
    speech: str
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status == 200 and ANSWER in self.speech and self.seconds < ALEXA_WAITS

    @property
    def apology(self) -> bool:
        return self.status == 200 and APOLOGY in self.speech

    def describe(self) -> str:
        if self.apology:
            return f"apology after {self.seconds:.2f} s"
        if self.status == 200:
            return f"200 in {self.seconds:.2f} s: {self.speech[:80]}"
        return f"{self.error or f'HTTP {self.status}'} after {self.seconds:.2f} s"


def hello_body() -> bytes:
    from funker_dispatch.devtools.simulator import (
        SessionState,
        alexa_slots,
        encode,
        envelope,
        intent_request,
    )
    from skill.settings import DEVELOPMENT_SKILL_ID

    slots = alexa_slots(None, "HelloIntent", {"name": "Ada"}, DEVELOPMENT_SKILL_ID)
    request = envelope(
        intent_request("HelloIntent", slots, "en-US"), SessionState(DEVELOPMENT_SKILL_ID)
    )
    return encode(request)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, bytes, str]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=ALEXA_WAITS + 5) as answer:
            return answer.status, answer.read(), ""
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), ""
    except OSError as exc:  # refused, reset, timed out: no HTTP answer at all
        return None, b"", f"{type(exc).__name__}: {exc}"


class Paced:
    """Calls `one()` every 1/rate seconds in a pool until stopped."""

    def __init__(self, rate: float, one: Callable[[], None], workers: int = 32) -> None:
        self.rate = rate
        self._one = one
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            due += 1 / self.rate
            # Pacing, not synchronisation: the stream's clock.
            self._stop.wait(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)  # every request sent gets its outcome recorded


@dataclass
class AlexaStream:
    url: str
    ca: DevCA
    rate: float
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._paced = Paced(self.rate, self._one)

    def _one(self) -> None:
        body = hello_body()
        started = time.monotonic()
        status, raw, error = post(self.url, body, self.ca.sign(body))
        seconds = time.monotonic() - started
        speech = ""
        if status == 200:
            try:
                speech = json.dumps(json.loads(raw)["response"].get("outputSpeech", {}))
            except (ValueError, KeyError, TypeError):
                error = "not an Alexa response"
        with self.lock:
            self.samples.append(Sample(started, seconds, status, speech, error))

    def start(self) -> None:
        self._paced.start()

    def stop(self) -> list[Sample]:
        self._paced.stop()
        return self.snapshot()

    def snapshot(self) -> list[Sample]:
        with self.lock:
            return sorted(self.samples, key=lambda s: s.at)

    def answered_since(self, since: float) -> int:
        return sum(s.answered for s in self.snapshot() if s.at >= since)


@dataclass
class Delivery:
    message_id: str
    statuses: list[int | None] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] is not None and self.statuses[-1] < 300

    @property
    def refused(self) -> bool:
        """A 4xx: SNS would not retry it, the event would be lost."""
        return any(s is not None and 400 <= s < 500 for s in self.statuses)


@dataclass
class SnsStream:
    """S3 uploads through SNS, each resent (as SNS does) until a 2xx or a 4xx."""

    url: str
    ca: DevCA
    topic: str
    rate: float = 1.0
    retry_every: float = 1.0
    give_up_after: float = 120.0
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._paced = Paced(self.rate, self._one, workers=8)
        self._stopping = threading.Event()

    def _one(self) -> None:
        from funker_dispatch.devtools.eventsend import notification, s3_notification

        now = datetime.now(UTC)
        key = f"cluster/{time.monotonic_ns()}.jpg"
        record = s3_notification("photos", key, "ObjectCreated:Put", 1024, "us-east-1", now)
        envelope = self.ca.sign_sns(notification(self.topic, json.dumps(record), now))
        delivery = Delivery(envelope["MessageId"])
        with self.lock:
            self.deliveries.append(delivery)
        body = json.dumps(envelope).encode()
        headers = {
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": self.topic,
        }
        until = time.monotonic() + self.give_up_after
        while True:
            status, _raw, error = post(self.url, body, headers)
            delivery.statuses.append(status)
            delivery.errors.append(error)
            if status is not None and status < 500:
                return
            # SNS's retry: the same message again a little later. Pacing, not synchronisation.
            if time.monotonic() > until or self._stopping.wait(self.retry_every):
                return

    def start(self) -> None:
        self._paced.start()

    def stop(self) -> list[Delivery]:
        self._paced.stop()
        with self.lock:
            return list(self.deliveries)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def summary(samples: list[Sample]) -> dict[str, Any]:
    seconds = [s.seconds for s in samples]
    span = (samples[-1].at - samples[0].at) if len(samples) > 1 else 0.0
    return {
        "sent": len(samples),
        "answered": sum(s.answered for s in samples),
        "apologies": sum(s.apology for s in samples),
        "errors": sum(not s.answered and not s.apology for s in samples),
        "p50_ms": statistics.median(seconds) * 1000 if seconds else float("nan"),
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "max_ms": max(seconds, default=float("nan")) * 1000,
        "rate": (len(samples) - 1) / span if span else 0.0,
    }
