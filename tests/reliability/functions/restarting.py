"""A funker function that restarts after every request, as funker 0.0.1 under Swarm does.

Each incarnation binds, takes exactly one connection, closes its listener at once
(so the next request finds nothing listening: connection refused), answers, and
comes back after --gap seconds, the time Swarm takes to restart a task. Prints
"ready" once, then "served <n>" after each answer.

Run: python restarting.py --port P [--gap 0.15]
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def serve(port: int, gap: float) -> None:
    served = 0
    while True:
        listener = socket.create_server(("127.0.0.1", port), backlog=1)
        if served == 0:
            print("ready", flush=True)
        conn, _ = listener.accept()
        listener.close()  # down until the restart: nobody else gets in meanwhile
        with conn:
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            payload = json.loads(b"".join(chunks))
            marker = payload["request"]["intent"]["slots"]["Id"]["value"]
            conn.sendall(json.dumps({"speech": f"incarnation {served} id {marker}"}).encode())
        served += 1
        print(f"served {served}", flush=True)
        time.sleep(gap)  # the restart itself: this process plays the swarm too


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gap", type=float, default=0.15)
    args = parser.parse_args()
    serve(args.port, args.gap)
