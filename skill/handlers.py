"""ASK SDK handlers: forward intents to funker functions, answer the built-ins, never crash."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from verification import sdkcompat

sdkcompat.install()

from ask_sdk_core.dispatch_components import (  # noqa: E402
    AbstractExceptionHandler,
    AbstractRequestHandler,
)
from ask_sdk_core.handler_input import HandlerInput  # noqa: E402
from ask_sdk_model import IntentRequest, Response  # noqa: E402
from ask_sdk_model.canfulfill import (  # noqa: E402
    CanFulfillIntent,
    CanFulfillIntentValues,
    CanFulfillSlot,
    CanFulfillSlotValues,
    CanUnderstandSlotValues,
)

from dispatch import funker  # noqa: E402
from dispatch.registry import NoRoute, Route, Router  # noqa: E402
from dispatch.responses import Reply, ReplyError, apology, escape_speech, to_reply  # noqa: E402
from skill.canfulfill import can_fulfill, refusal  # noqa: E402
from skill.envelope import raw_body, raw_envelope  # noqa: E402
from skill.messages import abilities, message  # noqa: E402
from skill.models import LanguageModel  # noqa: E402
from skill.progressive import ProgressiveSender  # noqa: E402
from skill.replies import to_model  # noqa: E402

log = logging.getLogger("funker_dispatch")

BUILT_INS = (
    "AMAZON.HelpIntent",
    "AMAZON.StopIntent",
    "AMAZON.CancelIntent",
    "AMAZON.FallbackIntent",
    "AMAZON.NavigateHomeIntent",
)


@dataclass
class RequestRecord:
    """What happened to one request: read by the request log and the metrics."""

    request_id: str | None = None
    request_type: str | None = None
    intent: str | None = None
    locale: str | None = None
    route: str | None = None
    function: str | None = None  # host:port of the function called
    outcome: str = "ok"  # ok | apology | rejected | error
    reason: str | None = None
    function_ms: float | None = None
    user_id: str | None = None  # hashed before it is logged
    device_id: str | None = None
    handled_at: float | None = None  # perf_counter when the first handler ran
    arrived: float | None = None  # time.monotonic() when the server had the request's head
    # What went wrong, for the operator (the warning line) and the console's trace only;
    # never payload content.
    detail: str | None = None


_RECORD: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


def start_record() -> RequestRecord:
    record = RequestRecord()
    _RECORD.set(record)
    return record


def current_record() -> RequestRecord:
    record = _RECORD.get()
    if record is None:  # invoked outside the web view (tests, simulate --in-process)
        record = start_record()
    return record


@dataclass(frozen=True)
class Answer:
    """What the skill sends back: the ASK SDK's Response model, and the session attributes."""

    response: Response
    session_attributes: dict[str, Any] | None = None

    @classmethod
    def of(cls, reply: Reply, route: str | None = None) -> Answer:
        """The SDK model of a Reply; BadReply (a ReplyError) when the model refuses it."""
        return cls(to_model(reply, route), reply.session_attributes)


