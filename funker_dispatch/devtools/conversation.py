"""Talking to a running skill: signed requests over HTTP or in process, one session, the transcript.

`simulate` is a one-turn conversation and `dialog` a many-turn one; both keep
the session as Alexa does (one session id, `new` on the first turn only, the
session attributes of each response sent back with the next request). With a
`LocalAlexaApi` the requests name it as Alexa's API, and each turn shows the
progressive responses the skill sent while it worked (docs/alexa.md).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Protocol

from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.panel import Panel
from rich.text import Text

from funker_dispatch.devtools.alexa_api import AlexaApi
from funker_dispatch.devtools.dialogmodel import (
    ALWAYS,
    COMPLETED,
    IN_PROGRESS,
    NONE,
    STARTED,
    DialogProgress,
    Waiting,
)
from funker_dispatch.devtools.simulator import (
    InteractionModel,
    Match,
    NoMatch,
    SessionState,
    alexa_slots,
    encode,
    envelope,
    escape_intent,
    intent_request,
    launch_request,
    match_slot_answer,
    match_utterance,
    resolve,
    session_ended_request,
    strip_invocation,
    timestamp,
    yes_or_no,
)
from funker_dispatch.devtools.terminal import json_text, plain
from skill import client
from skill.client import Answer, EndpointProtocolError
from skill.settings import Settings
from skill.text import printable

Signer = Callable[[bytes], Mapping[str, str]]


class EnvelopeInvalid(ValueError):
    """A recorded request file cannot be replayed; the message says what is missing."""


class Endpoint(Protocol):
    """Where a conversation's requests go; `post` raises `client.EndpointError` on no answer."""

    url: str

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer: ...


