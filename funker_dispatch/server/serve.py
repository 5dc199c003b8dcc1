"""`funker-dispatch serve`: granian around the app on two listeners, and the embedded functions.

granian (Rust, hyper) owns the sockets: it parses HTTP, bounds the request
head with its header read timeout and TLS handshakes with its own, all off
the Python threads, so idle or trickling clients cannot starve the workers
(gunicorn's gthread worker read headers and ran handshakes on its request
threads; see bench/servers.py for the comparison that chose granian). The
app is built once here, before the workers fork, so they share it and the
warm certificate cache (what gunicorn called preload).

The public listener ([server] host/port) serves Alexa, /events/* and
/healthz; the admin listener ([server] admin_host/admin_port, loopback by
default) serves /healthz, /readyz, /metrics and /intents from a process of
its own (docs/operations.md).
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from funker_dispatch.server.functions import FunctionStartError, FunctionSupervisor
from skill.observability import RequestLineHandler, cleanup_multiprocess, prepare_multiprocess
from skill.settings import DEVELOPMENT_SKILL_ID, ConfigError, Settings

log = logging.getLogger("funker_dispatch")

#: Seconds the admin process gets to stop after the public listener has.
ADMIN_STOP_GRACE = 5.0
#: A request head (request line and headers) is at most this many bytes; 431 above.
MAX_HEAD_BYTES = 64 * 1024
#: Descriptors a worker needs besides its connections: function calls, files, the loop.
SPARE_DESCRIPTORS = 1024


def serve(settings: Settings, admin_extensions: Sequence[Callable[[Any], None]] = ()) -> None:
    """Run the server until SIGTERM/SIGINT; the embedded default's functions stop with it.

    `admin_extensions` register more on the admin listener's app (the web console:
    the command line passes it, so this module never imports the developer's tools).
    """
    configure_logging()
    if not settings.skill.verify_signature:
        log.warning("SIGNATURE VERIFICATION IS OFF: any client can call this skill")
    if not settings.skill.verify_timestamp:
        log.warning("TIMESTAMP VERIFICATION IS OFF: captured requests can be replayed")
    if not settings.skill.application_ids:
        log.warning("no [skill] application_ids: requests for ANY skill id are accepted")
    if settings.skill.development:
        from skill.answerable import require_answerable
        from skill.models import load_models

        require_answerable(settings, load_models(settings.skill.models_dir))
    check_bindable(settings)
    raise_open_file_limit(settings)
    metrics_dir, ours = prepare_multiprocess()  # before anything imports prometheus_client
    supervisor = FunctionSupervisor(settings.functions)
    master = os.getpid()
    admin: multiprocessing.process.BaseProcess | None = None

    def stop_children() -> None:
        # Worker processes are forked from this one and inherit atexit handlers:
        # only the master owns the function processes and the metrics directory.
        if os.getpid() != master:
            return
        if admin is not None:
            stop_process(admin)
        supervisor.stop()
        if ours:
            cleanup_multiprocess(metrics_dir)

    atexit.register(stop_children)
    try:
        supervisor.start()
    except FunctionStartError as exc:
        raise ConfigError(settings.source, "functions", str(exc)) from None

    from funker_dispatch.server.bridge import RequestBridge
    from skill.app import create_admin_app, create_app

    app = create_app(settings)
    public = _bridge(RequestBridge, app, settings, public=True)
    if settings.server.admin_port:
        # Forked before the public listener's workers: it shares the built app.
        admin_app = create_admin_app(app, admin_extensions)
        admin_bridge = _bridge(RequestBridge, admin_app, settings, public=False)
        admin = _start_admin(admin_bridge, settings)
    if settings.embedded:
        _print_embedded_banner(settings)
    elif settings.skill.development:
        _print_development_banner(settings)
    server = _granian(settings, settings.server.host, settings.server.port, settings.server.workers)
    if settings.server.drain_seconds:
        _drain_first(server, settings.server.drain_seconds)
    try:
        server.serve(target_loader=lambda *_: public, wrap_loader=False)
    finally:
        stop_children()


def _drain_first(server: Any, seconds: float) -> None:
    """SIGTERM (or SIGINT) makes /healthz answer 503 in every process for `seconds` while
    requests are still served, then stops the server as before: a balancer checking
    /healthz stops sending first. A second signal stops at once."""
    from skill.draining import draining, start_draining

    stop = server.signal_handler_interrupt  # granian's own: stop accepting, finish, exit

    def drain_then_stop(*args: Any, **kwargs: Any) -> None:
        if draining():
            stop(*args, **kwargs)
            return
        start_draining()
        log.info("draining: /healthz answers 503 for %g s, then the server stops", seconds)
        timer = threading.Timer(seconds, stop)
        timer.daemon = True
        timer.start()

    # granian installs the handler when serve() starts, from this attribute.
    server.signal_handler_interrupt = drain_then_stop


def _bridge(cls: Any, app: Any, settings: Settings, *, public: bool) -> Any:
    """The RSGI app of a listener; on the public one, event deliveries get their own lane."""
    from skill.app import admission, body_cap, body_checks
    from skill.observability import metrics

    server = settings.server
    held = metrics().body_bytes_in_flight
    options: dict[str, Any] = {
        "body_budget": server.max_body_bytes_in_flight,
        "budget_gauges": (held.labels(lane="alexa" if public else "admin"), None),
    }
    lane = admission(app) if public else None
    if lane is not None:  # event deliveries and MCP requests: threads and a budget of their own
        options |= {
            "body_budget": server.main_body_budget,
            "events": lane,
            "body_checks": body_checks(app),
            "budget_gauges": (held.labels(lane="alexa"), held.labels(lane="events")),
        }
    return cls(
        app,
        threads=server.threads,
        read_timeout=server.read_timeout,
        body_cap=body_cap(settings),
        forwarded_allow_ips=server.forwarded_allow_ips,
        **options,
    )


def _granian(settings: Settings, host: str, port: int, workers: int) -> Any:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    server = settings.server
    tls: dict[str, Any] = {}
    if server.certfile and server.keyfile:
        # Alexa speaks TLS 1.2; granian's default minimum is 1.3.
        tls = {
            "ssl_cert": Path(server.certfile),
            "ssl_key": Path(server.keyfile),
            "ssl_protocol_min": SSLProtocols.tls12,
        }
    return Granian(
        "funker-dispatch",  # a name only: the loader below hands over the built app
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        # HTTP/1.1 only: Alexa, SNS, EventBridge and GitHub all use it, and the
        # header read timeout that bounds slow clients applies to HTTP/1.
        http=HTTPModes.http1,
        websockets=False,
        loop=Loops.auto,  # uvloop where it is installed (a dependency but on armv7), else asyncio
        http1_settings=HTTP1Settings(
            header_read_timeout=int(server.read_timeout * 1000),
            # hyper answers 431 to a head that outgrows its buffer: a head is held
            # whole until parsed, so this bounds what each connection holds (docs/robustness.md).
            max_buffer_size=MAX_HEAD_BYTES // 2,
        ),
        # Every connection holds a permit, idle ones included; granian's default
        # (1024 / workers) let a few hundred idle sockets stall every request.
        backpressure=server.max_connections,
        log_level=LogLevels.info,
        log_dictconfig=_GRANIAN_LOGGING,
        log_access=server.access_log,
        respawn_failed_workers=True,  # as gunicorn did: a crashed worker is replaced
        workers_kill_timeout=max(1, math.ceil(server.graceful_timeout)),
        **tls,
    )


# granian's own lines go to stderr with ours, in our format.
_GRANIAN_LOGGING = {
    "formatters": {
        "generic": {
            "()": "funker_dispatch.server.serve.EscapingFormatter",
            "fmt": "%(asctime)s %(levelname)s granian: %(message)s",
        },
        "access": {"()": "logging.Formatter", "fmt": "%(message)s"},
    },
    "handlers": {
        "console": {
            "formatter": "generic",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
        "access": {
            "formatter": "access",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
        },
    },
}


def _start_admin(bridge: Any, settings: Settings) -> multiprocessing.process.BaseProcess:
    server = settings.server

    def run() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master stops us with SIGTERM
        _granian(settings, server.admin_host, server.admin_port or 0, 1).serve(
            target_loader=lambda *_: bridge, wrap_loader=False
        )

    process = multiprocessing.get_context("fork").Process(
        target=run, name="funker-dispatch-admin", daemon=False
    )
    process.start()
    return process


def stop_process(process: multiprocessing.process.BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
    process.join(ADMIN_STOP_GRACE)
    if process.is_alive():
        process.kill()
        process.join()


def raise_open_file_limit(settings: Settings) -> None:
    """Let every worker hold `[server] max_connections`: the soft open-file limit up to the hard.

    Containers often start with a soft limit of 1024, well below what a
    worker's connections need; past it, accept() fails until sockets close.
    A hard limit too low to raise is said at start, with the fix.
    """
    import resource

    needed = settings.server.max_connections + SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "open-file limit %d is below [server] max_connections %d + %d: a worker holds "
            "fewer connections than configured; raise it (ulimit -n, or the stack's ulimits)",
            soft,
            settings.server.max_connections,
            SPARE_DESCRIPTORS,
        )


def check_bindable(settings: Settings) -> None:
    """Fail at start, naming the key, when a listener's address cannot be bound."""
    server = settings.server
    listeners = [("server.port", server.host, server.port)]
    if server.admin_port:
        listeners.append(("server.admin_port", server.admin_host, server.admin_port))
    for key, host, port in listeners:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _name, address = infos[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                settings.source, key, f"cannot listen on {host}:{port}: {reason}"
            ) from None


