"""The web console (docs/console.md): one page and its JSON API, on the admin listener.

A developer's tester page for their own endpoint: a conversation built from the
interaction model, each turn's signed request and response, the server's own
trace of it, test events of every trigger kind, the routing table, certify,
and dialog scripts. It runs in the admin process and talks to the public
listener over loopback HTTP like any client, through the code the CLI uses
(`Conversation`, `Certifier`, `eventsend`, `skill.client`), so every turn goes
through the real verification path.

Why each guard (the console is a signing service: it signs whatever it is
asked to with the development CA and the trigger credentials):

- `[console] enabled` only, on a loopback admin host only (skill/settings/load.py).
- Every `/console` path answers only to a `Host` naming the admin listener
  itself (`127.0.0.1:3001`, `localhost:3001`): a page from another site that
  rebinds its own name to 127.0.0.1 (DNS rebinding) gets nothing.
- Every API call needs the per-page token of `X-Console-Token` (CSRF) and
  must come from the page's own origin (`Origin`, else `Sec-Fetch-Site:
  same-origin`); POSTs are JSON, which no cross-site form can send.
- The page holds no secret: the keys stay here, credentials are redacted from
  what it shows, and it renders endpoint text as text (never as HTML); its
  Content-Security-Policy allows only its own scripts.

The server's trace of a turn comes back in a response header only the
console can ask for (skill/trace.py). Progressive responses (docs/alexa.md) are
received by a directive inbox served here, on the admin listener's own origin,
which the public app allows as a progressive host while the console is on.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request, send_from_directory

from dispatch.probe import probe_router
from dispatch.responses import ssml_to_text
from funker_dispatch.devtools import eventsend
from funker_dispatch.devtools.alexa_api import DirectiveInbox
from funker_dispatch.devtools.certify import Certifier, CertifyStopped
from funker_dispatch.devtools.conversation import Conversation, EnvelopeInvalid, HttpEndpoint, Turn
from funker_dispatch.devtools.dialogmodel import progress_from_json, progress_json
from funker_dispatch.devtools.simulator import (
    InteractionModel,
    NoMatch,
    SessionState,
    choose_model,
    intent_samples,
    match_utterance,
    undeclared_slots,
)
from skill import client, trace
from skill.client import Answer, EndpointError
from skill.progressive import DIRECTIVES_PATH
from skill.settings import (
    DEVELOPMENT_SKILL_ID,
    DEVELOPMENT_TOPIC,
    ServerSettings,
    admin_origin,
    public_origin,
)

ASSETS = Path(__file__).with_name("console_assets")
TOKEN_HEADER = "X-Console-Token"
TOKEN_PLACEHOLDER = "__CONSOLE_TOKEN__"
#: The signature headers a request "sent as is" may carry back from the page.
SIGNATURE_HEADERS = ("Signature-256", "SignatureCertChainUrl", "Signature")
#: Headers whose values are credentials: never shown in the page.
CREDENTIAL_HEADERS = frozenset({"authorization"})
REDACTED = "(redacted: a credential of the running configuration)"

SECURITY_HEADERS = {
    # Only the page's own scripts and styles; card images from https (Alexa requires it).
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' https:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

#: The form of each test event kind: (field, the `events send` option it sets, input kind).
EVENT_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "s3": (("bucket", "text"), ("key", "text"), ("event", "text"), ("size", "number"),
           ("topic", "text")),
    "cloudwatch": (("alarm", "text"), ("state", "choice"), ("reason", "text"), ("topic", "text")),
    "sns": (("message", "text"), ("subject", "text"), ("topic", "text")),
    "eventbridge": (("source", "text"), ("detail_type", "text"), ("detail", "json")),
    "dynamodb": (("table", "text"), ("event", "choice"), ("new", "json"), ("old", "json"),
                 ("keys", "json")),
    "github": (("event", "choice"), ("repository", "text"), ("ref", "text")),
}  # fmt: skip
EVENT_CHOICES = {
    ("cloudwatch", "state"): eventsend.STATES,
    ("dynamodb", "event"): ("INSERT", "MODIFY", "REMOVE"),
    ("github", "event"): ("push", "ping"),
}
#: What each field is, in words (the form's label; `option` is the same for `events send`).
EVENT_LABELS = {
    "bucket": "Bucket",
    "key": "Object key",
    "event": "Event",
    "size": "Size (bytes)",
    "topic": "Topic ARN",
    "alarm": "Alarm name",
    "state": "New state",
    "reason": "Reason",
    "message": "Message",
    "subject": "Subject",
    "source": "Source",
    "detail_type": "Detail type",
    "detail": "Detail (JSON)",
    "table": "Table",
    "new": "New item (JSON)",
    "old": "Old item (JSON)",
    "keys": "Key (JSON)",
    "repository": "Repository (owner/name)",
    "ref": "Ref",
}
EVENT_TITLES = {
    "s3": "S3 upload",
    "cloudwatch": "CloudWatch alarm",
    "sns": "SNS message",
    "eventbridge": "EventBridge event",
    "dynamodb": "DynamoDB record",
    "github": "GitHub push",
}


class ConsoleRefused(Exception):
    """An API call the console will not serve: (error code, message, HTTP status)."""

    def __init__(self, error: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.error, self.message, self.status = error, message, status


def register(app: Flask) -> None:
    """`GET /console`, its assets, `/console/api/...`, and the directive inbox, on `app`."""
    console = Console(app.extensions["funker_dispatch"])
    blueprint = Blueprint("console", __name__, url_prefix="/console")
    blueprint.before_request(console.guard)
    blueprint.after_request(_secured)
    blueprint.register_error_handler(ConsoleRefused, _refused)
    blueprint.add_url_rule("", "page", console.page)
    blueprint.add_url_rule("/static/<name>", "asset", _asset)
    api: dict[str, tuple[Callable[[], Any], str]] = {
        "model": (console.model_view, "GET"),
        "turn": (console.turn_view, "POST"),
        "send": (console.send_view, "POST"),
        "routes": (console.routes_view, "GET"),
        "certify": (console.certify_view, "POST"),
        "events": (console.events_view, "GET"),
        "event": (console.event_view, "POST"),
        "mcp-tools": (console.mcp_tools_view, "GET"),
        "mcp-call": (console.mcp_call_view, "POST"),
    }
    for name, (view, method) in api.items():
        blueprint.add_url_rule(f"/api/{name}", f"api_{name}", view, methods=[method])
    app.register_blueprint(blueprint)
    app.add_url_rule(
        DIRECTIVES_PATH, "console_directives", console.directive_view, methods=["POST"]
    )


class ConsoleInbox(DirectiveInbox):
    """The directive inbox at the admin listener's origin (what the console's requests name)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url


