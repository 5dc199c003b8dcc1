"""The `funker-dispatch` command line."""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

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

    serve = commands.add_parser("serve", help="run the skill endpoint (gunicorn)")
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
    return parser


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
        from skill.server import serve

        serve(settings)
        return 0
    if args.command == "check":
        return check(settings)
    if args.command == "intents":
        return show_intents(settings, as_json=args.json)
    parser.error(f"unknown command {args.command}")
    return 2


def _routing_rows(settings: Settings) -> list[dict[str, Any]]:
    from dispatch.registry import Router
    from skill.models import load_models

    router = Router(
        settings.routes,
        naming=settings.dispatch.naming,
        function_port=settings.dispatch.function_port,
    )
    model_intents = sorted({n for m in load_models().values() for n in m.samples})
    return router.table(model_intents)


def check(settings: Settings) -> int:
    """Validate everything start-up would (verifiers included) without serving."""
    try:
        from skill.verifiers import build_verifiers

        build_verifiers(settings)
    except (OSError, ValueError) as exc:
        print(f"funker-dispatch: {settings.source}: verification: {exc}", file=sys.stderr)
        return 1
    print(f"configuration OK: {settings.source}")
    return show_intents(settings, as_json=False)


def show_intents(settings: Settings, *, as_json: bool) -> int:
    rows = _routing_rows(settings)
    if as_json:
        print(json.dumps({"intents": rows}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("intent / request type", "host", "port", "source")
    for row in rows:
        table.add_row(row["name"], row["host"], str(row["port"]), row["source"])
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
