"""One delivery, start to answer: verify, confirm or parse, match, fan out (docs/events/index.md).

`SnsEndpoint`, `EventBridgeEndpoint` and `GitHubEndpoint` each take one
sender's POST: `receive(headers, body)` returns a `Delivery`, the HTTP status
and JSON body for the sender and what the log line and the metrics need.
Matching and fan-out are the same for all three (`fire`). The Flask views
in `skill/` only hand them the request and write the answer.

SNS answers: a refusal is 400 (403 for `sns-topic`) with `{"error",
"message"}` and nothing is called; a verified delivery is `{"rules":
[{"name", "outcome", "reason", "id"}]}`, 200 when every matched rule's
function answered (or nothing matched, or an S3 test event), 503 when any
failed so SNS retries — and the retry re-runs only what failed.

Subscription confirmation: `confirm = "auto"` GETs the SubscribeURL, but
only SNS's own ConfirmSubscription URL for the message's own topic
(`verification.snsurl.check_subscribe_url`), through a bounded fetcher that
never follows a redirect; `"log"` writes it to the log for the operator.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from triggers import eventbridge, github
from triggers.events import MAX_EVENTS, Event, MalformedDelivery
from triggers.fanout import FAILED, OK, Fanout, Fired
from triggers.rules import ENDPOINT, Rule, matching
from triggers.sns import S3_TEST, parse_notification
from verification.errors import SnsMalformed, SnsTopic, SnsVerificationFailed, VerificationFailed
from verification.eventbridge import EventBridgeAuth
from verification.fetch import https_get
from verification.github import GitHubSignature
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
_GITHUB_DELIVERY = re.compile(r"[0-9A-Za-z-]{1,64}")

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
    events: int = 0  # how many events the delivery carried (a Pipes batch: its elements)
    headers: dict[str, str] = field(default_factory=dict)  # e.g. WWW-Authenticate on a 401


def fire(
    events: Sequence[Event],
    rules: Sequence[Rule],
    fanout: Fanout,
    *,
    failed_status: int = 503,
    arrived: float | None = None,
) -> Delivery:
    """Every event against every rule, the matches run by `fanout`: the answer to the sender.

    200 when every matched rule's function answered (or nothing matched, or
    everything was done already), `failed_status` when any failed: 503 makes
    SNS and EventBridge retry, and the retry re-runs only what failed. The
    deadline counts from `arrived` (`time.monotonic()` when the request came
    in), not from now: time spent waiting for a thread is the sender's too.
    """
    if len(events) > MAX_EVENTS:
        # One delivery is one request's worth of calls: a thousand-record body is not a
        # sender's, and would hold the fan-out for everyone else (docs/events/index.md).
        return refusal("too-many-events", f"at most {MAX_EVENTS} events in one delivery", 413)
    pairs: list[tuple[Event, Rule]] = []
    unmatched = []
    for event in events:
        matched = matching(rules, event)
        if not matched:
            unmatched.append(event.source)
        pairs.extend((event, rule) for rule in matched)
    fired = fanout.fire(pairs, arrived=arrived) if pairs else []
    outcomes = {one.outcome for one in fired}
    if FAILED in outcomes:
        status, outcome = failed_status, FAILED
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
        fired=fired,
        unmatched=unmatched,
        events=len(events),
    )


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

    def receive(
        self, headers: Mapping[str, str], body: bytes, *, arrived: float | None = None
    ) -> Delivery:
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
            delivery = self._notification(message, arrived)
        elif message["Type"] == SUBSCRIPTION_CONFIRMATION:
            delivery = self._subscription(message)
        else:
            delivery = self._unsubscribed(message)
        delivery.message_id = message["MessageId"]
        delivery.message_type = message["Type"]
        delivery.topic = message["TopicArn"]
        delivery.verify_ms = verify_ms
        return delivery

    def _notification(self, message: Mapping[str, Any], arrived: float | None) -> Delivery:
        try:
            notification = parse_notification(message)
        except MalformedDelivery as exc:
            return refusal("sns-malformed", exc.message, exc.status)
        if notification.kind == S3_TEST:
            # S3 sends one when a bucket's notification is set up: proof the path works.
            return Delivery(
                200, {"rules": []}, "unmatched", "s3-test-event", kind=S3_TEST, unmatched=["s3"]
            )
        delivery = fire(notification.events, self.rules, self.fanout, arrived=arrived)
        delivery.kind = notification.kind
        return delivery

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
    found = _MESSAGE_ID.search(body) if body else None
    return refusal(
        exc.reason,
        exc.message,
        getattr(exc, "status", 400),
        detail=exc.detail,
        message_id=found.group(1).decode("ascii") if found else None,
    )


def refusal(
    reason: str,
    message: str,
    status: int,
    *,
    detail: str | None = None,
    message_id: str | None = None,
) -> Delivery:
    """A delivery refused before any rule ran: `{"error", "message"}`, the detail for the log."""
    return Delivery(
        status,
        {"error": reason, "message": message},
        "refused",
        reason,
        message_id=message_id,
        detail=detail or message,
    )


# --- EventBridge and GitHub (docs/events/index.md) ------------------------------------------------


class EventBridgeEndpoint:
    """`POST /events/eventbridge`: the connection's credential, then one envelope or a batch.

    Answers: 401 `eventbridge-auth` without the credential, 400
    `eventbridge-malformed` for a body no API destination or Pipe sends (not
    retried by EventBridge: it goes to the dead-letter queue), else the rules'
    outcomes with 200, or 503 when any failed (EventBridge retries 5xx) — a
    batch with one failed element included; the retry re-runs only that.
    """

    def __init__(
        self,
        auth: EventBridgeAuth,
        rules: Sequence[Rule],
        fanout: Fanout,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.auth = auth
        self.rules = [rule for rule in rules if ENDPOINT[rule.source] == "eventbridge"]
        self.fanout = fanout
        self._now = now or (lambda: datetime.now(UTC))

    def body_check(self, headers: Mapping[str, str]) -> bool:
        """Whether the body is worth reading: the credential is in the head (docs/robustness.md)."""
        try:
            self.auth.verify(headers)
        except VerificationFailed:
            return False
        return True

    def receive(
        self, headers: Mapping[str, str], body: bytes, *, arrived: float | None = None
    ) -> Delivery:
        """The answer to one delivery; `body` may be b"" unread when the credential is wrong."""
        began = time.perf_counter()
        try:
            self.auth.verify(headers)
        except VerificationFailed as exc:
            delivery = _refused(exc, None)
            if self.auth.kind == "basic":
                delivery.headers["WWW-Authenticate"] = 'Basic realm="funker-dispatch events"'
            return delivery
        verify_ms = (time.perf_counter() - began) * 1000
        try:
            contents = eventbridge.parse_delivery(body, received=self._now())
        except MalformedDelivery as exc:
            delivery = refusal("eventbridge-malformed", exc.message, exc.status)
        else:
            delivery = fire(
                contents.events, self.rules, self.fanout, failed_status=503, arrived=arrived
            )
            delivery.kind = "batch" if contents.batch else contents.events[0].source
            if not contents.batch:
                delivery.message_id = contents.events[0].id
        delivery.verify_ms = verify_ms
        return delivery


class GitHubEndpoint:
    """`POST /events/github`: the webhook's signature, then the event its headers name.

    Answers: 401 `github-signature` unsigned or badly signed; 400
    `github-malformed` for what GitHub never sends (either content type,
    JSON or form, is read); a `ping` gets `{"rules": [], "pong": true}`
    and runs nothing; else the rules' outcomes, 200, or 502 when any failed:
    GitHub never retries, so the delivery must show failed in its UI, where
    it can be redelivered by hand (and that re-runs only what failed).
    """

    def __init__(
        self,
        signature: GitHubSignature,
        rules: Sequence[Rule],
        fanout: Fanout,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.signature = signature
        self.rules = [rule for rule in rules if ENDPOINT[rule.source] == "github"]
        self.fanout = fanout
        self._now = now or (lambda: datetime.now(UTC))

    def refusal_on_headers(self, headers: Mapping[str, str]) -> Delivery | None:
        """How a delivery is refused on its headers alone (no body needed), or None.

        401 `github-signature` without a well-formed `X-Hub-Signature-256`,
        400 `github-malformed` without a well-formed `X-GitHub-Event`.
        """
        try:
            self.signature.check_header(headers)
        except VerificationFailed as exc:
            delivery = _refused(exc, None)
            delivery.message_id = _delivery_id(headers)
            return delivery
        try:
            github.check_event_header(headers)
        except MalformedDelivery as exc:
            return refusal("github-malformed", exc.message, 400, message_id=_delivery_id(headers))
        return None

    def body_check(self, headers: Mapping[str, str]) -> hmac.HMAC | bool:
        """False when the headers alone refuse the delivery: its body is never read (up
        to 25 MiB of it). Else the HMAC to compute as the body arrives (docs/robustness.md)."""
        if self.refusal_on_headers(headers) is not None:
            return False
        return self.signature.hasher()

    def receive(
        self,
        headers: Mapping[str, str],
        body: bytes,
        *,
        digest: bytes | None = None,
        arrived: float | None = None,
    ) -> Delivery:
        """The answer to one delivery. `digest` is the body's HMAC when it was computed as
        the body arrived (`body_check`); `body` may be b"" unread when the headers refuse it."""
        began = time.perf_counter()
        refused = self.refusal_on_headers(headers)
        if refused is not None:
            return refused
        delivery_id = _delivery_id(headers)
        try:
            self.signature.verify(headers, body, digest=digest)
        except VerificationFailed as exc:
            delivery = _refused(exc, None)
            delivery.message_id = delivery_id
            return delivery
        verify_ms = (time.perf_counter() - began) * 1000
        try:
            event = github.parse_delivery(headers, body, received=self._now())
        except MalformedDelivery as exc:
            delivery = refusal("github-malformed", exc.message, exc.status, message_id=delivery_id)
            delivery.verify_ms = verify_ms
            return delivery
        name = event.attributes["event"]
        if name == github.PING:
            # Sent once when the webhook is created: proof the URL, secret and format are right.
            delivery = Delivery(200, {"rules": [], "pong": True}, "pong", events=1)
        else:
            delivery = fire((event,), self.rules, self.fanout, failed_status=502, arrived=arrived)
        delivery.kind = name
        delivery.message_id = event.id
        delivery.verify_ms = verify_ms
        return delivery


def _delivery_id(headers: Mapping[str, str]) -> str | None:
    """X-GitHub-Delivery when it is well-formed: only such an id reaches the log."""
    delivery_id = header(headers, github.DELIVERY_HEADER)
    return delivery_id if delivery_id and _GITHUB_DELIVERY.fullmatch(delivery_id) else None
