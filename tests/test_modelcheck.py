"""`models check`: the shipped models pass; each kind of broken model is caught and located."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dispatch.registry import Router, parse_route
from funker_dispatch.cli import main
from funker_dispatch.devtools.modelcheck import Finding, check_models, invocation_name_problems
from skill.models import DEFAULT_MODELS

ROUTES = {
    name: parse_route(name, {"host": name.lower()}, default_port=9999)
    for name in (
        *("SpaceCountIntent", "HelloIntent", "HostnameIntent", "CaptainsIntent"),
        *("AlarmStatusIntent", "UploadsIntent", "LastDeployIntent"),
    )
}
ROUTER = Router(ROUTES, naming="none")

Edit = Callable[[dict[str, Any]], None]


def broken_copy(tmp_path: Path, edit: Edit, locale: str = "en-US") -> Path:
    """A copy of the shipped skill package with one locale's language model edited."""
    package = tmp_path / "package"
    shutil.copytree(DEFAULT_MODELS, package)
    path = package / "interactionModels" / "custom" / f"{locale}.json"
    document = json.loads(path.read_text())
    edit(document["interactionModel"]["languageModel"])
    path.write_text(json.dumps(document))
    return package


def intent(model: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in model["intents"] if i["name"] == name)


def errors(package: Path, router: Router = ROUTER) -> list[Finding]:
    return check_models(package, router).errors


def test_shipped_models_are_clean():
    report = check_models(None, ROUTER)
    assert report.findings == []
    assert {m.locale for m in report.models} == {"en-US", "en-GB"}
    assert report.routes["HelloIntent"] == "hellointent:9999 (config)"


def test_models_check_command_prints_a_table_for_the_shipped_models(capsys):
    assert main(["models", "check"]) == 0
    out = capsys.readouterr().out
    assert "interaction models OK" in out
    assert "SpaceCountIntent" in out and "AMAZON.HelpIntent" in out


def _set(key: str, value: Any) -> Edit:
    return lambda model: model.__setitem__(key, value)


def _sample(name: str, sample: str) -> Edit:
    return lambda model: intent(model, name)["samples"].append(sample)


def _drop_intent(name: str) -> Edit:
    def edit(model: dict[str, Any]) -> None:
        model["intents"] = [i for i in model["intents"] if i["name"] != name]

    return edit


def _slot_type(name: str, slot_type: str) -> Edit:
    return lambda model: intent(model, name)["slots"].__setitem__(
        0, {"name": "name", "type": slot_type}
    )


def _add_intent(body: dict[str, Any]) -> Edit:
    return lambda model: model["intents"].append(body)


