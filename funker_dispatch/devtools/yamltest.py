"""`funker-dispatch test`: dialog tests in Bespoken's skill-testing-ml YAML (`bst test`).

A file is a YAML stream: an optional first `configuration` document (`locale` or
`locales`, `findReplace`, `description`), then one document per test — a list whose
first items may name it (`test`, `test.only`, `test.skip`) and tag it (`tags`), and whose
other items are interactions:

    - LaunchRequest: "*"                       # what Alexa says contains this ('*' any text)
    - say hello to Ada: Hello, Ada!            # an utterance, through the interaction model
    - HelloIntent name=Ada: /hello, ada/i      # an intent and its slots, named; a regex
    - AMAZON.StopIntent                        # sent, nothing asserted
    - what is the weather:
      - prompt: [Sunny*, Rainy*]               # any of these
      - cardTitle: Weather
      - sessionAttributes.city: Paris          # a path into the response document
      - response.reprompt: undefined
      - request.session.attributes.city: Paris # set on the request before it is sent

Semantics follow the published runner (bespoken/skill-testing-ml), so an existing suite
reads the same: a string is a case-sensitive "contains" match with `*` as a wildcard, a
`/.../flags` value a regular expression, a list any one of its values; the shorthand
names are `prompt`, `reprompt`, `cardTitle`, `cardContent`, `cardImageURL` and
`sessionEnded`; `==`, `=~`, `!=`, `>`, `>=`, `<`, `<=` in `PATH OP VALUE` lines; `goto`
and `exit`. Each test is a fresh session; nothing launches unless a test says so. The
first failed assertion of an interaction ends that interaction's checks; the test goes
on, and fails. Differences, all deliberate: requests are signed (the endpoint verifies
them as Alexa's), utterances go through this simulator (the fallback intent and the
dialog model included), and what the user heard last — a dialog model's prompt
included — is what `prompt` is.

Written here rather than run with `bst`: that needs Node, Jest and Virtual Alexa, and
posts unsigned requests a verifying endpoint refuses.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Shorthand names and the response paths they read (Bespoken's own six).
SHORTHAND = {
    "prompt": None,  # outputSpeech.ssml, else .text
    "reprompt": None,
    "cardTitle": "response.card.title",
    "cardContent": "response.card.content",
    "cardImageURL": "response.card.image.largeImageUrl",
    "sessionEnded": "response.shouldEndSession",
}
OPERATORS = ("==", "=~", "!=", ">=", "<=", ">", "<")  # the order Bespoken tries them in
UNDEFINED = object()  # `undefined`: asserts the value is absent
_INTENT_FORM = re.compile(r'([\w.-]+)((?: \w+=(?:"[^"]*"|[^ ]*))*)')
_SLOT = re.compile(r'(\w+)=("[^"]*"|[^ ]*)')
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class SuiteSyntaxError(ValueError):
    """A file that is not a test suite; the message says where and why."""


@dataclass
class Assertion:
    path: str
    op: str
    expected: Any  # a str, a list of str, None (null), or UNDEFINED
    goto: str | None = None

    def failure(self, document: Any) -> str | None:
        """None when it holds for `document` (the response, shorthand names added)."""
        actual = lookup(document, self.path)
        if _holds(self.op, self.expected, actual):
            return None
        if isinstance(self.expected, list):
            wanted = "be one of:\n" + "".join(f"\t{_shown(v)}\n" for v in self.expected)
        else:
            be = "be " if self.op in (">", ">=", "<", "<=") else ""
            wanted = f"{be}{self.op}\n\t{_shown(self.expected)}\n"
        return f"Expected value at [{self.path}] to {wanted}\nReceived:\n\t{_shown(actual)}"


@dataclass
class Interaction:
    utterance: str | None  # None: a bare `exit`, nothing sent
    assertions: list[Assertion] = field(default_factory=list)
    intent: str | None = None
    slots: dict[str, str] = field(default_factory=dict)
    label: str | None = None
    request: dict[str, Any] = field(default_factory=dict)  # path -> value, set before sending


@dataclass
class YamlTest:
    name: str
    interactions: list[Interaction]
    only: bool = False
    skip: bool = False
    tags: tuple[str, ...] = ()


@dataclass
class Suite:
    path: Path
    configuration: dict[str, Any]
    tests: list[YamlTest]

    @property
    def locales(self) -> list[str]:
        given = self.configuration.get("locales") or self.configuration.get("locale") or "en-US"
        return [locale.strip() for locale in str(given).split(",") if locale.strip()]


# --- parsing ---------------------------------------------------------------------------


def parse_suite(text: str, path: Path) -> Suite:
    """A test suite from the text of a file; SuiteSyntaxError naming the file and the fault."""
    import yaml

    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise SuiteSyntaxError(f"{path}: not YAML: {exc}") from None
    configuration: dict[str, Any] = {}
    if len(documents) > 1 and isinstance(documents[0], dict) and "configuration" in documents[0]:
        configuration = documents[0]["configuration"]
        if not isinstance(configuration, dict):
            raise SuiteSyntaxError(f"{path}: configuration is not a mapping")
        replacements = configuration.get("findReplace") or {}
        if isinstance(replacements, dict) and replacements:
            # Plain text substitution over the whole file, then read again.
            for find, value in replacements.items():
                text = text.replace(str(find), str(value))
            documents = list(yaml.safe_load_all(text))
        documents = documents[1:]
    return Suite(path, configuration, _tests(documents, path))


def _tests(documents: list[Any], path: Path) -> list[YamlTest]:
    tests: list[YamlTest] = []
    names: dict[str, int] = {}
    for number, document in enumerate(documents, 1):
        if not isinstance(document, list):
            continue  # not a test, as the published runner skips it
        test = _test(document, number, path)
        seen = names.get(test.name, 0)
        names[test.name] = seen + 1
        if seen:
            test.name = f"{test.name} ({seen + 1})"
        tests.append(test)
    if any(test.only for test in tests):
        for test in tests:
            test.skip = test.skip or not test.only
    return tests


def _test(items: list[Any], number: int, path: Path) -> YamlTest:
    test = YamlTest(f"Test {number}", [])
    rest = list(items)
    for item in list(rest[:2]):
        if not isinstance(item, dict) or len(item) != 1:
            continue
        ((key, value),) = item.items()
        if key in ("test", "test.only", "test.skip"):
            test.name = str(value) if value is not None else test.name
            test.only, test.skip = key == "test.only", key == "test.skip"
        elif key == "tags":
            test.tags = tuple(t.strip() for t in str(value or "").split(",") if t.strip())
        else:
            continue
        rest.remove(item)
    try:
        test.interactions = [_interaction(item) for item in rest]
    except SuiteSyntaxError as exc:
        raise SuiteSyntaxError(f"{path}: test {test.name!r}: {exc}") from None
    labels = {i.label for i in test.interactions} | {i.utterance for i in test.interactions}
    for interaction in test.interactions:
        for assertion in interaction.assertions:
            if assertion.goto is not None and assertion.goto not in labels:
                raise SuiteSyntaxError(
                    f"{path}: test {test.name!r}: no match for goto: {assertion.goto}"
                )
    return test


def _interaction(item: Any) -> Interaction:
    if isinstance(item, str | int | float):
        text = str(item).strip()
        if text == "exit":
            return Interaction(None)
        for op in OPERATORS:
            if f" {op} " in text:
                utterance, value = text.split(f" {op} ", 1)
                return Interaction(utterance.strip(), [_assertion("prompt", op, value)])
        return Interaction(text)
    if not isinstance(item, dict) or len(item) != 1:
        raise SuiteSyntaxError(
            f"an interaction is an utterance, or one utterance: expectation ({item!r})"
        )
    ((utterance, expected),) = item.items()
    interaction = Interaction(str(utterance))
    if expected is None:
        return interaction
    if not isinstance(expected, list):
        interaction.assertions.append(_assertion("prompt", ":", expected))
        return interaction
    for entry in expected:
        _interaction_entry(interaction, entry)
    return interaction


def _interaction_entry(interaction: Interaction, entry: Any) -> None:
    if isinstance(entry, str | int | float):
        text = str(entry).strip()
        if text == "exit":  # in its place: reached only when what comes before holds
            interaction.assertions.append(Assertion("exit", "exit", None))
            return
        for op in OPERATORS:
            if f" {op} " in text:
                path, value = text.split(f" {op} ", 1)
                interaction.assertions.append(_assertion(path.strip(), op, value))
                return
        raise SuiteSyntaxError(f"invalid assertion: {text}")
    if not isinstance(entry, dict) or not entry:
        raise SuiteSyntaxError(f"invalid assertion: {entry!r}")
    first = next(iter(entry))
    if first == "intent":
        interaction.intent = str(entry["intent"])
        interaction.slots.update({str(k): str(v) for k, v in entry.items() if k != "intent"})
    elif first == "slots" and isinstance(entry["slots"], dict):
        interaction.slots.update({str(k): str(v) for k, v in entry["slots"].items()})
    elif first == "label":
        interaction.label = str(entry["label"])
    elif str(first).startswith("request"):
        interaction.request[str(first)] = entry[first]
    else:
        interaction.assertions.append(_assertion(str(first), ":", entry[first]))


def _assertion(path: str, op: str, value: Any) -> Assertion:
    goto = None
    if isinstance(value, str):
        found = re.match(r"(.*) goto (.*)", value, flags=re.I | re.S)
        if found:
            value, goto = found.group(1), found.group(2).strip()
    expected = _cleaned(value)
    if op == ":":
        regex = isinstance(expected, list) and any(_is_regex(v) for v in expected)
        op = "=~" if regex or _is_regex(expected) else "=="
    if op not in OPERATORS:
        raise SuiteSyntaxError(f"invalid operator: {op}")
    if op in (">", ">=", "<", "<=") and not _numeric(expected):
        raise SuiteSyntaxError(f"invalid expected value - must be numeric: {value!r}")
    return Assertion(path, op, expected, goto)


def _cleaned(value: Any) -> Any:
    if isinstance(value, list):
        return [_cleaned(v) for v in value]
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if text == "undefined":
        return UNDEFINED
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    return text


def _is_regex(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("/")


def _numeric(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# --- matching --------------------------------------------------------------------------


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path with [n] indexes (`response.directives[0].type`)."""
    value = document
    for name, index in _PATH_PART.findall(path):
        if name:
            value = value.get(name, UNDEFINED) if isinstance(value, dict) else UNDEFINED
        else:
            i = int(index)
            value = value[i] if isinstance(value, list) and i < len(value) else UNDEFINED
        if value is UNDEFINED:
            return UNDEFINED
    return value