@dataclass(frozen=True)
class Dispatcher:
    """Forwards one request to its function and maps the answer to an Answer."""

    router: Router
    deadline: float
    max_response_bytes: int = 256 * 1024
    call: Callable[..., Any] = funker.call
    progressive: ProgressiveSender | None = None  # "One moment." while a slow call runs

    def answer(self, name: str, locale: str | None, request_id: str | None) -> Answer:
        record = current_record()
        try:
            route = self.router.resolve(name)
        except NoRoute as exc:
            return self._apologise(record, locale, exc.kind, f"no route for {name}", request_id)
        record.route = route.name
        record.function = f"{route.host}:{route.port}"
        envelope = raw_envelope()  # looked up once: the payload, the progressive target, attributes
        payload = _payload(route, envelope)
        timeout = min(self.deadline, route.timeout or self.deadline)
        if record.arrived is not None:
            # The deadline counts from arrival: Alexa's 8 s run while a request waits for
            # a thread too, and an apology late is as lost as an answer late (docs/robustness.md).
            timeout -= time.monotonic() - record.arrived
            if timeout <= 0:
                detail = "no time left after waiting for a thread"
                return self._apologise(record, locale, "deadline", detail, request_id)
        started = time.perf_counter()
        # Sent from another thread if the call outlasts its threshold; never waited for.
        pending = (
            self.progressive.arm(route, locale, timeout, envelope=envelope)
            if self.progressive
            else None
        )
        try:
            raw = self.call(
                route, payload, timeout=timeout, max_response_bytes=self.max_response_bytes
            )
        except funker.FunctionError as exc:
            record.function_ms = (time.perf_counter() - started) * 1000
            detail = f"{route.host}:{route.port} {exc}"
            return self._apologise(record, locale, exc.kind, detail, request_id)
        finally:
            if pending is not None:
                pending.done()
        record.function_ms = (time.perf_counter() - started) * 1000
        try:
            reply = to_reply(raw, route, locale or "en-US", carried_attributes=_carried(envelope))
            return Answer.of(reply, route.name)
        except ReplyError as exc:
            return self._apologise(record, locale, exc.kind, str(exc), request_id)

    @staticmethod
    def _apologise(
        record: RequestRecord, locale: str | None, reason: str, detail: str, request_id: str | None
    ) -> Answer:
        record.outcome = "apology"
        record.reason = reason
        record.detail = detail
        log.warning(
            "function failed: request_id=%s route=%s reason=%s detail=%s",
            request_id,
            record.route,
            reason,
            detail,
        )
        return Answer.of(apology(locale or "en-US"))


def _carried(envelope: dict[str, Any] | None) -> dict[str, Any] | None:
    """The request's session attributes: the SDK sends them back unless a reply sets its own."""
    session = (envelope or {}).get("session")
    attributes = session.get("attributes") if isinstance(session, dict) else None
    return attributes if isinstance(attributes, dict) else None


def _payload(route: Route, envelope: dict[str, Any] | None) -> dict[str, Any] | bytes:
    """The request as Alexa sent it: its very bytes, or narrowed to `route.arguments`."""
    if route.arguments is None:
        body = raw_body()
        if body is not None:
            return body
    envelope = envelope or {}
    if route.arguments is None:
        return envelope
    return {key: envelope[key] for key in route.arguments if key in envelope}


def respond(handler_input: HandlerInput, answer: Answer) -> Response:
    """The ASK response for an Answer: its model as the response, its attributes in the session."""
    builder = handler_input.response_builder
    builder.response = answer.response
    if answer.session_attributes is not None and handler_input.request_envelope.session is not None:
        handler_input.attributes_manager.session_attributes = dict(answer.session_attributes)
    return builder.response


CAN_FULFILL = "CanFulfillIntentRequest"
NO_SPEECH_TYPES = frozenset({"SessionEndedRequest", CAN_FULFILL})


def _accepts_speech(handler_input: HandlerInput) -> bool:
    envelope = handler_input.request_envelope
    return envelope.session is not None and _request_type(handler_input) not in NO_SPEECH_TYPES


def _locale(handler_input: HandlerInput) -> str | None:
    return getattr(handler_input.request_envelope.request, "locale", None)


def _request_type(handler_input: HandlerInput) -> str:
    return handler_input.request_envelope.request.object_type or ""


def _intent_name(handler_input: HandlerInput) -> str | None:
    request = handler_input.request_envelope.request
    if isinstance(request, IntentRequest) and request.intent is not None:
        return request.intent.name
    return None


def _note(handler_input: HandlerInput) -> RequestRecord:
    record = current_record()
    request = handler_input.request_envelope.request
    record.request_id = request.request_id
    record.request_type = request.object_type
    record.intent = _intent_name(handler_input)
    record.locale = request.locale
    record.handled_at = time.perf_counter()
    system = getattr(handler_input.request_envelope.context, "system", None)
    record.user_id = getattr(getattr(system, "user", None), "user_id", None)
    record.device_id = getattr(getattr(system, "device", None), "device_id", None)
    return record


