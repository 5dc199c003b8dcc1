"""A funker function for event tests, as a real process: records every payload, fails on demand.

Run as `python event_recorder.py --port P --record FILE [--fail FILE]`. Each
request's JSON payload is appended to FILE as one line *before* the answer,
so by the time the dispatcher has answered its sender the call is on disk.
When the payload's `id` (or `*`, for every id) is a line of the --fail file
(read on every call, so a test can fix the function between a delivery and
its retry) it hangs up without answering, as a crashing function would.
Prints "ready" once listening.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from pathlib import Path


def failing_ids(path: Path | None) -> set[str]:
    if path is None or not path.exists():
        return set()
    return set(path.read_text(encoding="utf-8").split())


def answer(conn: socket.socket, record: Path, fail: Path | None, lock: threading.Lock) -> None:
    with conn:
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        if not chunks:
            return  # a port probe
        payload = json.loads(b"".join(chunks))
        with lock, record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(payload) + "\n")
        failing = failing_ids(fail)
        if "*" in failing or (isinstance(payload, dict) and payload.get("id") in failing):
            return
        conn.sendall(b'{"ok": true}')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--fail", type=Path)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port))
    lock = threading.Lock()
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(
            target=answer, args=(conn, args.record, args.fail, lock), daemon=True
        ).start()


if __name__ == "__main__":
    main()