def _holds(op: str, expected: Any, actual: Any) -> bool:
    if op == "!=":
        if expected is UNDEFINED:
            return actual is not UNDEFINED
        if actual is UNDEFINED:
            return True
        values = expected if isinstance(expected, list) else [expected]
        return not any(_text(v) in _text(actual) for v in values)
    if op in (">", ">=", "<", "<="):
        try:
            left, right = int(float(_text(actual))), int(float(_text(expected)))
        except ValueError:
            return False
        return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]
    if isinstance(expected, list):
        regex = any(_is_regex(v) for v in expected)
        return any(_matches(v, actual, regex=regex or op == "=~") for v in expected)
    if expected is UNDEFINED:
        return actual is UNDEFINED
    return _matches(expected, actual, regex=op == "=~")


def _matches(expected: Any, actual: Any, *, regex: bool) -> bool:
    if actual is UNDEFINED:
        return False
    text = _text(actual)
    wanted = _text(expected)
    if regex or _is_regex(wanted):
        body, flags = wanted.strip(), ""
        if body.startswith("/") and body.rfind("/") > 0:
            body, flags = body[1 : body.rfind("/")], body[body.rfind("/") + 1 :]
        try:
            return re.search(body, text, re.I if "i" in flags else 0) is not None
        except re.error:
            return False
    # A plain value: contained, '*' any text, case kept (the published runner's rule).
    pattern = ".*".join(re.escape(part) for part in wanted.strip().split("*"))
    return re.search(pattern, text, re.S) is not None


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _shown(value: Any) -> str:
    return "undefined" if value is UNDEFINED else _text(value)


