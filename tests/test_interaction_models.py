"""The ask-cli skill package is one `ask deploy` would accept, and the example intents are in it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "interaction_models"
LOCALES = ("en-US", "en-GB")
CUSTOM_INTENTS = {"SpaceCountIntent", "HelloIntent", "HostnameIntent", "CaptainsIntent"}
# What certification requires of every custom skill (docs/alexa.md).
REQUIRED_BUILT_INS = {
    "AMAZON.HelpIntent",
    "AMAZON.StopIntent",
    "AMAZON.CancelIntent",
    "AMAZON.FallbackIntent",
    "AMAZON.NavigateHomeIntent",
}

# A sample is lowercase words (apostrophes inside a word: "what's"), spelled
# abbreviations with periods ("t. v." / "u.s."), and {slot} references.
_WORD = r"(?:[a-z]+(?:'[a-z]+)*|(?:[a-z]\.)+)"
_SLOT = r"\{[A-Za-z_]+\}"
SAMPLE = re.compile(rf"^(?:{_WORD}|{_SLOT})(?: (?:{_WORD}|{_SLOT}))*$")
SLOT_REF = re.compile(r"\{([^}]*)\}")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def language_model(locale: str) -> dict[str, Any]:
    return load(PACKAGE / "interactionModels" / "custom" / f"{locale}.json")["interactionModel"][
        "languageModel"
    ]


@pytest.fixture(params=LOCALES)
def model(request: pytest.FixtureRequest) -> dict[str, Any]:
    return language_model(request.param)


def test_every_json_file_of_the_package_parses():
    paths = [*PACKAGE.rglob("*.json"), ROOT / "ask-resources.json"]
    assert len(paths) == 4
    for path in paths:
        assert isinstance(load(path), dict), path


def test_both_locales_have_the_same_intents_and_slots():
    def shape(locale: str) -> dict[str, list[tuple[str, str]]]:
        return {
            intent["name"]: sorted((s["name"], s["type"]) for s in intent.get("slots", []))
            for intent in language_model(locale)["intents"]
        }

    assert shape("en-US") == shape("en-GB")


def test_invocation_name_is_two_lowercase_words(model):
    assert model["invocationName"] == "funker dispatch"


def test_example_and_required_built_in_intents_are_present(model):
    names = {intent["name"] for intent in model["intents"]}
    assert names >= CUSTOM_INTENTS | REQUIRED_BUILT_INS
    assert len(names) == len(model["intents"]), "an intent is declared twice"


def test_built_ins_carry_no_samples_and_custom_intents_do(model):
    for intent in model["intents"]:
        if intent["name"].startswith("AMAZON."):
            assert intent.get("samples", []) == [], intent["name"]
        else:
            assert intent["samples"], intent["name"]


def test_samples_are_lowercase_words_without_punctuation(model):
    bad = [
        (intent["name"], sample)
        for intent in model["intents"]
        for sample in intent.get("samples", [])
        if not SAMPLE.match(sample)
    ]
    assert bad == []


def test_every_slot_in_a_sample_is_declared_on_its_intent(model):
    for intent in model["intents"]:
        declared = {slot["name"] for slot in intent.get("slots", [])}
        used = {ref for s in intent.get("samples", []) for ref in SLOT_REF.findall(s)}
        assert used <= declared, intent["name"]
        # A declared slot no sample can fill would never be sent.
        assert declared <= used, intent["name"]


def test_no_sample_appears_under_two_intents(model):
    owner: dict[str, str] = {}
    clashes = []
    for intent in model["intents"]:
        for sample in intent.get("samples", []):
            key = " ".join(sample.split())
            if key in owner and owner[key] != intent["name"]:
                clashes.append((sample, owner[key], intent["name"]))
            owner.setdefault(key, intent["name"])
    assert clashes == []


def test_custom_slot_types_are_declared_with_unique_values_and_synonyms(model):
    declared = {t["name"]: t for t in model.get("types", [])}
    for intent in model["intents"]:
        for slot in intent.get("slots", []):
            if not slot["type"].startswith("AMAZON."):
                assert slot["type"] in declared, (intent["name"], slot["type"])
    assert declared["FriendName"]["values"]
    for slot_type in declared.values():
        # A word that resolves to two values makes entity resolution ambiguous.
        spoken = [
            word.lower()
            for value in slot_type["values"]
            for word in [value["name"]["value"], *value["name"].get("synonyms", [])]
        ]
        assert len(spoken) == len(set(spoken)), slot_type["name"]
        ids = [value.get("id") for value in slot_type["values"]]
        assert len(ids) == len(set(ids)), slot_type["name"]


def test_hello_name_slot_resolves_synonyms_to_the_name_the_function_greets(model):
    values = {v["name"]["value"]: v["name"]["synonyms"] for v in _friend_names(model)}
    assert "Ada Lovelace" in values["Ada"]
    assert "Amazing Grace" in values["Grace"]


def _friend_names(model: dict[str, Any]) -> list[dict[str, Any]]:
    return next(t for t in model["types"] if t["name"] == "FriendName")["values"]


def test_the_first_plain_sample_of_each_intent_reads_as_an_example_to_offer(model):
    # The skill's welcome and help read the first sample without a slot of each
    # custom intent aloud ("You can ask: how many people are in space, ...").
    first = {
        intent["name"]: next(s for s in intent["samples"] if "{" not in s)
        for intent in model["intents"]
        if intent["name"] in CUSTOM_INTENTS
    }
    assert first["SpaceCountIntent"] == "how many people are in space"
    assert first["HelloIntent"] == "say hello"


def test_skill_manifest_declares_the_self_hosted_https_endpoint():
    manifest = load(PACKAGE / "skill.json")["manifest"]
    assert manifest["manifestVersion"] == "1.0"
    endpoint = manifest["apis"]["custom"]["endpoint"]
    assert endpoint["uri"].startswith("https://")
    assert endpoint["sslCertificateType"] in {"Wildcard", "SelfSigned", "Trusted"}
    assert endpoint == {"uri": "https://alexa.example.com/", "sslCertificateType": "Wildcard"}


def test_skill_manifest_publishes_both_locales_with_privacy_links():
    manifest = load(PACKAGE / "skill.json")["manifest"]
    publishing = manifest["publishingInformation"]
    assert set(publishing["locales"]) == set(LOCALES)
    for locale, info in publishing["locales"].items():
        assert info["name"] == "Funker Dispatch", locale
        assert info["summary"] and info["description"] and info["keywords"], locale
        assert 1 <= len(info["examplePhrases"]) <= 3, locale
    assert isinstance(publishing["isAvailableWorldwide"], bool)
    assert publishing["testingInstructions"] and publishing["category"]
    privacy = manifest["privacyAndCompliance"]
    assert privacy["isExportCompliant"] is True
    for flag in ("allowsPurchases", "usesPersonalInfo", "isChildDirected", "containsAds"):
        assert privacy[flag] is False, flag
    assert set(privacy["locales"]) == set(LOCALES)
    for urls in privacy["locales"].values():
        assert urls["privacyPolicyUrl"].startswith("https://")
        assert urls["termsOfUseUrl"].startswith("https://")


def test_example_phrases_say_what_the_model_understands():
    # Certification checks every example phrase against the sample utterances.
    manifest = load(PACKAGE / "skill.json")["manifest"]
    for locale, info in manifest["publishingInformation"]["locales"].items():
        samples = [
            s for intent in language_model(locale)["intents"] for s in intent.get("samples", [])
        ]
        patterns = [_as_pattern(s) for s in samples]
        invocation = language_model(locale)["invocationName"]
        for phrase in info["examplePhrases"]:
            spoken = phrase.lower().rstrip(".")
            assert spoken.startswith("alexa, "), phrase
            if spoken in {f"alexa, open {invocation}", f"alexa, launch {invocation}"}:
                continue
            asked = spoken.removeprefix(f"alexa, ask {invocation} ").removeprefix("to ")
            assert any(p.match(asked) for p in patterns), (locale, phrase)


def _as_pattern(sample: str) -> re.Pattern[str]:
    # A slot matches any run of spoken words; everything else literally.
    words = [r"[a-z'. ]+" if SLOT_REF.fullmatch(w) else re.escape(w) for w in sample.split()]
    return re.compile("^" + " ".join(words) + "$")


def test_ask_resources_points_at_the_skill_package_without_code_or_infrastructure():
    resources = load(ROOT / "ask-resources.json")
    assert resources["askcliResourcesVersion"] == "2020-03-31"
    profile = resources["profiles"]["default"]
    assert profile["skillMetadata"]["src"] == "./interaction_models"
    # The endpoint is self-hosted: nothing for ask-cli to build or deploy.
    assert "code" not in profile
    assert "skillInfrastructure" not in profile
    assert (ROOT / profile["skillMetadata"]["src"] / "skill.json").is_file()
