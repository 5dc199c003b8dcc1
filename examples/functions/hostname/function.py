"""Funker function: says which host answered, in SSML (short answer form).

Behind the swarm's load balancer each replica has its own hostname (the
container id), so asking twice shows the requests being spread. The name is
spelled out character by character: a container id is not a word.

Run: python examples/functions/hostname/function.py --port 9103
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape


def handle(payload: dict[str, Any]) -> dict[str, Any]:
    host = socket.gethostname()
    return {
        # Escaped: the short form passes speech starting with <speak> through as SSML.
        "speech": (
            '<speak>This answer came from <say-as interpret-as="characters">'
            f"{escape(host)}</say-as>.</speak>"
        ),
        "card": {"title": "Hostname", "text": f"This answer came from {host}."},
    }


def main(argv: Sequence[str] | None = None) -> None:
    # Imported here so `handle` can be imported and tested without the protocol layer.
    from dispatch.funker import run

    run(handle, argv, description="Funker function: which host answered.")


if __name__ == "__main__":
    main()
