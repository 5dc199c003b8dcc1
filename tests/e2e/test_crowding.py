"""No client crowds Alexa out, and no delivery is lost to a failing function (docs/robustness.md).

Real servers over real sockets: event deliveries run on threads of their own
and are answered 503 at once when those are busy; request bodies draw on a
budget counted as bytes arrive, with Alexa's share apart from the
deliveries'; GitHub and EventBridge deliveries are refused on their headers
before a byte of their body is read; idle connections hold no request off;
a request head is bounded; deadlines count from a request's arrival; and a
function whose handler raises makes the delivery fail, so it is retried.

Liveness is asserted with bounds far below what the failure would cost (the
servers' read_timeout is raised so the old behaviour would take longer than
any bound here), never by timing the test.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatch.funker import make_server
from tests.e2e.conftest import (
    ANSWER_WITHIN,
    LIVENESS_READ_TIMEOUT,
    envelope,
    intent,
    post,
    signed_launch,
    tls_server_env,
)
from tests.e2e.test_observability import samples, value
from tests.helpers import wait_until
from verification.github import signature

SECRET = b"crowding secret"
API_KEY = "crowding-key"


def address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


class HeldFunction:
    """A funker function in this process whose calls wait until `release()`; counts entries."""

    def __init__(self) -> None:
        self.entered = 0
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.server = make_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handle(self, payload: Any) -> Any:
        with self._lock:
            self.entered += 1
        self._released.wait(60)
        return {"speech": "released"}

    def wait_entered(self, count: int) -> None:
        wait_until(lambda: self.entered >= count, 20, f"{count} calls in the function")

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held_function() -> Iterator[HeldFunction]:
    function = HeldFunction()
    yield function
    function.close()


def secrets(tmp: Path) -> tuple[Path, Path]:
    secret, key = tmp / "github-secret", tmp / "api-key"
    secret.write_bytes(SECRET)
    key.write_text(API_KEY)
    for path in (secret, key):
        path.chmod(0o600)
    return secret, key


def triggers(tmp: Path, port: int, **both: Any) -> str:
    """GitHub and EventBridge endpoints (`both` keys set on each); the rule and EchoIntent
    go to the function on `port`."""
    secret, key = secrets(tmp)
    extra = "".join(f"{name} = {value}\n" for name, value in both.items())
    return (
        f'[triggers.github]\nsecret_file = "{secret}"\n{extra}\n'
        f'[triggers.eventbridge]\napi_key_file = "{key}"\n{extra}\n'
        f'[events.deploys]\nsource = "github"\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[intents.EchoIntent]\nhost = "127.0.0.1"\nport = {port}\n'
    )


def push(delivery: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "a/b"}}).encode()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature(SECRET, body),
    }


def exchange(url: str, data: bytes, *, timeout: float = ANSWER_WITHIN) -> bytes:
    """Send raw bytes and read what comes back until the server closes (or `timeout`)."""
    with socket.create_connection(address(url), timeout=timeout) as conn:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            conn.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
    return answer


def status_and_json(answer: bytes) -> tuple[int, Any]:
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body) if body else None


# --- event deliveries have threads of their own -----------------------------------------


@pytest.fixture
def two_event_threads(start_server, tmp_path, held_function):
    env = {"FUNKER_DISPATCH_SERVER_EVENT_THREADS": "2", "FUNKER_DISPATCH_SERVER_THREADS": "2"}
    return start_server(triggers(tmp_path, held_function.port), env=env)


def test_deliveries_beyond_their_threads_get_503_at_once_and_alexa_still_answers(
    two_event_threads, held_function, dev_ca
):
    server = two_event_threads
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(_threads(2))
        first = [pool.submit(post, server.url + "/events/github", *push()) for _ in range(2)]
        held_function.wait_entered(2)  # both event threads are in the function now

        body, headers = push()
        busy = post(server.url + "/events/github", body, headers)
        assert (busy.status, busy.json["error"]) == (503, "busy")  # at once: nothing waited
        # Alexa's two threads are untouched by the deliveries holding theirs.
        assert "Welcome" in json.dumps(signed_launch(server.url, dev_ca))
        assert "Welcome" in json.dumps(signed_launch(server.url, dev_ca))

        held_function.release()
        assert [f.result(timeout=20).status for f in first] == [200, 200]
    server.wait_for_log('"reason":"busy"')


@contextlib.contextmanager
def _threads(count: int) -> Iterator[Any]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(count) as pool:
        yield pool


# --- a deadline counts from arrival ------------------------------------------------------


def test_an_alexa_request_that_waited_out_its_deadline_for_a_thread_is_not_forwarded(
    start_server, held_function, signed
):
    # One thread: a second request waits for it while the first is in the function. By the
    # time it gets the thread its deadline (0.2 s, counted from arrival) is long gone.
    server = start_server(
        f'[intents.EchoIntent]\nhost = "127.0.0.1"\nport = {held_function.port}\ntimeout = 0.2\n'
        f'[intents.WaitIntent]\nhost = "127.0.0.1"\nport = {held_function.port}\n',
        env={"FUNKER_DISPATCH_SERVER_THREADS": "1"},
    )
    with _threads(2) as pool:
        first = pool.submit(signed, server.url, intent("WaitIntent"))
        held_function.wait_entered(1)
        second = pool.submit(signed, server.url, intent("EchoIntent"))
        wait_until(second.running, 30, "the second request to be on its way")
        # The scenario, not a synchronisation: the second request waits for the thread
        # fifteen times its deadline (nothing in the server can be observed meanwhile).
        threading.Event().wait(3.0)
        held_function.release()
        assert first.result(timeout=20).status == 200
        late = second.result(timeout=20)
    assert late.status == 200 and late.json["response"]["shouldEndSession"] is True
    assert held_function.entered == 1  # the late one was never forwarded
    server.wait_for_log("no time left after waiting for a thread")


# --- bodies: headers first, a budget, shares apart ---------------------------------------


@pytest.fixture
def answering_function() -> Iterator[HeldFunction]:
    function = HeldFunction()
    function.release()
    yield function
    function.close()


@pytest.fixture
def small_budget(start_server, tmp_path, held_function, answering_function):
    # 1 MiB in all: 256 KiB for Alexa's path, 768 KiB for deliveries; read_timeout 3 s.
    # GitHub deliveries go to `answering_function`, Alexa's EchoIntent to `held_function`.
    env = {
        "FUNKER_DISPATCH_SERVER_MAX_BODY_BYTES_IN_FLIGHT": str(1024 * 1024),
        "FUNKER_DISPATCH_SERVER_READ_TIMEOUT": "3",
    }
    routes = triggers(tmp_path, answering_function.port, max_body_bytes=512 * 1024)
    routes = routes.replace(
        f'[intents.EchoIntent]\nhost = "127.0.0.1"\nport = {answering_function.port}',
        f'[intents.EchoIntent]\nhost = "127.0.0.1"\nport = {held_function.port}',
    )
    return start_server(routes, env=env)


@pytest.mark.parametrize(
    "headers, error, status",
    [
        ({"X-GitHub-Event": "push"}, "github-signature", 401),
        ({"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=abc"}, "github-signature", 401),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "github-malformed", 400),
    ],
    ids=["unsigned", "malformed-signature", "no-event"],
)
def test_a_github_delivery_is_refused_on_its_headers_before_its_body_is_read(
    small_budget, headers, error, status
):
    # It announces a body it never sends: only an answer that did not wait for it can come.
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = f"POST /events/github HTTP/1.1\r\nHost: x\r\n{lines}Content-Length: 500000\r\n\r\n"
    answer = status_and_json(exchange(small_budget.url, head.encode()))
    assert (answer[0], answer[1]["error"]) == (status, error)


def test_an_eventbridge_delivery_with_a_wrong_key_is_refused_before_its_body_is_read(
    small_budget,
):
    head = (
        "POST /events/eventbridge HTTP/1.1\r\nHost: x\r\nx-api-key: wrong\r\n"
        "Content-Length: 500000\r\n\r\n"
    )
    answer = status_and_json(exchange(small_budget.url, head.encode()))
    assert (answer[0], answer[1]["error"]) == (401, "eventbridge-auth")


def held_bytes(server, lane: str) -> float:
    return value(samples(server.admin_url), "funker_dispatch_body_bytes_in_flight", lane=lane)


def padded(document: dict[str, Any], size: int, where: list[str]) -> bytes:
    """`document` as JSON of exactly `size` bytes, padded with a string at the path `where`."""
    target = document
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = ""
    short = size - len(json.dumps(document).encode())
    target[where[-1]] = " " * short
    body = json.dumps(document).encode()
    assert len(body) == size
    return body


def test_deliveries_holding_their_whole_body_budget_leave_alexas_share_alone(
    start_server, tmp_path, held_function, dev_ca
):
    env = {
        "FUNKER_DISPATCH_SERVER_MAX_BODY_BYTES_IN_FLIGHT": str(1024 * 1024),
        "FUNKER_DISPATCH_SERVER_READ_TIMEOUT": "3",
    }
    routes = triggers(tmp_path, held_function.port, max_body_bytes=512 * 1024)
    server = start_server(routes, env=env)
    # Two deliveries of 384 KiB each, read whole and held in the function: all of the
    # deliveries' 768 KiB are taken while they run.
    document = {"ref": "refs/heads/main", "repository": {"full_name": "a/b"}, "pad": ""}
    with _threads(2) as pool:
        held = []
        for _ in range(2):
            body = padded(dict(document), 384 * 1024, ["pad"])
            headers = {**push()[1], "X-Hub-Signature-256": signature(SECRET, body)}
            held.append(pool.submit(post, server.url + "/events/github", body, headers))
        held_function.wait_entered(2)
        assert held_bytes(server, "events") == 768 * 1024

        # One more delivery finds no room: it waits, then is told to retry (503, not 408).
        late = post(server.url + "/events/github", *push())
        assert (late.status, late.json["error"]) == (503, "busy")
        # Alexa's share is its own.
        assert "Welcome" in json.dumps(signed_launch(server.url, dev_ca))
        held_function.release()
        assert [answer.result(timeout=20).status for answer in held] == [200, 200]
    wait_until(lambda: held_bytes(server, "events") == 0, 20, "the deliveries' share given back")


def test_alexa_bodies_filling_their_share_make_the_next_wait_and_deliveries_go_on(
    small_budget, held_function, dev_ca, signed
):
    # Two signed Alexa requests of 128 KiB (the cap) held in the function: Alexa's 256 KiB.
    with _threads(2) as pool:
        held = [
            pool.submit(
                signed,
                small_budget.url,
                padded(intent("EchoIntent"), 128 * 1024, ["session", "attributes", "pad"]),
            )
            for _ in range(2)
        ]
        held_function.wait_entered(2)
        body = json.dumps(envelope({"type": "LaunchRequest"})).encode()
        refused = post(small_budget.url + "/", body, dev_ca.sign(body))
        assert (refused.status, refused.json["error"]) == (503, "busy")
        assert post(small_budget.url + "/events/github", *push()).status == 200
        held_function.release()
        assert [answer.result(timeout=20).status for answer in held] == [200, 200]
    wait_until(lambda: held_bytes(small_budget, "alexa") == 0, 20, "Alexa's share given back")
    assert "Welcome" in json.dumps(signed_launch(small_budget.url, dev_ca))


# --- a function that raises ---------------------------------------------------------------


RAISING = """
import sys
from dispatch.funker import serve
def handler(payload):
    raise RuntimeError("the handler failed")