def with_shorthand(response: Any) -> Any:
    """The response document with Bespoken's shorthand names beside its own keys."""
    document = dict(response) if isinstance(response, dict) else {}

    def speech(*keys: str) -> Any:
        value = lookup(document, ".".join(keys))
        if isinstance(value, dict):
            return value.get("ssml", value.get("text", UNDEFINED))
        return UNDEFINED

    shorthand = {
        "prompt": speech("response", "outputSpeech"),
        "reprompt": speech("response", "reprompt", "outputSpeech"),
    }
    for name, path in SHORTHAND.items():
        if path is not None:
            shorthand[name] = lookup(document, path)
    for name, value in shorthand.items():
        if value is not UNDEFINED and name not in document:
            document[name] = value
    return document


# --- running ---------------------------------------------------------------------------


@dataclass
class TestResult:
    suite: Path
    locale: str
    name: str
    failures: list[str] = field(default_factory=list)
    skipped: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures and not self.skipped


def run_test(test: YamlTest, conversation: Any, locale: str, suite: Path) -> TestResult:
    """One test in a fresh session (`conversation`, a Conversation nobody has used)."""
    from funker_dispatch.devtools.simulator import NoMatch
    from skill.client import EndpointError

    result = TestResult(suite, locale, test.name, skipped=test.skip)
    if test.skip:
        return result
    started = time.monotonic()
    skip_to: str | None = None
    for interaction in test.interactions:
        if skip_to is not None:
            if skip_to not in (interaction.utterance, interaction.label):
                continue
            skip_to = None
        if interaction.utterance is None:
            break  # a bare `exit`
        said = interaction.utterance
        try:
            if interaction.request:
                conversation.amend = _amender(interaction.request)
            turn = _send(conversation, interaction)
        except NoMatch as exc:
            result.failures.append(f"{said}: unable to match utterance: {exc.utterance}")
            continue
        except EndpointError as exc:
            result.failures.append(f"{said}: {exc}")
            break
        heard = turn.last
        if not heard.ok:
            body = heard.answer.body.decode("utf-8", "replace")[:300]
            result.failures.append(
                f"{said}: the endpoint answered HTTP {heard.answer.status}: {body}"
            )
            continue
        document = with_shorthand(heard.response)
        stop = False
        for assertion in interaction.assertions:
            if assertion.op == "exit":
                stop = True
                break
            failure = assertion.failure(document)
            if failure is None and assertion.goto is not None:
                skip_to = assertion.goto
                break
            if failure is not None:
                if assertion.goto is not None:
                    continue  # a goto that does not hold is no failure
                result.failures.append(f"{said}:\n{failure}")
                break
        if stop:
            break
    result.seconds = time.monotonic() - started
    return result


