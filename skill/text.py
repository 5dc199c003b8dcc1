"""Text from the network made safe to log or print: no control sequences, one line when asked.

Whatever an endpoint or a client sends (speech, an error page, a status
line) is untrusted: `\\x1b]0;title\\x07` retitles a terminal, `\\x1b[2J` clears
it, a newline forges a second log line. The server's log lines and the
developer's tools pass such text through `printable` or `one_line` first
(the tools' rich output lives in `funker_dispatch/devtools/terminal.py`).
"""

from __future__ import annotations

import re

# C0 but newline and tab, DEL, C1 (8-bit CSI, OSC... are C1 code points).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# A lone surrogate (JSON can carry one) cannot be encoded: printing it raises.
_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` without control characters (newline and tab kept); lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def one_line(text: str) -> str:
    """`printable(text)` with every run of whitespace, newlines included, made one space."""
    return " ".join(printable(text).split())