class EscapingFormatter(logging.Formatter):
    """Log lines whose message cannot contain line breaks or terminal controls.

    Anything from the network (a request id, a header, a URL) can reach a
    message; escaped here, it can never forge a second log line or drive the
    operator's terminal. Tracebacks, added after the message, keep their lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"})
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_controls(text: str) -> str:
    """`text` with control characters (C0, DEL, C1, line separators) as visible escapes."""
    return text.translate(_CONTROLS)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # The per-request line is pure JSON (already escaped), one per line, for log shippers.
    requests = logging.getLogger("funker_dispatch.requests")
    requests.addHandler(RequestLineHandler(sys.stderr))
    requests.propagate = False


def _print_development_banner(settings: Settings) -> None:
    """What a developer's own project serves, and how to talk to it."""
    server = settings.server
    admin = f"http://{server.admin_host}:{server.admin_port}" if server.admin_port else None
    routed: dict[int, list[str]] = {}
    for name, route in settings.routes.items():
        routed.setdefault(route.port, []).append(name)
    lines = [
        f"funker-dispatch: development ({settings.source})",
        f"  endpoint      http://{server.host}:{server.port}{server.path}",
        f"  skill ids     {', '.join(settings.skill.application_ids)}",
        "  verification  ON (development CA trusted besides Amazon's)",
    ]
    for function in settings.functions:
        answers = ", ".join(routed.get(function.port, [])) or "no intent"
        lines.append(
            f"  function      {function.name} on 127.0.0.1:{function.port} ({answers}); "
            "reloaded when its files change"
        )
    if admin and settings.console.enabled:
        lines.append(f"  console       {admin}/console")
    lines.append(
        '  try it        funker-dispatch simulate "<what a user says>", funker-dispatch test'
    )
    print("\n".join(lines), file=sys.stderr, flush=True)


