"""The baselines: a bare flask-ask-sdk skill, as any Python Alexa developer would write it.

(a)  `--mode fixed`:  SkillBuilder, one catch-all handler speaking a fixed sentence.
(a') `--mode funker`: the same skill making the funker call by hand - connect,
     send the request body, shutdown(SHUT_WR), read to EOF, json.loads, speak
     the function's text and copy its card. The least code that does (b)'s job
     on the official SDK, with none of (b)'s verification, routing, limits,
     retries, metrics or logs.

Both run with the SDK's verification off and under the same gunicorn settings
as `funker-dispatch serve` (gthread, preload_app, keepalive 5).

Run: python bench/bare.py --mode funker --port 3001 --function-port 9101
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verification import sdkcompat

sdkcompat.install()  # the oscrypto import fix, before flask_ask_sdk imports the SDK verifier

from ask_sdk_core.dispatch_components import AbstractRequestHandler  # noqa: E402
from ask_sdk_core.skill_builder import SkillBuilder  # noqa: E402
from ask_sdk_model.ui import SimpleCard  # noqa: E402
from flask import Flask, request  # noqa: E402
from flask_ask_sdk.skill_adapter import (  # noqa: E402
    VERIFY_SIGNATURE_APP_CONFIG,
    VERIFY_TIMESTAMP_APP_CONFIG,
    SkillAdapter,
)
from gunicorn.app.base import BaseApplication  # noqa: E402

FIXED_SPEECH = "There are 7 people in space right now."


class FixedSpeechHandler(AbstractRequestHandler):
    def can_handle(self, handler_input: Any) -> bool:
        return True

    def handle(self, handler_input: Any) -> Any:
        builder = handler_input.response_builder
        return builder.speak(FIXED_SPEECH).set_should_end_session(True).response


class FunkerCallHandler(AbstractRequestHandler):
    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)

    def can_handle(self, handler_input: Any) -> bool:
        return True

    def handle(self, handler_input: Any) -> Any:
        with socket.create_connection(self.address, timeout=6.5) as sock:
            sock.sendall(request.get_data())  # the envelope as Alexa sent it
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        answer = json.loads(b"".join(chunks))["response"]
        builder = handler_input.response_builder.speak(answer["outputSpeech"]["text"])
        card = answer.get("card")
        if card:
            builder.set_card(SimpleCard(title=card.get("title"), content=card.get("content")))
        return builder.set_should_end_session(True).response


def create_app(mode: str, function_port: int | None = None) -> Flask:
    builder = SkillBuilder()
    if mode == "funker":
        if function_port is None:
            raise ValueError("--mode funker needs --function-port")
        builder.add_request_handler(FunkerCallHandler(function_port))
    else:
        builder.add_request_handler(FixedSpeechHandler())
    app = Flask(f"bare_{mode}")
    app.config[VERIFY_SIGNATURE_APP_CONFIG] = False
    app.config[VERIFY_TIMESTAMP_APP_CONFIG] = False
    adapter = SkillAdapter(skill=builder.create(), skill_id="any", app=app)
    adapter.register(app=app, route="/")
    return app


class BareServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with funker_dispatch.server.serve.DispatchServer's options, minus our hooks."""

    def __init__(self, app: Flask, port: int, workers: int, threads: int) -> None:
        self.app, self.port, self.workers, self.threads = app, port, workers, threads
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": [f"127.0.0.1:{self.port}"],
            "workers": self.workers,
            "threads": self.threads,
            "worker_class": "gthread",
            "timeout": 30,
            "keepalive": 5,
            "preload_app": True,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["fixed", "funker"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--function-port", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    app = create_app(args.mode, args.function_port)
    BareServer(app, args.port, args.workers, args.threads).run()


if __name__ == "__main__":
    main()
