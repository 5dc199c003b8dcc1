"""Command-line options the tools share: `--timeout`, each HTTP request's whole deadline."""

from __future__ import annotations

import argparse

from skill.client import DEFAULT_TIMEOUT

#: The longest --timeout: past an hour, socket and lock timeouts overflow.
MAX_TIMEOUT = 3600.0


def timeout_flag(parser: argparse.ArgumentParser) -> None:
    """`--timeout SECONDS`, every tool's deadline for each HTTP request it makes."""
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds each HTTP request may take, all told (default {DEFAULT_TIMEOUT:g})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    # NaN fails both comparisons; past an hour, socket and lock timeouts overflow.
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"seconds above 0, at most {MAX_TIMEOUT:g}: {text!r}")
    return value
