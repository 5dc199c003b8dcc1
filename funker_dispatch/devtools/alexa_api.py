"""Alexa's directive API on loopback, for `simulate` and `dialog`: progressive responses land here.

Alexa puts its API's address in every request (`context.System.apiEndpoint`,
with a short-lived `apiAccessToken`); a skill that is slow to answer POSTs a
`VoicePlayer.Speak` to `{apiEndpoint}/v1/directives` and Alexa speaks it
while the skill works (docs/alexa.md). The development tools stand in for that
API: for the length of one command a tiny HTTP server listens on loopback,
the requests carry its URL and a token made up for the command, and every
directive it receives is kept by request id, so the transcript can show
`alexa (progressive) One moment.` before the answer.

Nothing here leaves the machine: the server binds 127.0.0.1, and the
dispatcher only POSTs to an origin its `[dispatch] progressive_hosts` lists
(the embedded default lists `SIMULATOR_API_ORIGIN`). The web console keeps
the same `DirectiveInbox` behind a view on the admin listener instead.
"""

from __future__ import annotations

import hmac
import http.server
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from skill.progressive import DIRECTIVES_PATH
from skill.settings import Settings

PATH = DIRECTIVES_PATH  # where the dispatcher posts (skill/progressive.py)
MAX_BODY_BYTES = 64 * 1024  # a directive is a few hundred bytes
#: How long the transcript waits, after an answer, for a directive still being received.
SETTLE_SECONDS = 1.0


class AlexaApi(Protocol):
    """What a conversation needs of a stand-in: its origin, its token, what it received."""

    url: str
    token: str

    def directives(
        self, request_id: str, settle: float = SETTLE_SECONDS
    ) -> list[dict[str, Any]]: ...


class DirectiveInbox:
    """What the stand-in keeps: directives by request id, for one bearer token.

    Served by `LocalAlexaApi` (its own loopback port, for `simulate` and `dialog`)
    and by the console (a view on the admin listener); both answer as Alexa's
    API does through `receive`.
    """

    def __init__(self) -> None:
        self.token = "dev-" + secrets.token_urlsafe(24)
        self._directives: dict[str, list[dict[str, Any]]] = {}
        self._receiving = 0
        self._changed = threading.Condition()

    def directives(self, request_id: str, settle: float = SETTLE_SECONDS) -> list[dict[str, Any]]:
        """The directives received for `request_id` (taken: asked once per turn).

        The dispatcher sends the answer even while its POST is still arriving;
        a POST being received now is waited for, up to `settle` seconds.
        """
        deadline = time.monotonic() + settle
        with self._changed:
            while self._receiving and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return self._directives.pop(request_id, [])

    def receive(
        self, authorization: str | None, length: str | None, read: Callable[[int], bytes]
    ) -> tuple[int, dict[str, str] | None]:
        """One POST of a directive: (204, None) when kept, else (status, `{code, message}`)."""
        if not self.authorized(authorization):
            return 401, _error("INVALID_ACCESS_TOKEN", "the bearer token is not this session's")
        try:
            size = int(length or "")
        except ValueError:
            return 411, _error("INVALID_DIRECTIVE", "Content-Length is required")
        if not 0 < size <= MAX_BODY_BYTES:
            return 413, _error("INVALID_DIRECTIVE", "the body is empty or too large")
        try:
            body = json.loads(read(size))
            request_id = body["header"]["requestId"]
            directive = body["directive"]
            valid = (
                isinstance(request_id, str)
                and isinstance(directive, dict)
                and directive.get("type") == "VoicePlayer.Speak"
                and isinstance(directive.get("speech"), str)
            )
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            return 400, _error(
                "INVALID_DIRECTIVE", "expected header.requestId and VoicePlayer.Speak"
            )
        self._keep(request_id, directive)
        return 204, None

    @contextmanager
    def receiving(self) -> Iterator[None]:
        """Around the receipt of one POST, so `directives` waits for it to finish."""
        with self._changed:
            self._receiving += 1
        try:
            yield
        finally:
            with self._changed:
                self._receiving -= 1
                self._changed.notify_all()

    def _keep(self, request_id: str, directive: dict[str, Any]) -> None:
        with self._changed:
            self._directives.setdefault(request_id, []).append(directive)

    def authorized(self, header: str | None) -> bool:
        return header is not None and hmac.compare_digest(
            header.encode("utf-8", "replace"), f"Bearer {self.token}".encode()
        )


def _error(code: str, text: str) -> dict[str, str]:
    return {"code": code, "message": text}


class LocalAlexaApi(DirectiveInbox):
    """The directive API on 127.0.0.1:`port` (0: any free port) while the `with` block runs."""

    def __init__(self, port: int = 0) -> None:
        super().__init__()
        self._server = _Server(("127.0.0.1", port), _Handler, self)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LocalAlexaApi:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how long the command waits for it at exit
            name="local-alexa-api",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, api: LocalAlexaApi) -> None:
        self.api = api
        super().__init__(address, handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers as Alexa's API does: 204 for a directive taken, JSON `{code, message}` otherwise."""

    server: _Server
    timeout = 5  # each receive: a stuck client cannot hold a thread for long

    def handle(self) -> None:
        with self.server.api.receiving():
            super().handle()

    def do_POST(self) -> None:
        if self.path != PATH:
            self._answer(404, _error("NOT_FOUND", f"only POST {PATH} is served here"))
            return
        status, error = self.server.api.receive(
            self.headers.get("Authorization"), self.headers.get("Content-Length"), self.rfile.read
        )
        self._answer(status, error)

    def _answer(self, status: int, error: dict[str, str] | None) -> None:
        body = json.dumps(error).encode() if error is not None else b""
        self.send_response(status)
        if error is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the transcript is the output


def simulator_port(settings: Settings) -> int:
    """The loopback port the configuration lets progressive responses reach, else 0 (any).

    The server and the tools each load the configuration (for the embedded default,
    `SIMULATOR_API_ORIGIN`); the first `http://127.0.0.1:PORT` of `[dispatch]
    progressive_hosts` is where the dispatcher may POST, so it is where the stand-in
    listens. With none, the stand-in still runs and the server simply sends it nothing.
    """
    for allowed in settings.dispatch.progressive_hosts:  # normalised: scheme://host:port
        scheme, _, rest = allowed.partition("://")
        host, _, port = rest.rpartition(":")
        if scheme == "http" and host == "127.0.0.1":
            return int(port)
    return 0


@contextmanager
def local_alexa_api(settings: Settings, *, note: Any = None) -> Iterator[LocalAlexaApi]:
    """The stand-in on the port the configuration allows; any free port if that one is taken
    (then `note(text)` says progressive responses will not be shown)."""
    port = simulator_port(settings)
    try:
        api = LocalAlexaApi(port)
    except OSError as exc:
        if not port:
            raise
        api = LocalAlexaApi(0)
        if note is not None:
            note(
                f"port {port} for progressive responses is in use ({exc.strerror}); "
                "they will not be shown"
            )
    with api:
        yield api
