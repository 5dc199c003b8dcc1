"""A funker function killed mid-reply: it writes half a JSON answer, then SIGKILLs itself.

Prints "ready" when listening, like the other test functions.

Run: python half_reply.py --port P
"""

from __future__ import annotations

import argparse
import os
import signal
import socket


def serve(port: int) -> None:
    listener = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)
    conn, _ = listener.accept()
    while conn.recv(65536):
        pass
    conn.sendall(b'{"speech": "There are 7 peo')
    os.kill(os.getpid(), signal.SIGKILL)  # the OOM killer, a node drain, a crash


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
