"""simulate, dialog and certify against endpoints that misbehave: one clear line, exit 2, no hang.

Each endpoint here is a thread with a listening socket on loopback that
reads the request and then does one bad thing: garbage, a truncated body,
silence, a trickle, a body of hundreds of MiB, terminal escape sequences in
what it says. The tools run as the user runs them, as child processes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from skill import client
from tests import pki
from tests.helpers import free_port
from verification.devca import DevCA

ROOT = Path(__file__).resolve().parents[2]
# --timeout where running out of time *is* the outcome under test (silence, a trickle): the
# verdict is the same however slow the machine.
TIMEOUT = "3"
# The same for a body trickled after a prompt head: long enough that the head is always in,
# so the outcome is the body's deadline ("did not finish"), never the head's ("no answer").
BODY_TIMEOUT = "10"
# --timeout everywhere else: a safety net no live tool reaches, however loaded the machine, so
# a verdict never races a deadline against reading or producing data.
PATIENCE = "120"
LIVENESS = 180  # seconds a child may take at all; a hang fails the test, it never blocks it
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")

Behaviour = Callable[[socket.socket, threading.Event], None]


# --- misbehaving endpoints -------------------------------------------------------


def _read_request(conn: socket.socket) -> None:
    """Read one HTTP request (head and Content-Length body), so what follows is the only fault."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


@contextmanager
def endpoint(*behaviours: Behaviour, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """An HTTP(S) endpoint on loopback; the n-th connection gets behaviours[n], the last repeats."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # so the accept loop sees `stop`
    stop = threading.Event()
    handlers: list[threading.Thread] = []

    def handle(conn: socket.socket, behave: Behaviour) -> None:
        with conn:
            try:
                conn.settimeout(30)
                if tls is not None:
                    conn = tls.wrap_socket(conn, server_side=True)
                _read_request(conn)
                behave(conn, stop)
            except OSError:
                pass  # the client gave up on us: for most of these, the point

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            behave = behaviours[min(len(handlers), len(behaviours) - 1)]
            thread = threading.Thread(target=handle, args=(conn, behave), daemon=True)
            handlers.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        scheme = "http" if tls is None else "https"
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for thread in handlers:
            thread.join(5)


def answer(status: int, body: bytes, content_type: str = "application/json") -> Behaviour:
    def behave(conn: socket.socket, stop: threading.Event) -> None:
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + body)

    return behave


def garbage(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\x1b[2J\r\n")


def hang_up(conn: socket.socket, stop: threading.Event) -> None:
    pass  # closes without a byte


def reset(conn: socket.socket, stop: threading.Event) -> None:
    # Linger 0: close sends RST, the client sees "connection reset by peer".
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def truncated(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b'{"version"')


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(LIVENESS)


def trickle(head: bytes) -> Behaviour:
    """Send `head`, then one byte every 0.2 s for ever: no single receive ever waits long."""

    def behave(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head)
        while not stop.wait(0.2):
            conn.sendall(b"a")

    return behave


TRICKLED_HEADERS = trickle(b"HTTP/1.1 200 OK\r\nX-Drip: ")
TRICKLED_BODY = trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
BIG = 400 * 1024 * 1024


def big_body(framing: str) -> Behaviour:
    """400 MiB of body, streamed (never allocated), until it is all sent or the client leaves."""

    def behave(conn: socket.socket, stop: threading.Event) -> None:
        headers = {
            "length": f"Content-Length: {BIG}\r\n",
            "close": "Connection: close\r\n",
            "chunked": "Transfer-Encoding: chunked\r\n",
        }[framing]
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{headers}\r\n".encode())
        block = b" " * 65536
        if framing == "chunked":
            block = b"10000\r\n" + block + b"\r\n"
        for _ in range(BIG // 65536):
            if stop.is_set():
                return
            conn.sendall(block)

    return behave


# --- the client every tool uses --------------------------------------------------------


def test_any_status_is_an_answer_and_a_redirect_is_not_followed():
    moved = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\n\r\n"

    def redirect(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(moved)

    with endpoint(answer(404, b'{"error": "nope"}'), redirect) as url:
        refused = client.post(url, b"{}", {}, timeout=5)
        assert (refused.status, refused.body) == (404, b'{"error": "nope"}')
        assert client.post(url, b"{}", {}, timeout=5).status == 302


def test_a_chunked_body_is_read_whole_up_to_the_cap():
    def chunked(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )

    with endpoint(chunked) as url:
        assert client.post(url, b"{}", {}, timeout=5, max_bytes=11).body == b"hello world"
        with pytest.raises(client.EndpointResponseTooLarge, match="over 10 bytes"):
            client.post(url, b"{}", {}, timeout=5, max_bytes=10)


def test_one_deadline_bounds_the_whole_exchange_however_slowly_bytes_arrive():
    with endpoint(TRICKLED_HEADERS) as url:
        started = time.monotonic()
        with pytest.raises(client.EndpointDeadlineExceeded, match="no answer within 1 s"):
            client.post(url, b"{}", {}, timeout=1)
        assert time.monotonic() - started < 8  # liveness only: per-receive timeouts never fire


def test_every_failure_is_an_endpoint_error():
    url = f"http://127.0.0.1:{free_port()}/"
    with pytest.raises(client.EndpointUnreachable, match="connection refused"):
        client.post(url, b"{}", {})
    for bad in ("ftp://127.0.0.1/", "http://127.0.0.1:99999/", "http:///"):
        with pytest.raises(client.EndpointUnreachable):
            client.post(bad, b"{}", {})
    with endpoint(garbage) as url, pytest.raises(client.EndpointProtocolError) as caught:
        client.post(url, b"{}", {})
    assert isinstance(caught.value, client.EndpointError)


def test_https_is_read_under_the_same_deadline_and_a_stalled_handshake_is_bounded(tmp_path):
    root = pki.tls_root()
    leaf = pki.server_certificate(root)
    (tmp_path / "cert.pem").write_bytes(leaf.pem)
    (tmp_path / "key.pem").write_bytes(leaf.key_pem)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = ssl.create_default_context(cadata=root.pem.decode())
    with endpoint(answer(200, b'{"version": "1.0"}'), tls=served) as url:
        assert (
            client.post(url, b"{}", {}, timeout=5, context=trusting).body == b'{"version": "1.0"}'
        )
        with pytest.raises(client.EndpointUnreachable, match="TLS handshake failed"):
            client.post(url, b"{}", {}, timeout=5)  # the system's roots do not know this one
    # A plain TCP listener that takes the ClientHello and never answers it.
    with endpoint(silent) as url, pytest.raises(client.EndpointDeadlineExceeded):
        client.post(url.replace("http:", "https:"), b"{}", {}, timeout=1, context=trusting)


# --- running the tools -------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hostile-devca")
    DevCA.load_or_create(home)  # once, so no child creates it while another reads it
    return home


def cli(*args: str, home: Path, measure: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `funker-dispatch ARGS`; with `measure`, its peak RSS in KiB is written there."""
    environment = {**os.environ, "FUNKER_DISPATCH_HOME": str(home), "COLUMNS": "200"}
    environment.pop("FUNKER_DISPATCH_CONFIG", None)
    command = [sys.executable, "-m", "funker_dispatch", *args]
    if measure is not None:
        command = [sys.executable, "-c", MEASURED, str(measure), *command]
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=ROOT, timeout=LIVENESS
    )


