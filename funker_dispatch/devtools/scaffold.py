"""`funker-dispatch new DIR` and `new function NAME`: a skill project, and functions in it.

A project is a folder `serve` runs from: dispatch.toml (`[skill] development`), an
ask-cli skill package, `functions/NAME/` folders, dialog tests, and the same skill for a
swarm (deploy.toml, docker-stack.yml). A function folder is self-contained —
its handler, the protocol in a file of its own, a Dockerfile — so `docker build
functions/NAME` works anywhere. The files are rendered from templates/; the existing
ones a new function touches (the models, the two TOML files, the stack) are edited by
appending, never rewritten, so a developer's own edits and comments survive.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funker_dispatch.devtools.modelcheck import REQUIRED_BUILT_INS

TEMPLATES = Path(__file__).with_name("templates")
LOCALES_DIR = Path("interaction_models/interactionModels/custom")
#: Where the stack mounts the model in the dispatcher image: beside its dispatch.toml, so
#: deploy.toml's relative `interaction_models` is right both there and in the project.
IMAGE_MODELS = "/etc/funker-dispatch/interaction_models/interactionModels/custom"
STACK_MARKER = "  # funker-dispatch new function adds its services above this line."

#: Template file -> file in the function's folder, per language.
FUNCTION_FILES: dict[str, dict[str, str]] = {
    "python": {
        "function.py.tmpl": "function.py",
        "protocol.py": "protocol.py",
        "requirements.txt": "requirements.txt",
        "Dockerfile.tmpl": "Dockerfile",
        "dockerignore": ".dockerignore",
    },
    "node": {
        "index.js.tmpl": "index.js",
        "protocol.js": "protocol.js",
        "package.json.tmpl": "package.json",
        "Dockerfile.tmpl": "Dockerfile",
        "dockerignore": ".dockerignore",
    },
}
LANGUAGES = tuple(FUNCTION_FILES)

# Names Alexa and Docker both take: an intent is letters and underscores; a function is
# a service name and a host, so a DNS label.
_INTENT = re.compile(r"[A-Za-z][A-Za-z_]{0,99}")
_FUNCTION = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SLOT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
_BUILT_IN_TYPE = re.compile(r"AMAZON\.[A-Za-z][A-Za-z_]*")
_BRACED = re.compile(r"\{([^{}]*)\}")


# The first function of a new project: it asks for a missing name (Dialog.ElicitSlot),
# so the next thing the user says is that name, as on a device.
HELLO_BODY = """if not slots.get("name"):
        question = "Who should I say hello to?"
        return {
            "speech": question,
            "reprompt": question,
            "directives": [{"type": "Dialog.ElicitSlot", "slotToElicit": "name"}],
        }
    return {"speech": f"Hello, {slots['name']}!"}"""


class ScaffoldError(Exception):
    """What cannot be created, and why, in words for the command line."""


@dataclass
class Created:
    """What a command made and changed, for its report."""

    files: list[Path] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def render(template: Path, values: dict[str, str]) -> str:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.search(r"\{\{(\w+)\}\}", text)
    if left:  # a template and its values disagree: a bug here, not the user's
        raise AssertionError(f"{template.name}: no value for {left.group(1)}")
    return text


def invocation_for(folder: Path) -> str:
    """An invocation name from the project's folder name: lowercase words, at least two."""
    words = re.findall(r"[a-z]+", folder.name.lower()) or ["funker"]
    return " ".join(["my", *words] if len(words) == 1 else words)


