"""One SNS HTTP/S delivery, start to answer: verify, confirm or parse, match, fan out (DESIGN §11).

`SnsEndpoint.receive(headers, body)` returns a `Delivery`: the HTTP status
and JSON body for SNS, and what the log line and the metrics need. The
Flask view in `skill/` only hands it the request and writes the answer.

Answers: a refusal is 400 (403 for `sns-topic`) with `{"error", "message"}`
and nothing is called; a verified delivery is `{"rules": [{"name",
"outcome", "reason", "id"}]}`, 200 when every matched rule's function
answered (or nothing matched, or an S3 test event), 503 when any failed so
SNS retries — and the retry re-runs only what failed.

Subscription confirmation: `confirm = "auto"` GETs the SubscribeURL, but
only SNS's own ConfirmSubscription URL for the message's own topic
(`verification.snsurl.check_subscribe_url`), through a bounded fetcher that
never follows a redirect; `"log"` writes it to the log for the operator.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from triggers.events import Event
from triggers.fanout import FAILED, OK, Fanout, Fired
from triggers.rules import ENDPOINT, Rule, matching
from triggers.sns import S3_TEST, parse_notification
from verification.errors import SnsMalformed, SnsTopic, SnsVerificationFailed, VerificationFailed
from verification.fetch import https_get
from verification.signature import header
from verification.sns import (
    MESSAGE_TYPE_HEADER,
    NOTIFICATION,
    RAW_DELIVERY_HEADER,
    SUBSCRIPTION_CONFIRMATION,
    SnsVerifier,
)
from verification.snsurl import check_subscribe_url

log = logging.getLogger("funker_dispatch")

#: Seconds the confirmation GET may take, all told (SNS waits 15 s for our answer).
CONFIRM_TIMEOUT = 5.0
#: SNS answers a confirmation with a short XML document.
CONFIRM_MAX_BYTES = 64 * 1024
# A MessageId as SNS writes them (a UUID), found in a refused body without trusting it.
_MESSAGE_ID = re.compile(rb'"MessageId"\s*:\s*"([0-9A-Fa-f-]{1,64})"')

Get = Callable[[str], bytes]


def confirm_get(url: str) -> bytes:
    """GET a checked SubscribeURL: https, one deadline, no redirects, a size cap."""
    return https_get(
        url, timeout=CONFIRM_TIMEOUT, max_bytes=CONFIRM_MAX_BYTES, what="subscription confirmation"
    )


@dataclass
class Delivery:
    """What one POST was and how it was answered: for SNS, the log line and the metrics."""

    status: int
    body: dict[str, Any]
    outcome: str  # ok | failed | duplicate | unmatched | refused | confirmed | ...
    reason: str | None = None
    message_id: str | None = None
    message_type: str | None = None
    topic: str | None = None
    kind: str | None = None  # s3 | s3-test | cloudwatch | sns | subscription | unsubscribe
    fired: list[Fired] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # the source of each event no rule took
    detail: str | None = None  # the operator's side of a refusal, never sent to SNS
    verify_ms: float | None = None


class SnsEndpoint:
    """`POST /events/sns`, without the web framework: headers and body in, a Delivery out."""

    def __init__(
        self,
        verifier: SnsVerifier,
        rules: Sequence[Rule],
        fanout: Fanout,
        *,
        confirm: str = "auto",
        allow_raw: bool = False,
        get: Get = confirm_get,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if confirm not in ("auto", "log"):
            raise ValueError('confirm must be "auto" or "log"')
        self.verifier = verifier
        self.rules = [rule for rule in rules if ENDPOINT[rule.source] == "sns"]
        self.fanout = fanout
        self.confirm = confirm
        self.allow_raw = allow_raw
        self._get = get
        self._now = now or (lambda: datetime.now(UTC))

    def receive(self, headers: Mapping[str, str], body: bytes) -> Delivery:
        began = time.perf_counter()
        try:
            if self.allow_raw and _raw_delivery(headers):
                message = self._raw_message(headers, body)
            else:
                message = self.verifier.verify(headers, body)
        except VerificationFailed as exc:
            return _refused(exc, body)
        verify_ms = (time.perf_counter() - began) * 1000
        if message["Type"] == NOTIFICATION:
            delivery = self._notification(message)
        elif message["Type"] == SUBSCRIPTION_CONFIRMATION:
            delivery = self._subscription(message)
        else:
            delivery = self._unsubscribed(message)
        delivery.message_id = message["MessageId"]
        delivery.message_type = message["Type"]
        delivery.topic = message["TopicArn"]
        delivery.verify_ms = verify_ms
        return delivery

    def _notification(self, message: Mapping[str, Any]) -> Delivery:
        notification = parse_notification(message)
        if notification.kind == S3_TEST:
            # S3 sends one when a bucket's notification is set up: proof the path works.
            return Delivery(
                200, {"rules": []}, "unmatched", "s3-test-event", kind=S3_TEST, unmatched=["s3"]
            )
        pairs: list[tuple[Event, Rule]] = []
        unmatched = []
        for event in notification.events:
            rules = matching(self.rules, event)
            if not rules:
                unmatched.append(event.source)
            pairs.extend((event, rule) for rule in rules)
        fired = self.fanout.fire(pairs) if pairs else []
        outcomes = {one.outcome for one in fired}
        if FAILED in outcomes:
            status, outcome = 503, FAILED
        elif OK in outcomes:
            status, outcome = 200, OK
        elif outcomes:
            status, outcome = 200, "duplicate"
        else:
            status, outcome = 200, "unmatched"
        return Delivery(
            status,
            {"rules": [one.as_dict() for one in fired]},
            outcome,
            "no-rule" if outcome == "unmatched" else None,
            kind=notification.kind,
            fired=fired,
            unmatched=unmatched,
        )

    def _subscription(self, message: Mapping[str, Any]) -> Delivery:
        topic, url = message["TopicArn"], message["SubscribeURL"]
        if self.confirm == "log":
            # The Token in it confirms this one subscription and nothing else.
            log.warning(
                'SNS subscription to %s awaits confirmation: GET %s (confirm = "log")', topic, url
            )
            return Delivery(
                200, {"rules": [], "subscription": "logged"}, "confirm-logged", kind="subscription"
            )
        try:
            checked = check_subscribe_url(url, topic)
        except SnsVerificationFailed as exc:
            delivery = _refused(exc, None)
            delivery.kind = "subscription"
            return delivery
        try:
            self._get(checked)
        except Exception as exc:  # a fetcher's failure is ours to report, never a 500
            detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or repr(exc)
            log.warning("SNS subscription to %s not confirmed: %s", topic, detail)
            # 503: SNS resends the confirmation, which is another chance to confirm.
            return Delivery(
                503,
                {"rules": [], "subscription": "failed"},
                "confirm-failed",
                "confirm-failed",
                kind="subscription",
                detail=str(detail),
            )
        log.info("SNS subscription to %s confirmed", topic)
        return Delivery(
            200, {"rules": [], "subscription": "confirmed"}, "confirmed", kind="subscription"
        )

    def _unsubscribed(self, message: Mapping[str, Any]) -> Delivery:
        log.warning("SNS subscription to %s was unsubscribed", message["TopicArn"])
        return Delivery(
            200, {"rules": [], "subscription": "unsubscribed"}, "unsubscribed", kind="unsubscribe"
        )

    def _raw_message(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """A raw delivery as a Notification. Nothing in it is signed (allow_raw says so)."""
        topic = header(headers, "x-amz-sns-topic-arn") or ""
        message_id = header(headers, "x-amz-sns-message-id") or ""
        if not topic or not message_id:
            raise SnsMalformed("raw delivery without topic or message id headers")
        if header(headers, MESSAGE_TYPE_HEADER) != NOTIFICATION:
            raise SnsMalformed("raw delivery that is not a Notification")
        if not self.verifier.topic_allowed(topic):
            raise SnsTopic("topic is not allowed here", detail=f"topic {topic} is not allowlisted")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SnsMalformed("raw message is not UTF-8") from None
        stamp = self._now().astimezone(UTC).isoformat(timespec="milliseconds")
        return {
            "Type": NOTIFICATION,
            "MessageId": message_id,
            "TopicArn": topic,
            "Message": text,
            "Timestamp": stamp.replace("+00:00", "Z"),
        }


def _raw_delivery(headers: Mapping[str, str]) -> bool:
    return (header(headers, RAW_DELIVERY_HEADER) or "").lower() == "true"


def _refused(exc: VerificationFailed, body: bytes | None) -> Delivery:
    status = getattr(exc, "status", 400)
    found = _MESSAGE_ID.search(body) if body else None
    return Delivery(
        status,
        {"error": exc.reason, "message": exc.message},
        "refused",
        exc.reason,
        message_id=found.group(1).decode("ascii") if found else None,
        detail=exc.detail or exc.message,
    )