# Runs the tool as its own child, so RUSAGE_CHILDREN is that one process's peak,
# not the largest of everything this test session ever started.
MEASURED = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[2:], timeout=170)
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(done.returncode)
"""


def failed_with_one_line(done: subprocess.CompletedProcess[str], url: str, said: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2, done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert url in lines[0] and said in lines[0], lines[0]
    assert not RAW_CONTROL.search(done.stderr), repr(done.stderr)
    return lines[0]


# --- simulate: every transport failure is one line and exit 2 ------------------------


@pytest.mark.parametrize(
    ("behaviour", "said", "timeout"),
    [
        pytest.param(
            garbage,
            "not an HTTP answer (status line 'SSH-2.0-OpenSSH_9.2')",
            PATIENCE,
            id="garbage",
        ),
        pytest.param(hang_up, "closed the connection without answering", PATIENCE, id="hang-up"),
        pytest.param(reset, "connection", PATIENCE, id="reset"),
        pytest.param(truncated, "the answer's body ended early", PATIENCE, id="truncated"),
        pytest.param(silent, f"no answer within {TIMEOUT} s", TIMEOUT, id="silent"),
        pytest.param(
            TRICKLED_HEADERS, f"no answer within {TIMEOUT} s", TIMEOUT, id="trickled-headers"
        ),
        pytest.param(
            TRICKLED_BODY,
            f"the answer did not finish within {BODY_TIMEOUT} s",
            BODY_TIMEOUT,
            id="trickled-body",
        ),
        pytest.param(
            big_body("length"), "the answer's body is over 1 MiB", PATIENCE, id="declared-too-big"
        ),
        pytest.param(
            answer(200, b"<html>OK</html>", "text/html"), "not a JSON object", PATIENCE, id="html"
        ),
        pytest.param(
            answer(200, b"[" * 100_000), "not a JSON object", PATIENCE, id="deeply-nested"
        ),
    ],
)
def test_simulate_against_a_broken_endpoint_says_what_broke_in_one_line(
    home, behaviour, said, timeout
):
    with endpoint(behaviour) as url:
        done = cli("simulate", "--launch", "--url", url, "--timeout", timeout, home=home)
    line = failed_with_one_line(done, url, said)
    assert line.startswith("funker-dispatch simulate: ")


def test_simulate_the_timeout_defaults_to_ten_seconds(home):
    # No --timeout: the default is named in the message. The trickle would hold
    # a per-operation timeout for ever.
    with endpoint(TRICKLED_HEADERS) as url:
        done = cli("simulate", "--launch", "--url", url, home=home)
    failed_with_one_line(done, url, "no answer within 10 s")


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e300", "soon"])
def test_simulate_refuses_a_timeout_that_is_not_a_positive_number(home, value):
    done = cli("simulate", "--launch", "--timeout", value, home=home)
    assert done.returncode == 2
    assert "argument --timeout: " in done.stderr and "seconds" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("framing", ["close", "chunked"])
def test_simulate_reads_at_most_a_mebibyte_of_a_huge_body(home, tmp_path, framing):
    peak = tmp_path / "maxrss"
    with endpoint(big_body(framing)) as url:
        # Reading a MiB is the outcome, however long it takes: the deadline is only a net.
        done = cli(
            "simulate", "--launch", "--url", url, "--timeout", PATIENCE, home=home, measure=peak
        )
    failed_with_one_line(done, url, "the answer's body is over 1 MiB")
    # The tool itself is some 80 MiB of Python; 400 MiB read whole is far past this.
    assert int(peak.read_text()) < 200 * 1024, f"peak RSS {int(peak.read_text()) // 1024} MiB"


# --- dialog and certify ------------------------------------------------------------

OPEN_SESSION = json.dumps(
    {
        "version": "1.0",
        "response": {
            "outputSpeech": {"type": "PlainText", "text": "Welcome, first turn."},
            "shouldEndSession": False,
        },
    }
).encode()


def test_dialog_prints_the_turns_it_had_then_the_failure_in_one_line(home, tmp_path):
    # The second turn's failure is a hang-up, not silence: with a deadline, a loaded machine
    # could make the first turn miss it too, and the test would judge the machine.
    script = tmp_path / "two-turns.txt"
    script.write_text("open funker dispatch\nsay hello\n")
    with endpoint(answer(200, OPEN_SESSION), hang_up) as url:
        done = cli(
            "dialog", "--script", str(script), "--url", url, "--timeout", PATIENCE, home=home
        )
    line = failed_with_one_line(done, url, "closed the connection without answering")
    assert line.startswith("funker-dispatch dialog: ")
    assert "alexa Welcome, first turn." in done.stdout


def test_certify_against_a_trickling_endpoint_stops_within_its_timeout(home):
    with endpoint(TRICKLED_BODY) as url:
        done = cli("certify", url, "--timeout", BODY_TIMEOUT, home=home)
    line = failed_with_one_line(done, url, f"the answer did not finish within {BODY_TIMEOUT} s")
    assert line.startswith("funker-dispatch certify: ")


def test_certify_stops_at_the_first_check_without_an_answer_and_prints_what_it_has(home):
    refusal = answer(400, b'{"error": "headers"}')
    # The trust probe and the first two refusal checks are answered; then a hang-up (not
    # silence, whose deadline the answered checks would race on a loaded machine).
    with endpoint(refusal, refusal, refusal, hang_up) as url:
        done = cli("certify", url, "--timeout", PATIENCE, home=home)
    line = failed_with_one_line(done, url, "closed the connection without answering")
    assert "certificate URL: protocol http" in line  # the check that got no answer
    assert "no signature headers" in done.stdout and "empty certificate URL" in done.stdout
    assert "2 pass" in done.stdout
    assert "[verification]" in done.stdout  # the note's config section, not read as markup


# --- what the endpoint says never reaches the terminal as control sequences ----------

HOSTILE = "\x1b]0;pwned\x07 [bold]loud[/bold] :smile: \x1b[2J\x9b31m\r\x08\ud800 end\\"
HOSTILE_RESPONSE = {
    "version": "1.0",
    "sessionAttributes": {"note": HOSTILE},
    "response": {
        "outputSpeech": {"type": "PlainText", "text": "speech " + HOSTILE},
        "card": {"type": "Simple", "title": "title " + HOSTILE, "content": "content " + HOSTILE},
        # SSML entities decode to control characters too.
        "reprompt": {"outputSpeech": {"type": "SSML", "ssml": "<speak>again &#x1b;[2J</speak>"}},
        "shouldEndSession": False,
    },
}


def shown(text: str) -> str:
    """What a terminal should see of HOSTILE: the same text, its control characters gone."""
    return text.replace(HOSTILE, "]0;pwned [bold]loud[/bold] :smile: [2J31m\ufffd end\\")


def test_speech_card_and_reprompt_are_printed_without_control_characters_or_markup(home):
    with endpoint(answer(200, json.dumps(HOSTILE_RESPONSE).encode())) as url:
        done = cli("simulate", "--launch", "--url", url, home=home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert not RAW_CONTROL.search(done.stdout), repr(done.stdout)
    assert f"alexa {shown('speech ' + HOSTILE)}\n" in done.stdout
    assert shown("title " + HOSTILE) in done.stdout
    assert shown("content " + HOSTILE) in done.stdout
    assert "reprompt: again [2J" in done.stdout


def test_an_error_page_is_printed_without_control_characters(home):
    with endpoint(answer(500, ("oops " + HOSTILE).encode("utf-8", "surrogatepass"))) as url:
        done = cli("simulate", "--launch", "--url", url, home=home)
    assert done.returncode == 1, done.stderr + done.stdout
    assert not RAW_CONTROL.search(done.stdout), repr(done.stdout)
    assert "HTTP 500 oops ]0;pwned [bold]loud[/bold] :smile: [2J" in done.stdout


def test_json_output_is_exact_and_holds_no_raw_control_character(home):
    with endpoint(answer(200, json.dumps(HOSTILE_RESPONSE).encode())) as url:
        done = cli("simulate", "--launch", "--json", "--url", url, home=home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert not RAW_CONTROL.search(done.stdout.replace("\n", "")), repr(done.stdout)
    document = json.loads(done.stdout)
    assert document["status"] == 200
    assert document["response"] == HOSTILE_RESPONSE


def test_certify_prints_the_endpoints_reasons_without_control_characters(home):
    with endpoint(answer(400, json.dumps({"error": "headers " + HOSTILE}).encode())) as url:
        done = cli("certify", url, home=home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert not RAW_CONTROL.search(done.stdout), repr(done.stdout)
    assert "headers ]0;pwned [bold]loud[/bold]" in done.stdout


# --- events send --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "said", "timeout"),
    [
        pytest.param(hang_up, "closed the connection without answering", PATIENCE, id="hang-up"),
        pytest.param(silent, f"no answer within {TIMEOUT} s", TIMEOUT, id="silent"),
        pytest.param(
            answer(200, b"<html>OK</html>", "text/html"), "not a JSON object", PATIENCE, id="html"
        ),
        pytest.param(
            answer(503, b"[" * 100_000), "not a JSON object", PATIENCE, id="deeply-nested"
        ),
    ],
)
def test_events_send_against_a_broken_endpoint_says_what_broke_in_one_line(
    home, behaviour, said, timeout
):
    with endpoint(behaviour) as url:
        done = cli("events", "send", "sns", "--url", url, "--timeout", timeout, home=home)
    line = failed_with_one_line(done, url, said)
    assert line.startswith("funker-dispatch events send: ")


def test_events_send_prints_the_endpoints_words_without_control_characters(home):
    hostile = {"rules": [{"name": "r " + HOSTILE, "outcome": "ok " + HOSTILE, "reason": HOSTILE}]}
    with endpoint(answer(200, json.dumps(hostile).encode())) as url:
        done = cli("events", "send", "s3", "--url", url, home=home)
    assert done.returncode == 0, done.stderr + done.stdout
    assert not RAW_CONTROL.search(done.stdout.replace("\n", "")), repr(done.stdout)
    assert "]0;pwned [bold]loud[/bold]" in done.stdout


def test_events_send_prints_a_refusal_without_control_characters(home):
    refusal = {"error": "sns-topic " + HOSTILE, "message": HOSTILE}
    with endpoint(answer(403, json.dumps(refusal).encode())) as url:
        done = cli("events", "send", "cloudwatch", "--url", url, home=home)
    assert done.returncode == 1, done.stderr + done.stdout
    assert not RAW_CONTROL.search(done.stdout.replace("\n", "")), repr(done.stdout)
    assert "HTTP 403: refused, sns-topic ]0;pwned" in done.stdout
