"""The dialog model, as Alexa runs it, against a real server and a real function process.

The function (tests/functions/dialog_function.py) delegates BookIntent's dialog manually
(Dialog.Delegate until COMPLETED) and elicits HelloIntent's name itself
(Dialog.ElicitSlot); the model's `dialog` and `prompts` say what Alexa asks. Each test
checks what the user hears and what the function was sent: the dialogState sequence,
the slots, the confirmations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from funker_dispatch.devtools.conversation import Conversation, HttpEndpoint, Turn
from funker_dispatch.devtools.simulator import load_interaction_model
from skill.settings import DEVELOPMENT_SKILL_ID
from tests.helpers import free_port

FUNCTION = Path(__file__).resolve().parents[1] / "functions" / "dialog_function.py"


def prompt(prompt_id: str, text: str) -> dict[str, Any]:
    return {"id": prompt_id, "variations": [{"type": "PlainText", "value": text}]}


def interaction_model(delegation: str) -> dict[str, Any]:
    return {
        "interactionModel": {
            "languageModel": {
                "invocationName": "trip planner",
                "intents": [
                    {
                        "name": "BookIntent",
                        "slots": [
                            {"name": "city", "type": "AMAZON.US_CITY", "samples": ["to {city}"]},
                            {"name": "date", "type": "AMAZON.DATE"},
                        ],
                        "samples": ["book a trip", "book a trip to {city}"],
                    },
                    {
                        "name": "HelloIntent",
                        "slots": [{"name": "name", "type": "AMAZON.FirstName"}],
                        "samples": ["say hello", "say hello to {name}"],
                    },
                    *(
                        {"name": n, "samples": []}
                        for n in ("AMAZON.StopIntent", "AMAZON.HelpIntent")
                    ),
                    {"name": "AMAZON.FallbackIntent", "samples": []},
                ],
                "types": [],
            },
            "dialog": {
                "delegationStrategy": delegation,
                "intents": [
                    {
                        "name": "BookIntent",
                        "confirmationRequired": True,
                        "prompts": {"confirmation": "Confirm.Intent"},
                        "slots": [
                            {
                                "name": "city",
                                "type": "AMAZON.US_CITY",
                                "elicitationRequired": True,
                                "confirmationRequired": False,
                                "prompts": {"elicitation": "Elicit.City"},
                            },
                            {
                                "name": "date",
                                "type": "AMAZON.DATE",
                                "elicitationRequired": True,
                                "confirmationRequired": True,
                                "prompts": {
                                    "elicitation": "Elicit.Date",
                                    "confirmation": "Confirm.Date",
                                },
                            },
                        ],
                    }
                ],
            },
            "prompts": [
                prompt("Elicit.City", "Which city?"),
                prompt("Elicit.Date", "When do you travel to {city}?"),
                prompt("Confirm.Date", "{date}, is that right?"),
                prompt("Confirm.Intent", "Shall I book {city} on {date}?"),
            ],
        }
    }


class Served:
    def __init__(self, url: str, record: Path, models: Path, delegation: str) -> None:
        self.url, self.record, self.models = url, record, models
        self.delegation = delegation

    def sent(self) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        return [json.loads(line)["request"] for line in self.record.read_text().splitlines()]

    def conversation(self, dev_ca: Any) -> Conversation:
        model = load_interaction_model("en-US", self.models)
        return Conversation(
            HttpEndpoint(self.url + "/"), model, dev_ca.sign, DEVELOPMENT_SKILL_ID, "en-US"
        )


@pytest.fixture(params=["SKILL_RESPONSE", "ALWAYS"])
def served(request: pytest.FixtureRequest, start_server: Any, tmp_path: Path) -> Iterator[Served]:
    models = tmp_path / "models"
    locale = models / "interactionModels" / "custom" / "en-US.json"
    locale.parent.mkdir(parents=True)
    locale.write_text(json.dumps(interaction_model(request.param)))
    record = tmp_path / "record.jsonl"
    port = free_port()
    function = subprocess.Popen(
        [sys.executable, str(FUNCTION), "--port", str(port), "--record", str(record)],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    assert function.stdout is not None and function.stdout.readline().strip() == "ready"
    routes = "".join(
        f'[intents.{name}]\nhost = "127.0.0.1"\nport = {port}\n\n'
        for name in ("BookIntent", "HelloIntent")
    )
    # The server needs only the routes; the conversation reads the dialog model.
    server = start_server(routes)
    yield Served(server.url, record, models, request.param)
    function.kill()
    function.wait()


def spoken(turn: Turn) -> list[str]:
    return [t.speech or "" for t in turn.chain()]


def test_a_delegated_dialog_elicits_confirms_and_completes(served, dev_ca):
    talk = served.conversation(dev_ca)
    heard = [spoken(talk.say(line)) for line in ("book a trip", "to paris", "tomorrow", "yes")]
    assert heard[0][-1] == "Which city?"
    assert heard[1][-1] == "When do you travel to paris?"
    assert heard[2][-1] == "tomorrow, is that right?"
    assert heard[3][-1] == "Shall I book paris on tomorrow?"
    final = talk.say("yes")
    assert final.last.speech == "Booked paris on tomorrow."
    assert final.last.request["request"]["dialogState"] == "COMPLETED"
    assert final.last.request["request"]["intent"]["confirmationStatus"] == "CONFIRMED"
    slots = final.last.request["request"]["intent"]["slots"]
    assert (slots["date"]["value"], slots["date"]["confirmationStatus"]) == (
        "tomorrow",
        "CONFIRMED",
    )

    states = [r.get("dialogState") for r in served.sent()]
    if served.delegation == "ALWAYS":
        assert states == ["COMPLETED"]  # auto delegation: the skill hears only the end
    else:
        assert states == ["STARTED", *["IN_PROGRESS"] * 4, "COMPLETED"]


def test_a_denied_intent_reaches_the_skill_as_denied(served, dev_ca):
    talk = served.conversation(dev_ca)
    for line in ("book a trip to boston", "friday", "yes"):
        talk.say(line)
    assert talk.say("no").last.speech == "Not booked."
    assert served.sent()[-1]["intent"]["confirmationStatus"] == "DENIED"


def test_stop_leaves_a_dialog_as_on_a_device(served, dev_ca):
    talk = served.conversation(dev_ca)
    assert spoken(talk.say("book a trip"))[-1] == "Which city?"
    stopped = talk.say("stop")
    assert stopped.request["request"]["intent"]["name"] == "AMAZON.StopIntent"
    assert talk.dialog is None


def test_a_slot_the_skill_elicits_is_filled_by_the_next_answer(served, dev_ca):
    talk = served.conversation(dev_ca)
    asked = talk.say("say hello")
    assert asked.speech == "Who should I say hello to?" and not asked.ends_session
    answered = talk.say("grace")  # no sample says just a name: the slot was asked for
    assert answered.request["request"]["intent"]["name"] == "HelloIntent"
    assert answered.request["request"]["intent"]["slots"]["name"]["value"] == "grace"
    assert answered.speech == "Hello, grace!"
