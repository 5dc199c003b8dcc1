"""The default chain fetcher against real local servers: HTTPS only, no redirects, deadline, cap."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import pki
from verification import VerificationFailed
from verification.fetch import MAX_CHAIN_BYTES, fetch_chain

CHAIN = pki.alexa_chain().pem


class _Server(ThreadingHTTPServer):
    """Handshakes in the handler thread, so a client refusing our certificate is just
    a closed connection (wrapping the listening socket would leak it in accept())."""

    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def get_request(self):
        connection, address = self.socket.accept()
        if self.tls is not None:
            connection = self.tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up (timeouts, refused certificates) are the point of these tests


class LocalServer:
    """A threaded HTTP(S) server on a free loopback port that records request paths."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.paths: list[str] = []
        self.release = threading.Event()  # lets a deliberately slow handler finish
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                if self.path == "/echo.api/chain.pem":
                    self._answer(200, CHAIN)
                elif self.path == "/echo.api/redirect.pem":
                    self.send_response(302)
                    self.send_header("Location", "/echo.api/chain.pem")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/echo.api/slow.pem":
                    owner.release.wait(timeout=10)
                    self._answer(200, CHAIN)
                elif self.path == "/echo.api/drip.pem":
                    # An answer whose head never ends, one byte every 0.1 s: each
                    # receive is quick, the whole takes for ever (until released).
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    while not owner.release.wait(0.1):
                        self.wfile.write(b"X")
                        self.wfile.flush()
                elif self.path == "/echo.api/big.pem":
                    self._answer(200, b"A" * (MAX_CHAIN_BYTES + 1))
                elif self.path == "/echo.api/big-unannounced.pem":
                    # No Content-Length: the cap has to hold while reading.
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"A" * (MAX_CHAIN_BYTES + 1))
                    self.close_connection = True
                else:
                    self._answer(404, b"not found")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.tls = tls
        scheme = "https" if tls is not None else "http"
        self.base = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def tls_root() -> pki.Issued:
    return pki.tls_root()


@pytest.fixture(scope="module")
def https_server(
    tls_root: pki.Issued, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServer]:
    certificate = pki.server_certificate(tls_root)
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = Path(folder, "server.pem"), Path(folder, "server.key")
    cert_file.write_bytes(certificate.pem)
    key_file.write_bytes(certificate.key_pem)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    server = LocalServer(tls)
    yield server
    server.close()


@pytest.fixture
def client_context(tls_root: pki.Issued) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=tls_root.pem.decode())


def failure(url: str, **options) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as raised:
        fetch_chain(url, **options)
    return raised.value


def failure_reason(url: str, **options) -> str:
    return failure(url, **options).reason


def test_chain_is_fetched_over_https(https_server, client_context):
    url = https_server.base + "/echo.api/chain.pem"
    assert fetch_chain(url, context=client_context) == CHAIN


def test_plain_http_url_is_refused_before_any_connection():
    server = LocalServer(tls=None)
    try:
        reason = failure_reason(server.base + "/echo.api/chain.pem")
        assert reason == "cert-url"
        assert server.paths == []
    finally:
        server.close()


def test_redirect_is_refused_not_followed(https_server, client_context):
    before = len(https_server.paths)
    url = https_server.base + "/echo.api/redirect.pem"
    refused = failure(url, context=client_context)
    assert refused.reason == "cert-fetch" and "redirect" in refused.message
    assert https_server.paths[before:] == ["/echo.api/redirect.pem"]


def test_slow_server_hits_the_deadline(https_server, client_context):
    url = https_server.base + "/echo.api/slow.pem"
    refused = failure(url, context=client_context, timeout=0.2)
    assert refused.reason == "cert-fetch" and "timed out" in refused.message


def test_a_server_dripping_its_answer_cannot_stretch_the_deadline(https_server, client_context):
    # Every byte arrives well within any per-receive timeout; the whole never does.
    url = https_server.base + "/echo.api/drip.pem"
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            fetch_chain(url, context=client_context, timeout=0.5)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=fetch, daemon=True)
    worker.start()
    worker.join(10)  # a liveness bound, twenty times the deadline
    assert not worker.is_alive(), "the fetch outlived its deadline"
    (refused,) = outcome
    assert isinstance(refused, VerificationFailed)
    assert refused.reason == "cert-fetch" and "timed out" in refused.message


def test_non_200_answer_is_refused(https_server, client_context):
    url = https_server.base + "/echo.api/missing.pem"
    refused = failure(url, context=client_context)
    assert refused.reason == "cert-fetch" and "404" in refused.message


@pytest.mark.parametrize("path", ["/echo.api/big.pem", "/echo.api/big-unannounced.pem"])
def test_oversized_chain_is_refused(https_server, client_context, path):
    refused = failure(https_server.base + path, context=client_context)
    assert refused.reason == "cert-fetch" and "larger than" in refused.message


def test_server_certificate_not_trusted_is_a_fetch_failure(https_server):
    # The default context trusts certifi's roots, which never signed this local server.
    refused = failure(https_server.base + "/echo.api/chain.pem")
    assert refused.reason == "cert-fetch" and "CERTIFICATE_VERIFY_FAILED" in refused.message


def test_nothing_listening_is_a_fetch_failure(client_context):
    server = LocalServer(tls=None)
    base = server.base
    server.close()  # the port is now closed
    url = base.replace("http://", "https://") + "/echo.api/chain.pem"
    assert failure_reason(url, context=client_context) == "cert-fetch"
