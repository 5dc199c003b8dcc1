"""`funker-dispatch serve`: gunicorn around the app, and the embedded default's functions."""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from gunicorn.app.base import BaseApplication

from skill.observability import cleanup_multiprocess, mark_worker_dead, prepare_multiprocess
from skill.settings import DEVELOPMENT_SKILL_ID, LocalFunction, Settings

log = logging.getLogger("funker_dispatch")


class DispatchServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with our settings instead of its command line."""

    def __init__(self, settings: Settings, on_exit: Any = None) -> None:
        self.settings = settings
        self.on_exit = on_exit
        super().__init__()

    def load_config(self) -> None:
        server = self.settings.server
        options: dict[str, Any] = {
            "bind": [f"{_bracket(server.host)}:{server.port}"],
            "workers": server.workers,
            "threads": server.threads,
            "worker_class": "skill.worker.JsonErrorThreadWorker",  # gthread, JSON errors
            "graceful_timeout": math.ceil(server.graceful_timeout),  # gunicorn wants whole seconds
            # A worker stuck past Alexa's 8 s is useless; gunicorn restarts it.
            "timeout": 30,
            "keepalive": 5,
            "preload_app": True,  # build the skill once, share it across workers
            "accesslog": "-" if server.access_log else None,
            "errorlog": "-",
            "loglevel": "info",
            # X-Forwarded-* is trusted only from proxies the operator names.
            "forwarded_allow_ips": ",".join(server.forwarded_allow_ips),
            "child_exit": lambda arbiter, worker: mark_worker_dead(worker.pid),
        }
        if self.on_exit is not None:
            options["on_exit"] = lambda arbiter: self.on_exit()
        if server.certfile:
            options["certfile"] = server.certfile
            options["keyfile"] = server.keyfile
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from skill.app import create_app

        return create_app(self.settings)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(settings: Settings) -> None:
    """Run the server until SIGTERM/SIGINT; the embedded default's functions stop with it."""
    configure_logging()
    if not settings.skill.verify_signature:
        log.warning("SIGNATURE VERIFICATION IS OFF: any client can call this skill")
    if not settings.skill.verify_timestamp:
        log.warning("TIMESTAMP VERIFICATION IS OFF: captured requests can be replayed")
    if not settings.skill.application_ids:
        log.warning("no [skill] application_ids: requests for ANY skill id are accepted")
    metrics_dir, ours = prepare_multiprocess()  # before anything imports prometheus_client
    children: list[subprocess.Popen[bytes]] = []
    master = os.getpid()

    def stop_children() -> None:
        # Workers are forked from this process and inherit atexit handlers:
        # only the master owns the function processes and the metrics directory.
        if os.getpid() == master:
            stop_functions(children)
            if ours:
                cleanup_multiprocess(metrics_dir)

    atexit.register(stop_children)
    if settings.functions:
        children.extend(start_functions(settings.functions))
    if settings.embedded:
        _print_embedded_banner(settings)
    DispatchServer(settings, on_exit=stop_children).run()


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The per-request line is pure JSON, one per line, for log shippers.
    requests = logging.getLogger("funker_dispatch.requests")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    requests.addHandler(handler)
    requests.propagate = False


def start_functions(
    functions: Sequence[LocalFunction], *, ready_within: float = 10.0
) -> list[subprocess.Popen[bytes]]:
    """Start the example functions on loopback and wait until each accepts connections."""
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(function.script),
                "--host",
                "127.0.0.1",
                "--port",
                str(function.port),
            ]
        )
        for function in functions
    ]
    deadline = time.monotonic() + ready_within
    for function, child in zip(functions, children, strict=True):
        while not _accepts("127.0.0.1", function.port):
            if child.poll() is not None or time.monotonic() > deadline:
                stop_functions(children)
                raise RuntimeError(f"example function {function.name} did not start")
            time.sleep(0.02)  # polling a child process we just started
    return children


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def stop_functions(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()


def _print_embedded_banner(settings: Settings) -> None:
    server = settings.server
    url = f"http://{server.host}:{server.port}{server.path}"
    verification = "ON (development CA trusted)" if settings.skill.verify_signature else "OFF"
    lines = [
        "funker-dispatch: embedded default (no --config given)",
        f"  endpoint      {url}",
        f"  skill id      {DEVELOPMENT_SKILL_ID}",
        f"  verification  {verification}",
        "  functions     "
        + ", ".join(f"{f.name} on 127.0.0.1:{f.port}" for f in settings.functions),
        '  try it        funker-dispatch simulate "how many people are in space"',
        f"  routes        curl {url.rstrip('/')}/intents",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
