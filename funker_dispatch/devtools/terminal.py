"""The tools' terminal output: endpoint text never read as rich markup, exact JSON, full width.

rich would read `[bold]` or `:smile:` in a string as markup, so the tools hand
endpoint text to rich only as `Text` (`plain`), which rich never parses, after
`skill.text.printable` has taken out what a terminal could act on.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from skill.text import printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

#: Columns a tool's output may take when it goes to a file or a pipe: rich would assume 80
#: and cut tables there ("…"); a pipe to grep or a CI log has no width at all.
UNLIMITED_WIDTH = 10_000

# json.dumps escapes C0 itself; with ensure_ascii=False DEL, C1 and lone
# surrogates would be written raw.
_JSON_RAW = re.compile("[\x7f-\x9f\ud800-\udfff]")


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
