"""End-to-end fixtures: a real server process, real function processes, signed requests."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from skill.settings import DEVELOPMENT_SKILL_ID
from tests.helpers import free_port, wait_until
from verification.devca import DevCA

HERE = Path(__file__).resolve().parent
FUNCTION = HERE / "function.py"


@pytest.fixture(scope="module")
def function_process() -> Iterator[Callable[[str], int]]:
    """Start tests/e2e/function.py in a mode; returns its port once it prints 'ready'."""
    children: list[subprocess.Popen[str]] = []

    def start(mode: str) -> int:
        port = free_port()
        child = subprocess.Popen(
            [sys.executable, str(FUNCTION), "--mode", mode, "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        return port

    yield start
    for child in children:
        child.kill()
        child.wait()


@pytest.fixture(scope="session")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> DevCA:
    return DevCA.load_or_create(tmp_path_factory.mktemp("devca-home"))


@dataclass
class Server:
    url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    log_file: Any = None
    admin_url: str = ""  # the admin listener: /readyz, /metrics, /intents
    config: Path | None = None  # the configuration it serves

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, within: float = 30.0) -> str:
        wait_until(lambda: text in self.log(), within, f"log line containing {text!r}")
        return self.log()


def trusted_config(dev_ca: DevCA, tmp: Path) -> str:
    root = tmp / "devca-root.pem"
    root.write_bytes(dev_ca.root.public_bytes(Encoding.PEM))
    return (
        f'[skill]\napplication_ids = ["{DEVELOPMENT_SKILL_ID}"]\n\n'
        f'[verification]\ntrusted_roots = ["{root}"]\n\n'
        f'[verification.local_chains]\n"{dev_ca.chain_url}" = "{dev_ca.chain_path}"\n\n'
    )


@pytest.fixture(scope="module")
def start_server(
    tmp_path_factory: pytest.TempPathFactory, dev_ca: DevCA
) -> Iterator[Callable[..., Server]]:
    """Start `funker-dispatch serve` with routes appended to a dev-CA-trusting config.

    Progressive responses are off (`FUNKER_DISPATCH_PROGRESSIVE_AFTER=0`) unless a test's
    `env` turns them on: `envelope()` names Alexa's real API, and a slow function must
    never make a test server POST to it (docs/alexa.md).
    """
    servers: list[Server] = []
    tmp_path = tmp_path_factory.mktemp("server")

    def start(
        routes: str = "",
        *,
        base: str | None = None,
        env: dict[str, str] | None = None,
        workers: int = 1,
        scheme: str = "http",
        ssl_context: ssl.SSLContext | None = None,
    ) -> Server:
        config = tmp_path / f"dispatch-{len(servers)}.toml"
        config.write_text((trusted_config(dev_ca, tmp_path) if base is None else base) + routes)
        port = free_port()
        admin_port = free_port()
        log_path = tmp_path / f"server-{len(servers)}.log"
        environment = {
            **os.environ,
            "FUNKER_DISPATCH_HOME": str(tmp_path / "home"),
            "FUNKER_DISPATCH_SERVER_ADMIN_PORT": str(admin_port),
            "FUNKER_DISPATCH_PROGRESSIVE_AFTER": "0",
            **(env or {}),
        }
        environment.pop("FUNKER_DISPATCH_CONFIG", None)
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "funker_dispatch",
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        server = Server(
            f"{scheme}://127.0.0.1:{port}",
            log_path,
            process,
            log_file,
            admin_url=f"{scheme}://127.0.0.1:{admin_port}",
            config=config,
        )
        servers.append(server)

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"server exited:\n{server.log()}")
            try:
                # Both listeners: the admin one runs in a process of its own.
                for url in (server.url, server.admin_url):
                    with urllib.request.urlopen(
                        url + "/healthz", timeout=1, context=ssl_context
                    ) as response:
                        if response.status != 200:
                            return False
                return True
            except OSError:
                return False

        wait_until(healthy, 20, "the server to answer /healthz on both listeners")
        return server

    yield start
    for server in servers:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
        server.log_file.close()


def envelope(
    request: dict[str, Any],
    *,
    session_attributes: dict[str, Any] | None = None,
    new: bool = True,
    application_id: str = DEVELOPMENT_SKILL_ID,
    locale: str = "en-GB",
) -> dict[str, Any]:
    """A complete request envelope as Alexa sends it, stamped now."""
    application = {"applicationId": application_id}
    return {
        "version": "1.0",
        "session": {
            "new": new,
            "sessionId": "amzn1.echo-api.session.test",
            "application": application,
            "attributes": session_attributes or {},
            "user": {"userId": "amzn1.ask.account.TESTUSER"},
        },
        "context": {
            "System": {
                "application": application,
                "user": {"userId": "amzn1.ask.account.TESTUSER"},
                "device": {"deviceId": "amzn1.ask.device.TEST", "supportedInterfaces": {}},
                "apiEndpoint": "https://api.eu.amazonalexa.com",
            }
        },
        "request": {
            "requestId": f"amzn1.echo-api.request.{uuid.uuid4()}",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "locale": locale,
            **request,
        },
    }


def intent(name: str, slots: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    return envelope(
        {
            "type": "IntentRequest",
            "intent": {"name": name, "confirmationStatus": "NONE", "slots": slots or {}},
        },
        **kwargs,
    )


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def speech(self) -> str:
        """What Alexa is told to say: PlainText's text, or SSML's whole document, as sent."""
        speech = self.json["response"]["outputSpeech"]
        return speech["ssml"] if speech["type"] == "SSML" else speech["text"]


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> Answer:
    request = urllib.request.Request(
        url,
        data=body if method == "POST" else None,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return Answer(response.status, response.read(), response.headers["Content-Type"])
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read(), error.headers.get("Content-Type", ""))


@pytest.fixture
def signed(dev_ca: DevCA) -> Callable[..., Answer]:
    """POST a request envelope signed by the dev CA (over the exact bytes sent)."""

    def send(
        url: str, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> Answer:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return post(url + "/", raw, {**dev_ca.sign(raw), **(headers or {})})

    return send


@dataclass
class EventFunction:
    """A real function process (tests/functions/event_recorder.py) and what it was sent."""

    port: int
    record: Path
    fail_file: Path
    process: subprocess.Popen[str]

    def payloads(self) -> list[Any]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def ids(self) -> list[str]:
        return [payload["id"] for payload in self.payloads()]

    def fail(self, *ids: str) -> None:
        """Hang up on these event ids from now on (`*`: on all; none: work again)."""
        self.fail_file.write_text("".join(f"{i}\n" for i in ids))

    def route(self) -> str:
        return f'host = "127.0.0.1"\nport = {self.port}\n'


@pytest.fixture(scope="module")
def event_function(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[], EventFunction]]:
    """Start recording function processes; each is killed at the end of the module."""
    started: list[EventFunction] = []
    recorder = HERE.parent / "functions" / "event_recorder.py"

    def start() -> EventFunction:
        tmp = tmp_path_factory.mktemp("event-function")
        port = free_port()
        record, fail_file = tmp / "received.jsonl", tmp / "fail"
        process = subprocess.Popen(
            [
                sys.executable,
                str(recorder),
                "--port",
                str(port),
                "--record",
                str(record),
                "--fail",
                str(fail_file),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        function = EventFunction(port, record, fail_file, process)
        started.append(function)
        return function

    yield start
    for function in started:
        function.process.kill()
        function.process.wait()


# --- liveness: a server that must answer while something hostile is held open ----------------

#: How long a live server may take to answer in a liveness test: it answers in milliseconds, so
#: this only bounds a starved one. Such tests' servers wait LIVENESS_READ_TIMEOUT before the
#: failure under test would let go, far past this, so no loaded machine can blur the two.
ANSWER_WITHIN = 10.0
LIVENESS_READ_TIMEOUT = "30"


def signed_launch(url: str, dev_ca: DevCA, context: ssl.SSLContext | None = None) -> dict:
    """POST a LaunchRequest signed by the dev CA; the 200 answer's JSON (else the test fails)."""
    body = json.dumps(envelope({"type": "LaunchRequest"})).encode()
    request = urllib.request.Request(
        url + "/", data=body, headers={"Content-Type": "application/json", **dev_ca.sign(body)}
    )
    with urllib.request.urlopen(request, timeout=ANSWER_WITHIN, context=context) as reply:
        assert reply.status == 200
        return json.loads(reply.read())


def tls_server_env(tmp: Path) -> tuple[dict[str, str], ssl.SSLContext]:
    """A server certificate from a test CA (key 0600): the serve environment, the client context."""
    from tests import pki

    root = pki.tls_root()
    certificate = pki.server_certificate(root)
    (tmp / "cert.pem").write_bytes(certificate.pem)
    (tmp / "key.pem").write_bytes(certificate.key_pem)
    (tmp / "key.pem").chmod(0o600)
    env = {
        "FUNKER_DISPATCH_SERVER_CERTFILE": str(tmp / "cert.pem"),
        "FUNKER_DISPATCH_SERVER_KEYFILE": str(tmp / "key.pem"),
    }
    return env, ssl.create_default_context(cadata=root.pem.decode())