class PublicListener(HttpEndpoint):
    """The public listener over loopback, through the console's one `post` (which marks
    each request for the server's trace), keeping what was last sent (the page shows the
    exact bytes)."""

    def __init__(self, url: str, post: Callable[[str, bytes, Mapping[str, str]], Answer]) -> None:
        super().__init__(url)
        self._post = post
        self.sent: list[tuple[bytes, dict[str, str]]] = []  # every request of one call

    def post(self, body: bytes, headers: Mapping[str, str]) -> Answer:
        self.sent.append((body, dict(headers)))
        return self._post(self.url, body, headers)


class Console:
    """The API's work, over the admin app's shared state (settings, router, models)."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        from verification.devca import DevCA

        self.settings = state["settings"]
        self.router = state["router"]
        self.models = state["models"]
        self.locales = sorted(self.models)
        self._interaction_models: dict[str, InteractionModel] = {}
        self.trace_key: bytes | None = state["console_key"]
        server: ServerSettings = self.settings.server
        self.origin = admin_origin(server)
        self.hosts = _own_hosts(server)
        self.inbox = ConsoleInbox(self.origin)
        self.application_id = next(iter(self.settings.skill.application_ids), DEVELOPMENT_SKILL_ID)
        self.public = public_origin(server)
        self.alexa_url = self.public + self.settings.server.path
        self.tls = _own_certificate(server)
        # Loaded (created the first time) at start, in the process that forks: a console
        # that cannot sign should fail there, not at the developer's first click.
        self.ca = DevCA.load_or_create()
        self._csrf_key = secrets.token_bytes(32)  # this process's; pages of an older one fail

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Every request the console sends its own public listener: over its certificate when
        it serves TLS, and marked so the server hands back its record of the request."""
        marked = dict(headers)
        if self.trace_key is not None:
            marked[trace.MARKER_HEADER] = trace.marker(self.trace_key, body)
        return client.post(url, body, marked, context=self.tls)

    # --- guards ------------------------------------------------------------------------

    def guard(self) -> Response | None:
        host = (request.headers.get("Host") or "").lower()
        if host not in self.hosts:
            raise ConsoleRefused("host", "the console answers only to its own loopback name", 403)
        if request.endpoint in ("console.page", "console.asset"):
            return None
        if not self._same_origin(host):
            raise ConsoleRefused("origin", "console API calls come from the console's page", 403)
        if not self._csrf_ok(request.headers.get(TOKEN_HEADER)):
            raise ConsoleRefused("csrf", "missing or wrong console token: reload the page", 403)
        if request.method == "POST" and request.mimetype != "application/json":
            raise ConsoleRefused("malformed", "console API bodies are JSON", 415)
        return None

    @staticmethod
    def _same_origin(host: str) -> bool:
        origin = request.headers.get("Origin")
        if origin is not None:
            return origin.lower() == f"http://{host}"
        # Chromium and Firefox send no Origin on a same-origin GET, but this.
        return request.headers.get("Sec-Fetch-Site") == "same-origin"

    def new_token(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac(nonce)}"

    def _csrf_ok(self, token: str | None) -> bool:
        nonce, _, mac = (token or "").partition(".")
        return bool(nonce) and hmac.compare_digest(mac.encode(), self._mac(nonce).encode())

    def _mac(self, nonce: str) -> str:
        return hmac.new(self._csrf_key, nonce.encode(), hashlib.sha256).hexdigest()

    # --- the page ----------------------------------------------------------------------

    def page(self) -> Response:
        html = (ASSETS / "index.html").read_text(encoding="utf-8")
        return Response(html.replace(TOKEN_PLACEHOLDER, self.new_token()), mimetype="text/html")

    # --- the conversation --------------------------------------------------------------

    def model_view(self) -> Response:
        locale = self._locale(request.args.get("locale"))
        model = self._model(locale)
        intents = [
            {
                "name": intent.name,
                "slots": [
                    {
                        "name": slot,
                        "type": slot_type,
                        "values": [value.name for value in model.types.get(slot_type, ())],
                    }
                    for slot, slot_type in intent.slots.items()
                ],
                "samples": list(intent.samples),
            }
            for intent in model.intents.values()
        ]
        return jsonify(
            locales=self.locales,
            locale=locale,
            invocation_name=model.invocation_name,
            application_id=self.application_id,
            endpoint=self.alexa_url,
            intents=intents,
            suggestions=suggestions(model),
        )

    def turn_view(self) -> Response:
        asked = _json_object()
        locale = self._locale(asked.get("locale"))
        conversation, listener = self._conversation(locale, asked.get("session"))
        action = asked.get("action")
        try:
            if action == "say":
                utterance = _text(asked, "utterance")
                try:
                    turn = conversation.say(utterance)
                except NoMatch as error:
                    nearest = [{"intent": i, "sample": s} for i, s in error.nearest]
                    return jsonify(no_match={"utterance": utterance, "nearest": nearest})
            elif action == "intent":
                name = _text(asked, "intent")
                slots = _slot_values(asked.get("slots"))
                unknown = undeclared_slots(conversation.model, name, slots)
                if unknown:
                    raise ConsoleRefused("slot", f"{name} has no slot {', '.join(unknown)}")
                turn = conversation.intent(name, slots)
            elif action == "launch":
                turn = conversation.launch()
            elif action == "end":
                turn = conversation.end()
            else:
                raise ConsoleRefused("malformed", "action is say, intent, launch or end")
        except EndpointError as exc:
            raise ConsoleRefused("endpoint", str(exc), 502) from None
        return jsonify(self._turn(turn, conversation, listener, action))

    def send_view(self) -> Response:
        """An edited request: sent as is (its old signature kept), or stamped now and re-signed."""
        asked = _json_object()
        locale = self._locale(asked.get("locale"))
        conversation, listener = self._conversation(locale, asked.get("session"))
        body = _text(asked, "body", empty=True)
        try:
            if asked.get("resign") is True:
                try:
                    recorded = json.loads(body)
                    turn = conversation.replay(recorded, "(edited request, re-signed)")
                except (ValueError, RecursionError, EnvelopeInvalid) as exc:
                    raise ConsoleRefused("malformed", f"cannot re-sign: {exc}") from None
            else:
                given = asked.get("headers") if isinstance(asked.get("headers"), dict) else {}
                headers = {
                    name: value
                    for name, value in given.items()
                    if name in SIGNATURE_HEADERS and isinstance(value, str)
                }
                turn = conversation.send_bytes(
                    body.encode("utf-8"), headers, "(edited request, sent as is)"
                )
        except EndpointError as exc:
            raise ConsoleRefused("endpoint", str(exc), 502) from None
        return jsonify(self._turn(turn, conversation, listener, "send"))

    def _conversation(self, locale: str, session: Any) -> tuple[Conversation, PublicListener]:
        listener = PublicListener(self.alexa_url, self.post)
        conversation = Conversation(
            listener,
            replace(self._model(locale), locale=locale),
            self.ca.sign,
            self.application_id,
            locale,
            api=self.inbox,
            encoding=indented,
        )
        if session is not None:
            conversation.session = _session(session, self.application_id)
            if isinstance(session, dict):  # a dialog of the dialog model under way
                conversation.dialog = progress_from_json(
                    session.get("dialog"), conversation.model.dialog
                )
        return conversation, listener

    def _turn(
        self, turn: Turn, conversation: Conversation, listener: PublicListener, action: str
    ) -> dict[str, Any]:
        """The turn, and as `then` what followed it without the user (the dialog model's
        prompts, and the request Alexa sent on its own), each with its own request."""
        sent = iter(listener.sent)
        parts = [self._turn_part(t, conversation, sent, action) for t in turn.chain()]
        first = parts[0]
        first["then"] = parts[1:]
        return first

    def _turn_part(
        self,
        turn: Turn,
        conversation: Conversation,
        sent: Iterator[tuple[bytes, dict[str, str]]],
        action: str,
    ) -> dict[str, Any]:
        body, headers = (b"", {}) if turn.by_alexa else next(sent, (b"", {}))
        shown = {name: value for name, value in headers.items() if name in SIGNATURE_HEADERS}
        response = turn.response
        return {
            "said": turn.said,
            "status": turn.answer.status,
            "ok": turn.ok,
            "request": {"body": body.decode("utf-8", "replace"), "headers": shown},
            "response": {
                "body": turn.answer.body.decode("utf-8", "replace"),
                "json": response,
            },
            "understood": understood(turn.request),
            "sample": turn.match.sample if turn.match is not None else None,
            # The fallback's turn: no sample matched, these came closest.
            "nearest": [
                {"intent": intent, "sample": sample}
                for intent, sample in (turn.match.nearest if turn.match is not None else ())
            ],
            "speech": turn.speech,
            "speech_type": _speech_type(response),
            "reprompt": turn.reprompt,
            "card": turn.card,
            "ends_session": turn.ends_session,
            "progressive": [
                ssml_to_text(d["speech"]) for d in turn.progressive if isinstance(d, dict)
            ],
            "trace": trace.decode(turn.answer.headers.get(trace.TRACE_HEADER.lower())),
            "refusal": _refusal(turn),
            "by_alexa": turn.by_alexa,
            "session": {
                **_session_json(conversation.session),
                "ended": conversation.ended,
                "dialog": progress_json(conversation.dialog),
            },
            "script": script_line(conversation.model, turn, action),
        }

    # --- the directive inbox -----------------------------------------------------------

    def directive_view(self) -> Response:
        host = (request.headers.get("Host") or "").lower()
        if host not in self.hosts:
            return _secured(_refused(ConsoleRefused("host", "not the admin listener", 403)))
        with self.inbox.receiving():
            status, error = self.inbox.receive(
                request.headers.get("Authorization"),
                request.headers.get("Content-Length"),
                lambda size: request.get_data()[:size],
            )
        if error is None:
            return Response(status=status)
        answer = jsonify(error)
        answer.status_code = status
        return answer

    # --- routes, certify ---------------------------------------------------------------

    def routes_view(self) -> Response:
        """Every intent the intent menu offers: routed ones, and the built-ins answered here
        (the models as the server loaded them at start, as the menu has them)."""
        from skill.app import model_intents
        from skill.handlers import BUILT_INS

        names = sorted(model_intents(self.models))
        probed = request.args.get("probe") in ("1", "true")
        rows = probe_router(self.router, names, timeout=1.0) if probed else self.router.table(names)
        listed = {row["name"] for row in rows}
        rows += [
            {"name": name, "host": None, "port": None, "source": "built-in"}
            for name in names
            if name in BUILT_INS and name not in listed
        ]
        return jsonify(intents=rows, probed=probed)

    def certify_view(self) -> Response:
        certifier = Certifier(
            self.alexa_url, sign=self.ca.sign, skill_id=self.application_id, post=self.post
        )
        stopped = None
        try:
            trusts, results = certifier.run()
        except CertifyStopped as stop:
            trusts, results = stop.trusts, stop.results
            stopped = {"check": stop.check, "error": str(stop.error)}
        return jsonify(
            url=self.alexa_url,
            trusts=trusts,
            results=[asdict(result) for result in results],
            stopped=stopped,
        )

    # --- MCP ---------------------------------------------------------------------------

    def mcp_tools_view(self) -> Response:
        """The tools, as an MCP client lists them from the public listener (docs/mcp.md)."""
        from funker_dispatch.devtools import mcpclient

        if not self.settings.mcp.enabled:
            return jsonify(enabled=False, tools=[])
        url = mcpclient.endpoint_url(self.settings)
        try:
            tools = mcpclient.list_tools(url, mcpclient.credentials(self.settings))
        except mcpclient.McpFailure as exc:
            raise ConsoleRefused("mcp", str(exc), 502) from None
        return jsonify(enabled=True, url=url, tools=tools)

    def mcp_call_view(self) -> Response:
        """One tool call with the configuration's credential; the token stays on this side."""
        from funker_dispatch.devtools import mcpclient

        if not self.settings.mcp.enabled:
            raise ConsoleRefused("mcp", "[mcp] is not enabled", 404)
        asked = _json_object()
        tool = _text(asked, "tool")
        given = asked.get("arguments") or {}
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            raise ConsoleRefused("malformed", "arguments must map slot names to strings")
        url = mcpclient.endpoint_url(self.settings)
        try:
            result = mcpclient.call_tool(url, mcpclient.credentials(self.settings), tool, given)
        except mcpclient.McpFailure as exc:
            return jsonify(tool=tool, arguments=given, failure=str(exc))
        return jsonify(tool=tool, arguments=given, result=result)

    # --- test events -------------------------------------------------------------------

    def events_view(self) -> Response:
        kinds = []
        for kind, fields in EVENT_FIELDS.items():
            endpoint = eventsend.ENDPOINTS.get(kind, "sns")
            defaults = self._event_defaults(kind)
            kinds.append(
                {
                    "kind": kind,
                    "title": EVENT_TITLES[kind],
                    "endpoint": f"/events/{endpoint}",
                    "enabled": getattr(self.settings.triggers, endpoint) is not None,
                    "fields": [
                        {
                            "name": name,
                            "label": EVENT_LABELS[name],
                            "option": "--" + name.replace("_", "-"),
                            "input": shape,
                            "value": "" if defaults.get(name) is None else str(defaults[name]),
                            "choices": list(EVENT_CHOICES.get((kind, name), ())),
                        }
                        for name, shape in fields
                    ],
                }
            )
        return jsonify(kinds=kinds)

    def event_view(self) -> Response:
        asked = _json_object()
        kind = asked.get("kind")
        if kind not in EVENT_FIELDS:
            raise ConsoleRefused("malformed", f"kind is one of {', '.join(EVENT_FIELDS)}")
        endpoint = eventsend.ENDPOINTS.get(kind, "sns")
        if getattr(self.settings.triggers, endpoint) is None:
            raise ConsoleRefused(
                "not-configured", f"{self.settings.source} has no [triggers.{endpoint}]", 409
            )
        args = self._event_args(kind, asked.get("fields"))
        now = datetime.now(UTC)
        try:
            if kind in eventsend.ENDPOINTS:
                delivery = eventsend.webhook_delivery(args, self.settings, now)
            else:
                delivery = eventsend.sns_delivery(args, now, self.ca)  # loaded once, at start
        except (OSError, ValueError) as exc:
            raise ConsoleRefused("malformed", str(exc)) from None
        url = f"{self.public}/events/{endpoint}"
        try:
            answer = self.post(url, delivery.body, delivery.headers)
        except EndpointError as exc:
            raise ConsoleRefused("endpoint", str(exc), 502) from None
        try:
            result = json.loads(answer.body)
        except (ValueError, RecursionError):
            result = None
        shown = {
            name: REDACTED if self._credential(name) else value
            for name, value in delivery.headers.items()
        }
        return jsonify(
            kind=kind,
            url=url,
            described=delivery.described,
            id=delivery.id,
            status=answer.status,
            result=result,
            report=eventsend.report(answer.status, result) if isinstance(result, dict) else [],
            request={"body": delivery.body.decode("utf-8", "replace"), "headers": shown},
            trace=trace.decode(answer.headers.get(trace.TRACE_HEADER.lower())),
        )

    def _credential(self, header: str) -> bool:
        eventbridge = self.settings.triggers.eventbridge
        named = {eventbridge.api_key_header.lower()} if eventbridge is not None else set()
        return header.lower() in CREDENTIAL_HEADERS | named

    def _event_defaults(self, kind: str) -> dict[str, Any]:
        """What `events send KIND` sends with no options, against this server's topic."""
        args = dict(vars(_cli_defaults(kind)))  # a copy: the parsed defaults are cached
        sns = self.settings.triggers.sns
        topics = [t for t in (sns.topics if sns is not None else ()) if "*" not in t]
        args["topic"] = topics[0] if topics else DEVELOPMENT_TOPIC
        return args

    def _event_args(self, kind: str, fields: Any) -> argparse.Namespace:
        args = self._event_defaults(kind)
        given = fields if isinstance(fields, dict) else {}
        for name, shape in EVENT_FIELDS[kind]:
            value = given.get(name)
            if not isinstance(value, str):
                continue
            value = value.strip()
            if shape == "number":
                try:
                    args[name] = int(value)
                except ValueError:
                    raise ConsoleRefused("malformed", f"{name} is a whole number") from None
            elif shape == "choice" and value not in EVENT_CHOICES[(kind, name)]:
                raise ConsoleRefused("malformed", f"{name} is one of the choices shown")
            else:
                args[name] = value or None  # an empty field: the option left out
        return argparse.Namespace(**args)

    # --- helpers -----------------------------------------------------------------------

    def _locale(self, locale: Any) -> str:
        if locale is None and self.locales:
            return "en-US" if "en-US" in self.locales else self.locales[0]
        if locale not in self.locales:
            raise ConsoleRefused("locale", f"the model's locales are {', '.join(self.locales)}")
        return str(locale)

    def _model(self, locale: str) -> InteractionModel:
        """The locale's model as the server loaded it at start: the menu, the matching and
        the routes all agree with what the skill answers, whatever the files say now."""
        model = self._interaction_models.get(locale)
        if model is None:
            model = self._interaction_models[locale] = choose_model(self.models, locale)
        return model


