"""Endpoint text made safe for a terminal: no control sequences, no rich markup, exact JSON.

Whatever an endpoint sends (speech, a card, an error page, a status line) is
untrusted: `\\x1b]0;title\\x07` retitles the window, `\\x1b[2J` clears it, and
rich would read `[bold]` or `:smile:` in a string as markup. So the tools
print endpoint text only through `printable` (or `one_line`), and hand it to
rich only as `Text`, which rich never parses.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is the tools' library; the server imports this module without it
    from rich.console import Console
    from rich.text import Text

#: Columns a tool's output may take when it goes to a file or a pipe: rich would assume 80
#: and cut tables there ("…"); a pipe to grep or a CI log has no width at all.
UNLIMITED_WIDTH = 10_000

# C0 but newline and tab, DEL, C1 (8-bit CSI, OSC... are C1 code points).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A lone surrogate (JSON can carry one) cannot be encoded: printing it raises.
_SURROGATE = re.compile("[\ud800-\udfff]")
# json.dumps escapes C0 itself; with ensure_ascii=False DEL, C1 and lone
# surrogates would be written raw.
_JSON_RAW = re.compile("[\x7f-\x9f\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` without control characters (newline and tab kept); lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def one_line(text: str) -> str:
    """`printable(text)` with every run of whitespace, newlines included, made one space."""
    return " ".join(printable(text).split())


def plain(text: str, style: str = "") -> Text:
    """Endpoint text for rich: printable, and never read as markup or emoji codes."""
    from rich.text import Text

    return Text(printable(text), style=style)


def json_text(value: Any) -> str:
    """`value` as indented JSON that decodes to exactly `value` and holds no raw control character.

    Non-ASCII text stays readable (not \\u-escaped); only what a terminal could
    act on is escaped, which JSON allows anywhere in a string.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _JSON_RAW.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def console(**options: Any) -> Console:
    """A rich Console for a tool's output: its terminal's width, or no limit when piped."""
    import os
    import sys

    from rich.console import Console

    stream = options.get("file") or (sys.stderr if options.get("stderr") else sys.stdout)
    if not os.environ.get("COLUMNS") and not _is_terminal(stream):
        options.setdefault("width", UNLIMITED_WIDTH)
    return Console(**options)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
