"""A funker function served by dispatch.funker.serve: answers {"echo": <request>}.

Run as `python echo_function.py PORT`; the tests stop it with SIGTERM.
"""

from __future__ import annotations

import sys
from typing import Any

from dispatch.funker import serve


def echo(payload: Any) -> Any:
    return {"echo": payload}


if __name__ == "__main__":
    serve(echo, "127.0.0.1", int(sys.argv[1]))