@cache
def _cli_defaults(kind: str) -> argparse.Namespace:
    """`events send KIND`'s options as the command line parses them with none given."""
    parser = argparse.ArgumentParser(prog="funker-dispatch")
    eventsend.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["events", "send", kind])
    if args.event is None:
        args.event = eventsend.EVENT_DEFAULTS.get(kind)
    return args


def indented(envelope: Mapping[str, Any]) -> bytes:
    """The bytes the console signs: indented JSON, so the request shown for editing is them."""
    return json.dumps(envelope, ensure_ascii=False, indent=2).encode("utf-8")


def suggestions(model: InteractionModel) -> list[str]:
    """Utterances to offer: opening the skill, then every sample with its slots filled by the
    first value of their type (the slot's name where the type has none)."""
    offered = [f"open {model.invocation_name}"] if model.invocation_name else []
    for intent, sample in intent_samples(model):
        slots = model.intents[intent].slots
        text = sample
        for slot, slot_type in slots.items():
            values = model.types.get(slot_type, ())
            text = text.replace(f"{{{slot}}}", values[0].name if values else slot)
        if text not in offered:
            offered.append(text)
    return offered


def understood(sent: Mapping[str, Any]) -> dict[str, Any]:
    """What the request sent says was understood: its type, intent, slots with entity
    resolution, read from the envelope itself (so an edited request shows its edits)."""
    request_part = sent.get("request") if isinstance(sent, Mapping) else None
    if not isinstance(request_part, dict):
        return {"type": None, "intent": None, "slots": []}
    intent = request_part.get("intent")
    intent = intent if isinstance(intent, dict) else {}
    slots = []
    given = intent.get("slots")
    for name, slot in (given if isinstance(given, dict) else {}).items():
        if not isinstance(slot, dict):
            continue
        shown: dict[str, Any] = {"name": str(name), "value": slot.get("value")}
        try:
            authority = slot["resolutions"]["resolutionsPerAuthority"][0]
            shown["resolution"] = {
                "status": authority["status"]["code"],
                "name": (authority.get("values") or [{}])[0].get("value", {}).get("name"),
                "id": (authority.get("values") or [{}])[0].get("value", {}).get("id"),
            }
        except (KeyError, IndexError, TypeError, AttributeError):
            shown["resolution"] = None
        slots.append(shown)
    return {"type": request_part.get("type"), "intent": intent.get("name"), "slots": slots}