serve(handler, "127.0.0.1", int(sys.argv[1]))
"""


def test_a_delivery_to_a_function_whose_handler_raises_fails_and_its_redelivery_runs_again(
    start_server, tmp_path
):
    import subprocess
    import sys

    from tests.helpers import accepts, free_port

    port = free_port()
    root = Path(__file__).resolve().parents[2]
    function = subprocess.Popen(
        [sys.executable, "-c", RAISING, str(port)],
        cwd=root,
        env={"PYTHONPATH": str(root)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: accepts(port), 20, "the raising function to listen")
        server = start_server(triggers(tmp_path, port))
        delivery = str(uuid.uuid4())
        for _ in range(2):  # the delivery, then GitHub's "Redeliver"
            answer = post(server.url + "/events/github", *push(delivery))
            assert answer.status == 502, answer.body
            (rule,) = answer.json["rules"]
            assert (rule["outcome"], rule["reason"]) == ("failed", "protocol")
    finally:
        function.terminate()
        _out, errors = function.communicate(timeout=10)
    assert "the handler failed" in errors  # the function's own log says why, with its traceback


# --- connections ----------------------------------------------------------------------------


def _descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the open-file limit {hard} is below the {needed} this test holds")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.contextmanager
def idle_connections(url: str, count: int, first: bytes = b"") -> Iterator[None]:
    host, port = address(url)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect((host, port))
            sockets.append(sock)
        for sock in sockets:
            sock.setblocking(True)
            sock.settimeout(10)
            if first:
                with contextlib.suppress(OSError):
                    sock.sendall(first)
        yield
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def two_workers(start_server):
    return start_server(
        workers=2, env={"FUNKER_DISPATCH_SERVER_READ_TIMEOUT": LIVENESS_READ_TIMEOUT}
    )


@pytest.mark.parametrize("first", [b"", b"P"], ids=["silent", "one-byte"])
def test_five_thousand_idle_connections_keep_no_alexa_request_waiting(two_workers, dev_ca, first):
    # granian's default let 1024 / workers idle sockets take every permit until they timed out.
    _descriptors(6000)
    with idle_connections(two_workers.url, 5000, first):
        assert "Welcome" in json.dumps(signed_launch(two_workers.url, dev_ca))


def head_answer(url: str, size: int, *, piece: int | None = None) -> bytes:
    """The status of GET /healthz with a `size`-byte header, sent at once or `piece` at a time."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * size + b"\r\n"
    head += b"Connection: close\r\n\r\n"
    step = piece or len(head)
    with socket.create_connection(address(url), timeout=ANSWER_WITHIN) as conn:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for start in range(0, len(head), step):
                conn.sendall(head[start : start + step])
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := conn.recv(65536):
                answer += chunk
    return answer[9:12]


