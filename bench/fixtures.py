"""What every benchmark needs: a dev CA, the signed request, a function process, configs.

Shared by `bench/run.py` (servers under load) and `bench/profile.py` (one
process under a profiler), so both measure the same request against the same
function with the same configuration.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/run.py` from a checkout without `pip install -e`
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

import verification  # noqa: E402  (installs the oscrypto import fix before any SDK import)
from verification.devca import DevCA  # noqa: E402

REQUEST = ROOT / "examples" / "requests" / "space-count.json"
#: What the benchmarked request names as Alexa's API (the sample names Amazon's real one, with a
#: token). (b) lists it in progressive_hosts, so its requests arm a progressive response as a
#: real Alexa request does; were one ever due, it would go to loopback's discard port, where
#: nothing listens: never to Amazon.
BENCH_API_ORIGIN = "http://127.0.0.1:9"
SPACECOUNT = ROOT / "examples" / "functions" / "spacecount" / "function.py"
BARE = Path(__file__).resolve().with_name("bare.py")

assert verification  # imported for its side effect


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_envelope() -> dict[str, Any]:
    """The realistic SpaceCountIntent request, re-stamped now (Alexa's 150 s window)."""
    data = json.loads(REQUEST.read_text(encoding="utf-8"))
    data["request"]["timestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data["context"]["System"]["apiEndpoint"] = BENCH_API_ORIGIN
    return data


def application_id() -> str:
    return json.loads(REQUEST.read_text(encoding="utf-8"))["context"]["System"]["application"][
        "applicationId"
    ]


def signed_request(ca: DevCA) -> tuple[bytes, dict[str, str]]:
    """(body, headers) stamped now and signed by the dev CA, as Alexa would send them."""
    body = json.dumps(request_envelope(), separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8", **ca.sign(body)}
    return body, headers


def dispatch_config(ca: DevCA, directory: Path, function_port: int) -> Path:
    """A config for (b): verification on, the dev CA trusted by name, one route on loopback."""
    root = directory / "devca-root.pem"
    root.write_bytes(ca.root.public_bytes(Encoding.PEM))
    config = directory / "dispatch.toml"
    config.write_text(
        # No admin listener: it idles under load, and the workers are then the
        # master's only children (what CPU per request is measured over).
        "[server]\nadmin_port = 0\n\n"
        f'[skill]\napplication_ids = ["{application_id()}"]\n\n'
        # On (the default 1.5 s), armed on every request and never due: its cost is measured.
        f'[dispatch]\nprogressive_hosts = ["{BENCH_API_ORIGIN}"]\n\n'
        f'[verification]\ntrusted_roots = ["{root}"]\n\n'
        f'[verification.local_chains]\n"{ca.chain_url}" = "{ca.chain_path}"\n\n'
        f'[intents.SpaceCountIntent]\nhost = "127.0.0.1"\nport = {function_port}\n'
        "timeout = 3.0\n",
        encoding="utf-8",
    )
    return config


def wait_accepts(port: int, within: float, process: subprocess.Popen[Any] | None = None) -> None:
    """Poll until something accepts on 127.0.0.1:port (bounded by `within`)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing accepted on 127.0.0.1:{port} within {within} s")
        time.sleep(0.01)


def clean_environ() -> dict[str, str]:
    """os.environ without FUNKER_DISPATCH_* settings, which would override the bench config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FUNKER_DISPATCH_")}


@contextlib.contextmanager
def running(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process stopped (TERM, then KILL) when the block ends."""
    output = log.open("wb") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        args,
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**clean_environ(), **(env or {})},
        cwd=cwd,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log is not None:
            output.close()  # type: ignore[union-attr]


@contextlib.contextmanager
def spacecount_function() -> Iterator[int]:
    """examples/functions/spacecount on a free loopback port; yields the port."""
    port = free_port()
    args = [sys.executable, str(SPACECOUNT), "--host", "127.0.0.1", "--port", str(port)]
    with running(args, env={"SPACECOUNT_URL": ""}) as process:
        wait_accepts(port, 10, process)
        yield port


@contextlib.contextmanager
def echo_function() -> Iterator[int]:
    """A function that does nothing but answer: the funker hop with no work behind it."""
    port = free_port()
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from dispatch.funker import serve;"
        "serve(lambda payload: {'speech': 'ok'}, '127.0.0.1', int(sys.argv[1]))"
    )
    with running([sys.executable, "-c", code, str(port), str(ROOT)]) as process:
        wait_accepts(port, 10, process)
        yield port


def funker_dispatch_command() -> list[str]:
    """The installed console script, else the module (same code either way)."""
    script = Path(sys.executable).with_name("funker-dispatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "funker_dispatch"]


def worker_pids(master: int) -> list[int]:
    """Direct children of a server's master process (its workers)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == master:
                children.append(int(entry.name))
                break
    return sorted(children)


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS (resident, shared pages counted whole) and Pss (shared pages split) in MiB."""
    figures: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                figures["rss"] = int(line.split()[1]) / 1024
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                figures["pss"] = int(line.split()[1]) / 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the app in process, as the servers build it (profile.py, growth.py) ----------------

WSGIApp = Callable[[dict[str, Any], Any], Any]


def production_like_process(tmp: Path) -> Path:
    """Multiprocess metrics and the JSON request log, as `serve()` sets them up."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics")
    from funker_dispatch.server.serve import configure_logging
    from skill.observability import prepare_multiprocess

    prepare_multiprocess()
    configure_logging()
    log_path = tmp / "requests.log"
    stream = log_path.open("a", encoding="utf-8")  # a file, as a log shipper would read
    for logger in (logging.getLogger(), logging.getLogger("funker_dispatch.requests")):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)
    return log_path


RESIGN_AFTER = 60.0  # seconds; the timestamp check allows 150


def request_caller(
    app: WSGIApp,
    body: bytes,
    headers: dict[str, str],
    resign: Callable[[], tuple[bytes, dict[str, str]]] | None = None,
) -> Callable[[], bytes]:
    """One POST / through the app's WSGI entry point, with a fresh environ each time.

    With `resign` (a fresh signed body and headers), the request is re-signed
    once it is a minute old: a profile may outlast the timestamp's 150 s window.
    """
    from werkzeug.test import EnvironBuilder

    current: dict[str, Any] = {}

    def prepare(body: bytes, headers: dict[str, str]) -> None:
        current["template"] = EnvironBuilder(
            path="/", method="POST", data=body, headers=headers, base_url="http://127.0.0.1:3000"
        ).get_environ()
        current["body"], current["at"], current["calls"] = body, time.monotonic(), 0

    prepare(body, headers)
    statuses: list[str] = []

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> None:
        statuses.append(status)

    def call() -> bytes:
        current["calls"] += 1
        stale = current["calls"] % 256 == 0 and time.monotonic() - current["at"] > RESIGN_AFTER
        if resign is not None and stale:
            prepare(*resign())
        environ = dict(current["template"])
        environ["wsgi.input"] = io.BytesIO(current["body"])
        statuses.clear()
        chunks = app(environ, start_response)
        try:
            answer = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if not statuses or not statuses[0].startswith("200"):
            raise SystemExit(f"expected 200, got {statuses}: {answer[:300]!r}")
        return answer

    return call
