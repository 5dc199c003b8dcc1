"""The `funker-dispatch` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from funker_dispatch.devtools.options import timeout_flag
from skill.settings import ConfigError, Settings, load_settings


def package_version() -> str:
    try:
        return version("funker-dispatch")
    except PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="funker-dispatch",
        description="Serve an Alexa skill from funker functions.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the skill endpoint (granian)")
    _config_flag(serve)
    serve.add_argument("--host", help="address to bind (default from config)")
    serve.add_argument("--port", type=int, help="port to bind (default 3000)")
    serve.add_argument("--workers", type=int, help="worker processes")
    serve.add_argument("--threads", type=int, help="threads per worker")

    check = commands.add_parser("check", help="validate the configuration and print the routes")
    _config_flag(check)

    intents = commands.add_parser("intents", help="print the routing table")
    _config_flag(intents)
    intents.add_argument("--json", action="store_true", help="print JSON")
    intents.add_argument(
        "--probe",
        action="store_true",
        help='resolve each route\'s host (connects only where a route says probe = "connect")',
    )

    _simulator_commands(commands)
    from funker_dispatch.devtools.eventsend import add_parser as add_events_parser

    add_events_parser(commands)
    from funker_dispatch.devtools.scaffold import add_parser as add_new_parser

    add_new_parser(commands)
    from funker_dispatch.devtools.mcpclient import add_parser as add_mcp_parser

    add_mcp_parser(commands)
    return parser


def _simulator_commands(commands: Any) -> None:
    """simulate, dialog, models check, certify: talking to the skill without an Echo."""
    simulate = commands.add_parser(
        "simulate", help="send one signed request built from an utterance; print the answer"
    )
    simulate.add_argument("utterance", nargs="?", help='what the user says, e.g. "say hello"')
    _endpoint_flags(simulate)
    simulate.add_argument("--json", action="store_true", help="print request and response JSON")
    simulate.add_argument("--intent", metavar="NAME", help="send this intent (skips matching)")
    simulate.add_argument(
        "--slot",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a slot value for --intent (repeatable)",
    )
    kind = simulate.add_mutually_exclusive_group()
    kind.add_argument("--launch", action="store_true", help="send a LaunchRequest")
    kind.add_argument(
        "--request",
        metavar="FILE",
        help="send a recorded request envelope (e.g. examples/requests/*.json), stamped now",
    )
    kind.add_argument("--end", action="store_true", help="send a SessionEndedRequest")

    dialog = commands.add_parser("dialog", help="a multi-turn conversation in one session")
    _endpoint_flags(dialog)
    dialog.add_argument(
        "--script", metavar="FILE", help="play utterances from FILE (one a line, # comments)"
    )

    test = commands.add_parser(
        "test",
        help="dialog tests in Bespoken's YAML format: what Alexa should say",
        description="Run dialog tests written in Bespoken's skill-testing-ml YAML (bst test) "
        "against the skill: each test a fresh session, every request signed by the "
        "development CA. Exit status 0 only when every test passes.",
    )
    _endpoint_flags(test)
    from funker_dispatch.devtools.yamltest import add_arguments as add_test_arguments

    add_test_arguments(test)

    models = commands.add_parser("models", help="interaction model tools")
    models_commands = models.add_subparsers(dest="models_command", metavar="COMMAND")
    models_check = models_commands.add_parser(
        "check", help="validate the interaction models against Amazon's rules and the routes"
    )
    _config_flag(models_check)
    models_check.add_argument(
        "--models", metavar="DIR", help="skill package directory (default: interaction_models/)"
    )

    certify = commands.add_parser(
        "certify", help="certification pre-flight: what Amazon's functional test sends"
    )
    certify.add_argument(
        "url", metavar="URL", help="the skill endpoint, e.g. http://127.0.0.1:3000/"
    )
    certify.add_argument(
        "--skill-id", help="the skill id the endpoint accepts (default: the development skill id)"
    )
    timeout_flag(certify)


def _endpoint_flags(parser: argparse.ArgumentParser) -> None:
    _config_flag(parser)
    parser.add_argument(
        "--url",
        help="skill endpoint (default: the configuration's own, http://127.0.0.1:3000/ for "
        "the embedded default)",
    )
    timeout_flag(parser)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the app from --config in this process instead of calling --url",
    )
    parser.add_argument("--locale", default="en-US", help="request locale (default en-US)")


def served_url(settings: Settings) -> str:
    """Where a server of `settings` on this machine answers Alexa's path."""
    from skill.settings import public_origin

    return public_origin(settings.server) + settings.server.path


def admin_extensions(settings: Settings) -> list[Callable[[Any], None]]:
    """What the admin listener's app gets besides its own routes: the web console, when
    `[console] enabled` (only then are the developer's tools imported by `serve`)."""
    if not settings.console.enabled:
        return []
    from funker_dispatch.devtools.console import register

    return [register]