def script_line(model: InteractionModel, turn: Turn, action: str) -> str | None:
    """The `dialog --script` line that replays this turn, None when no utterance does.

    An utterance is itself; a launch is "open <invocation name>"; a form-built intent is a
    sample with its slots filled, if the simulator matches that back to the same intent and
    slots. An end needs none (dialog ends the session when its script does); an edited
    request has none.
    """
    if action == "say":
        return turn.said
    if action == "launch":
        return f"open {model.invocation_name}" if model.invocation_name else None
    if action != "intent" or turn.match is None:
        return None
    wanted = turn.match
    for intent, sample in intent_samples(model):
        if intent != wanted.intent:
            continue
        text = sample
        for slot, value in wanted.slots.items():
            text = text.replace(f"{{{slot}}}", value)
        if "{" in text:
            continue
        try:
            found = match_utterance(model, text)
        except NoMatch:
            continue
        if found.intent == wanted.intent and found.slots == wanted.slots:
            return text
    return None


def _speech_type(response: dict[str, Any] | None) -> str | None:
    speech = (response or {}).get("response", {})
    speech = speech.get("outputSpeech") if isinstance(speech, dict) else None
    return speech.get("type") if isinstance(speech, dict) else None


def _refusal(turn: Turn) -> dict[str, Any] | None:
    if turn.answer.status == 200:
        return None
    body = turn.response or {}
    return {"error": body.get("error"), "message": body.get("message")}