def _synonym_clash(model: dict[str, Any]) -> None:
    values = model["types"][0]["values"]
    values[1]["name"]["synonyms"].append("ada lovelace")


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (_set("invocationName", "Funker Dispatch"), (None, None), "only lowercase letters"),
        (_set("invocationName", "funker 2 dispatch"), (None, None), "spell out numbers"),
        (_set("invocationName", "ask funker"), (None, None), "launch word 'ask'"),
        (_set("invocationName", "alexa dispatch"), (None, None), "wake word"),
        (_set("invocationName", "the dispatch"), (None, None), "article or preposition"),
        (_set("invocationName", "x"), (None, None), "2 to 50 characters"),
        (
            _add_intent({"name": "Bad-Intent", "samples": ["do a bad thing"]}),
            ("Bad-Intent", None),
            "letters and underscores",
        ),
        (
            _add_intent(
                {
                    "name": "OddIntent",
                    "slots": [{"name": "2x", "type": "AMAZON.NUMBER"}],
                    "samples": ["odd {2x}"],
                }
            ),
            ("OddIntent", None),
            "slot '2x': letters and underscores",
        ),
        (
            _sample("HelloIntent", "wave to {friend}"),
            ("HelloIntent", "wave to {friend}"),
            "slot {friend} is not declared",
        ),
        (_slot_type("HelloIntent", "PersonName"), ("HelloIntent", None), "PersonName is neither"),
        (
            _sample("HostnameIntent", "how many people are in space"),
            ("HostnameIntent", "how many people are in space"),
            "under SpaceCountIntent too",
        ),
        (
            _sample("HostnameIntent", "which host answered?"),
            ("HostnameIntent", "which host answered?"),
            "only letters",
        ),
        (
            _sample("CaptainsIntent", "how many of the 12 captains"),
            ("CaptainsIntent", "how many of the 12 captains"),
            "spell numbers out",
        ),
        (
            _sample("HelloIntent", "greet {name"),
            ("HelloIntent", "greet {name"),
            "unbalanced",
        ),
        (_drop_intent("AMAZON.FallbackIntent"), (None, None), "AMAZON.FallbackIntent is missing"),
        (_drop_intent("AMAZON.NavigateHomeIntent"), (None, None), "NavigateHomeIntent is missing"),
        (
            _add_intent({"name": "WeatherIntent", "samples": ["what is the weather"]}),
            ("WeatherIntent", None),
            "no route",
        ),
        (_add_intent({"name": "EmptyIntent", "samples": []}), ("EmptyIntent", None), "sample"),
        (
            _add_intent({"name": "HelloIntent", "samples": ["hey"]}),
            ("HelloIntent", None),
            "declared twice",
        ),
        (_synonym_clash, (None, None), "resolves to both 'Ada' and 'Grace'"),
        (_set("intents", "none"), (None, None), "intents must be a non-empty list"),
    ],
)
def test_each_kind_of_error_is_caught_and_located(tmp_path, edit, where, message):
    package = broken_copy(tmp_path, edit)
    found = errors(package)
    assert found, "the broken copy passed"
    matching = [f for f in found if message in f.message]
    assert matching, [str(f) for f in found]
    finding = matching[0]
    assert finding.file.endswith("en-US.json")
    assert (finding.intent, finding.sample) == where
    assert finding.file in str(finding) and message in str(finding)


def test_invalid_json_names_the_file(tmp_path):
    package = broken_copy(tmp_path, lambda model: None, "en-GB")
    (package / "interactionModels" / "custom" / "en-GB.json").write_text('{"interactionModel": ')
    [finding] = errors(package)
    assert finding.file.endswith("en-GB.json")
    assert "not valid JSON" in finding.message


def test_wrong_shape_is_an_error_not_a_crash(tmp_path):
    package = broken_copy(tmp_path, lambda model: None)
    (package / "interactionModels" / "custom" / "en-US.json").write_text('{"languageModel": {}}')
    [finding] = errors(package)
    assert "interactionModel.languageModel" in finding.message


def test_an_unrouted_intent_is_reachable_by_naming_when_the_convention_is_on(tmp_path):
    package = broken_copy(
        tmp_path, _add_intent({"name": "WeatherIntent", "samples": ["what is the weather"]})
    )
    report = check_models(package, Router(ROUTES, naming="intent"))
    assert report.errors == []
    assert report.routes["WeatherIntent"] == "WeatherIntent:9999 (naming)"


def test_a_route_no_model_declares_is_a_warning():
    routes = {**ROUTES, "GhostIntent": parse_route("GhostIntent", {"host": "g"}, default_port=1)}
    report = check_models(None, Router(routes, naming="none"))
    assert report.errors == []
    assert [(w.intent, w.message) for w in report.warnings] == [
        ("GhostIntent", "routed, but no model declares it")
    ]


@pytest.mark.parametrize(
    "name", ["funker dispatch", "space facts", "sam's science trivia", "a. b. c. quiz"]
)
def test_valid_invocation_names_pass(name):
    assert invocation_name_problems(name) == []


def test_a_one_word_invocation_name_is_a_warning_only():
    assert invocation_name_problems("dispatch") == [
        ("one-word names are allowed only for your own brand", False)
    ]


def test_models_check_command_fails_and_names_file_intent_and_sample(tmp_path, capsys):
    package = broken_copy(tmp_path, _sample("HelloIntent", "wave to {friend}"))
    assert main(["models", "check", "--models", str(package)]) == 1
    err = capsys.readouterr().err
    assert 'en-US.json: HelloIntent: "wave to {friend}": slot {friend} is not declared' in err