def _config_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="TOML configuration (default: $FUNKER_DISPATCH_CONFIG, else the embedded default)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "certify":
        from funker_dispatch.devtools.certify import certify_command

        return certify_command(args.url, skill_id=args.skill_id, timeout=args.timeout)
    if args.command == "new":  # writes files; reads no configuration
        from funker_dispatch.devtools.scaffold import new_command

        return new_command(args, parser)
    if args.command == "events":  # signs with the dev CA; needs no configuration
        from funker_dispatch.devtools.eventsend import send_command

        return send_command(args, parser)
    if args.command == "models" and args.models_command is None:
        parser.parse_args(["models", "--help"])
    overrides: dict[str, Any] = {}
    if args.command == "serve":
        overrides = {
            "host": args.host,
            "port": args.port,
            "workers": args.workers,
            "threads": args.threads,
        }
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"funker-dispatch: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from funker_dispatch.server.serve import serve

        try:
            serve(settings, admin_extensions(settings))
        except ConfigError as exc:  # found only when listening (a port already taken)
            print(f"funker-dispatch: configuration error: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "check":
        return check(settings)
    if args.command == "intents":
        return show_intents(settings, as_json=args.json, probe=args.probe)
    if args.command == "models":
        return models_check(settings, args.models)
    if args.command in ("simulate", "dialog"):
        return talk(settings, args, parser)
    if args.command == "test":
        return run_tests(settings, args, parser)
    if args.command == "mcp":
        from funker_dispatch.devtools.mcpclient import mcp_command

        return mcp_command(settings, args, parser)
    parser.error(f"unknown command {args.command}")
    return 2


def _routing_rows(settings: Settings, *, probe: bool = False) -> list[dict[str, Any]]:
    """The routing table: the running server's own when its functions' ports are its to pick."""
    from dispatch.discovery import DiscoveringRouter
    from dispatch.probe import probe_router
    from skill.app import build_router, model_intents
    from skill.models import load_models

    if settings.functions:
        running = running_table(settings, probe=probe)
        if running is not None:
            return running
    models = load_models(settings.skill.models_dir)
    router = build_router(settings, models)
    if isinstance(router, DiscoveringRouter):
        router.discovery.refresh()  # one listing; the server refreshes in the background
    if probe:
        rows = probe_router(router, model_intents(models), timeout=1.0)
    else:
        rows = router.table(model_intents(models))
    local = local_ports(settings)
    for row in rows:
        if row["host"] == "127.0.0.1" and row["port"] in local:
            row["port"] = None  # `serve` picks it at start; this process cannot know it
    return rows


def local_ports(settings: Settings) -> set[int]:
    """The ports this load of the settings gave the functions `serve` starts: not the server's."""
    return {function.port for function in settings.functions}


def running_table(settings: Settings, *, probe: bool = False) -> list[dict[str, Any]] | None:
    """The routing table of the server running these settings (its admin listener's
    /intents), or None when none answers on loopback."""
    import urllib.error
    import urllib.request

    server = settings.server
    if not server.admin_port or server.admin_host not in ("127.0.0.1", "localhost", "::1"):
        return None
    host = f"[{server.admin_host}]" if ":" in server.admin_host else server.admin_host
    url = f"http://{host}:{server.admin_port}/intents" + ("?probe=1" if probe else "")
    request = urllib.request.Request(url)
    if server.admin_token:
        request.add_header("Authorization", f"Bearer {server.admin_token}")
    try:
        with urllib.request.urlopen(request, timeout=5 if probe else 1) as answer:
            rows = json.loads(answer.read(1024 * 1024))["intents"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rows if isinstance(rows, list) else None


def check(settings: Settings) -> int:
    """Validate everything start-up would (verifiers included) without serving."""
    try:
        from skill.verifiers import build_verifiers

        build_verifiers(settings)
    except (OSError, ValueError) as exc:
        print(f"funker-dispatch: {settings.source}: verification: {exc}", file=sys.stderr)
        return 1
    from skill.answerable import unanswerable_intents
    from skill.models import load_models

    problems = unanswerable_intents(settings, load_models(settings.skill.models_dir))
    for name, why in problems.items():
        print(f"funker-dispatch: warning: no function can answer {name}: {why}", file=sys.stderr)
    if problems and settings.skill.development:
        print(
            f"funker-dispatch: {settings.source}: serve refuses to start in development "
            "until each is routed to one of your [functions]",
            file=sys.stderr,
        )
        return 1
    print(f"configuration OK: {settings.source}")
    return show_intents(settings, as_json=False)


def show_intents(settings: Settings, *, as_json: bool, probe: bool = False) -> int:
    rows = _routing_rows(settings, probe=probe)
    if as_json:
        print(json.dumps({"intents": rows}, indent=2))
        return 0
    from rich.table import Table

    from funker_dispatch.devtools.terminal import console

    columns = ["intent / request type", "host", "port", "source"]
    if probe:
        columns += ["resolves", "addresses", "resolve ms", "connect", "error"]
    table = Table(*columns)
    for row in rows:
        port = "assigned at start" if row["port"] is None else str(row["port"])
        cells = [row["name"], row["host"], port, row["source"]]
        if probe:
            connect = "–"
            if "connects" in row:
                connect = f"{'yes' if row['connects'] else 'no'} {row['connect_ms']:.1f} ms"
            cells += [
                "yes" if row["resolves"] else "no",
                str(row["addresses"]),
                f"{row['resolve_ms']:.1f}",
                connect,
                row.get("error", ""),
            ]
        table.add_row(*cells)
    console().print(table)
    return 0


def models_check(settings: Settings, directory: str | None) -> int:
    from pathlib import Path

    from dispatch.registry import Router
    from funker_dispatch.devtools.modelcheck import check_models, print_report

    router = Router(
        settings.routes,
        naming=settings.dispatch.naming,
        function_port=settings.dispatch.function_port,
    )
    chosen = Path(directory) if directory else settings.skill.models_dir
    return print_report(check_models(chosen, router, describe=_route_label(settings)))


def _route_label(settings: Settings) -> Any:
    """How `models check` names a route: the running server's port for a function it started,
    or "assigned at start" when no server runs (this process cannot know it)."""
    if not settings.functions:
        return None
    local = local_ports(settings)
    running = {row["name"]: row["port"] for row in running_table(settings) or []}

    def label(name: str, host: str, port: int, source: str) -> str:
        if host == "127.0.0.1" and port in local:
            shown = running.get(name) or "assigned at start"
            return f"{host}:{shown} ({source})"
        return f"{host}:{port} ({source})"

    return label


def run_tests(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`test`: Bespoken-format suites against --url, or the app in process."""
    from pathlib import Path

    from funker_dispatch.devtools import conversation, yamltest
    from funker_dispatch.devtools.simulator import ModelNotFound, load_interaction_model
    from skill.client import EndpointError

    if args.url and args.in_process:
        parser.error("test: --url and --in-process exclude each other")
    try:
        files = yamltest.suite_files(args.paths or ["tests"])
    except FileNotFoundError as exc:
        print(f"funker-dispatch test: {exc}", file=sys.stderr)
        return 2
    if not files:
        print("funker-dispatch test: no .yml or .yaml test files found", file=sys.stderr)
        return 2
    out = _console()
    results: list[yamltest.TestResult] = []
    broken = 0
    application_id, sign = _signing(settings)
    try:
        with _skill_endpoint(settings, args) as (endpoint, api):
            for path in files:
                try:
                    suite = yamltest.parse_suite(path.read_text(encoding="utf-8"), path)
                except (OSError, UnicodeDecodeError, yamltest.SuiteSyntaxError) as exc:
                    broken += 1
                    out.print(_said(("✗", "red"), f" {path}: {exc}"))
                    continue
                for locale in suite.locales:
                    try:
                        model = load_interaction_model(locale, settings.skill.models_dir)
                    except ModelNotFound as exc:
                        broken += 1
                        out.print(_said(("✗", "red"), f" {path}: {exc}"))
                        continue
                    model = replace(model, locale=locale)
                    for test in suite.tests:
                        talk = conversation.Conversation(
                            endpoint, model, sign, application_id, locale, api=api
                        )
                        result = yamltest.run_test(test, talk, locale, path)
                        results.append(result)
                        _print_result(out, result)
    except EndpointError as exc:
        return _no_answer(args, exc)
    passed = sum(1 for r in results if r.passed)
    failed = sum(1 for r in results if r.failures) + broken
    skipped = sum(1 for r in results if r.skipped)
    summary = f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")
    out.print(_said((summary, "green" if not failed else "red")))
    if args.junit:
        Path(args.junit).write_bytes(yamltest.junit_xml(results))
    return 0 if failed == 0 and passed > 0 else 1


def _console() -> Any:
    from funker_dispatch.devtools.terminal import console

    return console()


def _said(*parts: tuple[str, str] | str) -> Any:
    """A line of what files and endpoints said: never read as markup, no control characters."""
    from rich.text import Text

    from skill.text import printable

    return Text.assemble(
        *((printable(p), "") if isinstance(p, str) else (printable(p[0]), p[1]) for p in parts)
    )


def _print_result(out: Any, result: Any) -> None:
    where = f"{result.suite} ({result.locale})"
    if result.skipped:
        out.print(_said(("-", "yellow"), f" {result.name}  ", (f"{where}, skipped", "dim")))
        return
    mark = ("✓", "green") if result.passed else ("✗", "red")
    out.print(_said(mark, f" {result.name}  ", (where, "dim")))
    for failure in result.failures:
        for line in failure.splitlines():
            out.print(_said(f"    {line}"))


def talk(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`simulate` and `dialog`: signed requests to --url, or to the app in process."""
    from pathlib import Path

    from funker_dispatch.devtools import conversation
    from funker_dispatch.devtools.simulator import (
        ModelNotFound,
        load_interaction_model,
        parse_slot_flags,
        undeclared_slots,
    )
    from skill.client import EndpointError

    if args.command == "simulate":
        options = (args.utterance, args.intent, args.launch, args.end, args.request)
        if sum(bool(x) for x in options) != 1:
            parser.error(
                "simulate: give an UTTERANCE, or one of --intent, --launch, --end, --request"
            )
        if args.slot and not args.intent:
            parser.error("simulate: --slot goes with --intent")
    if args.url and args.in_process:
        parser.error(f"{args.command}: --url and --in-process exclude each other")
    try:
        model = load_interaction_model(args.locale, settings.skill.models_dir)
        slots = parse_slot_flags(args.slot) if args.command == "simulate" else {}
        recorded = None
        if args.command == "simulate" and args.request:
            recorded = (Path(args.request).name, json.loads(Path(args.request).read_text()))
            if not isinstance(recorded[1], dict):
                raise ValueError(f"{args.request} does not hold a request envelope")
        lines = (
            conversation.script_lines(Path(args.script))
            if args.command == "dialog" and args.script
            else None
        )
    except (ModelNotFound, ValueError, OSError) as exc:
        print(f"funker-dispatch {args.command}: {exc}", file=sys.stderr)
        return 2
    unknown = undeclared_slots(model, args.intent, slots) if args.command == "simulate" else []
    if unknown:
        declared = ", ".join(model.intents[args.intent].slots) or "none"
        print(
            f"funker-dispatch simulate: {args.intent} has no slot {', '.join(unknown)} "
            f"(declared: {declared})",
            file=sys.stderr,
        )
        return 2
    # The model answers in the requested locale; a missing one falls back by language.
    model = replace(model, locale=args.locale)
    application_id, sign = _signing(settings)
    try:
        with _skill_endpoint(settings, args) as (endpoint, api):
            if args.command == "simulate":
                return conversation.simulate(
                    endpoint,
                    model,
                    sign,
                    application_id,
                    utterance=args.utterance,
                    intent=args.intent,
                    slots=slots,
                    launch=args.launch,
                    recorded=recorded,
                    end=args.end,
                    transcript=conversation.Transcript(as_json=args.json),
                    api=api,
                )
            utterances = lines if lines is not None else conversation.prompted()
            code, _, _ = conversation.dialog(
                endpoint,
                model,
                sign,
                application_id,
                utterances,
                transcript=conversation.Transcript(),
                api=api,
            )
            return code
    except EndpointError as exc:
        return _no_answer(args, exc)


def _signing(settings: Settings) -> tuple[str, Any]:
    """The skill id the tools' requests carry and the development CA's signer."""
    from funker_dispatch.devtools.conversation import dev_ca_signer
    from skill.settings import DEVELOPMENT_SKILL_ID

    return next(iter(settings.skill.application_ids), DEVELOPMENT_SKILL_ID), dev_ca_signer()


@contextmanager
def _skill_endpoint(settings: Settings, args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """simulate, dialog and test: the endpoint (--url, else the configuration's own, or the
    app --in-process) and Alexa's API standing in on loopback, where progressive responses
    land."""
    from funker_dispatch.devtools.alexa_api import local_alexa_api
    from funker_dispatch.devtools.conversation import open_endpoint

    def note(text: str) -> None:  # stderr: `simulate --json` keeps stdout pure JSON
        print(f"funker-dispatch {args.command}: {text}", file=sys.stderr)

    url = args.url or served_url(settings)
    with (
        local_alexa_api(settings, note=note) as api,
        open_endpoint(
            url, in_process=args.in_process, settings=settings, timeout=args.timeout
        ) as endpoint,
    ):
        yield endpoint, api


def _no_answer(args: argparse.Namespace, exc: Exception) -> int:
    """No usable answer: one line, the status of a usage error, never a traceback."""
    from skill.client import EndpointUnreachable

    hint = " — is `make run` (funker-dispatch serve) running?"
    print(
        f"funker-dispatch {args.command}: {exc}"
        f"{hint if isinstance(exc, EndpointUnreachable) else ''}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
