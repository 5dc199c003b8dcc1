"""Bespoken's skill-testing-ml YAML, as `funker-dispatch test` reads and judges it.

The published examples (tests/fixtures/bespoken/, each with its source) are parsed as
the published runner reads them; the matching rules are checked one by one against
response documents.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from funker_dispatch.devtools.yamltest import (
    UNDEFINED,
    SuiteSyntaxError,
    junit_xml,
    lookup,
    parse_suite,
    run_test,
    with_shorthand,
)

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "bespoken"


def example(name: str):
    path = next(EXAMPLES.glob(f"{name}*.yml"))
    return parse_suite(path.read_text(), path)


def test_every_published_example_but_one_parses():
    parsed = [p.name for p in sorted(EXAMPLES.glob("*.yml")) if not p.name.startswith("07")]
    assert len(parsed) == 8
    for name in parsed:
        assert example(name[:2]).tests, name


def test_the_readme_example_is_a_launch_with_four_path_assertions():
    suite = example("01")
    assert suite.configuration == {} and suite.locales == ["en-US"]
    (test,) = suite.tests
    assert test.name == "Sequence 01. Test scenario: launch request, no further interaction."
    (launch,) = test.interactions
    assert launch.utterance == "LaunchRequest"
    assert [(a.path, a.op, a.expected) for a in launch.assertions] == [
        ("response.outputSpeech.ssml", "==", "Here's your fact"),
        ("response.card.type", "==", "Simple"),
        ("response.card.title", "==", "Space Facts"),
        ("response.card.content", "=~", "/.*/"),
    ]


def test_configuration_utterances_regex_flags_and_exit():
    suite = example("03")
    assert suite.locales == ["en-US"]
    names = [t.name for t in suite.tests]
    assert names[2] == "Sequence 03. Test scenario: AMAZON.HelpIntent. Ask for help and exit."
    launch, help_, exit_ = suite.tests[2].interactions
    assert launch.utterance == "LaunchRequest" and launch.assertions == []
    assert help_.assertions[1].expected is UNDEFINED
    assert exit_.utterance == "exit" and exit_.assertions[0].path == "response.outputSpeech"
    assert suite.tests[1].interactions[0].assertions[0].expected == "/here's your fact.*/i"


def test_locales_shorthand_and_bare_lines():
    assert example("04").locales == ["en-US"]
    help_ = example("04").tests[1].interactions[0]
    assert (help_.utterance, help_.assertions[0].path) == ("HelpIntent", "prompt")
    launch, asked, last = example("05").tests[0].interactions
    assert launch.utterance == "LaunchRequest" and not launch.assertions
    assert asked.utterance == "AMAZON.HelpIntent"
    assert last.utterance is None  # a bare `exit` sends nothing, and ends the test


def test_goto_and_tags_are_read():
    launch = example("06").tests[0].interactions[0]
    assert launch.assertions[0].goto == "Get New Fact"
    assert launch.assertions[0].expected == "Here's your fact:*"
    assert launch.assertions[-1].op == "exit"
    test = example("08").tests[0]
    assert test.tags == ("FirstUse", "Alexa") and test.name == "open the skill"


def test_a_goto_to_nowhere_is_a_syntax_error_as_in_the_published_runner():
    # The guide's test.only snippet is cut short: its goto target is not in the test.
    with pytest.raises(SuiteSyntaxError, match="no match for goto: Get New Fact"):
        example("07")


def test_test_only_skips_the_others_and_duplicate_names_are_numbered(tmp_path):
    text = "---\n- test: a\n- hi\n---\n- test.only: b\n- hi\n---\n- test: a\n- hi\n"
    suite = parse_suite(text, tmp_path / "x.yml")
    assert [(t.name, t.skip) for t in suite.tests] == [("a", True), ("b", False), ("a (2)", True)]


def test_find_replace_rewrites_the_file_before_it_is_read(tmp_path):
    text = (
        "---\nconfiguration:\n  locales: en-US, en-GB\n  findReplace:\n"
        "    INVOCATION_NAME: space facts\n---\n- open INVOCATION_NAME: welcome\n"
    )
    suite = parse_suite(text, tmp_path / "x.yml")
    assert suite.locales == ["en-US", "en-GB"]
    assert suite.tests[0].interactions[0].utterance == "open space facts"


@pytest.mark.parametrize(
    "bad, says",
    [
        ("---\n- hi:\n  - prompt\n", "invalid assertion: prompt"),
        ("---\n- hi:\n  - prompt > many\n", "must be numeric"),
        ("---\n- [a, b]\n", "an interaction is"),
        ("---\nconfiguration: 3\n---\n- hi\n", "configuration is not a mapping"),
        ("- a: [\n", "not YAML"),
    ],
)
def test_what_is_not_a_suite_is_a_syntax_error_naming_the_file(tmp_path, bad, says):
    with pytest.raises(SuiteSyntaxError, match=says) as caught:
        parse_suite(bad, tmp_path / "bad.yml")
    assert "bad.yml" in str(caught.value)


# --- judging -----------------------------------------------------------------------------

RESPONSE = with_shorthand(
    {
        "version": "1.0",
        "sessionAttributes": {"players": [{"name": "jordi"}], "count": 3},
        "response": {
            "outputSpeech": {"type": "SSML", "ssml": "<speak>Here's your fact: Mars.</speak>"},
            "card": {"type": "Simple", "title": "Space Facts", "content": "Mars."},
            "shouldEndSession": True,
        },
    }
)


def judged(line: str) -> str | None:
    suite = parse_suite(f"---\n- hi:\n  - {line}\n", Path("t.yml"))
    return suite.tests[0].interactions[0].assertions[0].failure(RESPONSE)


@pytest.mark.parametrize(
    "line",
    [
        'prompt: "Here\'s your fact"',  # contains
        "prompt: Here's*Mars",  # '*' any text
        "prompt: /here's your FACT/i",  # regex, flags
        "prompt: [Nope, Here's your*]",  # any of a list
        "cardTitle: Space Facts",
        "cardContent: '*'",
        "sessionEnded: true",
        "reprompt: undefined",
        "response.card.image: undefined",
        "sessionAttributes.players[0].name: jordi",
        "sessionAttributes.count > 2",
        "sessionAttributes.count <= 3",
        "prompt != Venus",
        "response.outputSpeech.ssml =~ /Mars\\.</",
    ],
)
def test_assertions_that_hold(line):
    assert judged(line) is None


@pytest.mark.parametrize(
    "line, received",
    [
        ("prompt: here's your fact", "<speak>Here's your fact: Mars.</speak>"),  # case kept
        ("cardTitle: undefined", "Space Facts"),
        ("reprompt: '*'", "undefined"),  # nothing there matches nothing, not even '*'
        ("prompt != Mars", "<speak>Here's your fact: Mars.</speak>"),
        ("sessionAttributes.count > 3", "3"),
        ("prompt: [Venus, Jupiter]", "<speak>Here's your fact: Mars.</speak>"),
    ],
)
def test_assertions_that_fail_say_the_path_what_was_wanted_and_received(line, received):
    failure = judged(line)
    assert failure is not None
    assert failure.startswith("Expected value at [")
    assert failure.endswith(f"Received:\n\t{received}")


def test_a_path_reads_objects_and_indexes():
    assert lookup(RESPONSE, "response.card.title") == "Space Facts"
    assert lookup(RESPONSE, "sessionAttributes.players[1].name") is UNDEFINED
    assert RESPONSE["prompt"] == "<speak>Here's your fact: Mars.</speak>"


class ScriptedConversation:
    """Answers from a script, to watch which interactions a test sends."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers, self.sent, self.amend = answers, [], None
        self.model = SimpleNamespace(intents={})

    def say(self, utterance: str):
        self.sent.append(utterance)
        return Heard(self.answers.get(utterance, "nothing"))

    def launch(self, said: str = ""):
        return self.say(said)

    def end(self):
        return self.say("(end)")


