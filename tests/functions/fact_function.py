"""A funker function answering as Bespoken's "Space Facts" sample skill does, as a real process.

Run as `python fact_function.py --port P`. LaunchRequest and GetNewFactIntent: a fact, in
SSML, with a Simple card titled "Space Facts", ending the session; AMAZON.HelpIntent:
"What can I help you with?", reprompted, the session open. The published examples of
Bespoken's test format are written against that skill (tests/fixtures/bespoken/).
Prints "ready" once listening.
"""

from __future__ import annotations

import argparse

FACT = "A year on Mercury is just 88 days long."


def respond(request: dict) -> dict:
    kind = request["request"]["type"]
    intent = (request["request"].get("intent") or {}).get("name")
    if kind == "LaunchRequest" or intent == "GetNewFactIntent":
        return {
            "version": "1.0",
            "response": {
                "outputSpeech": {
                    "type": "SSML",
                    "ssml": f"<speak>Here's your fact: {FACT}</speak>",
                },
                "card": {"type": "Simple", "title": "Space Facts", "content": FACT},
                "shouldEndSession": True,
            },
        }
    help_speech = {"type": "SSML", "ssml": "<speak>What can I help you with?</speak>"}
    return {
        "version": "1.0",
        "response": {
            "outputSpeech": help_speech,
            "reprompt": {"outputSpeech": help_speech},
            "shouldEndSession": False,
        },
    }


def main() -> None:
    from dispatch.funker import make_server

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    server = make_server(respond, "127.0.0.1", parser.parse_args().port)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
