"""A dispatch.funker function whose answer waits for a line on stdin.

Run as `python held_function.py PORT`. It prints "started" when a request
arrives and answers {"echo": <request>} once the test writes a line to its
stdin: the test decides when the reply may go out.
"""

from __future__ import annotations

import sys
from typing import Any

from dispatch.funker import serve


def held(payload: Any) -> Any:
    print("started", flush=True)
    sys.stdin.readline()
    return {"echo": payload}


if __name__ == "__main__":
    serve(held, "127.0.0.1", int(sys.argv[1]))
