"""A funker function for end-to-end tests, one behaviour per --mode, as a real process.

Written on raw sockets (not dispatch.funker.serve) so it can misbehave in the
ways real functions do: stall, hang up, answer garbage or far too much.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading

# The seed's own sample answer had an apostrophe; "&" and "<" would be escaped as SSML.
FAITHFUL_TEXT = "There's currently 6 people in space & 1 < 2"
# A directive type no installed SDK knows (a newer APL one, say): must pass untouched.
FUTURE_DIRECTIVE = {"type": "Alexa.Presentation.APL.FutureThing", "token": "t", "x": {"y": [1, 2]}}
#: How long mode "slow" takes to answer.
SLOW_SECONDS = 2.0

REPLIES = {
    # The seed's functions answered a full Alexa envelope.
    "envelope": lambda p: {
        "version": "1.0",
        "sessionAttributes": {"seen": True},
        "response": {
            "outputSpeech": {"type": "PlainText", "text": "There are 7 people in space."},
            "card": {"type": "Simple", "title": "People in space", "content": "7 aboard"},
            "shouldEndSession": True,
        },
    },
    # Everything Alexa's response knows, as a function would write it (docs/functions.md form 1).
    "faithful": lambda p: {
        "version": "1.0",
        "response": {
            "outputSpeech": {
                "type": "PlainText",
                "text": FAITHFUL_TEXT,
                "playBehavior": "REPLACE_ENQUEUED",
            },
            "card": {
                "type": "AskForPermissionsConsent",
                "permissions": ["read::alexa:device:all:address"],
            },
            "reprompt": {
                "outputSpeech": {
                    "type": "SSML",
                    "ssml": '<speak>Anything <break time="1s"/> else?</speak>',
                }
            },
            "shouldEndSession": False,
            "directives": [FUTURE_DIRECTIVE, {"type": "Dialog.ElicitSlot", "slotToElicit": "name"}],
            "futureField": {"shown": "nowhere"},
        },
    },
    "short": lambda p: {
        "speech": "<speak>Hello <emphasis>there</emphasis></speak>",
        "card": {
            "title": "Hello",
            "text": "Standard card",
            "image": {"small": "https://example.com/s.png", "large": "https://example.com/l.png"},
        },
    },
    "text": lambda p: "Fish & chips < 5 pounds",
    "data": lambda p: {"total_captains": 12},
    # Counts turns in the session: proves attributes go out and come back.
    "session": lambda p: {
        "speech": f"turn {(p.get('session', {}).get('attributes') or {}).get('turn', 0) + 1}",
        "reprompt": "again?",
        "session_attributes": {
            "turn": (p.get("session", {}).get("attributes") or {}).get("turn", 0) + 1
        },
    },
    "ssmlattr": lambda p: {"speech": '<speak xml:lang="de-DE">Hallo</speak>'},
    "canfulfill": lambda p: {
        "version": "1.0",
        "response": {
            "canFulfillIntent": {
                "canFulfill": "YES",
                "slots": {"name": {"canUnderstand": "YES", "canFulfill": "YES"}},
            }
        },
    },
    "slow": lambda p: {"speech": "Sorry to keep you waiting."},
    # Echoes what it received, so tests can see the payload the dispatcher sent.
    "echo": lambda p: {"speech": "echo", "session_attributes": {"received": p}},
}

# Answers json.dumps cannot write: bytes exactly as a broken function would send them.
RAW_REPLIES = {
    "control": b'{"speech": "Ring \\u0007 ring"}',
    "surrogatessml": b'{"speech": "<speak>Hello \\ud800</speak>"}',
    "infinity": b'{"speech": "Hi", "session_attributes": {"n": 1e400}}',
    "bignumber": b'{"speech": "Hi", "directives": [{"type": "X", "n": 1' + b"0" * 400 + b"}]}",
    "deepattributes": b'{"speech": "Hi", "session_attributes": {"x": '
    + b"[" * 500
    + b"]" * 500
    + b"}}",
    "deep": b"[" * 100_000 + b"]" * 100_000,  # under the 256 KiB cap
}


def serve(mode: str, host: str, port: int) -> None:
    listener = socket.create_server((host, port), reuse_port=False)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn, mode), daemon=True).start()


def answer(conn: socket.socket, mode: str) -> None:
    with conn:
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        if mode == "stall":
            threading.Event().wait()  # never answers
        if mode == "slow":
            threading.Event().wait(SLOW_SECONDS)  # slow on purpose: earns a progressive response
        if mode == "close":
            return
        if mode == "badjson":
            conn.sendall(b"{not json")
            return
        if mode == "huge":
            conn.sendall(b'"' + b"x" * (1024 * 1024) + b'"')
            return
        if mode in RAW_REPLIES:
            conn.sendall(RAW_REPLIES[mode])
            return
        payload = json.loads(b"".join(chunks))
        conn.sendall(json.dumps(REPLIES[mode](payload)).encode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--mode",
        required=True,
        choices=[*REPLIES, *RAW_REPLIES, "stall", "close", "badjson", "huge"],
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.mode, args.host, args.port)