@pytest.mark.parametrize("piece", [None, 1024], ids=["at-once", "trickled"])
def test_no_request_head_over_64_kib_is_accepted(two_workers, piece):
    # A head is held whole until it is parsed: this bounds what one connection holds.
    assert head_answer(two_workers.url, 70_000, piece=piece) == b"431"


def test_a_head_of_30_kib_is_served_whichever_way_it_arrives(two_workers):
    assert head_answer(two_workers.url, 30_000) == b"200"
    assert head_answer(two_workers.url, 30_000, piece=1024) == b"200"


@pytest.fixture(scope="module")
def tls_one_worker(start_server, tmp_path_factory):
    env, context = tls_server_env(tmp_path_factory.mktemp("crowding-tls"))
    env["FUNKER_DISPATCH_SERVER_READ_TIMEOUT"] = LIVENESS_READ_TIMEOUT
    return start_server(env=env, scheme="https", ssl_context=context), context


def test_idle_tls_connections_past_their_handshake_keep_no_alexa_request_waiting(
    tls_one_worker, dev_ca
):
    # One worker's default permits were 1024: past them, finished handshakes queued.
    server, context = tls_one_worker
    _descriptors(3000)
    held = []
    try:
        for _ in range(1100):
            raw = socket.create_connection(address(server.url), timeout=10)
            held.append(context.wrap_socket(raw, server_hostname="127.0.0.1"))
        assert "Welcome" in json.dumps(signed_launch(server.url, dev_ca, context))
    finally:
        for sock in held:
            sock.close()
