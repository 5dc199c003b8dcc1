"""certify: our own server passes every check; a lax endpoint has each hole reported."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from funker_dispatch.cli import main
from funker_dispatch.devtools.certify import (
    AMAZON_INVALID_CERT_URLS,
    FAIL,
    NOT_ISOLATED,
    NOT_RUN,
    PASS,
    Certifier,
)
from verification.devca import DevCA

NEGATIVE_CHECKS = 7 + len(AMAZON_INVALID_CERT_URLS)
POSITIVE_CHECKS = 3
# A signed request's refusal proves its fault only when the signature could be checked: the
# malformed-JSON one too (an endpoint that cannot fetch the chain refuses it as cert-fetch).
NEEDS_TRUST = {
    "bad signature",
    "tampered body",
    "timestamp 151 s old",
    "wrong skill id",
    "malformed JSON",
}


@pytest.fixture(scope="module")
def dev_ca_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certify-devca")


@pytest.fixture(scope="module")
def dev_ca(dev_ca_home: Path) -> DevCA:
    # Overrides conftest's so `certify` (which loads the CA from
    # $FUNKER_DISPATCH_HOME) signs with the CA the server trusts.
    return DevCA.load_or_create(dev_ca_home)


@contextmanager
def endpoint(status: int, body: bytes) -> Iterator[str]:
    """A tiny HTTP endpoint answering every POST with one fixed status and body."""

    class Fixed(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fixed)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


LAX_ANSWER = b'{"version": "1.0", "response": {"shouldEndSession": true}}'


def run(url: str, dev_ca: DevCA) -> tuple[bool, dict[str, str]]:
    trusts, results = Certifier(url, sign=dev_ca.sign).run()
    return trusts, {result.check: result.verdict for result in results}


def test_our_server_passes_every_check(start_server, dev_ca):
    server = start_server()
    trusts, verdicts = run(server.url + "/", dev_ca)
    assert trusts
    assert len(verdicts) == NEGATIVE_CHECKS + POSITIVE_CHECKS
    assert verdicts == dict.fromkeys(verdicts, PASS)
    # Each refusal was for the fault under test, by its reason code.
    log = server.log()
    for reason in ("headers", "cert-url", "signature", "timestamp", "application-id"):
        assert f"reason={reason}" in log, reason


def test_certify_command_against_our_server_prints_the_table_and_exits_zero(
    start_server, dev_ca_home, monkeypatch, capsys
):
    server = start_server()
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(dev_ca_home))
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["certify", server.url + "/"]) == 0
    out = capsys.readouterr().out
    assert f"{NEGATIVE_CHECKS + POSITIVE_CHECKS} pass" in out
    assert "fail" not in out and "not isolated" not in out
    for _, what in AMAZON_INVALID_CERT_URLS:
        assert what in out


def test_a_lax_endpoint_has_every_hole_reported(dev_ca):
    with endpoint(200, LAX_ANSWER) as url:
        _, verdicts = run(url, dev_ca)
    refusals = {check: v for check, v in verdicts.items() if not check.startswith("valid ")}
    assert len(refusals) == NEGATIVE_CHECKS
    assert refusals == dict.fromkeys(refusals, FAIL)


def test_certify_command_against_a_lax_endpoint_exits_non_zero(dev_ca_home, monkeypatch, capsys):
    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(dev_ca_home))
    monkeypatch.setenv("COLUMNS", "200")
    with endpoint(200, LAX_ANSWER) as url:
        assert main(["certify", url]) == 1
    out = capsys.readouterr().out
    assert f"{NEGATIVE_CHECKS} fail" in out
    assert "no signature headers" in out and "malformed JSON" in out


def test_an_endpoint_that_does_not_trust_the_dev_ca_cannot_isolate_some_faults(
    dev_ca, dev_ca_home, monkeypatch, capsys
):
    # It refuses everything: the refusals that need a valid signature to mean
    # anything are "not isolated", and nothing valid can be sent.
    with endpoint(400, b'{"error": "cert-fetch", "message": "no chain"}') as url:
        trusts, verdicts = run(url, dev_ca)
        monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(dev_ca_home))
        code = main(["certify", url])
    assert not trusts
    for check, verdict in verdicts.items():
        if check in NEEDS_TRUST:
            assert verdict == NOT_ISOLATED, check
        elif check.startswith("valid "):
            assert verdict == NOT_RUN, check
        else:
            assert verdict == PASS, check
    assert code == 0
    assert "does not trust the development CA" in capsys.readouterr().out


def test_an_endpoint_answering_an_invalid_response_fails_the_valid_request_checks(dev_ca):
    with endpoint(200, b'{"version": "1.0", "response": {"outputSpeech": "hi"}}') as url:
        _, verdicts = run(url, dev_ca)
    assert verdicts["valid LaunchRequest"] == FAIL
    assert verdicts["valid IntentRequest (Help)"] == FAIL


def test_nothing_listening_is_a_clear_error(monkeypatch, dev_ca_home, capsys):
    from tests.e2e.conftest import free_port

    monkeypatch.setenv("FUNKER_DISPATCH_HOME", str(dev_ca_home))
    url = f"http://127.0.0.1:{free_port()}/"
    assert main(["certify", url]) == 2
    assert capsys.readouterr().err == (
        f"funker-dispatch certify: {url}: connection refused"
        ' (at "the first signed LaunchRequest")\n'
    )
