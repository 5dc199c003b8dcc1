"""A stand-in for Alexa's directive API on loopback: records every POST, answers as it is told.

Tests point a request's `context.System.apiEndpoint` here (and list its origin
in `[dispatch] progressive_hosts`), so no progressive response ever leaves the
machine. Modes: `ok` (204, as Alexa's API answers), `error` (500), `hang` (no
answer until `release` is set), `redirect` (307 to `redirect_to`).
"""

from __future__ import annotations

import http.server
import json
import threading
from dataclasses import dataclass
from typing import Any

from tests.helpers import wait_until


@dataclass(frozen=True)
class ReceivedPost:
    path: str
    headers: dict[str, str]
    body: bytes
    answer_had_arrived: bool | None  # whether the skill's answer was already back at receipt

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class AlexaApiStandIn:
    def __init__(
        self,
        mode: str = "ok",
        *,
        answered: threading.Event | None = None,
        redirect_to: str = "",
    ) -> None:
        self.mode = mode
        self.answered = answered
        self.redirect_to = redirect_to
        self.release = threading.Event()
        self.posts: list[ReceivedPost] = []
        self._lock = threading.Lock()
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                arrived = stand_in.answered.is_set() if stand_in.answered else None
                with stand_in._lock:
                    stand_in.posts.append(
                        ReceivedPost(self.path, dict(self.headers.items()), body, arrived)
                    )
                if stand_in.mode == "hang":
                    stand_in.release.wait(30)
                if stand_in.mode == "error":
                    self._answer(500, b'{"code":"INTERNAL_SERVICE_EXCEPTION","message":"boom"}')
                elif stand_in.mode == "redirect":
                    self.send_response(307)
                    self.send_header("Location", stand_in.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedPost]:
        wait_until(lambda: len(self.posts) >= count, within, f"{count} directive POST(s)")
        return list(self.posts)

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
