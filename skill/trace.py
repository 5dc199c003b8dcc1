"""The public listener's record of a request, handed to the console that sent it (docs/console.md).

The console runs in the admin process and sends each turn to the public
listener over loopback, like any client; its trace must be what the server
recorded (route, function, verify/function/total ms, outcome, reason), not a
guess made from outside. So the public app answers the record, the very dict
it writes as the request's log line, in `X-Funker-Trace`, but only when the
request carries `X-Funker-Console`: an HMAC-SHA256 of the exact body under a
key made at start by the process that builds both apps, before granian forks
the public workers and the admin process, so all of them hold it and nothing
else does.

Why not read the JSON log lines instead: the admin process does not own the
server's stderr (a log shipper may), and pairing lines with requests would be
the guess this avoids. Why over the body: a marker seen on the wire opens the
record of that one body only. Without `[console] enabled` there is no key and
nothing is ever added.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from dispatch.responses import compact_json

MARKER_HEADER = "X-Funker-Console"
TRACE_HEADER = "X-Funker-Trace"
_KEY_BYTES = 32


def new_key() -> bytes:
    return secrets.token_bytes(_KEY_BYTES)


def marker(key: bytes, body: bytes) -> str:
    """What the console sends in `MARKER_HEADER` with `body`."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def asked(key: bytes | None, headers: Any, body: bytes | None) -> bool:
    """Whether this request's marker is the console's, for exactly this body.

    `key` is None unless the console is enabled: then no header is even looked up.
    """
    if key is None or body is None:
        return False
    given = headers.get(MARKER_HEADER)
    if not given:
        return False
    return hmac.compare_digest(given.encode("ascii", "replace"), marker(key, body).encode())


def encode(fields: dict[str, Any]) -> str:
    # ASCII-escaped JSON: a header value that no string from the request can break.
    return compact_json(fields)


def decode(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        record = json.loads(value)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