def new_project(folder: Path, *, invocation: str | None = None) -> Created:
    """A skill project in `folder` (new or empty), with its first function, hello."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ScaffoldError(f"{folder} exists and is not empty: give a new folder")
    project = folder.resolve().name
    if not _FUNCTION.fullmatch(project):
        # It names the stack and prefixes the images: Docker's rules.
        raise ScaffoldError(
            f"{folder.name!r}: a project folder's name is lower-case letters, digits and '-'"
        )
    invocation = invocation or invocation_for(folder)
    created = Created()
    base = TEMPLATES / "project"
    values = {
        "project": project,
        "model_mounts": _model_mounts(("en-US",)),
        "model_configs": _model_configs(("en-US",)),
    }
    for template, target in {
        "dispatch.toml.tmpl": "dispatch.toml",
        "deploy.toml.tmpl": "deploy.toml",
        "docker-stack.yml.tmpl": "docker-stack.yml",
        "hello.yml.tmpl": "tests/hello.yml",
        "README.md.tmpl": "README.md",
        "gitignore.tmpl": ".gitignore",
    }.items():
        created.files.append(_write(folder / target, render(base / template, values)))
    created.files.append(
        _write(folder / "interaction_models" / "skill.json", _manifest(project, invocation))
    )
    created.files.append(_write(folder / LOCALES_DIR / "en-US.json", _language_model(invocation)))
    hello = new_function(
        folder,
        "hello",
        "python",
        intent="HelloIntent",
        utterances=["say hello to {name}", "say hello", "hello"],
        slots={"name": "AMAZON.FirstName"},
        python_body=HELLO_BODY,
    )
    created.files += hello.files
    # The name is asked for with Dialog.ElicitSlot, which needs the intent in the dialog
    # model; the slot's samples are what a user answers ("Grace", "it's Grace").
    model = folder / LOCALES_DIR / "en-US.json"
    _add_dialog(model, "HelloIntent", "name", ["{name}", "it's {name}"])
    return created


def new_function(
    project: Path,
    name: str,
    language: str = "python",
    *,
    intent: str | None = None,
    utterances: list[str] | None = None,
    slots: dict[str, str] | None = None,
    python_body: str | None = None,
) -> Created:
    """functions/NAME in `project`, registered; with `intent`, the intent in every locale
    and routed to it. Refuses an existing function or intent, naming it."""
    utterances, slots = list(utterances or []), dict(slots or {})
    config = project / "dispatch.toml"
    if not config.is_file():
        raise ScaffoldError(
            f"no dispatch.toml in {project}: run this in a project (funker-dispatch new DIR)"
        )
    if language not in FUNCTION_FILES:
        raise ScaffoldError(f"--lang is one of {', '.join(LANGUAGES)}, not {language!r}")
    if not _FUNCTION.fullmatch(name):
        raise ScaffoldError(
            f"{name!r}: a function's name is lower-case letters, digits and '-' "
            "(it is also a Docker service name and a host name)"
        )
    folder = project / "functions" / name
    if folder.exists():
        raise ScaffoldError(f"functions/{name} exists already")
    if re.search(rf"^\[functions\.{re.escape(name)}\]", config.read_text(), flags=re.M):
        raise ScaffoldError(f"dispatch.toml has a [functions.{name}] already")
    locales = sorted((project / LOCALES_DIR).glob("*.json"))
    if intent is None and (utterances or slots):
        raise ScaffoldError("--utterance and --slot go with --intent")
    if intent is not None:
        _check_intent(intent, utterances, slots, locales)

    created = Created()
    image = f"{project.resolve().name}/{name}:latest"
    values = {
        "name": name,
        "image": image,
        "python_body": python_body or _python_body(name, slots),
        "node_body": _node_body(name, slots),
    }
    for template, target in FUNCTION_FILES[language].items():
        created.files.append(
            _write(folder / target, render(TEMPLATES / language / template, values))
        )
    if intent is not None:
        for path in locales:
            _add_intent(path, intent, utterances or [_default_utterance(name)], slots)
            created.changed.append(f"{path.relative_to(project)}: {intent} added")
    entry = f"\n[functions.{name}]\n"
    if intent is not None:
        entry += f'\n[intents.{intent}]\nhost = "{name}"\n'
    _append(config, entry)
    created.changed.append(
        f"dispatch.toml: [functions.{name}]" + (f", [intents.{intent}]" if intent else "")
    )
    deploy = project / "deploy.toml"
    if intent is not None and deploy.is_file():
        _append(deploy, f'\n[intents.{intent}]\nhost = "{name}"\n')
        created.changed.append(f"deploy.toml: [intents.{intent}] to the service {name}")
    created.changed.append(_add_service(project, name, image))
    return created


def _add_dialog(path: Path, intent: str, slot: str, samples: list[str]) -> None:
    document = _read_model(path)
    interaction = document["interactionModel"]
    for known in interaction["languageModel"]["intents"]:
        if known.get("name") == intent:
            for declared in known.get("slots", []):
                if declared.get("name") == slot:
                    declared["samples"] = samples
    slot_type = next(
        s["type"]
        for i in interaction["languageModel"]["intents"]
        if i.get("name") == intent
        for s in i.get("slots", [])
        if s.get("name") == slot
    )
    interaction.setdefault("dialog", {"delegationStrategy": "SKILL_RESPONSE", "intents": []})
    interaction["dialog"]["intents"].append(
        {
            "name": intent,
            "delegationStrategy": "SKILL_RESPONSE",
            "confirmationRequired": False,
            "prompts": {},
            "slots": [
                {
                    "name": slot,
                    "type": slot_type,
                    "elicitationRequired": False,
                    "confirmationRequired": False,
                    "prompts": {},
                }
            ],
        }
    )
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _check_intent(
    intent: str, utterances: list[str], slots: dict[str, str], locales: list[Path]
) -> None:
    if not _INTENT.fullmatch(intent):
        raise ScaffoldError(f"{intent!r}: an intent's name is letters and underscores")
    if not locales:
        raise ScaffoldError(f"no interaction model in {LOCALES_DIR}")
    for path in locales:
        language = _read_model(path)["interactionModel"]["languageModel"]
        if any(known.get("name") == intent for known in language.get("intents", [])):
            raise ScaffoldError(f"{intent} is in {path.name} already")
        types = {t.get("name") for t in language.get("types") or []}
        for slot, slot_type in slots.items():
            if not (_BUILT_IN_TYPE.fullmatch(slot_type) or slot_type in types):
                raise ScaffoldError(
                    f"--slot {slot}:{slot_type}: the type is AMAZON.* or a type of the model"
                )
    for slot in slots:
        if not _SLOT.fullmatch(slot):
            raise ScaffoldError(f"--slot {slot!r}: a slot's name is letters, digits, underscores")
    for utterance in utterances:
        for used in _BRACED.findall(utterance):
            if used not in slots:
                raise ScaffoldError(
                    f"--utterance {utterance!r} uses {{{used}}}: declare it with --slot {used}:TYPE"
                )


def _default_utterance(name: str) -> str:
    return name.replace("-", " ")


def _add_intent(path: Path, intent: str, samples: list[str], slots: dict[str, str]) -> None:
    document = _read_model(path)
    intents = document["interactionModel"]["languageModel"].setdefault("intents", [])
    entry = {
        "name": intent,
        "slots": [{"name": slot, "type": slot_type} for slot, slot_type in slots.items()],
        "samples": samples,
    }
    # Before the built-ins, where a reader looks for the skill's own.
    at = next(
        (i for i, known in enumerate(intents) if known.get("name", "").startswith("AMAZON.")),
        len(intents),
    )
    intents.insert(at, entry)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _read_model(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        document["interactionModel"]["languageModel"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ScaffoldError(f"{path} is not an interaction model: {exc}") from None
    return document


def _add_service(project: Path, name: str, image: str) -> str:
    stack = project / "docker-stack.yml"
    block = (
        f"  {name}:\n"
        "    <<: *function\n"
        f"    image: ${{REGISTRY:-}}{image.replace(':latest', ':${TAG:-latest}')}\n"
        f"    build: functions/{name}\n\n"
    )
    if not stack.is_file():
        return "docker-stack.yml: none here, no service added"
    text = stack.read_text(encoding="utf-8")
    if STACK_MARKER not in text:
        return f"docker-stack.yml: its marker line is gone; add the service {name} by hand"
    stack.write_text(text.replace(STACK_MARKER, block + STACK_MARKER, 1), encoding="utf-8")
    return f"docker-stack.yml: the service {name}"


def _python_body(name: str, slots: dict[str, str]) -> str:
    if not slots:
        return f'return {{"speech": "This is {name.replace("-", " ")}."}}'
    heard = " and ".join(f"{slot} {{slots.get('{slot}')}}" for slot in slots)
    return f'return {{"speech": f"This is {name.replace("-", " ")}, with {heard}."}}'


def _node_body(name: str, slots: dict[str, str]) -> str:
    spoken = name.replace("-", " ")
    if not slots:
        return f'return {{ speech: "This is {spoken}." }};'
    heard = " and ".join(f"{slot} ${{slots.{slot}}}" for slot in slots)
    return f"return {{ speech: `This is {spoken}, with {heard}.` }};"


def _language_model(invocation: str) -> str:
    document = {
        "interactionModel": {
            "languageModel": {
                "invocationName": invocation,
                "intents": [{"name": name, "samples": []} for name in REQUIRED_BUILT_INS],
                "types": [],
            }
        }
    }
    return json.dumps(document, indent=2) + "\n"


def _manifest(project: str, invocation: str) -> str:
    """A minimal ask-cli skill manifest: `ask deploy` creates the skill from it."""
    title = invocation.title()
    manifest = {
        "manifest": {
            "manifestVersion": "1.0",
            "publishingInformation": {
                "locales": {
                    "en-US": {
                        "name": title,
                        "summary": f"{title}, served by your own functions.",
                        "description": f"{title} answers from functions of {project}.",
                        "examplePhrases": [f"Alexa, open {invocation}"],
                        "keywords": [],
                    }
                },
                "isAvailableWorldwide": True,
                "category": "EDUCATION_AND_REFERENCE",
            },
            "apis": {
                "custom": {
                    # Your HTTPS endpoint, before `ask deploy`.
                    "endpoint": {
                        "uri": "https://alexa.example.com/",
                        "sslCertificateType": "Wildcard",
                    },
                    "interfaces": [],
                }
            },
        }
    }
    return json.dumps(manifest, indent=2) + "\n"


def _model_mounts(locales: tuple[str, ...]) -> str:
    return "\n".join(
        f"      - source: model_{locale.replace('-', '_')}\n"
        f"        target: {IMAGE_MODELS}/{locale}.json\n"
        "        mode: 0444"
        for locale in locales
    )


def _model_configs(locales: tuple[str, ...]) -> str:
    return "\n".join(
        f"  model_{locale.replace('-', '_')}:\n"
        f"    file: interaction_models/interactionModels/custom/{locale}.json"
        for locale in locales
    )


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _append(path: Path, text: str) -> None:
    current = path.read_text(encoding="utf-8")
    separator = "" if current.endswith("\n") or not current else "\n"
    path.write_text(current + separator + text, encoding="utf-8")


# --- the command line ------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    new = commands.add_parser(
        "new",
        help="a skill project (new DIR), or a function in one (new function NAME)",
        description="funker-dispatch new DIR: a skill project of your own, with a first "
        "function. funker-dispatch new function NAME, in a project: a function folder, "
        "registered, and with --intent the intent in every locale and routed to it.",
    )
    new.add_argument("target", metavar="DIR | function", help="the project's new folder")
    new.add_argument("name", nargs="?", metavar="NAME", help="the function's name")
    new.add_argument("--invocation", help="the project's invocation name (default from DIR)")
    new.add_argument("--lang", choices=LANGUAGES, default="python", help="the function's language")
    new.add_argument("--intent", help="the intent the function answers (added to the model)")
    new.add_argument(
        "--utterance",
        action="append",
        default=[],
        metavar="TEXT",
        help='a sample of the intent, e.g. "what is the weather in {city}" (repeatable)',
    )
    new.add_argument(
        "--slot",
        action="append",
        default=[],
        metavar="NAME:TYPE",
        help="a slot of the intent, e.g. city:AMAZON.US_CITY (repeatable)",
    )


def new_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    function_only = ("--lang", "--intent", "--utterance", "--slot")
    try:
        if args.target == "function":
            if not args.name:
                parser.error("new function: give the function's NAME")
            slots = {}
            for given in args.slot:
                slot, _, slot_type = given.partition(":")
                if not slot or not slot_type:
                    parser.error(f"new function: --slot {given!r} is NAME:TYPE")
                slots[slot] = slot_type
            created = new_function(
                Path.cwd(),
                args.name,
                args.lang,
                intent=args.intent,
                utterances=args.utterance,
                slots=slots,
            )
        else:
            if args.name:
                parser.error(f"new: one folder, not {args.target!r} and {args.name!r}")
            if args.intent or args.utterance or args.slot or args.lang != "python":
                parser.error(f"new DIR: {', '.join(function_only)} go with `new function`")
            created = new_project(Path(args.target), invocation=args.invocation)
    except ScaffoldError as exc:
        print(f"funker-dispatch new: {exc}", file=sys.stderr)
        return 2
    here = Path.cwd()
    for path in created.files:
        shown = path.relative_to(here) if path.is_relative_to(here) else path
        print(f"  created  {shown}")
    for change in created.changed:
        print(f"  changed  {change}")
    if args.target != "function":
        print(
            f"\nNext:\n  cd {args.target}\n  funker-dispatch serve\n"
            '  funker-dispatch simulate "say hello to Ada"     (in another terminal)\n'
            "  funker-dispatch test"
        )
    elif args.intent:
        sample = (args.utterance or [args.name.replace("-", " ")])[0]
        print(f'\nserve picks it up when started; then: funker-dispatch simulate "{sample}"')
    return 0