class Heard:
    def __init__(self, speech: str) -> None:
        self.response = {"response": {"outputSpeech": {"type": "PlainText", "text": speech}}}
        self.ok, self.last = True, self

    @property
    def answer(self):  # pragma: no cover - only read when not ok
        raise AssertionError


def test_goto_skips_forward_a_failed_goto_is_no_failure_and_exit_stops(tmp_path):
    text = (
        "---\n- test: flow\n"
        "- one:\n  - prompt: uno goto three\n"
        "- two: dos\n"
        "- three:\n  - prompt: never goto two\n  - prompt: tres\n  - exit\n"
        "- four: cuatro\n"
    )
    (test,) = parse_suite(text, tmp_path / "x.yml").tests
    talk = ScriptedConversation({"one": "uno", "two": "dos", "three": "tres"})
    result = run_test(test, talk, "en-US", tmp_path / "x.yml")
    assert talk.sent == ["one", "three"]
    assert result.passed


def test_a_failed_interaction_fails_the_test_and_the_next_still_runs(tmp_path):
    (test,) = parse_suite("---\n- one: wrong\n- two: dos\n", tmp_path / "x.yml").tests
    talk = ScriptedConversation({"one": "uno", "two": "dos"})
    result = run_test(test, talk, "en-US", tmp_path / "x.yml")
    assert talk.sent == ["one", "two"]
    assert len(result.failures) == 1 and result.failures[0].startswith("one:\nExpected value")
    xml = junit_xml([result]).decode()
    assert '<testsuite name="' in xml and 'failures="1"' in xml and "Expected value" in xml