def _send(conversation: Any, interaction: Interaction) -> Any:
    said = interaction.utterance or ""
    if said == "LaunchRequest":
        return conversation.launch(said=said)
    if said in ("SessionEndedRequest", "exit"):
        return conversation.end()
    if said.startswith("AudioPlayer."):
        raise _unsupported(said)
    if interaction.intent is not None:
        return conversation.intent(interaction.intent, interaction.slots, said=said)
    named = _INTENT_FORM.fullmatch(said)
    if named and named.group(1) in conversation.model.intents:
        slots = {k: v.strip('"') for k, v in _SLOT.findall(named.group(2) or "")}
        return conversation.intent(named.group(1), {**slots, **interaction.slots}, said=said)
    return conversation.say(said)


def _unsupported(said: str) -> Exception:
    from skill.client import EndpointError

    return EndpointError(f"{said}: AudioPlayer requests are not simulated")


def _amender(settings: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Sets each `request.<path>: value` on the envelope about to be sent."""

    def amend(envelope: dict[str, Any]) -> None:
        for path, value in settings.items():
            parts = [p for p in path.split(".")[1:] if p]
            target: Any = envelope
            for part in parts[:-1]:
                target = target.setdefault(part, {}) if isinstance(target, dict) else {}
            if parts and isinstance(target, dict):
                target[parts[-1]] = value

    return amend


# --- reporting -------------------------------------------------------------------------


def junit_xml(results: list[TestResult]) -> bytes:
    """The results as JUnit XML: a testsuite per file and locale, a testcase per test."""
    root = ET.Element("testsuites")
    groups: dict[tuple[Path, str], list[TestResult]] = {}
    for result in results:
        groups.setdefault((result.suite, result.locale), []).append(result)
    for (suite, locale), members in groups.items():
        element = ET.SubElement(
            root,
            "testsuite",
            name=f"{suite} ({locale})",
            tests=str(len(members)),
            failures=str(sum(1 for r in members if r.failures)),
            skipped=str(sum(1 for r in members if r.skipped)),
            time=f"{sum(r.seconds for r in members):.3f}",
        )
        for result in members:
            case = ET.SubElement(
                element,
                "testcase",
                name=result.name,
                classname=str(suite),
                time=f"{result.seconds:.3f}",
            )
            if result.skipped:
                ET.SubElement(case, "skipped")
            for failure in result.failures:
                ET.SubElement(case, "failure", message=failure.splitlines()[0]).text = failure
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def suite_files(paths: list[str]) -> list[Path]:
    """The .yml and .yaml files named, or under the folders named, in order."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{given}: no such file or folder")
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="test files or folders (default tests/)"
    )
    parser.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