def _print_embedded_banner(settings: Settings) -> None:
    server = settings.server
    url = f"http://{server.host}:{server.port}{server.path}"
    admin = f"http://{server.admin_host}:{server.admin_port}" if server.admin_port else None
    verification = "ON (development CA trusted)" if settings.skill.verify_signature else "OFF"
    lines = [
        "funker-dispatch: embedded default (no --config given)",
        f"  endpoint      {url}",
        f"  admin         {admin or 'off'}",
        f"  skill id      {DEVELOPMENT_SKILL_ID}",
        f"  verification  {verification}",
        "  functions     "
        + ", ".join(f"{f.name} on 127.0.0.1:{f.port}" for f in settings.functions),
        '  try it        funker-dispatch simulate "how many people are in space"',
    ]
    if admin:
        lines.append(f"  routes        curl {admin}/intents")
        if settings.console.enabled:
            lines.append(f"  console       {admin}/console")
    mcp = settings.mcp
    if mcp.enabled and mcp.token:
        lines += [
            f"  mcp           POST http://{server.host}:{server.port}{mcp.path} "
            f"(Authorization: Bearer {mcp.token})",
            "  try mcp       funker-dispatch mcp tools, then "
            "funker-dispatch mcp call HelloIntent name=Ada",
        ]
    from triggers.rules import ENDPOINT

    def rules(endpoint: str) -> str:
        names = [name for name, rule in settings.rules.items() if ENDPOINT[rule.source] == endpoint]
        return ", ".join(names) or "none"

    sns = settings.triggers.sns
    if sns is not None:
        lines += [
            f"  events        POST http://{server.host}:{server.port}/events/sns "
            f"(topic {', '.join(sns.topics)}; rules {rules('sns')})",
            "  try events    funker-dispatch events send cloudwatch, then "
            'funker-dispatch simulate "what is the alarm status"',
        ]
    for name, how in (("eventbridge", "development API key"), ("github", "development secret")):
        if getattr(settings.triggers, name) is not None:
            lines.append(
                f"  events        POST http://{server.host}:{server.port}/events/{name} "
                f"({how}; rules {rules(name)})"
            )
    if settings.triggers.github is not None:
        lines.append(
            "  try webhooks  funker-dispatch events send github, then "
            'funker-dispatch simulate "what was the last deploy"'
        )
    print("\n".join(lines), file=sys.stderr, flush=True)
