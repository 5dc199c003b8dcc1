"""SIGTERM with `[server] drain_seconds`: /healthz fails first, requests are still answered,
then the server stops — so a balancer checking /healthz stops sending before anything is
refused (a rolling update lost two requests of a stream without it; tests/cluster asserts none)."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request

from tests.e2e.conftest import intent
from tests.helpers import wait_until


def health(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_sigterm_fails_healthz_first_and_keeps_answering_while_draining(
    start_server, function_process, signed
):
    port = function_process("echo")
    server = start_server(
        f'[intents.EchoIntent]\nhost = "127.0.0.1"\nport = {port}\n',
        env={"FUNKER_DISPATCH_SERVER_DRAIN_SECONDS": "3"},
    )
    assert health(server.url) == 200
    server.process.send_signal(signal.SIGTERM)

    wait_until(lambda: health(server.url) == 503, 10, "/healthz to fail while draining")
    assert health(server.admin_url) == 503
    answer = signed(server.url, intent("EchoIntent"))
    assert answer.status == 200 and answer.json["response"]["outputSpeech"]
    assert server.process.poll() is None  # still serving

    server.process.wait(timeout=60)
    assert server.process.returncode == 0
    assert "draining: /healthz answers 503" in server.log()


def test_without_a_drain_sigterm_stops_at_once(start_server):
    server = start_server()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=30)
    assert "draining" not in server.log()