def _session(given: Any, application_id: str) -> SessionState:
    """A session from the page, checked field by field; anything unusable starts anew."""
    if not isinstance(given, dict):
        return SessionState(application_id)
    state = SessionState(application_id)
    for key in ("session_id", "user_id", "device_id"):
        if isinstance(given.get(key), str) and given[key]:
            setattr(state, key, given[key])
    if isinstance(given.get("attributes"), dict):
        state.attributes = given["attributes"]
    if isinstance(given.get("new"), bool):
        state.new = given["new"]
    return state


def _session_json(state: SessionState) -> dict[str, Any]:
    return {
        "session_id": state.session_id,
        "user_id": state.user_id,
        "device_id": state.device_id,
        "attributes": state.attributes,
        "new": state.new,
    }


def _json_object() -> dict[str, Any]:
    asked = request.get_json(silent=True)
    if not isinstance(asked, dict):
        raise ConsoleRefused("malformed", "the body is a JSON object")
    return asked


def _text(asked: Mapping[str, Any], key: str, *, empty: bool = False) -> str:
    value = asked.get(key)
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise ConsoleRefused("malformed", f"{key} is a non-empty string")
    return value


def _slot_values(given: Any) -> dict[str, str]:
    if given is None:
        return {}
    if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
        raise ConsoleRefused("malformed", "slots map slot names to strings")
    return {str(name): value.strip() for name, value in given.items() if value.strip()}


def _own_hosts(server: ServerSettings) -> frozenset[str]:
    """The Host headers that name the admin listener itself: its host, and localhost."""
    port = server.admin_port
    host = admin_origin(server).removeprefix("http://").rsplit(":", 1)[0]
    return frozenset(f"{name.lower()}:{port}" for name in (host, "localhost"))


def _own_certificate(server: ServerSettings) -> ssl.SSLContext | None:
    """For an HTTPS public listener: trust exactly the certificate it serves.

    Reached by its loopback address, not the name its certificate carries, so the
    name is not checked; the certificate itself is.
    """
    if not server.certfile:
        return None
    context = ssl.create_default_context(cafile=server.certfile)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _asset(name: str) -> Response:
    kind = _ASSET_TYPES.get(Path(name).suffix)
    if kind is None or not (ASSETS / name).is_file():
        raise ConsoleRefused("not-found", "no such console asset", 404)
    return send_from_directory(ASSETS, name, mimetype=kind, max_age=0)


def _refused(exc: ConsoleRefused) -> Response:
    answer = jsonify(error=exc.error, message=exc.message)
    answer.status_code = exc.status
    return answer


def _secured(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
