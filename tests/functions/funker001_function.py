"""A function written against the published Python funker 0.0.1, as its authors did.

`funker.handle(func)` listens on the fixed port 9999, serves ONE request by calling
`func(**payload)`, and returns; so this process exits after one answer.
Run as `python funker001_function.py echo|alexa`.
"""

from __future__ import annotations

import sys
from typing import Any

import funker


def echo(**kwargs: Any) -> Any:
    return {"echo": kwargs}


def alexa(session: dict, request: dict, version: str) -> dict:
    """A 0.0.1-era skill handler: fixed keyword arguments, a full Alexa envelope back."""
    return {
        "version": version,
        "response": {
            "outputSpeech": {"type": "PlainText", "text": f"You asked for {request['type']}."},
            "shouldEndSession": True,
        },
        "sessionAttributes": {"session": session["sessionId"]},
    }


if __name__ == "__main__":
    funker.handle({"echo": echo, "alexa": alexa}[sys.argv[1]])
