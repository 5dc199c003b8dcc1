"""A funker function that holds a dialog the way skills do, as a real process.

Run as `python dialog_function.py --port P --record FILE`. Each request is appended to
FILE (one JSON line) before the answer. BookIntent: until `dialogState` is COMPLETED
it answers Dialog.Delegate (the manual delegation of Amazon's docs), then "Booked CITY
on DATE." (or "Not booked." when the intent was denied). HelloIntent: without a name it
elicits the slot itself (Dialog.ElicitSlot with its own question), with one it greets.
Prints "ready" once listening.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path


def respond(request: dict) -> dict:
    intent = request["request"].get("intent") or {}
    slots = {n: s.get("value") for n, s in (intent.get("slots") or {}).items()}
    name = intent.get("name")
    if name == "BookIntent":
        if request["request"].get("dialogState") != "COMPLETED":
            return {"version": "1.0", "response": {"directives": [{"type": "Dialog.Delegate"}]}}
        if intent.get("confirmationStatus") == "DENIED":
            return {"speech": "Not booked."}
        return {"speech": f"Booked {slots.get('city')} on {slots.get('date')}."}
    if name == "HelloIntent" and not slots.get("name"):
        return {
            "version": "1.0",
            "response": {
                "outputSpeech": {"type": "PlainText", "text": "Who should I say hello to?"},
                "directives": [{"type": "Dialog.ElicitSlot", "slotToElicit": "name"}],
                "shouldEndSession": False,
            },
        }
    return {"speech": f"Hello, {slots.get('name')}!"}


def serve(port: int, record: Path) -> None:
    from dispatch.funker import make_server

    lock = threading.Lock()

    def handle(request: dict) -> dict:
        with lock, record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(request) + "\n")
        return respond(request)

    server = make_server(handle, "127.0.0.1", port)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    serve(args.port, args.record)