class RoutedRequestHandler(AbstractRequestHandler):
    """Anything with an explicit route: an intent (built-ins too) or a request type."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def can_handle(self, handler_input: HandlerInput) -> bool:
        name = _intent_name(handler_input) or _request_type(handler_input)
        return self.dispatcher.router.has_route(name)

    def handle(self, handler_input: HandlerInput) -> Response:
        record = _note(handler_input)
        name = record.intent or record.request_type or ""
        reply = self.dispatcher.answer(name, record.locale, record.request_id)
        if record.outcome == "apology" and record.request_type == CAN_FULFILL:
            # A function that could not answer is a NO, never a silent maybe-yes.
            return _can_fulfill_response(handler_input, refusal(_heard_slots(handler_input)))
        if record.outcome == "apology" and not _accepts_speech(handler_input):
            # Events without a session (AudioPlayer.*, ...) and CanFulfillIntentRequest
            # accept no speech: a failure is acknowledged silently, and logged.
            return handler_input.response_builder.response
        return respond(handler_input, reply)


class CanFulfillHandler(AbstractRequestHandler):
    """An unrouted CanFulfillIntentRequest, answered from the model and the routes."""

    def __init__(self, models: Mapping[str, LanguageModel], router: Router) -> None:
        self.models = models
        self.router = router

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return _request_type(handler_input) == CAN_FULFILL

    def handle(self, handler_input: HandlerInput) -> Response:
        record = _note(handler_input)
        intent = getattr(handler_input.request_envelope.request, "intent", None)
        record.intent = getattr(intent, "name", None)
        answer = can_fulfill(
            self.models,
            self.router,
            record.intent or "",
            _heard_slots(handler_input),
            record.locale,
        )
        return _can_fulfill_response(handler_input, answer)


def _heard_slots(handler_input: HandlerInput) -> dict[str, str | None]:
    intent = getattr(handler_input.request_envelope.request, "intent", None)
    slots = getattr(intent, "slots", None) or {}
    return {name: getattr(slot, "value", None) for name, slot in slots.items()}


def _can_fulfill_response(handler_input: HandlerInput, answer: Mapping[str, Any]) -> Response:
    """The response carrying `answer` (Alexa's canFulfillIntent JSON) as the SDK's model."""
    slots = {
        name: CanFulfillSlot(
            can_understand=CanUnderstandSlotValues(verdict["canUnderstand"]),
            can_fulfill=CanFulfillSlotValues(verdict["canFulfill"]),
        )
        for name, verdict in answer["slots"].items()
    }
    verdict = CanFulfillIntent(
        can_fulfill=CanFulfillIntentValues(answer["canFulfill"]), slots=slots
    )
    return handler_input.response_builder.set_can_fulfill_intent(verdict).response


class LaunchRequestHandler(AbstractRequestHandler):
    """An unrouted LaunchRequest: a welcome that lists what the skill can do."""

    def __init__(self, examples: Mapping[str, Sequence[str]]) -> None:
        self.examples = examples

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return _request_type(handler_input) == "LaunchRequest"

    def handle(self, handler_input: HandlerInput) -> Response:
        locale = _note(handler_input).locale
        text = message(locale, "welcome", abilities=_abilities(self.examples, locale))
        return handler_input.response_builder.speak(text).ask(message(locale, "reprompt")).response


class BuiltInIntentHandler(AbstractRequestHandler):
    """Help, Stop, Cancel, Fallback and NavigateHome when no function serves them."""

    def __init__(self, examples: Mapping[str, Sequence[str]]) -> None:
        self.examples = examples

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return _intent_name(handler_input) in BUILT_INS

    def handle(self, handler_input: HandlerInput) -> Response:
        record = _note(handler_input)
        locale = record.locale
        builder = handler_input.response_builder
        what = _abilities(self.examples, locale)
        if record.intent in ("AMAZON.StopIntent", "AMAZON.CancelIntent"):
            goodbye = escape_speech(message(locale, "stop"))
            return builder.speak(goodbye).set_should_end_session(True).response
        if record.intent == "AMAZON.HelpIntent":
            text = message(locale, "help", abilities=what)
        elif record.intent == "AMAZON.FallbackIntent":
            text = message(locale, "fallback", abilities=what)
        else:  # NavigateHome: back to the start of the skill
            text = message(locale, "welcome", abilities=what)
        # Model samples and messages are plain text: escaped before they become SSML.
        return (
            builder.speak(escape_speech(text))
            .ask(escape_speech(message(locale, "reprompt")))
            .response
        )


class IntentForwardHandler(AbstractRequestHandler):
    """The catch-all: every other intent goes to its function (naming convention)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return _intent_name(handler_input) is not None

    def handle(self, handler_input: HandlerInput) -> Response:
        record = _note(handler_input)
        reply = self.dispatcher.answer(record.intent or "", record.locale, record.request_id)
        return respond(handler_input, reply)


class SessionEndedRequestHandler(AbstractRequestHandler):
    """The session ended: log why; Alexa accepts no speech here."""

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return _request_type(handler_input) == "SessionEndedRequest"

    def handle(self, handler_input: HandlerInput) -> Response:
        record = _note(handler_input)
        request = handler_input.request_envelope.request
        error = getattr(request, "error", None)
        log.info(
            "session ended: request_id=%s reason=%s error=%s",
            record.request_id,
            getattr(getattr(request, "reason", None), "value", None),
            getattr(getattr(error, "object_type", None), "value", None),
        )
        return handler_input.response_builder.response


class AcknowledgeHandler(AbstractRequestHandler):
    """Any other request type (AudioPlayer.*, AlexaSkillEvent.*, Messaging.*, System.*...).

    These often come without a session and accept no speech: an empty
    response acknowledges them.
    """

    def can_handle(self, handler_input: HandlerInput) -> bool:
        return True

    def handle(self, handler_input: HandlerInput) -> Response:
        _note(handler_input)
        return handler_input.response_builder.response


class ApologyExceptionHandler(AbstractExceptionHandler):
    """Anything unexpected in a handler becomes a spoken apology, and a traceback in the log."""

    def can_handle(self, handler_input: HandlerInput, exception: Exception) -> bool:
        return True

    def handle(self, handler_input: HandlerInput, exception: Exception) -> Response:
        record = current_record()
        record.outcome = "error"
        record.reason = "handler-error"
        log.error(
            "handler failed: request_id=%s type=%s",
            record.request_id,
            _request_type(handler_input),
            exc_info=exception,
        )
        if not _accepts_speech(handler_input):
            return handler_input.response_builder.response  # no speech outside a session
        return respond(handler_input, Answer.of(apology(_locale(handler_input) or "en-US")))


def _abilities(examples: Mapping[str, Sequence[str]], locale: str | None) -> str:
    chosen = (
        examples.get(locale or "") or examples.get("en-US") or next(iter(examples.values()), [])
    )
    return abilities(locale, list(chosen))


def request_handlers(
    dispatcher: Dispatcher,
    examples: Mapping[str, Sequence[str]],
    models: Mapping[str, LanguageModel] | None = None,
) -> list[AbstractRequestHandler]:
    """The handler chain, in the order the SDK tries it."""
    return [
        RoutedRequestHandler(dispatcher),
        CanFulfillHandler(models or {}, dispatcher.router),
        LaunchRequestHandler(examples),
        BuiltInIntentHandler(examples),
        IntentForwardHandler(dispatcher),
        SessionEndedRequestHandler(),
        AcknowledgeHandler(),
    ]