class HttpEndpoint:
    """A skill endpoint over HTTP(S): each request bounded by one deadline and the read cap."""

    def __init__(self, url: str, timeout: float = client.DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        return client.post(self.url, body, headers, timeout=self.timeout)


class InProcessEndpoint:
    """The Flask app called through its test client: the whole stack, no socket."""

    def __init__(self, app: Any, path: str = "/") -> None:
        self.client = app.test_client()
        self.path = path
        self.url = f"(in process) {path}"

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        started = time.monotonic()
        answer = self.client.post(
            self.path, data=body, headers=dict(headers), content_type="application/json"
        )
        headers = {name.lower(): value for name, value in answer.headers.items()}
        return Answer(answer.status_code, answer.get_data(), time.monotonic() - started, headers)


@contextmanager
def open_endpoint(
    url: str, *, in_process: bool, settings: Settings, timeout: float = client.DEFAULT_TIMEOUT
) -> Iterator[Endpoint]:
    """An endpoint for `url` (each request within `timeout` seconds, all told), or the app
    built from `settings` when `in_process`.

    In process, the configuration's functions run for as long as the endpoint is
    open, as `serve` would run them (not watched: a command's run is short).
    """
    if not in_process:
        yield HttpEndpoint(url, timeout)
        return
    from funker_dispatch.server.functions import FunctionSupervisor
    from skill.app import create_app

    supervisor = FunctionSupervisor(settings.functions, watch=False)
    supervisor.start()
    try:
        yield InProcessEndpoint(create_app(settings), settings.server.path)
    finally:
        supervisor.stop()


def dev_ca_signer() -> Signer:
    """Sign with the development CA in $FUNKER_DISPATCH_HOME (created on first use)."""
    from verification.devca import DevCA

    return DevCA.load_or_create().sign


@dataclass
class Turn:
    """One request and what came back."""

    said: str  # the utterance, or what was sent ("(launch)", "(end session)")
    request: dict[str, Any]
    answer: Answer
    match: Match | None = None
    progressive: list[dict[str, Any]] = field(default_factory=list)  # VoicePlayer.Speak received
    # Alexa's own part, by the dialog model: a prompt it spoke without asking the skill
    # (by_alexa, nothing was sent), or the request it sent on its own (said is "").
    by_alexa: bool = False
    then: Turn | None = None  # what followed without the user saying anything

    @property
    def last(self) -> Turn:
        """The end of the chain: what the user heard last."""
        turn = self
        while turn.then is not None:
            turn = turn.then
        return turn

    def chain(self) -> list[Turn]:
        turns, turn = [], self
        while turn is not None:
            turns.append(turn)
            turn = turn.then
        return turns

    @cached_property
    def response(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.answer.body)
        except (ValueError, RecursionError):  # deep nesting exhausts the decoder's stack
            return None
        return value if isinstance(value, dict) else None

    @property
    def ok(self) -> bool:
        return self.answer.status == 200 and self.response is not None

    def _part(self, *keys: str) -> Any:
        value: Any = self.response
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    @property
    def speech(self) -> str | None:
        return _spoken(self._part("response", "outputSpeech"))

    @property
    def reprompt(self) -> str | None:
        return _spoken(self._part("response", "reprompt", "outputSpeech"))

    @property
    def card(self) -> dict[str, Any] | None:
        card = self._part("response", "card")
        return card if isinstance(card, dict) else None

    @property
    def ends_session(self) -> bool:
        return self._part("response", "shouldEndSession") is True


def _spoken(speech: Any) -> str | None:
    if not isinstance(speech, dict):
        return None
    from dispatch.responses import ssml_to_text

    if speech.get("type") == "SSML" and isinstance(speech.get("ssml"), str):
        return ssml_to_text(speech["ssml"])
    text = speech.get("text")
    return text if isinstance(text, str) else None


@dataclass
class Conversation:
    """One Alexa session against an endpoint: every request signed, state carried."""

    endpoint: Endpoint
    model: InteractionModel
    sign: Signer
    application_id: str
    locale: str
    session: SessionState = field(init=False)
    ended: bool = False
    api: AlexaApi | None = None  # the stand-in for Alexa's API that the requests name
    # The bytes sent (and signed) for an envelope; the console signs it indented, so the
    # request it shows for editing is exactly what was signed.
    encoding: Callable[[Mapping[str, Any]], bytes] = encode
    dialog: DialogProgress | None = field(init=False, default=None)  # a dialog under way
    # Changes the next envelope before it is signed (a test's `request.<path>: value`).
    amend: Callable[[dict[str, Any]], None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.session = SessionState(self.application_id)

    def say(self, utterance: str) -> Turn:
        """Resolve an utterance (or "open <invocation name>") and send it; NoMatch if none fits.

        While Alexa waits for a slot's value or a yes/no (the dialog model), the utterance
        answers that, as on a device; "stop", "cancel" and "help" still leave the dialog.
        """
        invocation = strip_invocation(self.model, utterance)
        if invocation.launch:
            return self.launch(said=utterance)
        progress = self.dialog
        if progress is not None and progress.waiting is not None:
            answered = self._dialog_answer(progress, invocation.utterance, utterance)
            if answered is not None:
                return answered
        match = match_utterance(self.model, invocation.utterance)
        return self.intent(match.intent, match.slots, said=utterance, match=match)

    def intent(
        self,
        name: str,
        values: Mapping[str, str],
        *,
        said: str | None = None,
        match: Match | None = None,
    ) -> Turn:
        shown = said if said is not None else f"({name})"
        match = match or Match(name, "", dict(values))
        dialog = self.model.dialog.intents.get(name)
        progress = self.dialog = DialogProgress(name, dialog)
        progress.fill({slot: value for slot, value in values.items() if value})
        if dialog is not None and dialog.delegation == ALWAYS:
            # Alexa runs the dialog by the model; the skill hears only its end.
            return self._delegate(progress, shown, match)
        return self._dialog_request(progress, shown, match)

    def launch(self, said: str = "(launch)") -> Turn:
        self.dialog = None
        return self.send(launch_request(self.locale), said)

    def end(self, reason: str = "USER_INITIATED") -> Turn:
        self.dialog = None
        return self.send(session_ended_request(self.locale, reason=reason), "(end session)")

    # --- the dialog model, as Alexa runs it -------------------------------------------

    def _dialog_answer(self, progress: DialogProgress, text: str, said: str) -> Turn | None:
        """The user's answer to what Alexa asked; None when it is something else."""
        waiting = progress.waiting
        assert waiting is not None
        if escape_intent(self.model, text) is not None:
            return None
        if waiting.kind == "elicit" and waiting.slot:
            values = match_slot_answer(self.model, progress.intent, waiting.slot, text)
            if values is None:
                return None
            progress.fill(values)
            progress.waiting = None
        else:
            answer = yes_or_no(self.model, text)
            if answer is None:
                return None
            values = {}
            progress.answer(answer)
        progress.state = IN_PROGRESS
        match = Match(progress.intent, "", dict(values))
        if progress.dialog is not None and progress.dialog.delegation == ALWAYS:
            return self._delegate(progress, said, match)
        return self._dialog_request(progress, said, match)

    def _dialog_request(self, progress: DialogProgress, said: str, match: Match | None) -> Turn:
        values = {name: value for name, value in progress.values.items() if value}
        slots = alexa_slots(self.model, progress.intent, values, self.application_id)
        for name, slot in slots.items():
            slot["confirmationStatus"] = progress.slot_confirmations.get(name, NONE)
        request = intent_request(progress.intent, slots, self.locale)
        request["intent"]["confirmationStatus"] = progress.confirmation
        if progress.dialog is not None or progress.state != STARTED:
            # An intent of the dialog model, or one the skill holds a dialog for.
            request["dialogState"] = progress.state
        turn = self.send(request, said, match)
        if progress.state == STARTED:
            progress.state = IN_PROGRESS
        return self._follow(turn, progress)

    def _follow(self, turn: Turn, progress: DialogProgress) -> Turn:
        """Alexa's part after the skill answered: its Dialog directive decides what next."""
        directive = next(
            (
                d
                for d in (turn._part("response", "directives") or [])
                if isinstance(d, dict) and str(d.get("type", "")).startswith("Dialog.")
            ),
            None,
        )
        if directive is None or not turn.ok or self.ended:
            if self.dialog is progress:
                self.dialog = None  # the skill answered: this dialog is over
            return turn
        progress.update(directive.get("updatedIntent"))
        kind = directive.get("type")
        if kind == "Dialog.Delegate":
            turn.then = self._delegate(progress, "", None)
        elif kind == "Dialog.ElicitSlot":
            progress.waiting = Waiting("elicit", str(directive.get("slotToElicit") or ""))
        elif kind == "Dialog.ConfirmSlot":
            progress.waiting = Waiting("confirm-slot", str(directive.get("slotToConfirm") or ""))
        elif kind == "Dialog.ConfirmIntent":
            progress.waiting = Waiting("confirm-intent")
        return turn

    def _delegate(self, progress: DialogProgress, said: str, match: Match | None) -> Turn:
        """Alexa takes the next step of the dialog model: a prompt, or the completed intent."""
        step = progress.next_step()
        if step is None:
            progress.state = COMPLETED
            progress.waiting = None
            return self._dialog_request(progress, said, match)
        progress.waiting = step
        if progress.state == STARTED:
            progress.state = IN_PROGRESS
        speech = self.model.dialog.speak(progress.prompt_id(step), progress.values)
        response = {
            "version": "1.0",
            "response": {"outputSpeech": speech, "shouldEndSession": False},
        }
        answer = Answer(200, json.dumps(response).encode(), 0.0, {})
        return Turn(said, {}, answer, match, by_alexa=True)

    def replay(self, recorded: dict[str, Any], said: str) -> Turn:
        """Send a recorded envelope as it is, but stamped now and signed (a file's timestamp
        is stale, and the signature must cover the exact bytes sent).

        Refuses (EnvelopeInvalid, a ValueError) an envelope whose `request` is not an
        object with a string `type`, before anything is sent. Anything else is sent as
        recorded, even when the skill will refuse it: that is what a replay is for.
        """
        if not isinstance(recorded, dict):
            raise EnvelopeInvalid("not a request envelope (a JSON object)")
        request = recorded.get("request")
        if not isinstance(request, dict):
            what = "has no" if request is None else "has a non-object"
            raise EnvelopeInvalid(f'the envelope {what} "request" (an object with a "type")')
        if not isinstance(request.get("type"), str):
            raise EnvelopeInvalid('the envelope\'s "request" has no string "type"')
        sent = json.loads(json.dumps(recorded))
        sent["request"]["timestamp"] = timestamp()
        context = sent.get("context")
        system = context.get("System") if isinstance(context, dict) else None
        if self.api is not None and isinstance(system, dict) and "apiEndpoint" in system:
            # A recorded request names Alexa's real API (and a token): a progressive
            # response to it must reach the local stand-in, never leave the machine.
            system["apiEndpoint"] = self.api.url
            system["apiAccessToken"] = self.api.token
        return self._exchange(sent, said)

    def send(self, request: dict[str, Any], said: str, match: Match | None = None) -> Turn:
        api = self.api
        sent = envelope(
            request,
            self.session,
            api_url=api.url if api is not None else None,
            api_token=api.token if api is not None else None,
        )
        if self.amend is not None:
            amend, self.amend = self.amend, None
            amend(sent)
        return self._exchange(sent, said, match)

    def send_bytes(self, body: bytes, headers: Mapping[str, str], said: str) -> Turn:
        """Exactly `body` with exactly `headers`, nothing stamped or signed anew: a signature
        kept from other bytes is what the endpoint must refuse (`signature`). The session
        carries on from the answer as after any turn."""
        try:
            sent = json.loads(body)
        except (ValueError, RecursionError):
            sent = None
        return self._post(sent if isinstance(sent, dict) else {}, body, headers, said)

    def _exchange(self, sent: dict[str, Any], said: str, match: Match | None = None) -> Turn:
        body = self.encoding(sent)
        return self._post(sent, body, dict(self.sign(body)), said, match)

    def _post(
        self,
        sent: dict[str, Any],
        body: bytes,
        headers: Mapping[str, str],
        said: str,
        match: Match | None = None,
    ) -> Turn:
        turn = Turn(said, sent, self.endpoint.post(body, dict(headers)), match)
        request = sent.get("request")
        request_id = request.get("requestId") if isinstance(request, dict) else None
        if self.api is not None and isinstance(request_id, str):
            turn.progressive = self.api.directives(request_id)
        if turn.answer.status == 200 and turn.response is None:
            # A refusal may come as any page; an answer must be a response document.
            raise EndpointProtocolError(
                self.endpoint.url, "answered HTTP 200 with a body that is not a JSON object"
            )
        self._carry(turn)
        return turn

    def _carry(self, turn: Turn) -> None:
        # Alexa sends back exactly the attributes of the last response; an error
        # or a SessionEndedRequest closes the session.
        self.session.new = False
        request = turn.request.get("request")  # a replayed file may hold anything else
        kind = request.get("type") if isinstance(request, dict) else None
        if kind == "SessionEndedRequest" or not turn.ok:
            self.ended = True
            return
        attributes = (turn.response or {}).get("sessionAttributes")
        self.session.attributes = dict(attributes) if isinstance(attributes, dict) else {}
        if turn.ends_session:
            self.ended = True


# --- printing -------------------------------------------------------------------


class Transcript:
    """Turns printed for people (rich) or as JSON lines.

    Whatever the endpoint sent is printed through `funker_dispatch.devtools.terminal`: as rich
    `Text` (never read as markup), without control characters; JSON stays exact.
    """

    def __init__(self, out: IO[str] | None = None, *, as_json: bool = False) -> None:
        self.console = Console(file=out or sys.stdout, highlight=False, soft_wrap=True)
        self.as_json = as_json

    def turn(self, turn: Turn, model: InteractionModel | None = None) -> None:
        """A turn and whatever followed it without the user (the dialog model's steps)."""
        for each in turn.chain():
            self._one(each, model)

    def _one(self, turn: Turn, model: InteractionModel | None) -> None:
        if self.as_json:
            document = {
                "by_alexa": turn.by_alexa,
                "request": turn.request,
                "status": turn.answer.status,
                "response": turn.response
                if turn.response is not None
                else turn.answer.body.decode("utf-8", "replace"),
                "progressive": turn.progressive,
            }
            self.console.print(JSONHighlighter()(Text(json_text(document))))
            return
        say = self.console.print
        if turn.by_alexa:  # the dialog model's prompt: Alexa speaks, the skill is not asked
            if turn.said:
                say(Text.assemble(("you", "bold cyan"), "   ", printable(turn.said)))
            say(Text.assemble(("alexa", "bold green"), " ", printable(turn.speech or "")))
            say(
                Text("      (a prompt of the dialog model; nothing sent to the skill)", style="dim")
            )
            return
        if turn.said:
            say(Text.assemble(("you", "bold cyan"), "   ", printable(turn.said)))
        else:
            say(Text("      (sent by Alexa, by the dialog model)", style="dim"))
        say(Text.assemble("      ", (printable(_described(turn, model)), "dim")))
        if turn.match is not None and turn.match.nearest:
            # No sample matched: the device's fallback. Which samples came closest helps.
            closest = "; ".join(f"{sample!r} ({intent})" for intent, sample in turn.match.nearest)
            say(Text.assemble("      ", (f"no sample matched; nearest: {closest}", "dim")))
        for directive in turn.progressive:  # spoken while the skill worked: before its answer
            spoken = _spoken({"type": "SSML", "ssml": directive.get("speech")}) or ""
            say(Text.assemble(("alexa", "bold green"), " (progressive) ", printable(spoken)))
        if not turn.ok:
            error_page = turn.answer.body.decode("utf-8", "replace").strip()
            say(
                Text.assemble(
                    (f"HTTP {turn.answer.status}", "bold red"), " ", printable(error_page)
                )
            )
            return
        if turn.speech:
            say(Text.assemble(("alexa", "bold green"), " ", printable(turn.speech)))
        card = turn.card
        if card is not None:
            say(_card_panel(card), soft_wrap=False)  # wrap card text inside its box
        if turn.reprompt and not turn.ends_session:
            say(Text.assemble("      ", (f"reprompt: {printable(turn.reprompt)}", "dim")))
        if turn.ends_session:
            say(Text("      (session ended)", style="dim"))

    def no_match(self, error: NoMatch) -> None:
        self.console.print(
            Text.assemble(("no match", "bold red"), f" for {error.utterance!r}; nearest samples:")
        )
        for intent, sample in error.nearest:
            self.console.print(Text.assemble(f"  {sample}  ", (intent, "dim")))

    def note(self, text: str) -> None:
        self.console.print(Text(text, style="yellow"))


def _described(turn: Turn, model: InteractionModel | None) -> str:
    # Defensive throughout: a replayed request file may lack any of these keys.
    request = turn.request.get("request")
    if not isinstance(request, dict):
        return "(no request)"
    kind = request.get("type")
    if kind != "IntentRequest":
        return str(kind)
    intent = request.get("intent")
    intent_name = intent.get("name") if isinstance(intent, dict) else None
    if not isinstance(intent_name, str):
        return "IntentRequest (no intent name)"
    parts = [intent_name]
    slots = intent.get("slots")
    for name, slot in (slots if isinstance(slots, dict) else {}).items():
        if not isinstance(slot, dict) or "value" not in slot:
            continue
        text = f"{name}={slot['value']!r}"
        resolution = (
            resolve(model, intent_name, name, slot["value"])
            if model is not None and isinstance(slot["value"], str)
            else None
        )
        if resolution is not None:
            text += f" → {resolution.value.name}" if resolution.value else " (ER_SUCCESS_NO_MATCH)"
        parts.append(text)
    state = request.get("dialogState")
    if isinstance(state, str):  # the dialog model: where it is, and what was confirmed
        confirmed = intent.get("confirmationStatus")
        parts.append(
            f"[dialog {state}" + (f", intent {confirmed}]" if confirmed != "NONE" else "]")
        )
    return " ".join(parts)


def _card_panel(card: Mapping[str, Any]) -> Panel:
    kind = card.get("type", "Simple")
    if kind == "LinkAccount":
        return Panel("link your account in the Alexa app", title="LinkAccount card")
    body = card.get("content") if kind == "Simple" else card.get("text")
    text = plain(str(body or ""))
    image = card.get("image")
    if isinstance(image, dict):
        for size in ("smallImageUrl", "largeImageUrl"):
            if image.get(size):
                text.append(f"\n{size}: {printable(str(image[size]))}", style="dim")
    title = plain(str(card.get("title") or f"{kind} card"))
    return Panel(text, title=title, expand=False)


# --- the two commands --------------------------------------------------------


def simulate(
    endpoint: Endpoint,
    model: InteractionModel,
    sign: Signer,
    application_id: str,
    *,
    utterance: str | None = None,
    intent: str | None = None,
    slots: Mapping[str, str] | None = None,
    launch: bool = False,
    end: bool = False,
    recorded: tuple[str, dict[str, Any]] | None = None,
    transcript: Transcript,
    api: AlexaApi | None = None,
) -> int:
    """Send one request; 0 when the skill answered 200 with a response, 1 when it did not,
    2 when a recorded request file cannot be replayed (nothing was sent).

    No usable answer at all raises `client.EndpointError` (the CLI's exit status 2).
    """
    conversation = Conversation(endpoint, model, sign, application_id, model.locale, api=api)
    if recorded is not None:
        try:
            turn = conversation.replay(recorded[1], f"(request {recorded[0]})")
        except EnvelopeInvalid as error:
            # The CLI's usage-error convention: the message on stderr, exit status 2.
            print(f"funker-dispatch simulate: {recorded[0]}: {error}", file=sys.stderr)
            return 2
        transcript.turn(turn, model)
        return 0 if turn.ok else 1
    try:
        if launch:
            turn = conversation.launch()
        elif end:
            turn = conversation.end()
        elif intent is not None:
            turn = conversation.intent(intent, slots or {})
        else:
            turn = conversation.say(utterance or "")
    except NoMatch as error:
        transcript.no_match(error)
        return 1
    transcript.turn(turn, model)
    return 0 if turn.ok else 1


def dialog(
    endpoint: Endpoint,
    model: InteractionModel,
    sign: Signer,
    application_id: str,
    utterances: Iterable[str],
    *,
    transcript: Transcript,
    api: AlexaApi | None = None,
) -> tuple[int, Conversation, list[Turn]]:
    """Play utterances in one session until the skill ends it or they run out.

    Returns the exit code (1 when an utterance matched nothing or a request
    failed), the conversation and its turns. No usable answer at all raises
    `client.EndpointError` once the turns before it are printed.
    """
    conversation = Conversation(endpoint, model, sign, application_id, model.locale, api=api)
    turns: list[Turn] = []
    code = 0
    pending = iter(utterances)
    for utterance in pending:
        try:
            turn = conversation.say(utterance)
        except NoMatch as error:
            transcript.no_match(error)
            code = 1
            continue
        turns.append(turn)
        transcript.turn(turn, model)
        if not turn.ok:
            code = 1
        if conversation.ended:
            left = sum(1 for _ in pending)
            if left:
                transcript.note(f"the session ended; {left} utterance(s) not played")
            return code, conversation, turns
    # Out of input with the session open: the user walked away, as Alexa reports it.
    if turns:
        turn = conversation.end("USER_INITIATED")
        turns.append(turn)
        transcript.turn(turn, model)
        if not turn.ok:
            code = 1
    return code, conversation, turns


def script_lines(path: Path) -> list[str]:
    """Utterances of a dialog script: one a line, blank lines and `#` comments skipped."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            lines.append(text)
    return lines


def prompted(prompt: str = "you> ") -> Iterator[str]:
    """Utterances typed at a prompt, until EOF (Ctrl-D) or Ctrl-C."""
    while True:
        try:
            text = input(prompt).strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if text:
            yield text
